// The addon's entry points: one set of functions per JS thread (module instance), each with its
// JsThread as data. These are thin: they check, attach, convert, call one C-API function, and
// convert back. The TypeScript layer (src/) builds the public API on top of them.
#include <dlfcn.h>
#include <node.h>
#include <uv.h>
#include <v8.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <unordered_map>

#include "async_pool.h"
#include "buffers.h"
#include "callbacks.h"
#include "convert.h"
#include "engine.h"
#include "errors.h"
#include "gil.h"
#include "handles.h"
#include "interrupt.h"
#include "js_thread.h"
#include "python_helpers.h"
#include "stack.h"
#include "v8_util.h"

namespace {

using v8::FunctionCallbackInfo;
using v8::Local;
using JsValue = v8::Value;

JsThread* ThreadOf(const FunctionCallbackInfo<JsValue>& info) {
  return static_cast<JsThread*>(info.Data().As<v8::External>()->Value());
}

// The calling thread's context: the thread running JS on t's isolate is its holder (the JS
// thread, or a thread that borrowed the isolate), so this saves a thread-local lookup (a call
// into the dynamic linker in a shared library) on every operation.
ThreadContext& CallerContext(JsThread* t) {
  ThreadContext* holder = t->holder.load(std::memory_order_relaxed);
  return holder ? *holder : tls;
}

std::string Utf8(v8::Isolate* isolate, Local<JsValue> v) {
  v8::String::Utf8Value s(isolate, v);
  return *s ? std::string(*s, s.length()) : std::string();
}

// One synchronous operation on Python objects from a JS thread.
class Op {
 public:
  explicit Op(const FunctionCallbackInfo<JsValue>& info)
      : info(info), t(ThreadOf(info)), isolate(info.GetIsolate()), ctx(CallerContext(t)) {}
  // Python code forked during this operation, and this is the child (ParkedIsolate catches the
  // common case earlier, right where the Python call returns).
  ~Op() {
    if (InForkedChild()) ExitForkedChild();
    if (entered_) Attached().~PythonCall();  // before pins_, as a member declared after it would be
  }

  // Attaches (takes the GIL if this thread does not hold it). False: a JS exception is pending.
  [[gnu::always_inline]] bool Enter() {
    if (StackNearlyExhausted(ctx)) {
      isolate->ThrowException(v8::Exception::RangeError(v8::String::NewFromUtf8Literal(
          isolate, "Maximum call stack size exceeded (nested JS <-> Python calls)")));
      return false;
    }
    new (callStorage_) PythonCall(ctx);
    entered_ = true;
    if (!Attached().ok()) {
      ThrowError(isolate, Attached().error());
      return false;
    }
    if (pins_ && pins_->AnyShutDown()) {
      ThrowTypeError(isolate, "this Python object belongs to an interpreter that was shut down");
      return false;
    }
    return true;
  }

  // Enter() and Target(0): the common start of an operation on one object.
  [[gnu::always_inline]] PyObject* EnterWithTarget() { return Enter() ? Target(0) : nullptr; }

  // The live Python object of the handle in argument `index`, or null (JS exception pending).
  [[gnu::always_inline]] PyObject* Target(int index, PyHandle** handleOut = nullptr) {
    PyHandle* h = HandleFromValue(t, info[index]);
    if (!h) {
      ThrowTypeError(isolate, "expected a Python object (pyembed proxy)");
      return nullptr;
    }
    const char* why = nullptr;
    PyObject* o = LiveObject(h, &why, GenerationOf(ctx));
    if (!o) ThrowError(isolate, why);
    if (handleOut) *handleOut = h;
    return o;
  }

  // The interned Python name for a JS string argument, or null (JS exception pending).
  [[gnu::always_inline]] PyObject* Name(int index) {
    if (!info[index]->IsString()) {
      ThrowTypeError(isolate, "an attribute name must be a string");
      return nullptr;
    }
    PyObject* name = t->names.Get(isolate, info[index].As<v8::String>(), GenerationOf(ctx));
    if (!name) ThrowPythonError(t);
    return name;
  }

  // Arguments are captured before the operation attaches: converting a primitive runs no JS, so
  // it waits for the fast path; anything else may run JS (getters) and becomes a Snapshot now,
  // while this thread does not hold the GIL. False: a JS exception is pending.
  // The Snapshot lives on the heap: an Arg stays small, so the inline arguments of a call do not
  // take kilobytes of the stack that nested JS <-> Python calls share.
  // An array of primitives (the common big argument) keeps its elements as they are, to become
  // a list under the GIL without a Snapshot per element; its leading numbers as doubles (read in
  // bulk: ReadNumberPrefix), then the other elements (on the heap too).
  struct CapturedArray {
    NumberBuffer numbers;
    std::vector<Local<JsValue>> elements;
  };
  struct Arg {
    Local<JsValue> primitive;
    std::unique_ptr<Snapshot> snapshot;
    std::unique_ptr<CapturedArray> primitives;
  };
  bool Capture(Local<JsValue> v, Arg* out) {
    if (IsFastPrimitive(v)) {
      out->primitive = v;
      return true;
    }
    if (v->IsArray()) return CaptureArray(v.As<v8::Array>(), out);
    out->snapshot = std::make_unique<Snapshot>();
    ConvertError error;
    if (!JsToValue(t, v, &*out->snapshot, &error, Pins())) {
      ThrowConvertError(isolate, error);
      return false;
    }
    return true;
  }
  bool CaptureArray(Local<v8::Array> array, Arg* out) {
    Local<v8::Context> context = isolate->GetCurrentContext();
    uint32_t n = array->Length();
    if (n > kMaxArrayLength) {
      ThrowConvertError(isolate, ArrayTooLongError(n));
      return false;
    }
    auto captured = std::make_unique<CapturedArray>();
    std::vector<Local<JsValue>>* elements = &captured->elements;
    v8::TryCatch tryCatch(isolate);  // a getter's error joins the conversion error
    std::vector<double>& numbers = captured->numbers.values;
    Local<JsValue> stop;
    bool stopped = false;
    if (!ReadNumberPrefix(t, context, array, n, &captured->numbers, &stop, &stopped)) return ArrayReadFailed(tryCatch);
    uint32_t first = static_cast<uint32_t>(numbers.size());
    elements->reserve(n - first);
    for (uint32_t i = first; i < n; i++) {
      Local<JsValue> e;
      if (i == first && stopped) {
        e = stop;  // read by ReadNumberPrefix
      } else if (!array->Get(context, i).ToLocal(&e)) {
        return ArrayReadFailed(tryCatch);  // each element is read once
      }
      elements->push_back(e);
      if (IsFastPrimitive(e)) continue;
      // Not all primitives: a list Snapshot, from the elements read so far and the rest, in one
      // walk (the array may hold itself, or one object twice).
      if (!numbers.empty()) {
        std::vector<Local<JsValue>> read;
        read.reserve(numbers.size() + elements->size());
        for (double d : numbers) read.push_back(v8::Number::New(isolate, d));
        read.insert(read.end(), elements->begin(), elements->end());
        *elements = std::move(read);
        numbers.clear();
      }
      out->snapshot = std::make_unique<Snapshot>();
      ConvertError error;
      if (!JsArrayToValue(t, array, *elements, &*out->snapshot, &error, Pins())) {
        if (tryCatch.HasTerminated()) return false;  // rethrown: JS is being terminated
        ThrowConvertError(isolate, error);
        tryCatch.ReThrow();  // past this function's TryCatch
        return false;
      }
      return true;
    }
    out->primitives = std::move(captured);
    return true;
  }
  bool ArrayReadFailed(v8::TryCatch& tryCatch) {  // as the Snapshot path reports it
    ConvertError error;
    error.message = "cannot read an array element";
    AddCaughtMessage(isolate, tryCatch, &error);
    if (tryCatch.HasTerminated()) return false;  // rethrown: JS is being terminated
    ThrowConvertError(isolate, error);
    tryCatch.ReThrow();  // past CaptureArray's TryCatch
    return false;
  }

  // After Enter(): a new reference for a captured argument, or null (JS exception pending).
  PyObject* ToPython(Arg& a) {
    if (a.primitives) return PrimitivesToList(a.primitives->numbers.values, a.primitives->elements);
    if (!a.snapshot) return PrimitiveToPythonRef(a.primitive);
    return SnapshotToPython(*a.snapshot);
  }

