#include "async_pool.h"

#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <map>

#include "engine.h"
#include "gil.h"
#include "handles.h"
#include "interrupt.h"
#include "v8_util.h"

// Never destroyed: its threads may still run when the process exits.
AsyncPool& asyncPool = *new AsyncPool();

namespace {

constexpr const char* kJobCapsule = "pyembed.async_job";
PyObject* submitCoroutine = nullptr;  // owned
uint64_t submitGeneration = 0;

// done(ok, value): called by the asyncio helper on the loop thread when a coroutine finishes.
PyObject* CoroutineDone(PyObject* self, PyObject* const* args, Py_ssize_t nargsf, PyObject*) {
  auto* job = static_cast<AsyncJob*>(py.PyCapsule_GetPointer(self, kJobCapsule));
  if (!job) return nullptr;
  Py_ssize_t nargs = nargsf & ~(static_cast<Py_ssize_t>(1) << (sizeof(Py_ssize_t) * 8 - 1));
  if (nargs != 2) {
    py.PyErr_SetString(py.PyExc_TypeError, "done(ok, value)");
    return nullptr;
  }
  bool adoptedIsolated = false;
  if (!tls.attached) {
    // The loop thread of an isolated interpreter works with that interpreter, not the shared one.
    if (job->isolated && tls.isolated != job->isolated) PointThreadAtIsolated(job->isolated);
    adoptedIsolated = job->isolated != nullptr;
    AdoptCurrentPythonThread();
  }
  // The capsule may be called once only: clear it so a second call is an error, not a crash.
  if (py.PyObject_IsTrue(args[0]) == 1) {
    job->Complete(args[1]);  // `job` may be gone from here on
  } else {
    py.PyErr_SetObject(TypeOf(args[1]), args[1]);
    job->Complete(nullptr);
  }
  // Attached only while here: callbacks.cc tells a Python thread of an isolated interpreter by
  // its not being attached when it enters.
  if (adoptedIsolated) tls.attached = false;
  return NewRef(py.None);
}

// Jobs that an AbortSignal may cancel, by (JS thread, token). Inserted and erased on the JS
// thread (erased from another thread only when that JS thread has gone).
std::mutex cancellableMu;
std::map<std::pair<JsThread*, double>, AsyncJob*> cancellable;

// CPython 3.12.0-3.12.3 allocate some keyword tables of C functions (asyncio's among them) with
// the interpreter that first calls them, and free them with the main one at exit: asyncio in an
// isolated interpreter corrupts memory then (python/cpython#119213, fixed in 3.12.4).
bool IsolatedAsyncioBroken() { return py.versionHex >= 0x030C0000 && py.versionHex < 0x030C04F0; }
constexpr const char* kIsolatedAsyncioBroken =
    "pyembed: coroutines cannot run in an isolated worker on CPython 3.12.0-3.12.3, whose asyncio "
    "corrupts memory at exit there (python/cpython#119213, fixed in 3.12.4): use CPython 3.12.4 "
    "or newer, or the shared interpreter";

PyMethodDef coroutineDoneDef = {"pyembed_coroutine_done", reinterpret_cast<void*>(&CoroutineDone),
                                kMethFastcall | kMethKeywords, nullptr};

}  // namespace

void SetCoroutineRunner(PyObject* submit) {
  if (submitCoroutine && submitGeneration == engine.generation()) py.Py_DecRef(submitCoroutine);
  submitCoroutine = submit ? NewRef(submit) : nullptr;
  submitGeneration = engine.generation();
}

PyObject* MakeCoroutineDoneCallback(AsyncJob* job) {
  PyRefOwned capsule(py.PyCapsule_New(job, kJobCapsule, nullptr));
  if (!capsule) return nullptr;
  return py.PyCFunction_NewEx(&coroutineDoneDef, capsule.get(), nullptr);
}

AsyncJob::AsyncJob(JsThread* t, v8::Local<v8::Promise::Resolver> resolver)
    : thread(t), isolated(tls.isolated) {
  generation = engine.generation();
  thread->Ref();
  thread->AsyncStarted();
  resolver_.Reset(t->isolate, resolver);
  thread->Hold(this);
}

AsyncJob::~AsyncJob() { thread->Unref(); }

void AsyncJob::Pin(PyHandle* handle, v8::Local<v8::Object> handleObject) {
  handle->pins++;
  pinned_.emplace_back(handle, v8::Global<v8::Object>(thread->isolate, handleObject));
}

