// The GIL, in one place. Every thread that touches Python goes through Attach()/Detach() here;
// nothing else in pyembed calls PyEval_SaveThread/RestoreThread or PyGILState_*.
//
// Vocabulary (as in PyO3): a thread is *attached* when its Python thread state is current, which
// in a GIL build means it holds the GIL. Each OS thread that enters Python from JS gets one thread
// state, made once (per interpreter generation) and reused by every later call.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "capi.h"
#include "engine.h"
#include "python_helpers.h"
#include "signals.h"

struct JsThread;
struct IsolatedInterpreter;
class AsyncPool;

struct ThreadContext {
  // What Python calls this thread and whether its threads are daemons (set before first attach).
  const char* pythonName = nullptr;
  bool pythonDaemon = true;
  bool isMainJsThread = false;  // Node's main thread (Ctrl-C reaches its Python calls)
  PyThreadState* tstate = nullptr;
  uint64_t generation = 0;   // interpreter run the tstate belongs to
  bool ownsTstate = false;   // made by pyembed (JS and pool threads), not by Python's threading
  bool attached = false;     // holds the GIL with its thread state current (not when kept)
  int scopeDepth = 0;        // open Py.GIL() scopes (keep the GIL between operations)
  int callDepth = 0;         // pyembed operations in progress on this thread, nested included
  int trampolineDepth = 0;   // Python -> JS callbacks in progress on this thread
  int outerScopesClosed = 0; // Py.GIL() scopes of the JS code outside the current callback that
                             // JS code inside it closed (callbacks.cc takes them off on return)
  uintptr_t stackLow = 0;    // lowest usable stack address (0: not known yet), see stack.cc
  uintptr_t stackHigh = 0;   // where the thread's stack starts (0: not known yet)
  uintptr_t v8StackLimit = 0; // the lowest V8 stack limit pyembed set on Node's main thread
  unsigned long pythonIdent = 0;  // threading.get_ident() of this thread (see interrupt.h)
  bool interruptPosted = false;   // an async exception was posted to this thread's current call
  int64_t nodeThreadId = -1;      // a JS thread's worker_threads.threadId (worker.terminate())
  IsolatedInterpreter* isolated = nullptr;  // a worker's own interpreter (PythonEngine
                                            // .initialize({ interpreter: 'isolated' }))
  bool internalThread = false;    // pyembed's watcher: keeps its thread state for the interpreter's
                                  // life, so it is not counted in threadStatesMade

  // The fair GIL (gil.cc). Fields marked (watcher) are read by the GIL watcher thread.
  bool mayKeepGil = false;    // a JS thread's own context (not a pool or Python thread)
  bool keepsGil = false;      // keep the GIL between operations: its last take had to wait, or
                              // it took the GIL often in this turn of its event loop
  int takesThisTurn = 0;      // real takes of the GIL since its event loop's last turn (OnPrepare)
  std::atomic<int> gilKept{0};          // (watcher) a GilKept value
  std::atomic<uint64_t> operations{0};  // (watcher) operations ended while keeping the GIL
  std::atomic<int64_t> heldSince{0};    // (watcher) steady-clock ns of its last real take
  uint64_t operationsSeen = 0;          // the watcher's own: `operations` at its last look
  std::atomic<bool> watched{false};     // in the watcher's list (written under its mutex)

  // After this thread's Python thread state is gone (worker exit, or finalization).
  void ForgetInterpreter() {
    tstate = nullptr;
    generation = 0;
    ownsTstate = false;
    attached = false;
    scopeDepth = 0;
    keepsGil = false;
  }
};

// A kept GIL: locked, with no thread state current, lent to nobody. Only its JS thread takes it
// back (CAS kKept -> kNotKept, then swaps its thread state in); the watcher releases it for the
// JS thread (CAS kKept -> kReleasing, swap in, release, then kNotKept).
enum GilKept : int { kNotKept = 0, kKept = 1, kReleasing = 2 };

extern thread_local ThreadContext tls;

// Thread states pyembed made and released (for tests: a worker's exit must release its own).
extern std::atomic<int64_t> threadStatesMade;
extern std::atomic<int64_t> threadStatesReleased;