  // After Enter(): a new reference for a JS primitive, or null (JS exception pending).
  PyObject* PrimitiveToPythonRef(Local<JsValue> v) {
    PyObject* o = nullptr;
    Fast f = PrimitiveToPython(isolate, v, &o);
    if (f == Fast::kDone) return o;
    if (f == Fast::kPythonError) {
      ThrowPythonError(t);
      return nullptr;
    }
    // A primitive the fast path leaves alone (a long or two-byte string): the Snapshot path,
    // which runs no JS for a primitive, so it may run now.
    Snapshot snapshot;
    ConvertError error;
    if (!JsToValue(t, v, &snapshot, &error, Pins())) {
      ThrowConvertError(isolate, error);
      return nullptr;
    }
    return SnapshotToPython(snapshot);
  }

  // A JS string argument as a Python str, whole (lone surrogates kept, so Python reports source
  // it cannot encode as it would for its own str), or null (JS exception pending).
  PyObject* StrArg(int index) {
    if (!info[index]->IsString()) {
      ThrowTypeError(isolate, "expected a string");
      return nullptr;
    }
    PyObject* s = StringToPython(isolate, info[index].As<v8::String>());
    if (!s) ThrowPythonError(t);
    return s;
  }

  // A module name: as StrArg, but a NUL in it is a ValueError on every Python version (the
  // import system would cut the name there, or not, depending on the version).
  PyObject* ModuleNameArg(int index) {
    PyRefOwned name(StrArg(index));
    if (!name) return nullptr;
    PyRefOwned nul(py.PyUnicode_FromStringAndSize("\0", 1));
    int found = nul ? py.PySequence_Contains(name.get(), nul.get()) : -1;
    if (found != 0) {
      if (found > 0) py.PyErr_SetString(py.PyExc_ValueError, "embedded null character in module name");
      ThrowPythonError(t);
      return nullptr;
    }
    return name.release();
  }

  PyObject* SnapshotToPython(Snapshot& v) {
    PyObject* o = ValueToPython(t, v);
    if (!o) ThrowPythonError(t);
    return o;
  }

  PyObject* PrimitivesToList(const std::vector<double>& numbers, const std::vector<Local<JsValue>>& elements) {
    PyRefOwned list(py.PyList_New(static_cast<Py_ssize_t>(numbers.size() + elements.size())));
    if (!list) {
      ThrowPythonError(t);
      return nullptr;
    }
    Py_ssize_t at = 0;
    for (double d : numbers) {
      PyObject* o = NumberToPython(d);
      if (!o) {
        ThrowPythonError(t);
        return nullptr;
      }
      py.PyList_SetItem(list.get(), at++, o);  // steals o; cannot fail here
    }
    for (size_t i = 0; i < elements.size(); i++) {
      PyObject* o = PrimitiveToPythonRef(elements[i]);
      if (!o) return nullptr;
      py.PyList_SetItem(list.get(), at++, o);  // steals o; cannot fail here
    }
    return list.release();
  }

  // Sets the return value from a new reference (consumed); null means a Python error is set.
  // The commonest results inline (ReturnSmall), the rest out of line.
  [[gnu::always_inline]] void Return(PyObject* result) {
    if (__builtin_expect(result != nullptr, 1) && ReturnSmall(result)) return;
    ReturnConverted(result, ToJsOptions());
  }
  void Return(PyObject* result, const ToJsOptions& options) {
    if (result && ReturnSmall(result)) return;
    ReturnConverted(result, options);
  }
  [[gnu::noinline]] void ReturnConverted(PyObject* result, const ToJsOptions& options) {
    if (!result) {
      ThrowPythonError(t);
      return;
    }
    Local<JsValue> js;
    Fast f = PrimitiveToJs(isolate, result, &js);
    if (f == Fast::kNotHandled) f = ContainerToJs(t, result, options, &js);
    if (f != Fast::kNotHandled) {
      py.Py_DecRef(result);
      if (f == Fast::kDone) info.GetReturnValue().Set(js);
      else if (f == Fast::kPythonError) ThrowPythonError(t);
      // kConvertError: a JS exception is already pending
      return;
    }
    Snapshot v;
    bool ok = PythonToValue(result, options, &v);
    py.Py_DecRef(result);
    if (!ok) {
      ThrowPythonError(t);
      return;
    }
    if (ValueToJs(t, v, options.wrapTopLevel).ToLocal(&js)) info.GetReturnValue().Set(js);
  }

  // The commonest results (None, an int that fits 32 bits, a float, a bool), set without
  // making a V8 handle; the same values PrimitiveToJs gives. False: not one of those.
  [[gnu::always_inline]] bool ReturnSmall(PyObject* result) {
    PyObject* type = TypeOf(result);
    v8::ReturnValue<JsValue> rv = info.GetReturnValue();
    if (result == py.None) {
      rv.SetUndefined();
    } else if (type == py.PyLong_Type) {
      int overflow = 0;
      long long i = py.PyLong_AsLongLongAndOverflow(result, &overflow);
      if (overflow != 0 || i < INT32_MIN || i > INT32_MAX) return false;
      rv.Set(static_cast<int32_t>(i));
    } else if (type == py.PyFloat_Type) {
      rv.Set(py.PyFloat_AsDouble(result));
    } else if (type == py.PyBool_Type) {
      rv.Set(result == py.True);
    } else {
      return false;
    }
    py.Py_DecRef(result);
    return true;
  }

  // The result as a handle, never converted (callRaw).
  void ReturnObject(PyObject* result) {
    if (!result) {
      ThrowPythonError(t);
      return;
    }
    Local<v8::Object> handle;
    if (NewHandle(t, result, HandleFlagsOf(result)).ToLocal(&handle)) info.GetReturnValue().Set(handle);
    else py.Py_DecRef(result);
  }

  void ReturnBool(int r) {
    if (r < 0) ThrowPythonError(t);
    else info.GetReturnValue().Set(r != 0);
  }

  const FunctionCallbackInfo<JsValue>& info;
  JsThread* const t;
  v8::Isolate* const isolate;
  ThreadContext& ctx;