void AsyncJob::AdoptPins(std::vector<PyHandle*> handles) {
  for (PyHandle* handle : handles) {
    pinned_.emplace_back(handle, v8::Global<v8::Object>(thread->isolate, handle->self.Get(thread->isolate)));
  }
}

void AsyncJob::DropJsReferences() {
  resolver_.Reset();
  for (auto& [handle, global] : pinned_) global.Reset();
  pinned_.clear();
}

void AsyncJob::MakeCancellable(double token) {
  cancelToken_ = token;
  std::lock_guard<std::mutex> lock(cancellableMu);
  cancellable[{thread, token}] = this;
}

bool AsyncJob::CancelByToken(JsThread* t, double token) {
  AsyncJob* job;
  {
    std::lock_guard<std::mutex> lock(cancellableMu);
    auto it = cancellable.find({t, token});
    if (it == cancellable.end()) return false;
    job = it->second;
    // Still registered, so not yet released by its JS thread: safe to hold.
    job->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  if (job->isolated) {
    // Its pool threads run in this worker's own interpreter, whose GIL this thread can take
    // directly (contended by that interpreter's threads only): cancelled here, not posted to the
    // watcher, which would have to visit the interpreter.
    if (tls.isolated == job->isolated && job->generation == engine.generation()) {
      PythonCall call;
      if (call.ok()) job->RequestCancel();
    }
    job->Release();
    return true;
  }
  PostAttachedWork(&AsyncJob::CancelOnWatcher, job);
  return true;
}

void AsyncJob::InterruptForShutdown() {
  if (phase_ == Phase::kRunning && runner_) PostInterrupt(*runner_, py.PyExc_KeyboardInterrupt);
}

void AsyncJob::CancelOnWatcher(void* arg, bool live) {
  auto* job = static_cast<AsyncJob*>(arg);
  if (live) job->RequestCancel();
  job->Release();
}

void AsyncJob::RequestCancel() {
  if (cancelRequested_) return;
  cancelRequested_ = true;
  switch (phase_) {
    case Phase::kQueued:
      // Not started: off the queue, never run. (If a pool thread took it a moment ago, it sees
      // cancelRequested_ when it starts.)
      if ((isolated ? *isolated->asyncPool : asyncPool).Remove(this)) {
        phase_ = Phase::kDone;
        CloseUnstarted();
        Fail("the call was aborted before it started");
      }
      break;
    case Phase::kRunning:
      PostInterrupt(*runner_, py.PyExc_KeyboardInterrupt);
      break;
    case Phase::kOnLoop:
      CancelTask();
      break;
    default:
      break;
  }
}

void AsyncJob::CloseUnstarted() {
  // A coroutine to await that will never run: closed, so Python does not warn that it was never
  // awaited.
  if (!awaitOnly || TypeOf(callable.obj) != py.PyCoro_Type) return;
  PyRefOwned close(py.PyObject_GetAttrString(callable.obj, "close"));
  PyRefOwned ignored(close ? CallVector(close.get(), nullptr, 0, nullptr) : nullptr);
  if (!ignored) py.PyErr_Clear();
}

void AsyncJob::CancelTask() {
  PyRefOwned ignored(CallVector(cancelTask_, nullptr, 0, nullptr));
  if (!ignored) py.PyErr_Clear();  // the loop is stopping: shutdown settles the job
}

void AsyncJob::Release() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

void AsyncJob::Execute() {
  if (cancelRequested_) {
    phase_ = Phase::kDone;
    CloseUnstarted();
    Fail("the call was aborted before it started");
    return;
  }
  phase_ = Phase::kRunning;
  runner_ = &tls;
  if (awaitOnly) {
    phase_ = Phase::kFinishing;
    runner_ = nullptr;
    RunResult(NewRef(callable.obj));
    return;
  }
  size_t nkw = kwnames.size();
  size_t npos = args.size() - nkw;
  std::vector<PyObject*> argv(args.size() + 1, nullptr);  // slot 0 free for vectorcall's offset
  bool ok = true;
  for (size_t i = 0; i < args.size() && ok; i++) {
    argv[i + 1] = ValueToPython(thread, args[i]);
    ok = argv[i + 1] != nullptr;
  }
  PyObject* names = nullptr;
  if (ok && nkw) {
    names = py.PyTuple_New(static_cast<Py_ssize_t>(nkw));
    ok = names != nullptr;
    for (size_t k = 0; k < nkw && ok; k++) {
      PyObject* name = ValueToPython(thread, kwnames[k]);
      ok = name && py.PyTuple_SetItem(names, static_cast<Py_ssize_t>(k), name) == 0;
    }
  }
  PyObject* result = nullptr;
  if (ok) {
    size_t nargsf = npos | (static_cast<size_t>(1) << (sizeof(size_t) * 8 - 1));
    result = CallVector(callable.obj, argv.data() + 1, nargsf, names);
  }
  // Whatever happens next, an abort can no longer interrupt this call: one that was posted and
  // has not landed is withdrawn, so it cannot land in the pool thread's next job.
  phase_ = Phase::kFinishing;
  runner_ = nullptr;
  if (tls.interruptPosted) WithdrawInterrupt(tls);
  for (PyObject* o : argv) {
    if (o) py.Py_DecRef(o);
  }
  if (names) py.Py_DecRef(names);
  args.clear();
  kwnames.clear();
  RunResult(result);
}

void AsyncJob::RunResult(PyObject* result) {
  PyObject* runner = nullptr;  // borrowed
  if (result && TypeOf(result) == py.PyCoro_Type) {
    if (isolated && IsolatedAsyncioBroken()) {
      PyRefOwned coro(result);
      PyRefOwned close(py.PyObject_GetAttrString(coro.get(), "close"));
      PyRefOwned closed(close ? CallVector(close.get(), nullptr, 0, nullptr) : nullptr);
      py.PyErr_SetString(py.PyExc_RuntimeError, kIsolatedAsyncioBroken);
      Complete(nullptr);
      return;
    }
    if (isolated) runner = isolated->asyncPool->IsolatedCoroutineRunner();
    else if (submitCoroutine && submitGeneration == engine.generation()) runner = submitCoroutine;
  }
  if (runner) {
    // Finish on the asyncio loop; CoroutineDone completes the job from there.
    PyRefOwned coro(result);
    PyRefOwned done(MakeCoroutineDoneCallback(this));
    if (done) {
      PyObject* submitArgs[] = {coro.get(), done.get()};
      // The coroutine may finish (and the JS thread settle the job) before submit returns: hold
      // the job until we have looked at it.
      refs_.fetch_add(1, std::memory_order_relaxed);
      PyRefOwned cancel(CallVector(runner, submitArgs, 2, nullptr));
      bool submitted = static_cast<bool>(cancel);
      if (submitted && phase_ == Phase::kFinishing) {
        phase_ = Phase::kOnLoop;
        cancelTask_ = cancel.release();
        if (cancelRequested_) CancelTask();
      }
      submitted = submitted || phase_ == Phase::kDone;
      Release();  // `this` may be gone from here on when submitted
      if (submitted) return;
    }
    Complete(nullptr);
    return;
  }
  Complete(result);
  if (result) py.Py_DecRef(result);
}

void AsyncJob::Complete(PyObject* result) {
  phase_ = Phase::kDone;
  if (cancelTask_) {
    py.Py_DecRef(cancelTask_);
    cancelTask_ = nullptr;
  }
  if (result) {
    ToJsOptions shallow;
    if (!PythonToValue(result, shallow, &result_)) result = nullptr;
  }
  if (!result) {
    failed_ = true;
    CapturePythonError(thread, &error_);
  }
  thread->Post(this);
}

void AsyncJob::Fail(const char* message, bool typeError) {
  failed_ = true;
  error_.present = false;
  error_.message = message;
  error_.messageUtf16 = false;
  error_.type = typeError ? "TypeError" : "Error";
  thread->Post(this);
}

void AsyncJob::Run(JsThread* t) {
  v8::Isolate* isolate = t->isolate;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  t->Unhold(this);
  v8::Local<v8::Promise::Resolver> resolver = resolver_.Get(isolate);
  v8::TryCatch tryCatch(isolate);
  // The interpreter the job ran in ended before this JS thread settled it (an isolated worker's
  // shutdown() ends its own; a new one may run now): its objects died with it, and must not
  // become handles of the interpreter running now.
  bool stale = generation != engine.generation();
  auto dropStale = [&](Snapshot& s) {
    if (stale && s.kind == Snapshot::Kind::kPyObject && s.ownsRef) {
      s.ownsRef = false;
      s.obj = nullptr;
      return true;
    }
    return false;
  };
  if (!failed_ && dropStale(result_)) {
    failed_ = true;
    error_.present = false;
    error_.type = "Error";
    error_.message = "the Python object this call returned belongs to an interpreter that has ended";
    error_.messageUtf16 = false;
  }
  if (failed_) {
    dropStale(error_.exception);  // the type, message and traceback text remain
    IgnoreResult(resolver->Reject(ctx, MakeJsError(t, error_)));
  } else {
    v8::Local<v8::Value> value;
    if (ValueToJs(t, result_, /*wrap=*/true).ToLocal(&value)) {
      IgnoreResult(resolver->Resolve(ctx, value));
    } else if (tryCatch.HasCaught()) {
      IgnoreResult(resolver->Reject(ctx, tryCatch.Exception()));
    }
  }
  for (auto& [handle, global] : pinned_) {
    global.Reset();
    UnpinHandle(handle);
  }
  pinned_.clear();
  resolver_.Reset();
  t->AsyncFinished();
  Forget();
}

void AsyncJob::Cancel() {
  // The JS thread has gone: its references were dropped by DropJsReferences already.
  Forget();
}

void AsyncJob::Forget() {
  if (cancelToken_ != 0) {
    std::lock_guard<std::mutex> lock(cancellableMu);
    cancellable.erase({thread, cancelToken_});
  }
  Release();
}

void AsyncPool::SetMaxThreads(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  maxThreads_ = n < 1 ? 1 : n;
}

void AsyncPool::Submit(AsyncJob* job) {
  std::unique_lock<std::mutex> lock(mu_);
  queue_.push_back(job);
  stopping_ = false;
  if (idle_ == 0 && static_cast<int>(threads_.size()) < maxThreads_) {
    threads_.emplace_back(&AsyncPool::Worker, this);
    live_++;
  }
  lock.unlock();
  cv_.notify_one();
}

bool AsyncPool::Remove(AsyncJob* job) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (*it == job) {
      queue_.erase(it);
      return true;
    }
  }
  return false;
}