// Attaches the calling thread (takes the GIL, or takes back the GIL it kept), creating its thread
// state on first use.
// Precondition: the engine is running and the thread is not attached. `ctx` is the calling
// thread's own context (passing it saves thread-local lookups on hot paths).
void Attach(ThreadContext& ctx = tls);
// Detaches the calling thread (releases the GIL). Precondition: attached.
void Detach(ThreadContext& ctx = tls);
// Ends an operation that keeps the GIL for this JS thread (ctx.keepsGil, outermost operation):
// cheaper than Detach, and the next operation takes it back without waiting its turn again.
void KeepGil(ThreadContext& ctx);
// Releases a GIL this thread keeps, and keeps it no more until a take has to wait again: at the
// end of the event loop's turn, in allowThreads, when the thread exits.
void StopKeepingGil(ThreadContext& ctx);
// Around the JS of a callback that Python called on a JS thread's own OS thread (callbacks.cc):
// keeps the GIL instead of releasing it, like KeepGil, and has the watcher release it for the
// thread if the JS runs on (within two of its periods, at most 2 ms), so no Python thread starves
// behind a long callback. AttachAfterCallback takes it back after (~20 ns when still kept, else
// as Attach). Where the GIL cannot be kept (3.12+, PYEMBED_FAIR_GIL=0, no watcher thread): a
// plain Detach.
void DetachForCallback(ThreadContext& ctx);
void AttachAfterCallback(ThreadContext& ctx);
// Whether this libpython lets a GIL be kept (3.9-3.11: PyThreadState_Swap leaves the GIL alone).
bool GilKeepingSupported();
// For threads Python made (a callback arriving on a threading.Thread): adopt its current state.
void AdoptCurrentPythonThread();
// Drops the calling JS thread's thread state for good (worker exit). Takes the GIL if needed.
void ReleaseThreadState();

// Decrefs that arrive without the GIL (JS garbage collection, values dropped on JS threads) wait
// here and are drained by the next thread that attaches. Entries from an older interpreter
// generation are discarded: their objects died with it.
class PendingDecrefs {
 public:
  void Push(PyObject* o, uint64_t generation);
  // Any other release that needs the GIL: `release(arg, live)` runs in Drain, with live false
  // when the interpreter it belonged to was finalized (then it must only free its own memory).
  void PushRelease(void (*release)(void* arg, bool live), void* arg, uint64_t generation);
  bool NonEmpty() const { return nonEmpty_.load(std::memory_order_relaxed); }
  void Drain();  // caller attached

 private:
  struct Item {
    PyObject* obj;
    void (*release)(void*, bool);
    void* arg;
    uint64_t generation;
  };
  std::mutex mu_;
  std::vector<Item> items_;
  std::vector<Item> spare_;  // an empty buffer with capacity, so a busy queue does not reallocate
  std::atomic<bool> nonEmpty_{false};
};
extern PendingDecrefs& pendingDecrefs;

// A worker's own interpreter with its own GIL (PEP 684, CPython 3.12+). Its JS thread is the only
// thread pyembed attaches to it: one thread state, made with the interpreter.
struct IsolatedInterpreter {
  PyThreadState* tstate = nullptr;
  PyInterpreterState* state = nullptr;  // for thread states made on other threads (pool, visits)
  uint64_t generation = 0;  // unique, never a generation of the shared interpreter
  int visitors = 0;         // threads inside VisitIsolatedInterpreter (under gil.cc's lock)
  PythonHelpers helpers;
  PendingDecrefs decrefs;   // its releases: never drained by another interpreter's thread
  AsyncPool* asyncPool = nullptr;  // its callAsync pool (async_pool.h): made on first use, and
                                   // stopped before the interpreter ends
};
// Isolated interpreters alive (the shared interpreter cannot be finalized under them).
extern std::atomic<int> isolatedInterpreters;
// On a JS thread with no thread state yet, the shared interpreter running: makes the calling
// thread's own interpreter and leaves the thread detached. False with `error` set on failure.
bool StartIsolatedInterpreter(const std::string& helperSource, std::string* error);
// Ends the calling thread's own interpreter (worker exit, shutdown()). Not inside a call.
void EndIsolatedInterpreter();
// A pyembed-owned thread (a callAsync pool thread of `interp`) enters that interpreter for its
// life: its thread-locals point at it, and it gets a thread state there (made directly:
// PyGILState knows only the main interpreter). Leaves the thread detached. False when no thread
// state could be made.
bool EnterIsolatedInterpreter(IsolatedInterpreter* interp);
// At that thread's end: deletes its thread state (under the interpreter's GIL, released after).
void LeaveIsolatedInterpreter();
// A thread Python made in `interp` (its asyncio loop, a threading.Thread calling JS), attached,
// entering pyembed: points the thread-locals at that interpreter (its generation, helpers and
// release queue). For good: the thread cannot outlive the interpreter (Py_EndInterpreter joins
// its threads). A callback thread calls AdoptCurrentPythonThread() next. Null: back to the
// shared interpreter (the thread's isolated one ended).
void PointThreadAtIsolated(IsolatedInterpreter* interp);
// Any thread but that interpreter's own: runs `visit(arg)` holding the GIL of the live isolated
// interpreter `generation`, with a temporary thread state of it current (how another thread
// raises an exception in its code: PyThreadState_SetAsyncExc finds threads of the current
// interpreter only). The calling thread's own thread state, if attached, is detached meanwhile
// (one GIL at a time). The interpreter cannot end during the visit. False, without calling
// visit: no such interpreter (ended, ending, or never made).
bool VisitIsolatedInterpreter(uint64_t generation, void (*visit)(void* arg), void* arg);
// The generations of the isolated interpreters alive now.
std::vector<uint64_t> LiveIsolatedInterpreters();