 private:
  // Made by the first argument that needs a Snapshot (most operations have none).
  PinnedHandles* Pins() { return pins_ ? &*pins_ : &pins_.emplace(); }
  std::optional<PinnedHandles> pins_;  // destroyed after the PythonCall: unpinned while still attached
  // The operation's PythonCall, made by Enter() (not a std::optional: its emplace was not inlined).
  PythonCall& Attached() { return *std::launder(reinterpret_cast<PythonCall*>(callStorage_)); }
  alignas(PythonCall) unsigned char callStorage_[sizeof(PythonCall)];
  bool entered_ = false;
};

void DropSharedObjects();
bool StopPython();
void FinalizeAtProcessExit();

// --- engine ------------------------------------------------------------------------------

// start(library, executable, helperSource) -> version string
void Start(const FunctionCallbackInfo<JsValue>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  if (InForkedChild()) return ThrowError(isolate, kForkedChildError);
  EngineConfig config;
  config.library = Utf8(isolate, info[0]);
  config.executable = Utf8(isolate, info[1]);
  config.helperSource = Utf8(isolate, info[2]);
  std::string error;
  bool ok;
  {
    // Starting takes a while; let other threads run this thread's callbacks meanwhile.
    ParkedIsolate park(ThreadOf(info), /*force=*/true);
    ok = engine.Start(config, &error);
  }
  if (!ok) {
    ThrowError(isolate, error);
    return;
  }
  static std::once_flag exitHook;
  std::call_once(exitHook, [] { std::atexit(FinalizeAtProcessExit); });
  info.GetReturnValue().Set(
      v8::String::NewFromUtf8(isolate, CurrentHelpers().version.c_str()).ToLocalChecked());
}

// startIsolated(helperSource): gives this worker its own interpreter and GIL (the shared
// interpreter runs already: src/engine.ts starts it first).
void StartIsolated(const FunctionCallbackInfo<JsValue>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  JsThread* t = ThreadOf(info);
  if (InForkedChild()) return ThrowError(isolate, kForkedChildError);
  if (tls.isolated) return;  // idempotent
  if (tls.isMainJsThread || !t) {
    return ThrowError(isolate, "an isolated interpreter is for worker threads (worker_threads); "
                               "the main thread uses the shared interpreter");
  }
  if (engine.state() == EngineState::kStopping) return ThrowError(isolate, kShuttingDownMessage);
  if (!engine.running()) return ThrowError(isolate, ShutDownMessage());
  std::string error;
  bool ok;
  {
    ParkedIsolate park(t, /*force=*/true);
    ok = StartIsolatedInterpreter(Utf8(isolate, info[0]), &error);
  }
  if (!ok) ThrowError(isolate, error);
}

// isIsolated() -> whether this thread has its own interpreter
void IsIsolated(const FunctionCallbackInfo<JsValue>& info) {
  info.GetReturnValue().Set(tls.isolated != nullptr);
}

// stop(): finalize Python. From any JS thread, not from inside a Python call.
void Stop(const FunctionCallbackInfo<JsValue>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  JsThread* t = ThreadOf(info);
  // The interpreter thread does not exist in a forked child: there is nothing to finalize there.
  if (InForkedChild()) return ThrowError(isolate, kForkedChildError);
  if (tls.callDepth > 0 || tls.trampolineDepth > 0) {
    ThrowError(isolate,
               "PythonEngine.shutdown() cannot run inside a Python call (for example in a JS "
               "callback that Python called); call it after that call returns");
    return;
  }
  if (tls.isolated) {  // an isolated worker's shutdown() ends its own interpreter only
    // Parked: ending joins its Python threads and stops its callAsync threads, and either may be
    // waiting on a JS callback of this thread: they borrow the isolate meanwhile.
    ParkedIsolate park(t, /*force=*/true);
    EndIsolatedInterpreter();
    return;
  }
  static constexpr const char kIsolatedStillRun[] =
      "isolated workers still run their own interpreters: end them (their shutdown(), exit or "
      "terminate()) before shutting down the shared one";
  // Checked here first so that a refused shutdown leaves other threads' calls alone; StopPython
  // checks again for an isolated interpreter whose creation raced this one.
  if (isolatedInterpreters.load() > 0) return ThrowError(isolate, kIsolatedStillRun);
  engine.stoppedAtExit.store(info[0]->IsTrue(), std::memory_order_relaxed);  // stop(atExit)
  ParkedIsolate park(t, /*force=*/true);
  if (!StopPython()) ThrowError(isolate, kIsolatedStillRun);
}

// Finalizes Python, from a thread outside any Python call (parked, if it is a JS thread).
// False, with Python left running, when an isolated interpreter began before the shutdown did
// (an isolated worker's initialize() racing it): finalizing would pull the runtime from under it.
bool StopPython() {
  static std::mutex stopMu;  // one shutdown at a time; a second caller waits for the first
  std::lock_guard<std::mutex> stopLock(stopMu);
  engine.WaitForStart();  // a start in progress on another thread completes first
  if (engine.state() != EngineState::kRunning) return true;
  // 1. Refuse new work: attach, then flip the state under the GIL, so every thread that attaches
  //    after us sees it (PythonCall re-checks after attaching).
  if (tls.attached) Detach();
  Attach();
  engine.set_state(EngineState::kStopping);
  Detach();
  // An isolated interpreter being made holds `attaching` until it is counted, or ended again
  // because it saw the state above: once none is in flight, a count left is a live one.
  while (engine.attaching.load(std::memory_order_seq_cst) != 0) {
    std::unique_lock<std::mutex> lock(engine.waitMu);
    engine.waitCv.wait_for(lock, std::chrono::milliseconds(1));
  }
  if (isolatedInterpreters.load(std::memory_order_seq_cst) > 0) {
    engine.set_state(EngineState::kRunning);
    return false;
  }
  // 2. Finish async work (queued jobs are rejected, running ones complete).
  asyncPool.Stop();
  // 3. Wait for every JS thread still inside a Python call, or about to attach, to leave.
  for (;;) {
    Attach();
    InterruptTerminatingThreads();  // at process exit: workers stuck in Python leave their calls
    bool idle = engine.busyThreads == 0 && engine.attaching.load(std::memory_order_seq_cst) == 0;
    Detach();
    if (idle) break;
    std::unique_lock<std::mutex> lock(engine.waitMu);
    engine.waitCv.wait_for(lock, std::chrono::milliseconds(20));
  }
  Attach();
  DropSharedObjects();
  // What JS still holds goes first, newest first, so Python's own cleanup of those objects runs
  // (generators' finally blocks, context managers' __exit__); then what their release queued.
  ReleaseHandlesBeforeFinalize();
  if (CurrentPendingDecrefs().NonEmpty()) CurrentPendingDecrefs().Drain();
  Detach();
  StopKeepingGil(tls);  // nothing kept, and the GIL watcher forgets this thread
  // 4. Finalize on the interpreter thread (atexit handlers, thread joins, flushing).
  engine.Stop();
  tls.ForgetInterpreter();
  return true;
}

// Process exit with Python still running: the main thread's 'exit' hook (src/engine.ts)
// finalizes it when the main thread uses pyembed; when only workers did, nothing JS is left to,
// so this does, from exit(), once Node has stopped every worker.
void FinalizeAtProcessExit() {
  if (InForkedChild() || !engine.running()) return;
  if (tls.callDepth > 0 || tls.trampolineDepth > 0) return;  // exit() inside a Python call
  StopPython();
}

// info() -> [sys.version, executable, library] of the running interpreter, or undefined
void Info(const FunctionCallbackInfo<JsValue>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  if (!engine.running()) return;
  Local<JsValue> items[] = {
      v8::String::NewFromUtf8(isolate, CurrentHelpers().version.c_str()).ToLocalChecked(),
      v8::String::NewFromUtf8(isolate, engine.config().executable.c_str()).ToLocalChecked(),
      v8::String::NewFromUtf8(isolate, engine.config().library.c_str()).ToLocalChecked()};
  info.GetReturnValue().Set(v8::Array::New(isolate, items, 3));
}

void IsRunning(const FunctionCallbackInfo<JsValue>& info) {
  info.GetReturnValue().Set(engine.running());
}

// shutDownMessage(): what a use of Python says when it was shut down (or is shutting down) and
// not started again, else undefined
void ShutDownMessageOf(const FunctionCallbackInfo<JsValue>& info) {
  EngineState s = engine.state();
  if (s == EngineState::kStopping || (s == EngineState::kStopped && engine.wasStopped())) {
    info.GetReturnValue().Set(JsText(info.GetIsolate(), ShutDownMessage()));
  }
}

void SetAsyncThreads(const FunctionCallbackInfo<JsValue>& info) {
  asyncPool.SetMaxThreads(info[0]->Int32Value(info.GetIsolate()->GetCurrentContext()).FromMaybe(4));
}

// --- the GIL -----------------------------------------------------------------------------

// gilEnter(): open a Py.GIL() scope: the thread keeps the GIL between operations until the
// last scope closes (or the event loop turns: see OnPrepare).
void GilEnter(const FunctionCallbackInfo<JsValue>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  if (InForkedChild()) return ThrowError(isolate, kForkedChildError);
  if (!engine.running()) {
    ThrowError(isolate, "Python is not running");
    return;
  }
  if (!tls.attached) {
    if (!engine.BeginAttach()) {
      ThrowError(isolate, kShuttingDownMessage);
      return;
    }
    Attach();
    engine.EndAttach();
    if (!engine.running()) {
      Detach();
      ThrowError(isolate, kShuttingDownMessage);
      return;
    }
  }
  tls.scopeDepth++;
}

// gilExit(): close one scope; the last one releases the GIL. JS never runs in the middle of an
// operation of its own level (callbacks detach first), so this is always the right moment.
void GilExit(const FunctionCallbackInfo<JsValue>&) {
  ThreadContext& ctx = tls;
  if (ctx.scopeDepth > 0) {
    ctx.scopeDepth--;
  } else if (ctx.trampolineDepth > 0) {
    ctx.outerScopesClosed++;  // a scope opened outside this callback: counted when it returns
  }
  if (ctx.scopeDepth == 0 && ctx.attached) Detach(ctx);
}

// handleFlags(handle) -> bit 0 callable, bit 1 awaitable; no GIL needed
void HandleFlags(const FunctionCallbackInfo<JsValue>& info) {
  PyHandle* h = HandleFromValue(ThreadOf(info), info[0]);
  info.GetReturnValue().Set(h ? h->flags : 0);
}

// gilSuspend() -> saved scope depth; releases the GIL the thread holds through open scopes.
void GilSuspend(const FunctionCallbackInfo<JsValue>& info) {
  int depth = tls.scopeDepth;
  bool wasAttached = tls.attached && tls.callDepth == 0;
  tls.scopeDepth = 0;
  if (wasAttached) Detach();
  if (tls.callDepth == 0) StopKeepingGil(tls);
  info.GetReturnValue().Set(depth);
}

// gilResume(n): the n scopes of beginAllowThreads() still open (src/gil.ts counts them) hold the
// GIL again, on top of any opened since.
void GilResume(const FunctionCallbackInfo<JsValue>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  int depth = info[0]->Int32Value(isolate->GetCurrentContext()).FromMaybe(0);
  if (depth > 0 && !tls.attached && engine.BeginAttach()) {
    Attach();
    engine.EndAttach();
  }
  tls.scopeDepth += depth > 0 && tls.attached && engine.running() ? depth : 0;
}

// threadState() -> [attached, scopeDepth, callDepth] (tests and diagnostics)
void ThreadState(const FunctionCallbackInfo<JsValue>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  Local<JsValue> items[] = {v8::Boolean::New(isolate, tls.attached),
                            v8::Integer::New(isolate, tls.scopeDepth),
                            v8::Integer::New(isolate, tls.callDepth)};
  info.GetReturnValue().Set(v8::Array::New(isolate, items, 3));
}

// --- objects -----------------------------------------------------------------------------

void Import(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  if (!op.Enter()) return;
  PyRefOwned name(op.ModuleNameArg(0));
  if (!name) return;
  PyObject* module;
  {
    ParkedIsolate park(op.t);
    module = py.PyImport_Import(name.get());
  }
  op.Return(module);
}

// run(code, globals | undefined, mode 'exec' | 'eval', filename)
void Run(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  Op::Arg globalsArg;
  if (!op.Capture(info[1], &globalsArg) || !op.Enter()) return;
  PyRefOwned code(op.StrArg(0));
  if (!code) return;
  PyRefOwned globals(op.ToPython(globalsArg));  // undefined: None, __main__'s globals
  if (!globals) return;
  PyRefOwned mode(op.StrArg(2));
  if (!mode) return;
  PyRefOwned filename(op.StrArg(3));
  if (!filename) return;
  PyObject* args[] = {code.get(), globals.get(), mode.get(), filename.get()};
  PyObject* result;
  {
    ParkedIsolate park(op.t);
    result = CallVector(CurrentHelpers().run, args, 4, nullptr);
  }
  op.Return(result);
}

void ModuleFromString(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  if (!op.Enter()) return;
  PyRefOwned name(op.ModuleNameArg(0));
  if (!name) return;
  PyRefOwned code(op.StrArg(1));
  if (!code) return;
  PyObject* args[] = {name.get(), code.get()};
  PyObject* module;
  {
    ParkedIsolate park(op.t);
    module = CallVector(CurrentHelpers().moduleFromString, args, 2, nullptr);
  }
  op.Return(module);
}

// expose(name, exports)
void Expose(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  Op::Arg exports;
  if (!op.Capture(info[1], &exports) || !op.Enter()) return;
  PyRefOwned name(op.ModuleNameArg(0));
  if (!name) return;
  PyRefOwned attributes(op.ToPython(exports));
  if (!attributes) return;
  PyObject* args[] = {name.get(), attributes.get()};
  op.Return(CallVector(CurrentHelpers().exposeModule, args, 2, nullptr));
}

// getattr(handle, name, strict): a missing attribute is undefined unless strict
void GetAttr(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  PyRefOwned name(op.Name(1));
  if (!name) return;
  PyObject* result;
  {
    ParkedIsolate park(op.t);
    result = py.PyObject_GetAttr(o, name.get());
  }
  if (!result && !info[2]->IsTrue() && py.PyErr_ExceptionMatches(py.PyExc_AttributeError)) {
    py.PyErr_Clear();
    return;  // undefined
  }
  op.Return(result);
}

// setattr(handle, name, value); value === deleteMarker (4th arg true) deletes
void SetAttr(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  bool remove = info[3]->IsTrue();
  Op::Arg valueArg;
  if (!remove && !op.Capture(info[2], &valueArg)) return;
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  PyRefOwned name(op.Name(1));
  if (!name) return;
  PyRefOwned value;
  if (!remove) {
    value.reset(op.ToPython(valueArg));
    if (!value) return;
  }
  int r;
  {
    ParkedIsolate park(op.t);
    r = py.PyObject_SetAttr(o, name.get(), value.get());
  }
  if (r < 0) ThrowPythonError(op.t);
}

void HasAttr(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  PyRefOwned name(op.Name(1));
  if (!name) return;
  PyObject* result;
  {
    ParkedIsolate park(op.t);
    result = py.PyObject_GetAttr(o, name.get());
  }
  if (result) {
    py.Py_DecRef(result);
    info.GetReturnValue().Set(true);
  } else if (py.PyErr_ExceptionMatches(py.PyExc_AttributeError)) {
    py.PyErr_Clear();
    info.GetReturnValue().Set(false);
  } else {
    ThrowPythonError(op.t);
  }
}

// item(handle, key, op, value): op 0 get, 1 set, 2 delete, 3 contains
void Item(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  int which = info[2]->Int32Value(op.isolate->GetCurrentContext()).FromMaybe(0);
  Op::Arg keyArg, valueArg;
  if (!op.Capture(info[1], &keyArg) || (which == 1 && !op.Capture(info[3], &valueArg))) return;
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  PyRefOwned key(op.ToPython(keyArg));
  if (!key) return;
  PyRefOwned value;
  if (which == 1) {
    value.reset(op.ToPython(valueArg));
    if (!value) return;
  }
  PyObject* result = nullptr;
  int r = 0;
  {
    ParkedIsolate park(op.t);
    switch (which) {
      case 0: result = py.PyObject_GetItem(o, key.get()); break;
      case 1: r = py.PyObject_SetItem(o, key.get(), value.get()); break;
      case 2: r = py.PyObject_DelItem(o, key.get()); break;
      default: r = py.PySequence_Contains(o, key.get()); break;
    }
  }
  if (which == 0) op.Return(result);
  else if (which == 3) op.ReturnBool(r);
  else if (r < 0) ThrowPythonError(op.t);
}

void Len(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  Py_ssize_t n;
  {
    ParkedIsolate park(op.t);
    n = py.PyObject_Size(o);
  }
  if (n < 0) ThrowPythonError(op.t);
  else info.GetReturnValue().Set(static_cast<double>(n));
}

// text(handle, kind): 0 str, 1 repr, 2 type name
void Text(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  int kind = info[1]->Int32Value(op.isolate->GetCurrentContext()).FromMaybe(0);
  PyObject* result;
  {
    ParkedIsolate park(op.t);
    result = kind == 0   ? py.PyObject_Str(o)
             : kind == 1 ? py.PyObject_Repr(o)
                         : py.PyObject_GetAttrString(TypeOf(o), "__name__");
  }
  op.Return(result);
}

void Dir(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  PyObject* names;
  {
    ParkedIsolate park(op.t);
    names = py.PyObject_Dir(o);
  }
  ToJsOptions deep;
  deep.deep = true;
  op.Return(names, deep);
}

// Shared by call and callKw: args from info[first..], keywords from a plain object or undefined.
void DoCall(const FunctionCallbackInfo<JsValue>& info, int first, Local<JsValue> keywords, bool raw = false) {
  Op op(info);
  int nargs = info.Length() - first;
  int nkw = 0;
  Local<v8::Context> ctx;
  Local<v8::Array> keys;
  if (!keywords.IsEmpty()) {
    ctx = op.isolate->GetCurrentContext();
    if (!keywords.As<v8::Object>()
             ->GetOwnPropertyNames(ctx, kStringKeys, v8::KeyConversionMode::kConvertToString)
             .ToLocal(&keys)) {
      return;
    }
    nkw = static_cast<int>(keys->Length());
  }
  int total = nargs + 2 * nkw;  // positional values, then (name, value) per keyword
  constexpr int kInline = 8;
  Op::Arg inlineCaptured[kInline];
  std::unique_ptr<Op::Arg[]> heapCaptured;
  Op::Arg* captured = inlineCaptured;
  if (total > kInline) {
    heapCaptured.reset(new Op::Arg[total]);
    captured = heapCaptured.get();
  }
  // Capture everything (getters included) before taking the GIL.
  for (int i = 0; i < nargs; i++) {
    if (!op.Capture(info[first + i], &captured[i])) return;
  }
  for (int k = 0; k < nkw; k++) {
    Local<JsValue> key, value;
    if (!keys->Get(ctx, k).ToLocal(&key) || !keywords.As<v8::Object>()->Get(ctx, key).ToLocal(&value) ||
        !op.Capture(key, &captured[nargs + 2 * k]) || !op.Capture(value, &captured[nargs + 2 * k + 1])) {
      return;
    }
  }
  PyObject* callable = op.EnterWithTarget();
  if (!callable) return;
  // argv[0] stays free: vectorcall may borrow it (PY_VECTORCALL_ARGUMENTS_OFFSET).
  PyObject* inlineArgs[kInline + 1];
  std::unique_ptr<PyObject*[]> heapArgs;
  PyObject** argv = inlineArgs;
  if (nargs + nkw > kInline) {
    heapArgs.reset(new PyObject*[nargs + nkw + 1]);
    argv = heapArgs.get();
  }
  int made = 0;
  PyRefOwned kwnames;
  bool ok = true;
  for (int i = 0; i < nargs && ok; i++) {
    PyObject* arg = op.ToPython(captured[i]);
    if ((ok = arg != nullptr)) argv[++made] = arg;
  }
  if (ok && nkw) {
    kwnames.reset(py.PyTuple_New(nkw));
    if (!(ok = static_cast<bool>(kwnames))) ThrowPythonError(op.t);
    for (int k = 0; k < nkw && ok; k++) {
      PyObject* name = op.ToPython(captured[nargs + 2 * k]);
      if (!(ok = name != nullptr)) break;
      if (py.PyTuple_SetItem(kwnames.get(), k, name) < 0) {  // steals name
        ThrowPythonError(op.t);
        ok = false;
        break;
      }
      PyObject* arg = op.ToPython(captured[nargs + 2 * k + 1]);
      if ((ok = arg != nullptr)) argv[++made] = arg;
    }
  }
  PyObject* result = nullptr;
  if (ok) {
    ParkedIsolate park(op.t);
    size_t nargsf = static_cast<size_t>(nargs) | (static_cast<size_t>(1) << (sizeof(size_t) * 8 - 1));
    result = CallVector(callable, argv + 1, nargsf, kwnames.get());
  }
  for (int i = 1; i <= made; i++) py.Py_DecRef(argv[i]);
  if (ok && raw) op.ReturnObject(result);
  else if (ok) op.Return(result);
}

// The common call: a few positional arguments, all primitives. Nothing to capture before taking
// the GIL (converting a primitive runs no JS), so no per-argument bookkeeping.
// Not inlined into Call: its frame would then be on the stack of every call, and nested JS <->
// Python calls (DoCall's path) share that stack.
constexpr int kPrimitiveCallArgs = 4;
__attribute__((noinline)) void CallPrimitives(const FunctionCallbackInfo<JsValue>& info, int nargs) {
  Op op(info);
  PyObject* callable = op.EnterWithTarget();
  if (!callable) return;
  PyObject* argv[kPrimitiveCallArgs + 1];  // argv[0] free for PY_VECTORCALL_ARGUMENTS_OFFSET
  int made = 0;
  for (; made < nargs; made++) {
    PyObject* arg = op.PrimitiveToPythonRef(info[1 + made]);
    if (!arg) break;
    argv[made + 1] = arg;
  }
  PyObject* result = nullptr;
  if (made == nargs) {
    ParkedIsolate park(op.t);
    size_t nargsf = static_cast<size_t>(nargs) | (static_cast<size_t>(1) << (sizeof(size_t) * 8 - 1));
    result = CallVector(callable, argv + 1, nargsf, nullptr);
  }
  for (int i = 1; i <= made; i++) py.Py_DecRef(argv[i]);
  if (made == nargs) op.Return(result);
}

// call(handle, ...args)
void Call(const FunctionCallbackInfo<JsValue>& info) {
  int nargs = info.Length() - 1;
  if (nargs >= 0 && nargs <= kPrimitiveCallArgs) {
    bool primitives = true;
    for (int i = 1; i <= nargs && primitives; i++) primitives = IsFastPrimitive(info[i]);
    if (primitives) return CallPrimitives(info, nargs);
  }
  DoCall(info, 1, Local<JsValue>());
}

// callKw(handle, keywords, ...args)
void CallKw(const FunctionCallbackInfo<JsValue>& info) {
  if (!info[1]->IsObject()) {
    ThrowTypeError(info.GetIsolate(), "keyword arguments must be an object");
    return;
  }
  DoCall(info, 2, info[1]);
}

// callRaw(handle, keywords | undefined, ...args) -> the result as a handle, even a number or str
void CallRaw(const FunctionCallbackInfo<JsValue>& info) {
  if (!info[1]->IsUndefined() && !info[1]->IsObject()) {
    ThrowTypeError(info.GetIsolate(), "keyword arguments must be an object");
    return;
  }
  DoCall(info, 2, info[1]->IsUndefined() ? Local<JsValue>() : info[1], true);
}

// callAsync(handle, keywords | undefined, ...args) -> Promise; awaitAsync(handle) -> Promise
void SubmitAsync(const FunctionCallbackInfo<JsValue>& info, bool awaitOnly) {
  JsThread* t = ThreadOf(info);
  v8::Isolate* isolate = info.GetIsolate();
  Local<v8::Context> ctx = isolate->GetCurrentContext();
  Local<v8::Promise::Resolver> resolver;
  if (!v8::Promise::Resolver::New(ctx).ToLocal(&resolver)) return;
  info.GetReturnValue().Set(resolver->GetPromise());
  auto reject = [&](Local<JsValue> error) { IgnoreResult(resolver->Reject(ctx, error)); };
  auto rejectMessage = [&](const std::string& message, bool typeError) {
    Local<v8::String> text = JsText(isolate, message);
    reject(typeError ? v8::Exception::TypeError(text) : v8::Exception::Error(text));
  };
  PyHandle* h = HandleFromValue(t, info[0]);
  if (!h) return rejectMessage("expected a Python object (pyembed proxy)", true);
  const char* why = nullptr;
  PyObject* callable = LiveObject(h, &why);
  if (!callable) return rejectMessage(why, false);
  auto* job = new AsyncJob(t, resolver);
  job->awaitOnly = awaitOnly;
  job->callable.kind = Snapshot::Kind::kPyObject;
  job->callable.obj = callable;
  job->Pin(h, info[0].As<v8::Object>());
  ConvertError error;
  PinnedHandles pins;
  bool ok = true;
  for (int i = 3; i < info.Length() && ok; i++) {
    job->args.emplace_back();
    ok = JsToValue(t, info[i], &job->args.back(), &error, &pins);
  }
  if (ok && info[1]->IsObject()) {
    Local<v8::Object> keywords = info[1].As<v8::Object>();
    Local<v8::Array> keys;
    ok = keywords->GetOwnPropertyNames(ctx, kStringKeys, v8::KeyConversionMode::kConvertToString)
             .ToLocal(&keys);
    for (uint32_t k = 0; ok && k < keys->Length(); k++) {
      Local<JsValue> key, value;
      ok = keys->Get(ctx, k).ToLocal(&key) && keywords->Get(ctx, key).ToLocal(&value);
      if (!ok) break;
      job->kwnames.emplace_back();
      job->args.emplace_back();
      ok = JsToValue(t, key, &job->kwnames.back(), &error, &pins) &&
           JsToValue(t, value, &job->args.back(), &error, &pins);
    }
  }
  job->AdoptPins(pins.Take());  // until the job settles, on this JS thread
  if (!ok) {
    // Settle now, through the normal path, so pins and references are released in one place.
    job->Fail(error.message.empty() ? "cannot convert an argument to Python" : error.message.c_str(),
              error.isTypeError);
    return;
  }
  // callAsync(h, kwargs, cancelToken, ...args), awaitAsync(h, cancelToken)
  Local<JsValue> tokenArg = info[awaitOnly ? 1 : 2];
  double cancelToken = tokenArg->IsNumber() ? tokenArg.As<v8::Number>()->Value() : 0;
  if (cancelToken != 0) job->MakeCancellable(cancelToken);
  PoolForThisThread().Submit(job);  // an isolated worker's runs in its own interpreter
}

// cancelAsync(token): the AbortSignal of a callAsync/awaitAsync call fired. False when the job
// has settled already (or was never registered).
void CancelAsync(const FunctionCallbackInfo<JsValue>& info) {
  double token = info[0]->IsNumber() ? info[0].As<v8::Number>()->Value() : 0;
  info.GetReturnValue().Set(AsyncJob::CancelByToken(ThreadOf(info), token));
}

// interrupt(ident): KeyboardInterrupt in the thread whose threading.get_ident() is ident.
void Interrupt(const FunctionCallbackInfo<JsValue>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  unsigned long ident = 0;
  if (info[0]->IsBigInt()) {
    bool lossless = true;
    uint64_t v = info[0].As<v8::BigInt>()->Uint64Value(&lossless);
    if (lossless) ident = static_cast<unsigned long>(v);
  } else if (info[0]->IsNumber()) {
    double d = info[0].As<v8::Number>()->Value();
    if (d >= 0 && d <= 9007199254740991.0 && d == static_cast<double>(static_cast<uint64_t>(d))) {
      ident = static_cast<unsigned long>(d);
    }
  }
  if (ident == 0) {
    ThrowTypeError(isolate, "PythonEngine.interrupt() needs a thread id: a positive integer (number or bigint), "
                            "as threading.get_ident() gives");
    return;
  }
  PythonCall call;
  if (!call.ok()) {
    ThrowError(isolate, call.error());
    return;
  }
  info.GetReturnValue().Set(InterruptThread(ident, tls));
}

// threadIdent() -> threading.get_ident() of the calling thread (a number, or a bigint if unsafe)
void ThreadIdent(const FunctionCallbackInfo<JsValue>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  if (!engine.running()) {
    ThrowError(isolate, "Python is not running");
    return;
  }
  uint64_t ident = py.PyThread_get_thread_ident();
  if (ident <= 9007199254740991ull) {
    info.GetReturnValue().Set(v8::Number::New(isolate, static_cast<double>(ident)));
  } else {
    info.GetReturnValue().Set(v8::BigInt::NewFromUnsigned(isolate, ident));
  }
}

// interruptWorker(threadId): a Worker (this Node threadId) is being terminated (src/cancel.ts).
void InterruptWorker(const FunctionCallbackInfo<JsValue>& info) {
  double id = info[0]->IsNumber() ? info[0].As<v8::Number>()->Value() : -1;
  info.GetReturnValue().Set(id > 0 && InterruptTerminatingWorker(static_cast<int64_t>(id)));
}

// interruptWorkersAtExit(): the main thread's 'exit' event (src/cancel.ts): Node stops every
// worker next, and waits for each.
void InterruptWorkersOnExit(const FunctionCallbackInfo<JsValue>&) { InterruptWorkersAtExit(); }

void CallAsync(const FunctionCallbackInfo<JsValue>& info) { SubmitAsync(info, false); }
void AwaitAsync(const FunctionCallbackInfo<JsValue>& info) { SubmitAsync(info, true); }

void Iter(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  PyObject* it;
  {
    ParkedIsolate park(op.t);
    it = py.PyObject_GetIter(o);
  }
  // Unshared: JS disposes this handle after the loop, and iter(x) may be x itself.
  if (!it) {
    ThrowPythonError(op.t);
    return;
  }
  Local<v8::Object> handle;
  if (NewHandle(op.t, it, HandleFlagsOf(it), /*shared=*/false).ToLocal(&handle)) info.GetReturnValue().Set(handle);
  else py.Py_DecRef(it);
}

// next(iterator) -> value, or the done sentinel
void Next(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  if (!op.Enter()) return;
  PyObject* it = op.Target(0);
  if (!it) return;
  PyObject* item;
  {
    ParkedIsolate park(op.t);
    item = py.PyIter_Next(it);
  }
  if (!item && !py.PyErr_Occurred()) {
    info.GetReturnValue().Set(op.t->doneSentinel.Get(op.isolate));
    return;
  }
  op.Return(item);
}

// toJS(handle, dictAsMap, depth (levels of containers converted, undefined: all), keepBuffers)
void ToJS(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  ToJsOptions options;
  options.deep = true;
  options.dictAsMap = info[1]->IsTrue();
  if (info[2]->IsNumber()) options.maxDepth = static_cast<int>(info[2].As<v8::Number>()->Value());
  options.keepBuffers = info[3]->IsTrue();
  options.wrapTopLevel = true;
  op.Return(NewRef(o), options);
}

// buffer(handle) -> [typedArray, shape, strides (elements), offset, format, itemsize, readonly]
void Buffer(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  PyBufferCapture capture;
  if (!CapturePyBuffer(o, &capture)) {
    ThrowPythonError(op.t);
    return;
  }
  v8::Isolate* isolate = op.isolate;
  auto numbers = [isolate](const std::vector<int64_t>& values) {
    std::vector<Local<JsValue>> items;
    for (int64_t v : values) items.push_back(v8::Number::New(isolate, static_cast<double>(v)));
    return v8::Array::New(isolate, items.data(), items.size());
  };
  Local<JsValue> result[] = {
      BuildTypedArray(isolate, &capture),
      numbers(capture.shape),
      numbers(capture.strides),
      v8::Number::New(isolate, static_cast<double>(capture.offset)),
      JsText(isolate, capture.format),
      v8::Integer::New(isolate, capture.itemsize),
      v8::Boolean::New(isolate, capture.readonly),
  };
  info.GetReturnValue().Set(v8::Array::New(isolate, result, 7));
}

// toBytes(value) -> handle of a Python bytes copy of JS binary data (or of any buffer)
void ToBytes(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  Local<JsValue> data = info[0];
  if (data->IsArrayBufferView() || data->IsArrayBuffer() || data->IsSharedArrayBuffer()) {
    // Copied straight from JS memory (a resizable ArrayBuffer too, which cannot be shared).
    if (!op.Enter()) return;
    PyObject* bytes = CopyJsBytes(data);
    Local<v8::Object> handle;
    if (!bytes) ThrowPythonError(op.t);
    else if (NewHandle(op.t, bytes, 0).ToLocal(&handle)) info.GetReturnValue().Set(handle);
    else py.Py_DecRef(bytes);
    return;
  }
  Op::Arg arg;
  if (!op.Capture(info[0], &arg) || !op.Enter()) return;
  PyRefOwned source(op.ToPython(arg));
  if (!source) return;
  PyObject* bytes = py.PyBytes_FromObject(source.get());
  if (!bytes) {
    ThrowPythonError(op.t);
    return;
  }
  Local<v8::Object> handle;
  if (NewHandle(op.t, bytes, 0).ToLocal(&handle)) info.GetReturnValue().Set(handle);
  else py.Py_DecRef(bytes);
}

// toPython(value) -> handle of the converted value
void ToPythonObject(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  Op::Arg arg;
  if (!op.Capture(info[0], &arg) || !op.Enter()) return;
  PyObject* o = op.ToPython(arg);
  if (!o) return;
  Local<v8::Object> handle;
  if (NewHandle(op.t, o, HandleFlagsOf(o)).ToLocal(&handle)) info.GetReturnValue().Set(handle);
  else py.Py_DecRef(o);
}

void Dispose(const FunctionCallbackInfo<JsValue>& info) {
  JsThread* t = ThreadOf(info);
  PyHandle* h = HandleFromValue(t, info[0]);
  if (!h || h->disposed) return;
  if (h->generation != engine.generation() || !engine.running()) {
    h->disposed = true;
    ForgetHandleObject(h);  // its interpreter is gone; nothing to release
    return;
  }
  PythonCall call;
  if (!call.ok()) return;  // shutting down: finalization frees it
  DisposeHandle(h);
}

// isDisposed(handle)
void IsDisposed(const FunctionCallbackInfo<JsValue>& info) {
  PyHandle* h = HandleFromValue(ThreadOf(info), info[0]);
  info.GetReturnValue().Set(!h || h->disposed || h->generation != engine.generation() ||
                            !engine.running());
}

// isInstance(handle, classHandle)
void IsInstance(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  PyObject* cls = op.Target(1);
  if (!cls) return;
  op.ReturnBool(py.PyObject_IsInstance(o, cls));
}

// compare(handle, other, op): rich comparison (0 <, 1 <=, 2 ==, 3 !=, 4 >, 5 >=)
void Compare(const FunctionCallbackInfo<JsValue>& info) {
  Op op(info);
  Op::Arg otherArg;
  if (!op.Capture(info[1], &otherArg)) return;
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  PyRefOwned other(op.ToPython(otherArg));
  if (!other) return;
  int which = info[2]->Int32Value(op.isolate->GetCurrentContext()).FromMaybe(2);
  int r;
  {
    ParkedIsolate park(op.t);
    r = py.PyObject_RichCompareBool(o, other.get(), which);
  }
  op.ReturnBool(r);
}

// Python objects in transit between JS threads: share() takes a reference and returns an id that
// can cross postMessage; unshare(id) on any JS thread turns it into a PyObject (once).
std::mutex sharedMu;
std::unordered_map<uint64_t, std::pair<PyObject*, uint64_t>> sharedObjects;
uint64_t nextSharedId = 1;

// Attached, before finalization: drop what was shared but never claimed.
void DropSharedObjects() {
  std::unordered_map<uint64_t, std::pair<PyObject*, uint64_t>> drop;
  {
    std::lock_guard<std::mutex> lock(sharedMu);
    drop.swap(sharedObjects);
  }
  for (auto& [id, entry] : drop) ReleaseRef(entry.first, entry.second);
}

constexpr const char kIsolatedShareError[] =
    "Py.share cannot move Python objects out of or into an isolated worker: objects belong to "
    "one interpreter (send plain values with postMessage instead)";

void Share(const FunctionCallbackInfo<JsValue>& info) {
  if (tls.isolated) return ThrowError(info.GetIsolate(), kIsolatedShareError);
  Op op(info);
  PyObject* o = op.EnterWithTarget();
  if (!o) return;
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(sharedMu);
    id = nextSharedId++;
    sharedObjects[id] = {NewRef(o), engine.generation()};
  }
  info.GetReturnValue().Set(static_cast<double>(id));
}

