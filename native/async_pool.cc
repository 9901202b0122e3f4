#include "async_pool.h"

#include <pthread.h>
#include <sched.h>

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
  if (!tls.attached) AdoptCurrentPythonThread();
  // The capsule may be called once only: clear it so a second call is an error, not a crash.
  if (py.PyObject_IsTrue(args[0]) == 1) {
    job->Complete(args[1]);
  } else {
    py.PyErr_SetObject(TypeOf(args[1]), args[1]);
    job->Complete(nullptr);
  }
  return NewRef(py.None);
}

// Jobs that an AbortSignal may cancel, by (JS thread, token). Inserted and erased on the JS
// thread (erased from another thread only when that JS thread has gone).
std::mutex cancellableMu;
std::map<std::pair<JsThread*, double>, AsyncJob*> cancellable;

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

AsyncJob::AsyncJob(JsThread* t, v8::Local<v8::Promise::Resolver> resolver) : thread(t) {
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
  PostAttachedWork(&AsyncJob::CancelOnWatcher, job);
  return true;
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
      if (asyncPool.Remove(this)) {
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
  if (result && TypeOf(result) == py.PyCoro_Type && submitCoroutine &&
      submitGeneration == engine.generation()) {
    // Finish on the asyncio loop; CoroutineDone completes the job from there.
    PyRefOwned coro(result);
    PyRefOwned done(MakeCoroutineDoneCallback(this));
    if (done) {
      PyObject* submitArgs[] = {coro.get(), done.get()};
      // The coroutine may finish (and the JS thread settle the job) before submit returns: hold
      // the job until we have looked at it.
      refs_.fetch_add(1, std::memory_order_relaxed);
      PyRefOwned cancel(CallVector(submitCoroutine, submitArgs, 2, nullptr));
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
  error_.type = typeError ? "TypeError" : "Error";
  thread->Post(this);
}

void AsyncJob::Run(JsThread* t) {
  v8::Isolate* isolate = t->isolate;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  t->Unhold(this);
  v8::Local<v8::Promise::Resolver> resolver = resolver_.Get(isolate);
  v8::TryCatch tryCatch(isolate);
  if (failed_) {
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
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    idle_++;
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    idle_--;
    if (queue_.empty()) break;  // stopping and nothing left
    AsyncJob* job = queue_.front();
    queue_.pop_front();
    lock.unlock();
    {
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
    lock.lock();
  }
  lock.unlock();
  ReleaseThreadState();
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
