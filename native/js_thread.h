// One JS thread (the main thread or a worker: one V8 isolate, one Node environment) as seen by
// pyembed, and the rules by which other threads get to run its JavaScript.
//
// Only the thread that holds an isolate's v8::Locker may run its JS. Node holds it for the JS
// thread's whole life, so a Python thread that wants to call a JS function queues a Task and
// wakes the JS thread's event loop. That alone deadlocks when the JS thread is itself blocked
// inside a synchronous Python call that waits for that Python thread (JS calls f(); f starts a
// thread that calls back into JS, then joins it). So while a JS thread is inside a synchronous
// Python call it *parks* its isolate (v8::Unlocker): the waiting thread then *borrows* it
// (v8::Locker), runs the queued tasks itself and hands it back. The JS thread is blocked in
// Python meanwhile, so JS still runs on one thread at a time, as if the blocked call had run the
// callbacks itself. Parking costs ~50 ns, so a call parks only when this JS thread has functions
// that Python could call (exposure > 0).
//
// Lock order: isolate before GIL. A thread never waits for an isolate while attached: it
// detaches first. JsThread::mu is never held while taking the GIL.
#pragma once

#include <node.h>
#include <pthread.h>
#include <uv.h>
#include <v8.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "gil.h"
#include "names.h"
#include "wake_condition.h"

struct JsThread;
struct PyHandle;

// An object that holds V8 references of a JsThread (a Global) on behalf of another thread or of
// Python. When the JS thread exits, its isolate dies, so these are dropped first (on that thread).
class JsHeld {
 public:
  virtual ~JsHeld() = default;
  virtual void DropJsReferences() = 0;
};

// Work that must run on a thread holding the JsThread's isolate (inside Locker, HandleScope and
// Context::Scope). Cancel() is called instead when the JS thread has gone.
class Task {
 public:
  virtual ~Task() = default;
  virtual void Run(JsThread* thread) = 0;
  virtual void Cancel() = 0;

 private:
  friend struct JsThread;
  Task* next_ = nullptr;  // in the thread's queue (a task is queued once at a time)
};

struct JsThread {
  explicit JsThread(v8::Isolate* isolate);

  v8::Isolate* const isolate;
  v8::Global<v8::Context> context;
  uv_loop_t* loop = nullptr;
  uv_async_t* wake = nullptr;      // runs queued tasks on the JS thread's event loop
  uv_prepare_t* prepare = nullptr; // releases a GIL left held by a Py.GIL() scope at each loop turn
  ThreadContext* owner = nullptr;  // the JS thread's own OS thread
  const pthread_t ownerThread;     // the same thread (JsThread is made there)
  // The calling thread's context when it is this JS thread's own (a callback during its call),
  // else null: found without a thread-local lookup, which in a shared library is a call into the
  // dynamic linker. A thread id is unique among live threads, and a JS thread that has gone is
  // no longer alive.
  ThreadContext* OwnerIfCalling() const {
    return pthread_equal(ownerThread, pthread_self()) && alive.load(std::memory_order_relaxed) ? owner : nullptr;
  }

  // Pending callAsync promises keep the event loop alive, like any pending I/O (JS thread only).
  int pendingAsync = 0;
  void AsyncStarted() {
    if (pendingAsync++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(wake));
  }
  void AsyncFinished() {
    if (--pendingAsync == 0) uv_unref(reinterpret_cast<uv_handle_t*>(wake));
  }

  // JS functions reachable from Python (decides whether synchronous calls park).
  std::atomic<int> exposure{0};
  std::atomic<int> refs{1};