void Unshare(const FunctionCallbackInfo<JsValue>& info) {
  if (tls.isolated) return ThrowError(info.GetIsolate(), kIsolatedShareError);
  Op op(info);
  if (!op.Enter()) return;
  uint64_t id = static_cast<uint64_t>(info[0]->NumberValue(op.isolate->GetCurrentContext()).FromMaybe(0));
  std::pair<PyObject*, uint64_t> entry{nullptr, 0};
  {
    std::lock_guard<std::mutex> lock(sharedMu);
    auto it = sharedObjects.find(id);
    if (it != sharedObjects.end()) {
      entry = it->second;
      sharedObjects.erase(it);
    }
  }
  if (!entry.first || entry.second != engine.generation()) {
    ThrowError(op.isolate, "this shared Python object was already claimed, or its interpreter was shut down");
    return;
  }
  Local<v8::Object> handle;
  if (NewHandle(op.t, entry.first, HandleFlagsOf(entry.first)).ToLocal(&handle)) {
    info.GetReturnValue().Set(handle);
  } else {
    py.Py_DecRef(entry.first);
  }
}

// stats() -> { exposure, handles } (tests)
void Stats(const FunctionCallbackInfo<JsValue>& info) {
  JsThread* t = ThreadOf(info);
  v8::Isolate* isolate = info.GetIsolate();
  Local<v8::Context> ctx = isolate->GetCurrentContext();
  int handles = 0;
  for (PyHandle* h = t->handles; h; h = h->next) handles++;
  Local<v8::Object> out = v8::Object::New(isolate);
  auto set = [&](const char* key, double v) {
    IgnoreResult(out->Set(ctx, v8::String::NewFromUtf8(isolate, key).ToLocalChecked(),
                          v8::Number::New(isolate, v)));
  };
  set("exposure", t->exposure.load());
  set("handles", handles);
  set("generation", static_cast<double>(engine.generation()));
  set("threadStatesMade", static_cast<double>(threadStatesMade.load()));
  set("threadStatesReleased", static_cast<double>(threadStatesReleased.load()));
  // The fair GIL (gil.cc): whether this thread keeps the GIL between operations right now.
  set("gilKept", tls.gilKept.load() == kKept ? 1 : 0);
  info.GetReturnValue().Set(out);
}

