#include "callbacks.h"

#include <algorithm>
#include <new>
#include <optional>
#include <string_view>

#include "convert.h"
#include "engine.h"
#include "errors.h"
#include "gil.h"
#include "handles.h"
#include "js_thread.h"
#include "stack.h"
#include "v8_util.h"

struct JsValueRef : JsHeld {
  JsThread* thread;
  v8::Global<v8::Value> value;
  Snapshot name;     // kString, exactly as JS had it (NUL and lone surrogates included)
  Snapshot message;  // kString
  void DropJsReferences() override { value.Reset(); }
};

namespace {

// "" as a kString snapshot, for text that JS may not provide.
Snapshot EmptyText() {
  Snapshot text;
  text.kind = Snapshot::Kind::kString;
  return text;
}

constexpr const char* kFunctionCapsule = "pyembed.js_function";
constexpr const char* kValueCapsule = "pyembed.js_value";

PyObject* jsErrorClass = nullptr;  // owned, this generation's pyembed.JSError
uint64_t jsErrorGeneration = 0;
// Owned, same generation: JSError.__new__ (BaseException's) and the attribute names it gets,
// to make a JSError without running its Python __init__ (a third of a JS error's cost there).
PyObject* jsErrorNew = nullptr;
PyObject* nameKey = nullptr;
PyObject* jsValueKey = nullptr;

// Runs `release` on the thread that holds `thread`'s isolate: now if that is us, else queued.
template <typename F>
class ReleaseTask : public Task {
 public:
  explicit ReleaseTask(F release) : release_(std::move(release)) {}
  void Run(JsThread*) override {
    release_(true);
    delete this;
  }
  void Cancel() override {
    release_(false);
    delete this;
  }