  // Per-environment V8 state used by conversions (filled in by the addon at module init).
  v8::Global<v8::Symbol> handleKey;        // obj[handleKey] -> native handle of a Python object
  v8::Global<v8::Symbol> doneSentinel;     // returned by next() at the end of an iteration
  v8::Global<v8::Function> errorFactory;   // (type, message, excHandle, hasCause) -> PythonError
  v8::Global<v8::Function> wrapFactory;    // handle -> PyObject proxy (used by deep conversions)
  // PythonErrors the addon makes itself (errors.cc MakeRealmError), set up at the first Python
  // error from what errorRealmMaker (errors.ts errorRealm) gives: the realm's context and Error,
  // this context's Error (whose stackTraceLimit the realm follows), PythonError.prototype, the
  // private key of the exception's handle, and the flag that JS maps errors to registered classes.
  v8::Global<v8::Function> errorRealmMaker;
  bool errorRealmAsked = false;
  v8::Global<v8::Context> errorContext;
  v8::Global<v8::Object> realmError;
  v8::Global<v8::Object> mainError;
  v8::Global<v8::Object> pythonErrorPrototype;
  v8::Global<v8::Private> exceptionKey;  // read by errorException (addon.cc)
  v8::Global<v8::String> typeKey;
  v8::Global<v8::String> stackTraceLimitKey;
  v8::Global<v8::Value> realmStackTraceLimit;  // the limit last copied to the realm
  std::shared_ptr<v8::BackingStore> errorsMappedStore;
  const int32_t* errorsMapped = nullptr;  // in errorsMappedStore
  v8::Global<v8::ObjectTemplate> handleTemplate;
  v8::Global<v8::FunctionTemplate> handleClass;
  v8::Global<v8::Object> kwargsPrototype;
  v8::Global<v8::Function> encodeHook;     // (value) => replacement | undefined: registered encoders
  v8::Global<v8::Function> numberReader;   // reads a chunk of an array's numbers (convert.cc)
  v8::Global<v8::Float64Array> numberChunk;  // where numberReader puts them
  bool numberChunkBusy = false;  // a getter run by the reader converts another array (any thread)
  // Dict keys made into JS strings, by shape (convert.cc FastDictToJs).
  struct CachedKey {
    std::string text;  // UTF-8
    v8::Global<v8::String> name;
  };
  std::array<std::vector<CachedKey>, 8> keyShapes;
  std::string threadName;  // the name Python gives this JS thread
  NameCache names;         // attribute names (JS thread only)

  bool Alive();
  // Queues a task for whichever thread holds the isolate next. False if the JS thread is gone
  // (the task is then cancelled). Lock-free: a pool thread settling a callAsync result never
  // holds a lock the JS thread may wait for (descheduled while holding one, it used to stall the
  // event loop for milliseconds).
  bool Post(Task* task);
  // Runs queued tasks; the caller holds the isolate and has entered its context.
  void DrainTasks();
  // Waits until `done()` holds, borrowing the isolate to run tasks whenever it is parked.
  // Caller: detached (no GIL), not holding the isolate.
  template <typename Pred>
  void WaitServing(Pred done);

  bool HeldByCurrentThread() const { return HeldBy(tls); }
  // `ctx`: the calling thread's own context (saves a thread-local lookup on hot paths).
  bool HeldBy(const ThreadContext& ctx) const { return holder.load(std::memory_order_relaxed) == &ctx; }