// configure({ handleKey, done, errorFactory, errorRealm, wrapFactory, kwargsPrototype, threadName })
void Configure(const FunctionCallbackInfo<JsValue>& info) {
  JsThread* t = ThreadOf(info);
  v8::Isolate* isolate = info.GetIsolate();
  Local<v8::Context> ctx = isolate->GetCurrentContext();
  Local<v8::Object> options = info[0].As<v8::Object>();
  auto get = [&](const char* key) {
    return options->Get(ctx, v8::String::NewFromUtf8(isolate, key).ToLocalChecked()).ToLocalChecked();
  };
  t->handleKey.Reset(isolate, get("handleKey").As<v8::Symbol>());
  t->doneSentinel.Reset(isolate, get("done").As<v8::Symbol>());
  t->errorFactory.Reset(isolate, get("errorFactory").As<v8::Function>());
  t->wrapFactory.Reset(isolate, get("wrapFactory").As<v8::Function>());
  Local<JsValue> errorRealm = get("errorRealm");
  if (errorRealm->IsFunction()) t->errorRealmMaker.Reset(isolate, errorRealm.As<v8::Function>());
  t->kwargsPrototype.Reset(isolate, get("kwargsPrototype").As<v8::Object>());
  Local<JsValue> encodeHook = get("encodeHook");
  if (encodeHook->IsFunction()) t->encodeHook.Reset(isolate, encodeHook.As<v8::Function>());
  t->threadName = Utf8(isolate, get("threadName"));
  tls.pythonName = t->threadName.c_str();
  tls.pythonDaemon = false;  // a JS thread is a "main" thread: threads it starts are joined at exit
  tls.isMainJsThread = get("isMainThread")->IsTrue();
  tls.mayKeepGil = true;
  Local<JsValue> nodeThreadId = get("threadId");
  if (nodeThreadId->IsNumber()) tls.nodeThreadId = static_cast<int64_t>(nodeThreadId.As<v8::Number>()->Value());
}