 private:
  F release_;
};

template <typename F>
void ReleaseOnJsThread(JsThread* thread, F release) {
  ThreadContext& me = tls;
  if (thread->HeldBy(me)) {
    release(true);
  } else if (thread->owner == &me && !InForkedChild() && thread->TryBorrow(me)) {
    // The JS thread's own call parked the isolate (Python dropping a JSError it caught, say):
    // take it back for the release, so the JS value dies young instead of waiting in the queue
    // for the call to end.
    {
      v8::Locker locker(thread->isolate);
      release(true);
    }
    thread->EndBorrow();
  } else {
    thread->Post(new ReleaseTask<F>(std::move(release)));
  }
}

void ReleaseValueRef(JsValueRef* ref) {
  JsThread* thread = ref->thread;
  thread->Unhold(ref);
  ReleaseOnJsThread(thread, [ref](bool onJsThread) {
    if (onJsThread) ref->value.Reset();
    JsThread* t = ref->thread;
    delete ref;
    t->Unref();
  });
}

void FunctionCapsuleDestructor(PyObject* capsule) {
  auto* ref = static_cast<JsFunctionRef*>(py.PyCapsule_GetPointer(capsule, kFunctionCapsule));
  if (ref) ref->Unref();
  else py.PyErr_Clear();
}

void ValueCapsuleDestructor(PyObject* capsule) {
  auto* ref = static_cast<JsValueRef*>(py.PyCapsule_GetPointer(capsule, kValueCapsule));
  if (ref) ReleaseValueRef(ref);
  else py.PyErr_Clear();
}

// One call of a JS function with thread-neutral arguments; fills result or error.
struct CallbackOutcome {
  PyObject* result = nullptr;      // owned
  Snapshot scalar;                 // a result with no objects in it, made Python later (hasScalar)
  bool hasScalar = false;
  PyObject* exception = nullptr;   // owned: a Python error met converting the result
  JsValueRef* jsError = nullptr;
  ConvertError convertError;
  bool failed = false;
  bool terminated = false;
};

// A property name as V8 keeps it (internalized): a lookup finds it without copying the text
// into a new string first.
v8::Local<v8::String> InternalizedKey(v8::Isolate* isolate, const char* key) {
  return v8::String::NewFromUtf8(isolate, key, v8::NewStringType::kInternalized).ToLocalChecked();
}

// A PythonError that a JS callback let through: its own Python exception (new reference), so
// Python code around the callback catches the original type; null for any other JS value.
PyObject* OriginalPythonException(JsThread* t, v8::Local<v8::Value> thrown) {
  if (!thrown->IsObject() || thrown->IsProxy()) return nullptr;
  v8::Isolate* isolate = t->isolate;
  v8::TryCatch tryCatch(isolate);  // a throwing getter only means "not a PythonError"
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::Local<v8::Value> exception, handle;
  if (!thrown.As<v8::Object>()->GetRealNamedProperty(ctx, InternalizedKey(isolate, "pyException")).ToLocal(&exception)) {
    return nullptr;
  }
  if (!exception->IsObject() || exception->IsProxy() || t->handleKey.IsEmpty() ||
      !exception.As<v8::Object>()->Get(ctx, t->handleKey.Get(isolate)).ToLocal(&handle)) {
    return nullptr;
  }
  PyHandle* h = HandleFromValue(t, handle);
  if (!h || h->disposed || !h->obj || h->generation != engine.generation() || !engine.running()) return nullptr;
  bool wasAttached = tls.attached;
  if (!wasAttached) Attach();
  PyObject* original = nullptr;
  int isException = py.PyObject_IsInstance(h->obj, py.PyExc_BaseException);
  if (isException == 1) original = NewRef(h->obj);
  else if (isException < 0) py.PyErr_Clear();
  if (!wasAttached) Detach();
  return original;
}

// A callback's arguments, thread-neutral.
using ArgValues = std::vector<Snapshot>;

// V8 throws this string instead of running JS where JS is not allowed any more: a worker being
// torn down after terminate() still turns its event loop once (and so drains queued callbacks).
bool JsDisallowed(v8::Isolate* isolate, v8::Local<v8::Value> thrown) {
  if (!thrown->IsString()) return false;
  v8::String::Utf8Value text(isolate, thrown);
  return *text && std::string_view(*text, text.length()) == "illegal access";
}

// What the JS function threw, as the callback's outcome. Caller holds the isolate.
void CatchIntoOutcome(JsThread* t, v8::TryCatch& tryCatch, CallbackOutcome* out) {
  out->failed = true;
  v8::Isolate* isolate = t->isolate;
  if (!tryCatch.HasCaught() || tryCatch.HasTerminated() || !tryCatch.CanContinue() ||
      isolate->IsExecutionTerminating() || JsDisallowed(isolate, tryCatch.Exception())) {
    out->terminated = true;
    out->convertError.message = "JS execution was terminated (its worker is exiting)";
    return;
  }
  if (PyObject* original = OriginalPythonException(t, tryCatch.Exception())) {
    out->failed = false;
    out->exception = original;  // OutcomeToPython raises it again
    return;
  }
  out->jsError = CaptureJsException(t, tryCatch.Exception());
}

void RunJsFunction(JsThread* t, JsFunctionRef* ref, ArgValues& args, CallbackOutcome* out) {
  v8::Isolate* isolate = t->isolate;
  v8::HandleScope scope(isolate);
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::TryCatch tryCatch(isolate);
  tryCatch.SetCaptureMessage(false);  // only the thrown value is used
  ExtendV8StackLimitOnMainThread(isolate);  // nested JS <-> Python calls: see stack.h
  constexpr size_t kInlineArgv = 4;  // on the stack: deep JS <-> Python recursion needs it small
  v8::Local<v8::Value> inlineArgv[kInlineArgv];
  std::vector<v8::Local<v8::Value>> heapArgv;
  v8::Local<v8::Value>* argv = inlineArgv;
  if (args.size() > kInlineArgv) {
    try {
      heapArgv.resize(args.size());
    } catch (const std::bad_alloc&) {  // never through Python's C frames
      out->failed = true;
      out->convertError.message = "out of memory for the arguments of a JS function";
      out->convertError.isTypeError = false;
      return;
    }
    argv = heapArgv.data();
  }
  for (size_t i = 0; i < args.size(); i++) {
    if (!ValueToJs(t, args[i], /*wrap=*/true).ToLocal(&argv[i])) {
      if (!tryCatch.HasCaught()) {
        out->failed = true;
        out->convertError.message = "cannot convert an argument to JS";
        return;
      }
      break;
    }
  }
  v8::Local<v8::Value> result;
  if (!tryCatch.HasCaught()) {
    v8::Local<v8::Function> fn = ref->fn.Get(isolate);
    if (fn.IsEmpty()) {
      out->failed = true;
      out->convertError.message = "the JS function is no longer available (its JS thread exited)";
      return;
    }
    IgnoreResult(fn->Call(ctx, v8::Undefined(isolate), static_cast<int>(args.size()), argv).ToLocal(&result));
  }
  if (tryCatch.HasCaught()) {
    CatchIntoOutcome(t, tryCatch, out);
    return;
  }
  // The result becomes Python objects here, on the thread that holds the isolate: a PyObject
  // proxy it contains belongs to this JS thread, and must stay pinned until Python holds it.
  // JsToValue may run getters, so it runs first, without the GIL; then the GIL is taken briefly
  // (isolate before GIL: allowed).
  PinnedHandles pins;
  Snapshot snapshot;
  if (!JsToValue(t, result, &snapshot, &out->convertError, &pins)) {
    out->failed = true;
    return;
  }
  if (IsScalar(snapshot.kind)) {
    // Nothing in it belongs to this JS thread: the caller makes it Python once it holds the GIL
    // again, which saves taking the GIL here just for that.
    out->scalar = std::move(snapshot);
    out->hasScalar = true;
    return;
  }
  bool wasAttached = tls.attached;
  if (!wasAttached) Attach();
  out->result = ValueToPython(t, snapshot);
  if (!out->result) out->exception = TakeException();
  snapshot.Reset();
  if (!wasAttached) Detach();
}

// Back under the GIL: the Python result of an outcome (new reference or null with error set).
// A callback's JS has run: its Py.GIL() scopes were its own (they began at zero); the caller's
// come back, minus those the callback closed.
void LeaveCallback(ThreadContext& me, int savedScopes, int savedClosed) {
  me.trampolineDepth--;
  int closedOutside = std::min(me.outerScopesClosed, savedScopes);
  me.scopeDepth = savedScopes - closedOutside;
  me.outerScopesClosed = savedClosed + (me.outerScopesClosed - closedOutside);
}

PyObject* OutcomeToPython(CallbackOutcome& outcome) {
  if (outcome.jsError) {
    RaiseJsError(outcome.jsError);
    outcome.jsError = nullptr;
    return nullptr;
  }
  if (outcome.failed) {
    PyObject* type = outcome.terminated                      ? py.PyExc_RuntimeError
                     : outcome.convertError.isTypeError ? py.PyExc_TypeError
                                                        : py.PyExc_ValueError;  // too long, out of memory
    py.PyErr_SetString(type, outcome.convertError.message.c_str());
    return nullptr;
  }
  if (outcome.hasScalar) {
    outcome.hasScalar = false;
    PyObject* result = ValueToPython(nullptr, outcome.scalar);
    outcome.scalar.Reset();
    return result;
  }
  if (!outcome.result) {
    RestoreException(outcome.exception);
    outcome.exception = nullptr;
    return nullptr;
  }
  PyObject* result = outcome.result;
  outcome.result = nullptr;
  return result;
}

// The rest of a callback on its own thread (below) when the result is not a primitive that
// crossed directly: `failure` (before the call), what the JS threw (`returned` false), or a
// result that takes the Snapshot path. Holds the isolate; attached on return. Kept out of line
// so the common case does not set up a CallbackOutcome.
[[gnu::noinline]] PyObject* FinishOnOwnThread(ThreadContext& me, JsThread* t,
                                             v8::TryCatch& tryCatch, const char* failure,
                                             bool returned, v8::Local<v8::Value> value) {
  CallbackOutcome outcome;
  if (failure) {
    outcome.failed = true;
    outcome.convertError.message = failure;
  } else if (tryCatch.HasCaught() || !returned) {
    if (!me.attached) AttachAfterCallback(me);
    CatchIntoOutcome(t, tryCatch, &outcome);
  } else {
    // Objects, and long or two-byte strings. Getters may run: without the GIL (a string runs no
    // JS, and may come here attached).
    PinnedHandles pins;
    Snapshot snapshot;
    bool ok = JsToValue(t, value, &snapshot, &outcome.convertError, &pins);
    if (!me.attached) AttachAfterCallback(me);
    if (!ok) {
      outcome.failed = true;
    } else {
      outcome.result = ValueToPython(t, snapshot);
      if (!outcome.result) outcome.exception = TakeException();
      snapshot.Reset();
    }
  }
  return OutcomeToPython(outcome);
}

// The common case, JS -> Python -> JS on one thread: the JS thread's own OS thread calls one of
// its functions back during its synchronous call, with a few positional arguments. It holds the
// GIL and gets its isolate without waiting (held, or parked and free), so the arguments and a
// primitive result cross directly, without Snapshots, and the GIL is kept rather than released
// while the JS runs (DetachForCallback: the watcher releases it if the JS runs on). The lock
// order holds: the isolate is taken only when free, and the GIL is taken back while holding it.
// False: not this case, nothing done (the caller takes the general path). True: *result is the
// callback's result, or null with a Python exception set.
// Neither inlined nor specialized: `me` stays a plain pointer here, where GCC would recompute
// the thread-local's address (__tls_get_addr) at each use.
[[gnu::noipa]] bool CallOnOwnThread(ThreadContext& me, JsThread* t, JsFunctionRef* ref,
                                    PyObject* const* args, Py_ssize_t nargs, PyObject** result) {
  constexpr Py_ssize_t kMaxArgs = 6;  // on the stack (deep JS <-> Python recursion needs it small)
  if (nargs > kMaxArgs || t->owner != &me || !me.attached) return false;
  bool borrowed = !t->HeldBy(me);  // parked by this thread's call, as it almost always is
  if (borrowed && !t->TakeOwnParked(me)) return false;
  PyObject* out = nullptr;
  {
    v8::Isolate* isolate = t->isolate;
    // V8's lock was given up when the call parked: taking it back is most of what a callback
    // costs beyond the JS itself, and cannot be skipped (while Python may block, the isolate
    // must stay free for other threads, and V8 checks that a HandleScope's thread holds it).
    std::optional<v8::Locker> locker;
    if (borrowed) locker.emplace(isolate);
    // Entering again records this stack as the one V8's GC scans, needed only when another
    // thread has run JS on the isolate from its own stack since this thread last did.
    std::optional<v8::Isolate::Scope> isolateScope;
    uint64_t borrows = t->borrows.load(std::memory_order_relaxed);
    if (borrows != t->borrowsSeenByOwner) {
      isolateScope.emplace(isolate);
      t->borrowsSeenByOwner = borrows;
    }
    v8::HandleScope scope(isolate);
    // The context of the call this thread is in stays entered while its isolate is parked.
    // (Compared with the Global itself: no new handle for it in the usual case.)
    v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
    std::optional<v8::Context::Scope> contextScope;
    if (t->context != ctx) {
      ctx = t->context.Get(isolate);
      contextScope.emplace(ctx);
    }
    v8::TryCatch tryCatch(isolate);
    // Only the thrown value is used: no message object (V8 would compute the throw's source
    // location, and more, for each error).
    tryCatch.SetCaptureMessage(false);
    ExtendV8StackLimitOnMainThread(isolate, me);
    v8::Local<v8::Value> argv[kMaxArgs];
    bool argumentsFailed = false;  // with a Python exception set
    bool converted = false;        // an argument took the Snapshot path (which may throw)
    const char* failure = nullptr;
    for (Py_ssize_t i = 0; i < nargs; i++) {
      if (PrimitiveToJs(isolate, args[i], &argv[i]) == Fast::kDone) continue;
      converted = true;
      Snapshot value;
      if (!PythonToValue(args[i], ToJsOptions(), &value)) {
        argumentsFailed = true;
        break;
      }
      if (!ValueToJs(t, value, /*wrap=*/true).ToLocal(&argv[i])) {
        if (!tryCatch.HasCaught()) failure = "cannot convert an argument to JS";
        break;
      }
      if (tryCatch.HasCaught()) break;
    }
    v8::Local<v8::Function> fn = ref->fn.Get(isolate);
    if (fn.IsEmpty()) failure = "the JS function is no longer available (its JS thread exited)";
    if (argumentsFailed) {
      out = nullptr;
    } else if (failure || (converted && tryCatch.HasCaught())) {  // the GIL is still held
      out = FinishOnOwnThread(me, t, tryCatch, failure, false, v8::Local<v8::Value>());
    } else {
      // JS in the callback starts with no Py.GIL() scope of its own; the caller's come back
      // after, minus those the callback closed.
      int savedScopes = me.scopeDepth;
      int savedClosed = me.outerScopesClosed;
      me.scopeDepth = 0;
      me.outerScopesClosed = 0;
      me.trampolineDepth++;
      DetachForCallback(me);
      v8::Local<v8::Value> value;
      bool returned =
          fn->Call(ctx, v8::Undefined(isolate), static_cast<int>(nargs), argv).ToLocal(&value);
      // Taking the GIL back cannot end this thread here: Python is never finalized while a JS
      // thread is inside a call.
      Fast fast = Fast::kNotHandled;
      if (returned && IsFastPrimitive(value)) {
        if (!me.attached) AttachAfterCallback(me);
        fast = PrimitiveToPython(isolate, value, &out);  // kPythonError: null, exception set
      }
      if (fast == Fast::kNotHandled) {
        out = FinishOnOwnThread(me, t, tryCatch, nullptr, returned, value);
      }
      LeaveCallback(me, savedScopes, savedClosed);
    }
  }
  if (borrowed) t->EndOwnBorrow();
  *result = out;
  return true;
}

class CallbackRequest : public Task {
 public:
  CallbackRequest(JsFunctionRef* ref, ArgValues* args, CallbackOutcome* outcome)
      : ref_(ref), args_(args), outcome_(outcome) {}
  void Run(JsThread* t) override {
    RunJsFunction(t, ref_, *args_, outcome_);
    Finish(t, false);
  }
  void Cancel() override { Finish(ref_->thread, true); }
  bool done = false;  // under thread->mu
  bool cancelled = false;

