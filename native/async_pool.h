// callAsync: Python calls run on pyembed-owned threads, never on the event loop.
// The JS thread only snapshots the arguments (no GIL needed: see convert.h), queues the job and
// returns a Promise; a pool thread attaches, calls, snapshots the result and posts it back; the
// JS thread settles the Promise without touching the GIL. So the event loop never waits for
// Python, however busy Python is. A coroutine result is handed to pyembed's asyncio loop thread
// and settles the Promise when it finishes.
#pragma once

#include <v8.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "convert.h"
#include "errors.h"
#include "js_thread.h"
#include "wake_condition.h"

class AsyncJob : public Task, public JsHeld {
 public:
  AsyncJob(JsThread* thread, v8::Local<v8::Promise::Resolver> resolver);
  ~AsyncJob() override;

  // On the JS thread, before queueing: keeps a PyObject proxy alive (and its object) for the
  // duration of the job.
  void Pin(PyHandle* handle, v8::Local<v8::Object> handleObject);
  // Handles already pinned while converting the arguments (see PinnedHandles).
  void AdoptPins(std::vector<PyHandle*> handles);

  Snapshot callable;
  bool awaitOnly = false;      // callable is an awaitable to run, not to call
  std::vector<Snapshot> args;     // positional values, then keyword values
  std::vector<Snapshot> kwnames;  // names of the trailing keyword values

  void Execute();                  // pool thread, attached
  void RunResult(PyObject* result);  // attached; a coroutine goes to the asyncio loop
  void Complete(PyObject* result); // attached; null = the current Python exception
  // Without Python (engine stopped, bad argument): rejects with a JS Error (or TypeError).
  void Fail(const char* message, bool typeError = false);
  void Run(JsThread* thread) override;  // JS thread: settle the promise
  void Cancel() override;               // JS thread gone
  void DropJsReferences() override;

  JsThread* const thread;
  uint64_t generation = 0;  // interpreter run the callable and arguments belong to
  // An isolated worker's own interpreter (its JS thread's), whose pool runs the job; null: shared.
  IsolatedInterpreter* const isolated;

  // AbortSignal support. The JS thread registers the job under a token of its choosing; abort
  // calls RequestCancel (JS thread, attached). Every phase change is made under the GIL, so
  // RequestCancel sees where the job is: queued (taken off the queue), running on a pool thread
  // (KeyboardInterrupt posted there, withdrawn when the call returns), on the asyncio loop (its
  // task is cancelled), or done (nothing to do: the promise settles with what it has).
  void MakeCancellable(double token);
  // JS thread, no GIL: hands the cancellation to the watcher thread (interrupt.h), so the event
  // loop never waits for the GIL. False when the job has settled (or was never registered).
  static bool CancelByToken(JsThread* thread, double token);

 private:
  // The JS thread's settling (Run/Cancel) drops one reference; a pool thread that must look at
  // the job after handing it to the asyncio loop holds another meanwhile.
  void Release();
  void Forget();      // JS thread: settled (or its thread gone); no longer cancellable
  void RequestCancel();  // attached
  static void CancelOnWatcher(void* job, bool live);
  // The isolated interpreter is ending (attached to it): KeyboardInterrupt in the job's call, if
  // it is still running (again at each call, until the call returns).
  void InterruptForShutdown();
  friend class AsyncPool;
  void CancelTask();  // attached, kOnLoop
  void CloseUnstarted();  // attached
  std::atomic<int> refs_{1};
  // kFinishing: the call returned (converting its result); nothing left to interrupt.
  enum class Phase { kQueued, kRunning, kFinishing, kOnLoop, kDone };
  Phase phase_ = Phase::kQueued;
  bool cancelRequested_ = false;
  ThreadContext* runner_ = nullptr;     // the pool thread, while kRunning
  PyObject* cancelTask_ = nullptr;      // owned, while kOnLoop: cancels the asyncio task
  double cancelToken_ = 0;              // registered under this token (0: not cancellable)

  v8::Global<v8::Promise::Resolver> resolver_;
  std::vector<std::pair<PyHandle*, v8::Global<v8::Object>>> pinned_;
  Snapshot result_;
  PythonErrorInfo error_;
  bool failed_ = false;
};

class AsyncPool {
 public:
  // `isolated`: the pool of that interpreter (its threads enter it for their life); null: the
  // shared interpreter's pool.
  explicit AsyncPool(IsolatedInterpreter* isolated = nullptr) : isolated_(isolated) {}
  void Submit(AsyncJob* job);
  // Takes a job off the queue if it has not started; false if a pool thread took it already.
  bool Remove(AsyncJob* job);
  void SetMaxThreads(int n);
  // At shutdown, with the GIL *not* held: rejects queued jobs, waits for running ones and joins
  // the threads (each drops its thread state first).
  void Stop();
  // An isolated interpreter's pool, at the end of that interpreter, on its JS thread (detached):
  // rejects queued jobs, interrupts running ones until they return, and joins the threads, each
  // having deleted its thread state, so that Py_EndInterpreter finds none left.
  void StopIsolated();
  int MaxThreads();
  // Attached to the pool's isolated interpreter: its _pyembed.submit_coroutine (borrowed).
  PyObject* IsolatedCoroutineRunner();

 private:
  void Worker();
  IsolatedInterpreter* const isolated_;
  std::vector<AsyncJob*> running_;      // jobs in Execute, each holding a reference (under mu_)
  int live_ = 0;                        // threads not yet ended (under mu_)
  std::condition_variable ended_;       // a thread ended
  PyObject* submit_ = nullptr;          // IsolatedCoroutineRunner's, owned
  friend void StopIsolatedAsync(IsolatedInterpreter* interp);

  std::mutex mu_;
  WakeCondition cv_;  // notify_one from a JS thread must not wait for the woken pool thread
  std::deque<AsyncJob*> queue_;
  std::vector<std::thread> threads_;
  int idle_ = 0;
  int maxThreads_ = 4;
  bool stopping_ = false;
};

extern AsyncPool& asyncPool;

// The Python callable (made in C) that the asyncio helper calls when a coroutine finishes.
PyObject* MakeCoroutineDoneCallback(AsyncJob* job);
void SetCoroutineRunner(PyObject* submit);  // _pyembed.submit_coroutine

// An isolated worker's JS thread, ending its interpreter (EndIsolatedInterpreter): stops that
// interpreter's callAsync pool and asyncio loop first. Leaves the thread detached.
void StopIsolatedAsync(IsolatedInterpreter* interp);
// The JS thread's pool: its isolated interpreter's own (made on first use), else the shared one.
AsyncPool& PoolForThisThread();