// errorException(error): the handle of the Python exception that a PythonError the addon made
// keeps (errors.cc MakeRealmError), or undefined.
void ErrorException(const FunctionCallbackInfo<JsValue>& info) {
  JsThread* t = ThreadOf(info);
  v8::Isolate* isolate = info.GetIsolate();
  if (info.Length() < 1 || !info[0]->IsObject() || t->exceptionKey.IsEmpty()) return;
  Local<JsValue> handle;
  if (info[0].As<v8::Object>()->GetPrivate(isolate->GetCurrentContext(), t->exceptionKey.Get(isolate)).ToLocal(&handle)) {
    info.GetReturnValue().Set(handle);
  }
}

// --- per-JS-thread lifecycle -----------------------------------------------------------------

void OnWake(uv_async_t* handle) {
  auto* t = static_cast<JsThread*>(handle->data);
  v8::Isolate* isolate = t->isolate;
  v8::HandleScope scope(isolate);
  Local<v8::Context> ctx = t->context.Get(isolate);
  v8::Context::Scope contextScope(ctx);
  // Runs microtasks and process.nextTick callbacks when it closes, like any Node callback.
  node::CallbackScope callbackScope(isolate, v8::Object::New(isolate), {0, 0});
  t->DrainTasks();
}

void OnPrepare(uv_prepare_t*) {
  // The event loop is about to wait: a GIL still held by an open Py.GIL() scope (say, across an
  // await) is released now, so Python threads and async calls are never starved by an idle JS
  // thread. The scope attaches again on its next operation.
  if (tls.attached && tls.callDepth == 0) Detach();
  tls.takesThisTurn = 0;
  // So is a GIL kept between operations (gil.cc): never across the loop's idle time.
  if (tls.keepsGil || tls.gilKept.load(std::memory_order_relaxed) != kNotKept ||
      tls.watched.load(std::memory_order_relaxed)) {
    StopKeepingGil(tls);
  }
}