 private:
  void Finish(JsThread* t, bool cancel) {
    {
      std::lock_guard<std::mutex> lock(t->mu);
      done = true;
      cancelled = cancel;
    }
    t->cv.notify_all();
  }
  JsFunctionRef* ref_;
  ArgValues* args_;
  CallbackOutcome* outcome_;
};

// A Python thread calling its first JS function: if Python's threading started it in an isolated
// worker's own interpreter, it works with that interpreter from now on (like the worker's JS
// thread), and its callbacks go to that worker. False with a Python error set when the function
// belongs to no interpreter this thread can reach.
bool EnterInterpreterOfPythonThread(JsThread* t) {
  if (!py.PyInterpreterState_Get || !py.PyInterpreterState_Main) return true;  // before 3.12
  PyInterpreterState* current = py.PyInterpreterState_Get();
  if (current == py.PyInterpreterState_Main()) return true;
  // The worker's own interpreter, set before any of its Python threads started and cleared
  // after they were all joined (Py_EndInterpreter), so stable while this thread runs.
  IsolatedInterpreter* interp = t->owner ? t->owner->isolated : nullptr;
  if (!interp || interp->helpers.interpreter != current) {
    py.PyErr_SetString(py.PyExc_RuntimeError,
                       "pyembed: this JS function belongs to another interpreter than this Python "
                       "thread's");
    return false;
  }
  PointThreadAtIsolated(interp);
  return true;
}

PyObject* Trampoline(PyObject* self, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  auto* ref = static_cast<JsFunctionRef*>(py.PyCapsule_GetPointer(self, kFunctionCapsule));
  if (!ref) return nullptr;
  JsThread* t = ref->thread;
  if (InForkedChild()) {  // no JS thread exists in a forked child
    py.PyErr_SetString(py.PyExc_RuntimeError, kForkedChildError);
    return nullptr;
  }
  ThreadContext* own = t->OwnerIfCalling();
  ThreadContext& me = own ? *own : tls;  // at most one thread-local lookup for the whole callback
  if (!me.attached) {  // a thread made by Python's threading
    if (!EnterInterpreterOfPythonThread(t)) return nullptr;
    AdoptCurrentPythonThread();
  }
  if (StackNearlyExhausted(me)) {
    py.PyErr_SetString(py.PyExc_RecursionError,
                       "stack nearly exhausted by JS <-> Python calls (pyembed)");
    return nullptr;
  }
  Py_ssize_t nargs = nargsf & ~(static_cast<Py_ssize_t>(1) << (sizeof(Py_ssize_t) * 8 - 1));
  PyObject* fastResult;
  if (!kwnames && CallOnOwnThread(me, t, ref, args, nargs, &fastResult)) return fastResult;
  // Arguments to thread-neutral values now, while we hold the GIL.
  Py_ssize_t nkw = kwnames ? py.PyTuple_Size(kwnames) : 0;
  // A C++ exception must not unwind through Python's C frames: memory for the arguments that
  // cannot be had is a MemoryError.
  ArgValues values;
  try {
    values.resize(static_cast<size_t>(nargs) + (nkw ? 1 : 0));
    if (nkw) values.back().items.resize(static_cast<size_t>(nkw) * 2);
  } catch (const std::bad_alloc&) {
    py.PyErr_NoMemory();
    return nullptr;
  }
  ToJsOptions shallow;
  for (Py_ssize_t i = 0; i < nargs; i++) {
    if (!PythonToValue(args[i], shallow, &values[i])) return nullptr;
  }
  if (nkw) {  // keyword arguments arrive as one trailing plain object
    Snapshot& kw = values.back();
    kw.kind = Snapshot::Kind::kDict;
    for (Py_ssize_t k = 0; k < nkw; k++) {
      if (!PythonToValue(py.PyTuple_GetItem(kwnames, k), shallow, &kw.items[2 * k]) ||
          !PythonToValue(args[nargs + k], shallow, &kw.items[2 * k + 1])) {
        return nullptr;
      }
    }
  }

  // JS in the callback starts with no Py.GIL() scope of its own; the caller's come back after,
  // minus those the callback closed.
  int savedScopes = me.scopeDepth;
  int savedClosed = me.outerScopesClosed;
  me.scopeDepth = 0;
  me.outerScopesClosed = 0;
  me.trampolineDepth++;
  CallbackOutcome outcome;
  CallbackRequest request(ref, &values, &outcome);
  if (t->HeldBy(me)) {
    // This thread runs the JS thread's code right now (a synchronous call that did not park):
    // run the function here, with the GIL released while JS runs.
    Detach(me);
    RunJsFunction(t, ref, values, &outcome);
  } else if (t->TryBorrow(me)) {
    // The JS thread is parked in a synchronous call (often this very thread, Python calling
    // back during that call): borrow its isolate and run the function here, no queue.
    Detach(me);
    {
      Borrowed scopes(t);
      RunJsFunction(t, ref, values, &outcome);
    }
    t->EndBorrow();
  } else {
    if (!t->Post(&request)) {
      me.trampolineDepth--;
      me.scopeDepth = savedScopes;
      me.outerScopesClosed = savedClosed;
      py.PyErr_SetString(py.PyExc_RuntimeError,
                         "cannot call a JS function whose JS thread (worker) has exited");
      return nullptr;
    }
    Detach(me);
    t->WaitServing([&request] { return request.done; });
    if (request.cancelled) {
      outcome.failed = true;
      outcome.convertError.message =
          "cannot call a JS function whose JS thread (worker) has exited";
      outcome.terminated = true;
    }
  }
  // Not through an RAII guard: during finalization Python may end this thread inside
  // PyEval_RestoreThread, and that unwinding must not cross a destructor.
  if (!me.attached) {
    py.PyEval_RestoreThread(me.tstate);
    me.attached = true;
  }
  LeaveCallback(me, savedScopes, savedClosed);
  values.clear();
  return OutcomeToPython(outcome);
}

// JSError.js_stack, read when Python first asks for it: the `stack` of the JS value a JSError
// keeps. Formatting a stack (Node's prepareStackTrace) costs more than the rest of a JS error's
// way into Python together, so an error that Python only catches no longer pays for it. Runs
// where the value's JS runs, as a callback does.
class StackRequest : public Task {
 public:
  explicit StackRequest(JsValueRef* ref) : ref_(ref) {}
  void Run(JsThread* t) override {
    RunHere(t);
    Finish(t, false);
  }
  void Cancel() override { Finish(ref_->thread, true); }
  // On a thread holding the isolate, with its context entered.
  void RunHere(JsThread* t) {
    v8::Isolate* isolate = t->isolate;
    v8::HandleScope scope(isolate);
    v8::Local<v8::Value> value = ref_->value.Get(isolate);
    if (value.IsEmpty() || !value->IsObject()) return;
    v8::TryCatch tryCatch(isolate);  // a throwing getter or prepareStackTrace: no stack
    v8::Local<v8::Value> stack;
    if (value.As<v8::Object>()->Get(isolate->GetCurrentContext(), JsText(isolate, "stack")).ToLocal(&stack) &&
        stack->IsString()) {
      StringSnapshot(isolate, stack.As<v8::String>(), &text);
    }
  }
  Snapshot text = EmptyText();  // kString, made on the JS thread
  bool done = false;  // under thread->mu