void AsyncPool::Worker() {
  tls.pythonName = "pyembed-async";
  tls.pythonDaemon = true;
#ifdef __linux__
  // Woken by Submit() on a JS thread, a worker would otherwise preempt that thread on its own
  // core and keep the event loop off the CPU for milliseconds. SCHED_BATCH threads never preempt
  // on wakeup; best effort (needs no privilege).
  sched_param batch{};
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
#endif
  // An isolated interpreter's pool thread belongs to that interpreter for its whole life.
  bool entered = !isolated_ || EnterIsolatedInterpreter(isolated_);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    idle_++;
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    idle_--;
    if (queue_.empty()) break;  // stopping and nothing left
    AsyncJob* job = queue_.front();
    queue_.pop_front();
    if (isolated_) {  // StopIsolated may interrupt it meanwhile: it must stay alive until then
      job->refs_.fetch_add(1, std::memory_order_relaxed);
      running_.push_back(job);
    }
    lock.unlock();
    if (!entered) {
      job->Fail("cannot make a Python thread state in this worker's isolated interpreter for "
                "this callAsync call");
    } else {
      PythonCall call;
      if (call.ok() && job->generation == engine.generation()) {
        job->Execute();
        // Python code of this job forked, and this is the child: no JS thread will ever take
        // the result, and nothing else of this process runs here. End it, saying why.
        if (InForkedChild()) ExitForkedChild();
      } else {
        job->Fail("Python was shut down before this callAsync call could run");
      }
    }
    if (isolated_) {
      lock.lock();
      std::erase(running_, job);
      lock.unlock();
      job->Release();
    }
    lock.lock();
  }
  lock.unlock();
  if (isolated_) LeaveIsolatedInterpreter();
  else ReleaseThreadState();
  lock.lock();
  live_--;
  ended_.notify_all();
}