  void Ref() { refs.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  void Hold(JsHeld* h);
  void Unhold(JsHeld* h);

  std::mutex mu;
  WakeCondition cv;  // the JS thread notifies: it must never wait for the threads it wakes
  // Who runs JS on the isolate now (null: parked and free). Taken only by TakeHolder (a
  // compare-and-swap): other threads take it under mu, the owner's own callbacks without it
  // (TakeOwnParked), so a plain check-then-store under mu could race with the owner.
  std::atomic<ThreadContext*> holder{nullptr};
  // How many times another thread's lock of the isolate began (see Reclaim). Changed under mu,
  // by a thread that has just taken `holder`; read by the owner after taking `holder` itself.
  std::atomic<uint64_t> borrows{0};
  // `borrows` when the owner last ran JS on its own stack after another thread's lock (owner
  // only): while they are equal, no other thread entered the isolate since (CallOnOwnThread).
  uint64_t borrowsSeenByOwner = 0;
  std::atomic<bool> alive{true};               // written under mu; false for good once set
  // Queued tasks: posted onto `incoming` (a lock-free stack, newest first; Closed() once the JS
  // thread has gone), moved in order onto `ready` by the isolate's holder, who runs them from
  // there one at a time (so a task that blocks in Python leaves the rest for a borrower).
  std::atomic<Task*> incoming{nullptr};
  Task* ready = nullptr;      // oldest first; touched only by the isolate's holder
  static Task* Closed() { return reinterpret_cast<Task*>(uintptr_t{1}); }
  // The holder, or under mu with holder == nullptr.
  bool HasTasks() const {
    Task* in = incoming.load();
    return ready != nullptr || (in != nullptr && in != Closed());
  }
  std::atomic<int> posting{0};         // Post() calls in progress (Shutdown waits them out)
  std::atomic<bool> jsReferencesDropped{false};  // Shutdown has dropped held V8 references
  std::atomic<int> servingWaiters{0};  // threads in WaitServing (Post wakes them through cv)
  std::unordered_set<JsHeld*> held;            // under mu

  // Every live native handle made on this thread (touched only by this JS thread), so that its
  // exit releases the Python objects that V8 will never finalize.
  PyHandle* handles = nullptr;
  // The shared handle of each Python object (this interpreter generation), so the same object
  // gives the same handle, and so the same PyObject, while JS holds it (see handles.cc).
  std::unordered_map<PyObject*, PyHandle*> handleByObject;
  // The live JsFunctionRef of each JS function given to Python, by identity hash (callbacks.cc).
  std::mutex functionRefsMu;
  std::unordered_multimap<int, struct JsFunctionRef*> functionRefs;  // under functionRefsMu

  bool TakeHolder(ThreadContext* ctx) {
    ThreadContext* none = nullptr;
    return holder.compare_exchange_strong(none, ctx, std::memory_order_acquire, std::memory_order_relaxed);
  }
  void BorrowAndDrain(std::unique_lock<std::mutex>& lock);  // lock held, holder == nullptr
  // Takes the isolate if it is parked and free right now (never waits). Release with
  // EndBorrow() after the Borrowed scope below has ended.
  bool TryBorrow(ThreadContext& ctx = tls);
  void EndBorrow();
  // The same for the owner's own OS thread taking back the isolate it parked (a callback
  // during its synchronous call), without mu: a compare-and-swap to take it, a store to give
  // it back, and mu with a notification only when a thread waits (servingWaiters; the owner's
  // own Reclaim never runs during its callback).
  bool TakeOwnParked(ThreadContext& self) {
    return alive.load(std::memory_order_relaxed) && TakeHolder(&self);
  }
  void EndOwnBorrow() {
    holder.store(nullptr, std::memory_order_seq_cst);  // before reading servingWaiters: see WaitServing
    if (servingWaiters.load(std::memory_order_seq_cst) == 0) return;
    { std::lock_guard<std::mutex> lock(mu); }  // a waiter between its check and its wait gets there first
    cv.notify_all();
  }
  void Shutdown();  // environment teardown, on the JS thread
};

// A synchronous Python call made by the thread holding `thread`'s isolate parks it for the
// call's duration (when something could need it), and takes it back at the end.
class ParkedIsolate {
 public:
  explicit ParkedIsolate(JsThread* thread, bool force = false) : thread_(nullptr) {
    if (force || thread->exposure.load(std::memory_order_relaxed) != 0) Park(thread);
  }
  // Every synchronous Python call runs inside one: when it returns here in the child of an
  // os.fork(), the child must not touch V8 again (see ExitForkedChild).
  ~ParkedIsolate() {
    if (InForkedChild()) ExitForkedChild();
    if (thread_) Reclaim();
  }
  // Take the isolate back now. Waits (detached) if another thread is running JS on it.
  void Reclaim();
  ParkedIsolate(const ParkedIsolate&) = delete;
  ParkedIsolate& operator=(const ParkedIsolate&) = delete;

 private:
  void Park(JsThread* thread);
  JsThread* thread_;
  uint64_t borrowsAtPark_ = 0;
  std::optional<v8::Unlocker> unlocker_;
};

// The V8 scopes of a thread that borrowed an isolate (or re-locks its own after parking).
class Borrowed {
 public:
  explicit Borrowed(JsThread* t);

 private:
  v8::Locker locker_;
  v8::Isolate::Scope isolateScope_;
  v8::HandleScope handleScope_;
  v8::Context::Scope contextScope_;
};

template <typename Pred>
void JsThread::WaitServing(Pred done) {
  std::unique_lock<std::mutex> lock(mu);
  // Before looking at the queue and the holder: Post (and EndOwnBorrow) then see us, or we see
  // their task (and the free isolate).
  servingWaiters.fetch_add(1);
  while (!done()) {
    if (alive && holder.load(std::memory_order_seq_cst) == nullptr && HasTasks()) {
      BorrowAndDrain(lock);
      continue;
    }
    cv.wait(lock);
  }
  servingWaiters.fetch_sub(1);
}