 private:
  void Finish(JsThread* t, bool) {
    {
      std::lock_guard<std::mutex> lock(t->mu);
      done = true;
    }
    t->cv.notify_all();
  }
  JsValueRef* ref_;
};

// _read_js_stack(js_value capsule) -> str ("" when its JS thread has exited). Caller attached.
PyObject* ReadJsStack(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 1) {
    py.PyErr_SetString(py.PyExc_TypeError, "_read_js_stack takes one argument");
    return nullptr;
  }
  auto* ref = static_cast<JsValueRef*>(py.PyCapsule_GetPointer(args[0], kValueCapsule));
  if (!ref) return nullptr;
  if (InForkedChild()) return py.PyUnicode_FromStringAndSize("", 0);
  ThreadContext& me = tls;
  if (!me.attached) AdoptCurrentPythonThread();  // a thread made by Python's threading
  if (StackNearlyExhausted(me)) {
    py.PyErr_SetString(py.PyExc_RecursionError,
                       "stack nearly exhausted by JS <-> Python calls (pyembed)");
    return nullptr;
  }
  JsThread* t = ref->thread;
  StackRequest request(ref);
  // As around a callback: the JS that reading `stack` may run (a user's prepareStackTrace)
  // starts with no Py.GIL() scope of its own, and runs without the GIL.
  int savedScopes = me.scopeDepth;
  int savedClosed = me.outerScopesClosed;
  me.scopeDepth = 0;
  me.outerScopesClosed = 0;
  me.trampolineDepth++;
  if (t->HeldBy(me)) {
    Detach(me);
    request.RunHere(t);
  } else if (t->TryBorrow(me)) {
    Detach(me);
    {
      Borrowed scopes(t);
      request.RunHere(t);
    }
    t->EndBorrow();
  } else if (t->Post(&request)) {
    Detach(me);
    t->WaitServing([&request] { return request.done; });
  }  // else cancelled: the JS thread has exited, no stack
  if (!me.attached) {
    py.PyEval_RestoreThread(me.tstate);
    me.attached = true;
  }
  LeaveCallback(me, savedScopes, savedClosed);
  return ValueToPython(t, request.text);
}