void AsyncPool::Stop() {
  std::vector<std::thread> threads;
  std::deque<AsyncJob*> queued;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    queued.swap(queue_);
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (AsyncJob* job : queued) job->Fail("Python was shut down before this callAsync call could run");
  for (auto& t : threads) t.join();
}

int AsyncPool::MaxThreads() {
  std::lock_guard<std::mutex> lock(mu_);
  return maxThreads_;
}

AsyncPool& PoolForThisThread() {
  IsolatedInterpreter* interp = tls.isolated;
  if (!interp) return asyncPool;
  if (!interp->asyncPool) {
    interp->asyncPool = new AsyncPool(interp);
    interp->asyncPool->SetMaxThreads(asyncPool.MaxThreads());
  }
  return *interp->asyncPool;
}

PyObject* AsyncPool::IsolatedCoroutineRunner() {
  if (!submit_) {  // pool threads are serialized by the interpreter's GIL here
    PyRefOwned helpers(py.PyImport_ImportModule("_pyembed"));
    submit_ = helpers ? py.PyObject_GetAttrString(helpers.get(), "submit_coroutine") : nullptr;
    if (!submit_) py.PyErr_Clear();
  }
  return submit_;
}

void AsyncPool::StopIsolated() {
  constexpr const char* kEnded =
      "the worker's isolated interpreter ended (worker exit, terminate() or shutdown()) before "
      "this callAsync call could run";
  std::deque<AsyncJob*> queued;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    queued.swap(queue_);
  }
  cv_.notify_all();
  if (!queued.empty()) {
    PythonCall call;
    for (AsyncJob* job : queued) {
      job->phase_ = AsyncJob::Phase::kDone;
      if (call.ok()) job->CloseUnstarted();
      job->Fail(kEnded);
    }
  }
  // Running calls get KeyboardInterrupt, again every 100 ms while they go on (code that catches
  // it once still ends), as worker.terminate() does to the worker's own synchronous calls.
  std::unique_lock<std::mutex> lock(mu_);
  while (live_ > 0) {
    if (!running_.empty()) {
      lock.unlock();
      {
        PythonCall call;
        if (call.ok()) {
          std::lock_guard<std::mutex> relock(mu_);  // lock order: the GIL before mu_
          for (AsyncJob* job : running_) job->InterruptForShutdown();
        }
      }
      lock.lock();
    }
    ended_.wait_for(lock, std::chrono::milliseconds(100), [this] { return live_ == 0; });
  }
  std::vector<std::thread> threads;
  threads.swap(threads_);
  lock.unlock();
  for (auto& t : threads) t.join();
}