struct CloseState {
  JsThread* thread;
  void (*done)(void*);
  void* doneArg;
  int pending = 2;
};

template <typename Handle>
void OnClosed(uv_handle_t* handle) {
  auto* state = static_cast<CloseState*>(handle->data);
  delete reinterpret_cast<Handle*>(handle);
  if (--state->pending == 0) {
    state->done(state->doneArg);
    state->thread->Unref();  // the environment's reference
    delete state;
  }
}

void OnEnvironmentExit(void* arg, void (*done)(void*), void* doneArg) {
  auto* t = static_cast<JsThread*>(arg);
  t->Shutdown();
  // This JS thread's Python thread state goes with it (worker exit). At process exit Python is
  // already finalized (PythonEngine registers shutdown on 'exit'), and this is a no-op.
  // (Not while this thread is still inside a Python call: process.exit() in a callback.)
  if (tls.ownsTstate && engine.running() && tls.callDepth == 0) ReleaseThreadState();
  if (tls.isolated && tls.callDepth == 0) EndIsolatedInterpreter();  // its own interpreter too
  StopKeepingGil(tls);  // the GIL watcher must not look at this thread's context any more
  // The OS thread may use Python again without this environment (the main thread finalizes at
  // exit() when only workers started Python): what Configure() set came from it, and the name's
  // storage is freed with the JsThread.
  tls.pythonName = nullptr;
  tls.isMainJsThread = false;
  auto* state = new CloseState{t, done, doneArg};
  t->wake->data = state;
  t->prepare->data = state;
  uv_close(reinterpret_cast<uv_handle_t*>(t->wake), OnClosed<uv_async_t>);
  uv_close(reinterpret_cast<uv_handle_t*>(t->prepare), OnClosed<uv_prepare_t>);
}