PyMethodDef readJsStackDef{"_read_js_stack", reinterpret_cast<void*>(&ReadJsStack), kMethFastcall,
                           "The stack of a JSError's JS value (pyembed)."};

}  // namespace

void JsFunctionRef::Unref() {
  if (refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  {
    std::lock_guard<std::mutex> lock(thread->functionRefsMu);
    auto range = thread->functionRefs.equal_range(identityHash);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == this) {
        thread->functionRefs.erase(it);
        break;
      }
    }
  }
  thread->Unhold(this);
  thread->exposure.fetch_sub(1, std::memory_order_relaxed);
  JsFunctionRef* self = this;
  ReleaseOnJsThread(thread, [self](bool onJsThread) {
    if (onJsThread) self->fn.Reset();
    if (self->callable) ReleaseRef(self->callable, self->callableGeneration);
    JsThread* t = self->thread;
    delete self;
    t->Unref();
  });
}

JsFunctionRef* NewJsFunctionRef(JsThread* thread, v8::Local<v8::Function> fn) {
  int hash = fn->GetIdentityHash();
  {
    std::lock_guard<std::mutex> lock(thread->functionRefsMu);
    auto range = thread->functionRefs.equal_range(hash);
    for (auto it = range.first; it != range.second; ++it) {
      JsFunctionRef* known = it->second;
      if (!known->fn.IsEmpty() && known->fn.Get(thread->isolate) == fn && known->TryRef()) return known;
    }
  }
  auto* ref = new JsFunctionRef();
  ref->identityHash = hash;
  ref->thread = thread;
  thread->Ref();
  thread->exposure.fetch_add(1, std::memory_order_relaxed);
  ref->fn.Reset(thread->isolate, fn);
  v8::String::Utf8Value name(thread->isolate, fn->GetName());
  ref->name = (*name && name.length() > 0) ? *name : "js_function";
  ref->def.ml_name = ref->name.c_str();
  ref->def.ml_meth = reinterpret_cast<void*>(&Trampoline);
  ref->def.ml_flags = kMethFastcall | kMethKeywords;
  ref->def.ml_doc = "A JavaScript function (pyembed).";
  thread->Hold(ref);
  {
    std::lock_guard<std::mutex> lock(thread->functionRefsMu);
    thread->functionRefs.emplace(hash, ref);
  }
  return ref;
}