inline PendingDecrefs& CurrentPendingDecrefs(ThreadContext& ctx = tls) {
  return ctx.isolated ? ctx.isolated->decrefs : pendingDecrefs;
}
// engine.generation() for the thread whose context is `ctx`, without a thread-local read.
inline uint64_t GenerationOf(const ThreadContext& ctx) {
  return ctx.isolated ? ctx.isolated->generation : engine.sharedGeneration();
}

// Attached, on ctx's own thread: withdraws an exception posted by interrupt.cc that has not
// landed yet, so that it cannot land in a later call.
void WithdrawInterrupt(ThreadContext& ctx);

// Releases a reference now when the thread holds the GIL, else queues it.
void ReleaseRef(PyObject* o, uint64_t generation);

// A pyembed operation on a JS (or pool) thread: checks the engine runs, attaches if needed and
// counts the thread as busy in Python so shutdown waits for it. Throws nothing: check ok().
class PythonCall {
 public:
  explicit PythonCall(ThreadContext& ctx = tls);
  ~PythonCall();
  PythonCall(const PythonCall&) = delete;
  PythonCall& operator=(const PythonCall&) = delete;
  bool ok() const { return ok_; }
  const char* error() const { return error_; }

 private:
  bool EnterSlow();
  [[gnu::noinline]] bool AttachSlow();    // gil.cc
  void EndOutermost();
  [[gnu::noinline]] static void NotifyStopping();  // gil.cc
  ThreadContext& ctx_;
  bool ok_ = false;
  bool attachedHere_ = false;
  const char* error_ = nullptr;
};

// The common case inline (the thread is attached: a Py.GIL() scope, or an outer operation), the
// rest out of line: every synchronous operation runs through here.
[[gnu::always_inline]] inline PythonCall::PythonCall(ThreadContext& ctx) : ctx_(ctx) {
  if (__builtin_expect(InForkedChild() || !engine.running() || !ctx_.attached ||
                           CurrentPendingDecrefs(ctx_).NonEmpty(), 0)) {
    if (!EnterSlow()) return;
  }
  if (ctx_.callDepth++ == 0 && !ctx_.isolated) {
    engine.busyThreads++;
    if (ctx_.isMainJsThread) MainThreadCallStarted();
  }
  ok_ = true;
}

inline bool PythonCall::EnterSlow() {
  if (InForkedChild()) {
    error_ = kForkedChildError;
    return false;
  }
  if (!engine.running()) {
    error_ = ShutDownMessage();
    return false;
  }
  if (!ctx_.attached) return AttachSlow();
  // Releases queued by JS garbage collection wait for the next attach; a thread that stays
  // attached (a long Py.GIL() scope) drains them here instead.
  CurrentPendingDecrefs(ctx_).Drain();
  return true;
}

[[gnu::always_inline]] inline PythonCall::~PythonCall() {
  if (!ok_) return;
  if (__builtin_expect(ctx_.callDepth == 1, 1)) {
    EndOutermost();
    return;
  }
  --ctx_.callDepth;
  // A thread a scope attached, whose scope was closed meanwhile (in a callback), is detached here
  // too (attachedHere_).
  if (attachedHere_ && ctx_.scopeDepth == 0 && ctx_.attached) Detach(ctx_);
}

inline void PythonCall::EndOutermost() {
  if (ctx_.interruptPosted && ctx_.attached) WithdrawInterrupt(ctx_);
  ctx_.callDepth = 0;
  if (!ctx_.isolated) {
    if (ctx_.isMainJsThread) MainThreadCallEnded();
    engine.busyThreads--;
    if (__builtin_expect(engine.state() == EngineState::kStopping, 0)) NotifyStopping();
  }
  // Detach unless a Py.GIL() scope keeps the thread attached.
  if (ctx_.scopeDepth == 0 && ctx_.attached) {
    // Contended (the take had to wait), or many takes this turn: keep the GIL between this JS
    // thread's operations, so a loop of calls does not wait a switch interval per call. Only at
    // the outermost level: inside a callback the caller's operation takes the GIL back on return
    // anyway.
    if (ctx_.keepsGil && ctx_.trampolineDepth == 0) KeepGil(ctx_);
    else Detach(ctx_);
  }
}

// Temporarily releases the GIL held by this thread (around JS code or blocking waits) and takes
// it back in the destructor. A no-op when the thread is not attached.
class GilRelease {
 public:
  GilRelease();
  ~GilRelease();
  void Reacquire();  // take it back early, before the destructor
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;

 private:
  bool released_ = false;
};