// Every entry point runs inside this: a C++ exception (std::bad_alloc for memory that cannot be
// had, or any other) becomes a JS error instead of reaching std::terminate. The scoped objects
// of the call (GIL, references, pins) are released on the way out.
template <v8::FunctionCallback F>
void Guarded(const FunctionCallbackInfo<JsValue>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  try {
    F(info);
  } catch (const std::bad_alloc&) {
    isolate->ThrowException(v8::Exception::RangeError(
        v8::String::NewFromUtf8Literal(isolate, "out of memory in pyembed")));
  } catch (const std::exception& e) {
    ThrowError(isolate, std::string("internal error in pyembed: ") + e.what());
  }
}

void SetMethod(v8::Isolate* isolate, Local<v8::Object> target, JsThread* t, const char* name,
               v8::FunctionCallback fn) {
  Local<v8::Context> ctx = isolate->GetCurrentContext();
  Local<v8::FunctionTemplate> tmpl =
      v8::FunctionTemplate::New(isolate, fn, v8::External::New(isolate, t), Local<v8::Signature>(),
                                0, v8::ConstructorBehavior::kThrow);
  Local<v8::Function> f = tmpl->GetFunction(ctx).ToLocalChecked();
  Local<v8::String> key = v8::String::NewFromUtf8(isolate, name).ToLocalChecked();
  f->SetName(key);
  IgnoreResult(target->Set(ctx, key, f));
}

// Node unloads an addon (dlclose) with the last environment that loaded it, but the interpreter
// thread, the callAsync pool and Python itself (callbacks, the buffer type) run this library's
// code for the life of the process, and its state (the engine, the loaded libpython) must outlive
// any one environment: a worker that used Python and exited would otherwise leave a process that
// crashes, or cannot use Python again. One more reference, never closed, keeps it loaded.
void PinAddonInMemory() {
  static std::once_flag once;
  std::call_once(once, [] {
    Dl_info self;
    if (dladdr(reinterpret_cast<void*>(&PinAddonInMemory), &self) && self.dli_fname) {
      IgnoreResult(dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE));
    }
  });
}

}  // namespace

NODE_MODULE_INIT(/* exports, module, context */) {
  PinAddonInMemory();
  WatchForFork();
  v8::Isolate* isolate = v8::Isolate::GetCurrent();  // Context::GetIsolate is gone in V8 14
  auto* t = new JsThread(isolate);
  t->context.Reset(isolate, context);
  t->owner = &tls;
  t->holder.store(&tls);

  Local<v8::FunctionTemplate> handleClass = v8::FunctionTemplate::New(isolate);
  handleClass->SetClassName(v8::String::NewFromUtf8Literal(isolate, "PyHandle"));
  handleClass->InstanceTemplate()->SetInternalFieldCount(2);  // tag, PyHandle (handles.cc)
  t->handleClass.Reset(isolate, handleClass);
  t->handleTemplate.Reset(isolate, handleClass->InstanceTemplate());

  t->loop = node::GetCurrentEventLoop(isolate);
  t->wake = new uv_async_t;
  uv_async_init(t->loop, t->wake, OnWake);
  t->wake->data = t;
  uv_unref(reinterpret_cast<uv_handle_t*>(t->wake));
  t->prepare = new uv_prepare_t;
  uv_prepare_init(t->loop, t->prepare);
  t->prepare->data = t;
  uv_prepare_start(t->prepare, OnPrepare);
  uv_unref(reinterpret_cast<uv_handle_t*>(t->prepare));
  // The environment holds the JsThread's first reference until its handles are closed.
  node::AddEnvironmentCleanupHook(isolate, OnEnvironmentExit, t);

  struct Entry {
    const char* name;
    v8::FunctionCallback fn;
  };
  static const Entry entries[] = {
      {"start", Guarded<Start>},          {"stop", Guarded<Stop>},
      {"startIsolated", Guarded<StartIsolated>}, {"isIsolated", Guarded<IsIsolated>},
      {"isRunning", Guarded<IsRunning>},  {"setAsyncThreads", Guarded<SetAsyncThreads>},
      {"info", Guarded<Info>},            {"shutDownMessage", Guarded<ShutDownMessageOf>},
      {"gilEnter", Guarded<GilEnter>},    {"gilExit", Guarded<GilExit>},
      {"gilSuspend", Guarded<GilSuspend>}, {"gilResume", Guarded<GilResume>},
      {"threadState", Guarded<ThreadState>}, {"importModule", Guarded<Import>},
      {"run", Guarded<Run>},              {"moduleFromString", Guarded<ModuleFromString>},
      {"expose", Guarded<Expose>},        {"getattr", Guarded<GetAttr>},
      {"setattr", Guarded<SetAttr>},      {"hasattr", Guarded<HasAttr>},
      {"item", Guarded<Item>},            {"len", Guarded<Len>},
      {"text", Guarded<Text>},            {"handleFlags", Guarded<HandleFlags>},
      {"dir", Guarded<Dir>},              {"call", Guarded<Call>},
      {"callKw", Guarded<CallKw>},        {"callAsync", Guarded<CallAsync>},
      {"callRaw", Guarded<CallRaw>},
      {"awaitAsync", Guarded<AwaitAsync>},
      {"iter", Guarded<Iter>},            {"next", Guarded<Next>},
      {"toJS", Guarded<ToJS>},            {"toPython", Guarded<ToPythonObject>},
      {"dispose", Guarded<Dispose>},      {"isDisposed", Guarded<IsDisposed>},
      {"isInstance", Guarded<IsInstance>}, {"compare", Guarded<Compare>},
      {"stats", Guarded<Stats>},          {"configure", Guarded<Configure>},
      {"errorException", Guarded<ErrorException>},
      {"share", Guarded<Share>},          {"unshare", Guarded<Unshare>},
      {"buffer", Guarded<Buffer>},        {"toBytes", Guarded<ToBytes>},
      {"cancelAsync", Guarded<CancelAsync>}, {"interrupt", Guarded<Interrupt>},
      {"threadIdent", Guarded<ThreadIdent>}, {"interruptWorker", Guarded<InterruptWorker>},
      {"interruptWorkersAtExit", Guarded<InterruptWorkersOnExit>},
  };
  for (const Entry& e : entries) SetMethod(isolate, exports, t, e.name, e.fn);
}