PyObject* MakePythonCallable(JsFunctionRef* ref) {
  if (ref->callable && ref->callableGeneration == engine.generation()) {
    PyObject* known = py.PyWeakref_GetObject(ref->callable);  // borrowed; None once it died
    if (known && known != py.None) {
      ref->Unref();  // the callable holds its own count
      return NewRef(known);
    }
    if (!known) py.PyErr_Clear();
    py.Py_DecRef(ref->callable);
    ref->callable = nullptr;
  }
  PyObject* capsule = py.PyCapsule_New(ref, kFunctionCapsule, FunctionCapsuleDestructor);
  if (!capsule) {
    ref->Unref();
    return nullptr;
  }
  PyObject* fn = py.PyCFunction_NewEx(&ref->def, capsule, nullptr);
  py.Py_DecRef(capsule);  // the function holds it now (or it died, releasing the ref)
  if (fn) {
    // A stale weak reference (an interpreter that was shut down) is dropped, not released.
    PyObject* weak = py.PyWeakref_NewRef(fn, nullptr);
    if (weak) {
      ref->callable = weak;
      ref->callableGeneration = engine.generation();
    } else {
      py.PyErr_Clear();  // no identity for this one, the callable still works
    }
  }
  return fn;
}

JsFunctionRef* JsFunctionRefOf(PyObject* o) {
  if (TypeOf(o) != py.PyCFunction_Type) return nullptr;
  if (py.PyCFunction_GetFunction(o) != reinterpret_cast<void*>(&Trampoline)) return nullptr;
  PyObject* self = py.PyCFunction_GetSelf(o);
  if (!self) return nullptr;
  return static_cast<JsFunctionRef*>(py.PyCapsule_GetPointer(self, kFunctionCapsule));
}