namespace {

// Attached: stops the interpreter's asyncio loop thread (pending coroutines are cancelled and
// report), interrupting it while it does not end: Py_EndInterpreter would wait for it forever.
void StopIsolatedLoop(PyObject* stopLoop) {
  PyRefOwned timeout(py.PyFloat_FromDouble(0.1));
  PyObject* args[] = {timeout.get()};
  PyRefOwned stuck(timeout ? CallVector(stopLoop, args, 1, nullptr) : nullptr);
  while (stuck && stuck.get() != py.None) {
    PyRefOwned identValue(py.PyObject_GetAttrString(stuck.get(), "ident"));
    int overflow = 0;
    long long ident = identValue ? py.PyLong_AsLongLongAndOverflow(identValue.get(), &overflow) : 0;
    if (ident > 0 && !overflow) {
      py.PyThreadState_SetAsyncExc(static_cast<unsigned long>(ident), py.PyExc_KeyboardInterrupt);
    }
    PyRefOwned join(py.PyObject_GetAttrString(stuck.get(), "join"));
    PyRefOwned joined(join ? CallVector(join.get(), args, 1, nullptr) : nullptr);
    py.PyErr_Clear();  // a failed join is no proof the thread ended: ask again
    PyRefOwned isAlive(py.PyObject_GetAttrString(stuck.get(), "is_alive"));
    PyRefOwned alive(isAlive ? CallVector(isAlive.get(), nullptr, 0, nullptr) : nullptr);
    if (alive && py.PyObject_IsTrue(alive.get()) == 0) break;
    py.PyErr_Clear();
  }
  py.PyErr_Clear();
}

}  // namespace

void StopIsolatedAsync(IsolatedInterpreter* interp) {
  // Pool threads need this interpreter's GIL to finish: never wait for them holding it. Scopes
  // of Py.GIL() end with the interpreter anyway.
  if (tls.attached) Detach(tls);
  tls.scopeDepth = 0;
  AsyncPool* pool = interp->asyncPool;
  if (!pool) return;  // no callAsync ever ran here: no pool thread, no asyncio loop
  pool->StopIsolated();
  {
    PythonCall call;
    if (call.ok()) {
      if (pool->submit_) py.Py_DecRef(pool->submit_);
      pool->submit_ = nullptr;
      if (interp->helpers.stopLoop) StopIsolatedLoop(interp->helpers.stopLoop);
    }
  }
  interp->asyncPool = nullptr;
  delete pool;
}
