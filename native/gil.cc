#include "gil.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <condition_variable>
#include <system_error>
#include <thread>

#include "engine.h"
#include "interrupt.h"
#include "python_helpers.h"

thread_local ThreadContext tls;
std::atomic<int64_t> threadStatesMade{0};
std::atomic<int64_t> threadStatesReleased{0};
PendingDecrefs& pendingDecrefs = *new PendingDecrefs();  // outlives every thread

namespace {

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A cheap clock (a few ns: it reads what the kernel's last tick wrote) to notice a take of the
// GIL that waited: a wait of a switch interval always spans a tick, an uncontended take (~100
// ns) almost never does, and a rare false alarm only makes the thread keep the GIL until the
// watcher's next look.
int64_t TickNs() {
#ifdef CLOCK_MONOTONIC_COARSE
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
#else
  return SteadyNs();
#endif
}

// Takes back a GIL this thread kept, or waits for the watcher to finish releasing it.
// True: attached again.
bool TakeBackKeptGil(ThreadContext& ctx) {
  int expected = kKept;
  if (ctx.gilKept.compare_exchange_strong(expected, kNotKept, std::memory_order_acquire)) {
    py.PyThreadState_Swap(ctx.tstate);
    return true;
  }
  // kReleasing: the watcher is handing it to a waiting thread (microseconds).
  for (int spins = 0; ctx.gilKept.load(std::memory_order_acquire) != kNotKept; spins++) {
    if (spins < 100) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  return false;
}

bool StartWatching(ThreadContext& ctx);

}  // namespace

void Attach(ThreadContext& tls) {
  uint64_t gen = engine.generation();
  if (tls.gilKept.load(std::memory_order_relaxed) != kNotKept && TakeBackKeptGil(tls)) {
    tls.attached = true;
    if (CurrentPendingDecrefs().NonEmpty()) CurrentPendingDecrefs().Drain();
    return;
  }
  if (tls.tstate && tls.generation == gen) {
    if (tls.mayKeepGil && GilKeepingSupported()) {
      int64_t before = TickNs();
      py.PyEval_RestoreThread(tls.tstate);
      tls.keepsGil = TickNs() != before;
      if (tls.keepsGil) {
        tls.heldSince.store(SteadyNs(), std::memory_order_relaxed);
        StartWatching(tls);
      }
    } else {
      py.PyEval_RestoreThread(tls.tstate);
    }
  } else {
    // First entry of this thread into this interpreter run: PyGILState_Ensure makes the thread
    // state and registers it as the thread's own, so extension modules that call
    // PyGILState_Ensure on this thread find it instead of making a second one. The state is kept
    // (the GILState counter stays at 1) and reused by every later attach.
    py.PyGILState_Ensure();
    tls.keepsGil = false;  // a choice made against an interpreter that is gone
    tls.tstate = py.PyThreadState_Get();
    tls.generation = gen;
    tls.ownsTstate = true;
    if (!tls.internalThread) threadStatesMade++;
    RegisterInterruptible(tls);
    if (tls.isMainJsThread) StartInterruptWatcher();
    if (tls.pythonName && CurrentHelpers().adoptThread) {
      PyRefOwned name(py.PyUnicode_FromString(tls.pythonName));
      PyObject* args[] = {name.get(), tls.pythonDaemon ? py.True : py.False};
      PyRefOwned ok(name ? CallVector(CurrentHelpers().adoptThread, args, 2, nullptr) : nullptr);
      if (!ok) py.PyErr_Clear();
    }
  }
  tls.attached = true;
  if (CurrentPendingDecrefs().NonEmpty()) CurrentPendingDecrefs().Drain();
}

void Detach(ThreadContext& tls) {
  tls.attached = false;
  PyThreadState* ts = py.PyEval_SaveThread();
  (void)ts;  // the same as tls.tstate
}

void AdoptCurrentPythonThread() {
  PyThreadState* ts = py.PyThreadState_Get();
  if (tls.tstate != ts) {
    tls.tstate = ts;
    tls.ownsTstate = false;
  }
  tls.generation = engine.generation();
  tls.attached = true;
}

void ReleaseThreadState() {
  if (!tls.ownsTstate || !tls.tstate || tls.generation != engine.generation() ||
      !engine.running()) {
    tls.ForgetInterpreter();
    return;
  }
  StopKeepingGil(tls);
  if (!tls.attached) {
    if (!engine.BeginAttach()) {  // shutting down: finalization deletes the thread state
      tls.ForgetInterpreter();
      return;
    }
    py.PyEval_RestoreThread(tls.tstate);
    engine.EndAttach();
  }
  // The matching release of the PyGILState_Ensure in Attach(): the counter drops to zero, so
  // Python clears and deletes the thread state and releases the GIL.
  py.PyGILState_Release(0 /* PyGILState_UNLOCKED */);
  threadStatesReleased++;
  tls.ForgetInterpreter();
}

// --- the fair GIL ---------------------------------------------------------------------------
//
// While a Python thread runs pure-Python code, a JS thread that releases the GIL after every
// operation waits a whole switch interval (5 ms) to get it back for the next one: CPython hands
// the GIL over only when a waiter has waited that long. So a JS thread whose take had to wait
// *keeps* the GIL between its operations: it swaps its thread state out (PyThreadState_Swap on
// 3.9-3.11 leaves the GIL locked) instead of releasing, and swaps it back in on its next
// operation (~20 ns). JS code never runs Python while it keeps it, and the GIL is not tied to
// the JS thread: the watcher thread below releases it for that thread when
//  - the JS thread has kept it for a switch interval (then the waiting thread gets its turn, as
//    between Python threads), or
//  - the JS thread ran no operation during the watcher's last period (it went on with other JS,
//    or blocks in fs.readFileSync, Atomics.wait, JSON.parse...: none of that can starve Python
//    for longer than a period), or
//  - at the end of the event loop's turn (OnPrepare in addon.cc, on the JS thread itself).
// The JS thread's next take waits its turn and, if it had to wait, keeps the GIL again.

namespace {

std::mutex& watchMu = *new std::mutex();  // never destroyed: the watcher outlives static dtors
std::condition_variable& watchCv = *new std::condition_variable();
std::vector<ThreadContext*>& watchedThreads = *new std::vector<ThreadContext*>();

int64_t SwitchIntervalNs() {
  unsigned long us = py._PyEval_GetSwitchInterval ? py._PyEval_GetSwitchInterval() : 5000;
  return static_cast<int64_t>(us < 1 ? 1 : us) * 1000;
}

// Called with the GIL kept (gilKept == kReleasing, so its thread waits for us).
void ReleaseFor(ThreadContext* ctx) {
  py.PyThreadState_Swap(ctx->tstate);
  // When a waiter asked for the GIL, CPython waits here until that waiter has it: fair.
  py.PyEval_SaveThread();
  ctx->gilKept.store(kNotKept, std::memory_order_release);  // our last touch of ctx
}

[[noreturn]] void Watch() {
  std::vector<ThreadContext*> release;
  std::unique_lock<std::mutex> lock(watchMu);
  for (;;) {
    watchCv.wait(lock, [] { return !watchedThreads.empty(); });
    int64_t interval = SwitchIntervalNs();
    // A period: short enough that a JS thread gone off to other work (or blocked) holds up
    // Python for a fraction of a switch interval; long enough to cost little CPU.
    int64_t period = std::clamp<int64_t>(interval / 4, 100'000, 1'000'000);
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::nanoseconds(period));
    lock.lock();
    int64_t now = SteadyNs();
    for (auto it = watchedThreads.begin(); it != watchedThreads.end();) {
      ThreadContext* ctx = *it;
      uint64_t ops = ctx->operations.load(std::memory_order_relaxed);
      bool idle = ops == ctx->operationsSeen;
      ctx->operationsSeen = ops;
      bool turnOver = now - ctx->heldSince.load(std::memory_order_relaxed) >= interval;
      int expected = kKept;
      if ((idle || turnOver) &&
          ctx->gilKept.compare_exchange_strong(expected, kReleasing, std::memory_order_acquire)) {
        // Its next operation takes the GIL the usual way and, if that waited, watches again.
        release.push_back(ctx);
        ctx->watched.store(false, std::memory_order_relaxed);
        it = watchedThreads.erase(it);
      } else {
        ++it;  // using it, in an operation, or not holding it: look again next period
      }
    }
    if (release.empty()) continue;
    lock.unlock();
    for (ThreadContext* ctx : release) ReleaseFor(ctx);
    release.clear();
    lock.lock();
  }
}

bool StartWatching(ThreadContext& ctx) {
  static const bool watching = [] {
    try {
      std::thread(Watch).detach();
      return true;
    } catch (const std::system_error&) {
      return false;  // no thread to spare: release after every operation, as without keeping
    }
  }();
  if (!watching) {
    ctx.keepsGil = false;
    return false;
  }
  std::lock_guard<std::mutex> lock(watchMu);
  if (ctx.watched.load(std::memory_order_relaxed)) return true;
  ctx.operationsSeen = ctx.operations.load(std::memory_order_relaxed);
  ctx.watched.store(true, std::memory_order_relaxed);
  watchedThreads.push_back(&ctx);
  watchCv.notify_one();
  return true;
}

}  // namespace

bool GilKeepingSupported() {
  // Py_Version exists from 3.11 (0 before); 3.12 made PyThreadState_Swap release the GIL.
  // PYEMBED_FAIR_GIL=0 turns keeping off (bench/threads.mjs compares both in one run).
  static const bool off = [] {
    const char* v = getenv("PYEMBED_FAIR_GIL");
    return v && v[0] == '0';
  }();
  return !off && py.versionHex < 0x030C0000;
}

void KeepGil(ThreadContext& ctx) {
  ctx.attached = false;
  ctx.operations.store(ctx.operations.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
  py.PyThreadState_Swap(nullptr);
  ctx.gilKept.store(kKept, std::memory_order_release);
}

void DetachForCallback(ThreadContext& ctx) {
  // The watcher releases a GIL kept this way at its first look if the thread has kept one for a
  // switch interval (heldSince: its last contended take), else at its second look, the callback
  // having run no operation in between: a Python thread waits at most two periods.
  if (ctx.mayKeepGil && GilKeepingSupported() &&
      (ctx.watched.load(std::memory_order_relaxed) || StartWatching(ctx))) {
    KeepGil(ctx);
  } else {
    Detach(ctx);
  }
}

void AttachAfterCallback(ThreadContext& ctx) {
  if (ctx.gilKept.load(std::memory_order_relaxed) == kKept && TakeBackKeptGil(ctx)) {
    ctx.attached = true;
    PendingDecrefs& decrefs = ctx.isolated ? ctx.isolated->decrefs : pendingDecrefs;
    if (decrefs.NonEmpty()) decrefs.Drain();
    return;
  }
  Attach(ctx);
}

void StopKeepingGil(ThreadContext& ctx) {
  if (ctx.gilKept.load(std::memory_order_relaxed) != kNotKept && TakeBackKeptGil(ctx)) {
    py.PyEval_SaveThread();
  }
  ctx.keepsGil = false;
  if (!ctx.watched.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(watchMu);
  if (!ctx.watched.load(std::memory_order_relaxed)) return;
  ctx.watched.store(false, std::memory_order_relaxed);
  std::erase(watchedThreads, &ctx);
}

void PendingDecrefs::Push(PyObject* o, uint64_t generation) {
  std::lock_guard<std::mutex> lock(mu_);
  items_.push_back({o, nullptr, nullptr, generation});
  nonEmpty_.store(true, std::memory_order_relaxed);
}

void PendingDecrefs::PushRelease(void (*release)(void*, bool), void* arg, uint64_t generation) {
  std::lock_guard<std::mutex> lock(mu_);
  items_.push_back({nullptr, release, arg, generation});
  nonEmpty_.store(true, std::memory_order_relaxed);
}

void PendingDecrefs::Drain() {
  std::vector<Item> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(items_);
    items_.swap(spare_);
    nonEmpty_.store(false, std::memory_order_relaxed);
  }
  uint64_t gen = engine.generation();
  for (Item& item : batch) {
    // Entries of a finalized interpreter are dropped: their objects went with it (or leak).
    if (item.release) {
      item.release(item.arg, item.generation == gen);
    } else if (item.generation == gen) {
      py.Py_DecRef(item.obj);  // may run __del__, even re-enter pyembed: batch is ours alone
    }
  }
  batch.clear();
  std::lock_guard<std::mutex> lock(mu_);
  if (spare_.capacity() < batch.capacity()) spare_.swap(batch);
}

void ReleaseRef(PyObject* o, uint64_t generation) {
  if (!o) return;
  if (tls.attached && generation == engine.generation()) {
    py.Py_DecRef(o);
  } else if (generation == engine.generation() && engine.running()) {
    CurrentPendingDecrefs().Push(o, generation);
  }
}

GilRelease::GilRelease() {
  if (tls.attached) {
    Detach();
    released_ = true;
  }
}

void GilRelease::Reacquire() {
  if (released_) {
    py.PyEval_RestoreThread(tls.tstate);
    tls.attached = true;
    released_ = false;
  }
}

GilRelease::~GilRelease() { Reacquire(); }

// --- isolated interpreters (PEP 684) ---------------------------------------------------------

std::atomic<int> isolatedInterpreters{0};

namespace {
// Above any generation of the shared interpreter, so a handle never matches the wrong one.
std::atomic<uint64_t> nextIsolatedGeneration{uint64_t{1} << 62};
}  // namespace

bool StartIsolatedInterpreter(const std::string& helperSource, std::string* error) {
  if (py.versionHex < 0x030C0000 || !py.Py_NewInterpreterFromConfig || !py.Py_EndInterpreter ||
      !py.PyThreadState_New || !py.PyThreadState_DeleteCurrent || !py.PyInterpreterState_Main) {
    *error = "isolated interpreters (an interpreter and a GIL per worker) need CPython 3.12 or "
             "newer; this is " + sharedHelpers.version.substr(0, sharedHelpers.version.find(' ')) +
             " (use the default shared interpreter, or PYEMBED_PYTHON / options.python to choose "
             "a newer Python)";
    return false;
  }
  if (tls.tstate || tls.attached || tls.isolated) {
    *error = "this thread already uses Python: choose the interpreter in the first "
             "PythonEngine.initialize() of the worker, before any other use of Python";
    return false;
  }
  if (!engine.BeginAttach()) {
    *error = "Python is shutting down";
    return false;
  }
  // Py_NewInterpreterFromConfig wants a current thread state (of the main interpreter): a
  // temporary one, deleted once the new interpreter exists.
  PyThreadState* temporary = py.PyThreadState_New(py.PyInterpreterState_Main());
  if (!temporary) {
    engine.EndAttach();
    *error = "cannot make a Python thread state";
    return false;
  }
  py.PyEval_RestoreThread(temporary);
  engine.EndAttach();
  PyInterpreterConfigLayout config{};
  config.use_main_obmalloc = 0;
  config.allow_fork = 0;
  config.allow_exec = 0;
  config.allow_threads = 1;
  config.allow_daemon_threads = 0;
  config.check_multi_interp_extensions = 1;
  config.gil = 2;  // PyInterpreterConfig_OWN_GIL
  PyThreadState* own = nullptr;
  PyStatusLayout status = py.Py_NewInterpreterFromConfig(&own, &config);
  // On success the new interpreter's thread state is current, with its GIL; the main GIL was
  // released. On failure the temporary state is current again.
  if (status.type != 0 || !own) {
    *error = std::string("Python could not make an isolated interpreter: ") +
             (status.err_msg ? status.err_msg : "unknown error");
    py.PyThreadState_Clear(temporary);
    py.PyThreadState_DeleteCurrent();
    return false;
  }
  auto* interp = new IsolatedInterpreter();
  interp->tstate = own;
  interp->generation = nextIsolatedGeneration.fetch_add(1);
  tls.isolated = interp;
  tls.tstate = own;
  tls.generation = interp->generation;
  tls.ownsTstate = false;  // ended with the interpreter (Py_EndInterpreter), not PyGILState
  tls.attached = true;
  Engine::isolatedGeneration = interp->generation;
  isolatedHelpers = &interp->helpers;
  isolatedInterpreters++;
  bool ok = LoadPythonHelpers(helperSource, error, interp->helpers, false);
  Detach(tls);
  // The temporary thread state goes (with the main GIL, which it needs for that).
  py.PyEval_RestoreThread(temporary);
  py.PyThreadState_Clear(temporary);
  py.PyThreadState_DeleteCurrent();
  if (!ok) {
    EndIsolatedInterpreter();
    return false;
  }
  return true;
}

void EndIsolatedInterpreter() {
  IsolatedInterpreter* interp = tls.isolated;
  if (!interp) return;
  if (!tls.attached) py.PyEval_RestoreThread(interp->tstate);
  tls.attached = true;
  if (interp->decrefs.NonEmpty()) interp->decrefs.Drain();
  // threading's record of this (JS) thread is dropped now, while threading still works: at
  // Py_EndInterpreter its cleanup would run after the module is torn down (3.13 prints an error).
  if (interp->helpers.run) {
    PyRefOwned code(py.PyUnicode_FromString(
        "import threading\n"
        "_info = getattr(threading, '_thread_local_info', None)\n"
        "if _info is not None and hasattr(_info, '_track_dummy_thread_ref'):\n"
        "    del _info._track_dummy_thread_ref\n"
        "threading._active.pop(threading.get_ident(), None)\n"));
    PyRefOwned globals(py.PyDict_New());
    PyRefOwned mode(py.PyUnicode_FromString("exec"));
    PyRefOwned filename(py.PyUnicode_FromString("<pyembed:end>"));
    if (code && globals && mode && filename) {
      PyObject* args[] = {code.get(), globals.get(), mode.get(), filename.get()};
      PyRefOwned done(CallVector(interp->helpers.run, args, 4, nullptr));
    }
    py.PyErr_Clear();
  }
  UnloadPythonHelpers(interp->helpers, false);
  // Joins the interpreter's non-daemon threads, runs its atexit handlers, frees its modules;
  // leaves no thread state current (its GIL goes with it).
  py.Py_EndInterpreter(interp->tstate);
  tls.ForgetInterpreter();
  tls.isolated = nullptr;
  Engine::isolatedGeneration = 0;
  isolatedHelpers = nullptr;
  isolatedInterpreters--;
  // Releases queued after this point (GC of this worker's proxies) carry a generation that no
  // interpreter has any more: the shared queue drops them.
  delete interp;
}