JsValueRef* CaptureJsException(JsThread* thread, v8::Local<v8::Value> exception) {
  v8::Isolate* isolate = thread->isolate;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  auto* ref = new JsValueRef();
  ref->thread = thread;
  thread->Ref();
  ref->value.Reset(isolate, exception);
  StringSnapshot(isolate, InternalizedKey(isolate, "Error"), &ref->name);
  ref->message = EmptyText();
  v8::TryCatch inner(isolate);  // reading properties may throw; ignore that
  if (exception->IsObject()) {
    v8::Local<v8::Object> obj = exception.As<v8::Object>();
    auto readString = [&](const char* key, Snapshot* out) {
      v8::Local<v8::Value> v;
      if (obj->Get(ctx, InternalizedKey(isolate, key)).ToLocal(&v) && v->IsString()) {
        StringSnapshot(isolate, v.As<v8::String>(), out);
      }
    };
    readString("name", &ref->name);
    readString("message", &ref->message);  // `stack`: when Python asks (StackRequest)
  } else {
    v8::Local<v8::String> s;
    // ToDetailString: a thrown Symbol has no ToString (it throws), but reads as Symbol(description).
    if (exception->ToDetailString(ctx).ToLocal(&s)) StringSnapshot(isolate, s, &ref->message);
  }
  thread->Hold(ref);
  return ref;
}

// The calling thread's interpreter's pyembed.JSError (borrowed), or null.
static PyObject* JsErrorClassHere() {
  if (isolatedHelpers) return isolatedHelpers->jsError;
  return jsErrorGeneration == engine.generation() ? jsErrorClass : nullptr;
}

void RaiseJsError(JsValueRef* captured) {
  PyObject* jsErrorClass = JsErrorClassHere();
  PyRefOwned message(ValueToPython(captured->thread, captured->message));
  PyRefOwned name(message ? ValueToPython(captured->thread, captured->name) : nullptr);
  if (!name) {  // a conversion failed: its Python error stands
    ReleaseValueRef(captured);
    return;
  }
  if (!jsErrorClass) {
    py.PyErr_SetObject(py.PyExc_RuntimeError, message.get());
    ReleaseValueRef(captured);
    return;
  }
  PyRefOwned capsule(py.PyCapsule_New(captured, kValueCapsule, ValueCapsuleDestructor));
  if (!capsule) {
    ReleaseValueRef(captured);
    return;
  }
  if (isolatedHelpers || !jsErrorNew) {  // the cached __new__ and names are the shared interpreter's
    PyObject* args[] = {message.get(), name.get(), py.None, capsule.get()};
    PyRefOwned exc(CallVector(jsErrorClass, args, 4, nullptr));
    if (exc) py.PyErr_SetObject(TypeOf(exc.get()), exc.get());
    return;
  }
  // What JSError(message, name, None, capsule) makes, without its __init__: args (message,),
  // `name`, `_js_value`, and js_stack read when asked for (the class's _js_stack is None).
  PyObject* args[] = {jsErrorClass, message.get()};
  PyRefOwned exc(CallVector(jsErrorNew, args, 2, nullptr));
  if (!exc || py.PyObject_SetAttr(exc.get(), nameKey, name.get()) < 0 ||
      py.PyObject_SetAttr(exc.get(), jsValueKey, capsule.get()) < 0) {
    return;
  }
  py.PyErr_SetObject(TypeOf(exc.get()), exc.get());
}

JsValueRef* OriginalJsError(PyObject* exc, JsThread* thread) {
  PyObject* jsErrorClass = JsErrorClassHere();
  if (!jsErrorClass) return nullptr;
  if (py.PyObject_IsInstance(exc, jsErrorClass) != 1) {
    py.PyErr_Clear();
    return nullptr;
  }
  PyRefOwned capsule(py.PyObject_GetAttrString(exc, "_js_value"));
  if (!capsule || !py.PyCapsule_IsValid(capsule.get(), kValueCapsule)) {
    py.PyErr_Clear();
    return nullptr;
  }
  auto* ref = static_cast<JsValueRef*>(py.PyCapsule_GetPointer(capsule.get(), kValueCapsule));
  return (ref && ref->thread == thread) ? ref : nullptr;
}

v8::Local<v8::Value> JsValueOf(JsValueRef* ref, v8::Isolate* isolate) {
  v8::Local<v8::Value> v = ref->value.Get(isolate);
  if (v.IsEmpty()) return v8::Undefined(isolate);
  return v;
}

void SetJsErrorClass(PyObject* cls) {
  bool live = jsErrorGeneration == engine.generation();  // else they died with their interpreter
  for (PyObject** slot : {&jsErrorClass, &jsErrorNew, &nameKey, &jsValueKey}) {
    if (*slot && live) py.Py_DecRef(*slot);
    *slot = nullptr;
  }
  jsErrorGeneration = engine.generation();
  if (!cls) return;
  jsErrorClass = NewRef(cls);
  jsErrorNew = py.PyObject_GetAttrString(cls, "__new__");
  nameKey = py.PyUnicode_InternFromString("name");  // interned: SetAttr would intern each time
  jsValueKey = py.PyUnicode_InternFromString("_js_value");
  if (!jsErrorNew || !nameKey || !jsValueKey) py.PyErr_Clear();  // RaiseJsError falls back
  InstallJsStackReader(cls);
}

void InstallJsStackReader(PyObject* cls) {
  // JSError.js_stack calls it (python/_pyembed.py); a builtin does not bind as a method.
  PyRefOwned reader(py.PyCFunction_NewEx(&readJsStackDef, nullptr, nullptr));
  if (!reader || py.PyObject_SetAttrString(cls, "_read_js_stack", reader.get()) < 0) py.PyErr_Clear();
}

void ClearCallbackHelpers() { SetJsErrorClass(nullptr); }
