#include "gil.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <condition_variable>
#include <system_error>
#include <thread>

#include "async_pool.h"
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

// Attached, on a thread entering its interpreter for the first time: a thread that Python's
// threading started (pythonName set) gets its threading record there (the helpers' adopt_thread).
void AnnounceThreadToPython(ThreadContext& ctx) {
  PyObject* adopt = CurrentHelpers().adoptThread;
  if (!ctx.pythonName || !adopt) return;
  PyRefOwned name(py.PyUnicode_FromString(ctx.pythonName));
  PyObject* args[] = {name.get(), ctx.pythonDaemon ? py.True : py.False};
  PyRefOwned ok(name ? CallVector(adopt, args, 2, nullptr) : nullptr);
  if (!ok) py.PyErr_Clear();
}

// Uncontended takes in one turn of the event loop before the thread keeps the GIL: a turn with
// a few operations (a request handler, a timer) releases after each as before, and pays nothing
// for the watcher.
constexpr int kTakesBeforeKeeping = 16;

}  // namespace

void Attach(ThreadContext& tls) {
  uint64_t gen = GenerationOf(tls);
  if (tls.gilKept.load(std::memory_order_relaxed) != kNotKept && TakeBackKeptGil(tls)) {
    tls.attached = true;
    if (CurrentPendingDecrefs(tls).NonEmpty()) CurrentPendingDecrefs(tls).Drain();
    return;
  }
  if (tls.tstate && tls.generation == gen) {
    if (tls.mayKeepGil && GilKeepingSupported()) {
      int64_t before = TickNs();
      py.PyEval_RestoreThread(tls.tstate);
      // Also kept, contended or not, by a thread that makes many operations in one turn of its
      // event loop (a loop of calls): taking and dropping the GIL is most of what such a small
      // call costs. The watcher releases it as for a contended thread (a switch interval, or
      // a period without operations), and so does the end of the turn.
      tls.keepsGil = TickNs() != before || ++tls.takesThisTurn > kTakesBeforeKeeping;
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
    AnnounceThreadToPython(tls);
  }
  tls.attached = true;
  if (CurrentPendingDecrefs(tls).NonEmpty()) CurrentPendingDecrefs(tls).Drain();
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
    if (CurrentPendingDecrefs(ctx).NonEmpty()) CurrentPendingDecrefs(ctx).Drain();
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

// The isolated interpreters other threads may visit (VisitIsolatedInterpreter). One leaves it
// before it ends, and waits for its visitors to leave. Lock order: a GIL before isolatedMu, and
// no GIL is ever taken while holding it.
std::mutex& isolatedMu = *new std::mutex();
std::condition_variable& isolatedCv = *new std::condition_variable();
std::vector<IsolatedInterpreter*>& liveIsolated = *new std::vector<IsolatedInterpreter*>();

// On the interpreter's own thread, not attached: no visitor comes any more, none is left.
void CloseToVisitors(IsolatedInterpreter* interp) {
  std::unique_lock<std::mutex> lock(isolatedMu);
  std::erase(liveIsolated, interp);
  isolatedCv.wait(lock, [interp] { return interp->visitors == 0; });
}
}  // namespace

std::vector<uint64_t> LiveIsolatedInterpreters() {
  std::vector<uint64_t> generations;
  std::lock_guard<std::mutex> lock(isolatedMu);
  for (IsolatedInterpreter* interp : liveIsolated) generations.push_back(interp->generation);
  return generations;
}

bool VisitIsolatedInterpreter(uint64_t generation, void (*visit)(void*), void* arg) {
  IsolatedInterpreter* interp = nullptr;
  {
    std::lock_guard<std::mutex> lock(isolatedMu);
    for (IsolatedInterpreter* live : liveIsolated) {
      if (live->generation == generation) interp = live;
    }
    if (!interp) return false;
    interp->visitors++;
  }
  // Waiting for the target's GIL while holding our own could deadlock (its thread may be waiting
  // for ours), so ours is released first, as around a blocking wait. On 3.12+ (the only versions
  // with isolated interpreters) no GIL is kept between operations (GilKeepingSupported()), so
  // `attached` says all: no thread state of ours is current otherwise.
  ThreadContext& self = tls;
  PyThreadState* own = nullptr;
  if (self.attached) {
    self.attached = false;
    own = py.PyEval_SaveThread();
  }
  // A thread state of the target made for the visit: SetAsyncExc and the GIL need one current.
  PyThreadState* visitor = py.PyThreadState_New(interp->state);
  if (visitor) {
    py.PyEval_RestoreThread(visitor);
    visit(arg);
    py.PyThreadState_Clear(visitor);
    py.PyThreadState_DeleteCurrent();  // and releases the target's GIL
  }
  if (own) {
    py.PyEval_RestoreThread(own);
    self.attached = true;
  }
  std::lock_guard<std::mutex> lock(isolatedMu);
  if (--interp->visitors == 0) isolatedCv.notify_all();
  return visitor != nullptr;
}

bool StartIsolatedInterpreter(const std::string& helperSource, std::string* error) {
  if (py.versionHex < 0x030C0000 || !py.Py_NewInterpreterFromConfig || !py.Py_EndInterpreter ||
      !py.PyThreadState_New || !py.PyThreadState_DeleteCurrent || !py.PyInterpreterState_Main ||
      !py.PyInterpreterState_Get) {
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
    *error = kShuttingDownMessage;
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
  // `attaching` stays counted until the temporary state is gone again (below): a shutdown that
  // begins meanwhile waits for this creation, which then sees it and ends its interpreter, rather
  // than finalizing under it (CPython ends a thread that takes the GIL while it finalizes).
  py.PyEval_RestoreThread(temporary);
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
    engine.EndAttach();
    return false;
  }
  auto* interp = new IsolatedInterpreter();
  interp->tstate = own;
  interp->state = py.PyInterpreterState_Get();  // checked above
  interp->generation = nextIsolatedGeneration.fetch_add(1);
  tls.isolated = interp;
  tls.tstate = own;
  tls.generation = interp->generation;
  tls.ownsTstate = false;  // ended with the interpreter (Py_EndInterpreter), not PyGILState
  tls.attached = true;
  Engine::isolatedGeneration = interp->generation;
  isolatedHelpers = &interp->helpers;
  isolatedInterpreters++;
  // Interruptible from other threads (interrupt(), terminate(), process exit) from now on.
  RegisterInterruptible(tls);
  {
    std::lock_guard<std::mutex> lock(isolatedMu);
    liveIsolated.push_back(interp);
  }
  bool ok = LoadPythonHelpers(helperSource, error, interp->helpers, false);
  Detach(tls);
  // The temporary thread state goes (with the main GIL, which it needs for that).
  py.PyEval_RestoreThread(temporary);
  py.PyThreadState_Clear(temporary);
  py.PyThreadState_DeleteCurrent();
  // Counted above (seq_cst) before this read: either this sees a shutdown that began, or that
  // shutdown, once `attaching` is zero, sees this interpreter and refuses (StopPython).
  if (ok && !engine.runningSeqCst()) {
    ok = false;
    *error = kShuttingDownMessage;
  }
  if (!ok) EndIsolatedInterpreter();
  engine.EndAttach();
  return ok;
}

namespace {
// Attached, ending `interp`: runs `source` (a str) in it with `globals` (a dict); false, with
// the Python error set, when it failed (or either was not made).
bool RunAtEnd(IsolatedInterpreter* interp, PyObject* source, PyObject* globals) {
  PyRefOwned mode(py.PyUnicode_FromString("exec"));
  PyRefOwned filename(py.PyUnicode_FromString("<pyembed:end>"));
  if (!source || !globals || !mode || !filename || !interp->helpers.run) return false;
  PyObject* args[] = {source, globals, mode.get(), filename.get()};
  PyRefOwned done(CallVector(interp->helpers.run, args, 4, nullptr));
  return static_cast<bool>(done);
}

// Attached, ending `interp`: threads started with _thread (not threading) are neither joined by
// Py_EndInterpreter nor allowed to outlive it (it aborts the process: "not the last thread").
// Each is made to raise SystemExit (which ends such a thread quietly) at its next line or call:
// a tracer for all of this interpreter's threads, set on their running frames too, that raises
// only in threads threading does not know. One blocked in C ends when that call returns, as a
// callAsync thread does. (Not by ident with PyThreadState_SetAsyncExc: finding the idents takes
// sys._current_frames(), which on 3.12 makes frame objects for other interpreters' threads too,
// with this interpreter's allocator: a double free when their threads drop them.)
void EndRawThreads(IsolatedInterpreter* interp) {
  if (!py.PyInterpreterState_ThreadHead || !py.PyThreadState_Next || !py.PyThreadState_GetFrame ||
      !interp->state || !interp->helpers.run) {
    return;
  }
  auto othersNow = [interp] {
    int others = 0;
    for (PyThreadState* ts = py.PyInterpreterState_ThreadHead(interp->state); ts;
         ts = py.PyThreadState_Next(ts)) {
      if (ts != interp->tstate) others++;
    }
    return others;
  };
  if (othersNow() == 0) return;  // the usual case: nothing to run
  PyRefOwned code(py.PyUnicode_FromString(
      "import threading\n"
      "_me = threading.get_ident()\n"
      "def named():\n"
      "    return {i for i, t in threading._active.items() if i != _me and\n"
      "            not isinstance(t, (threading._DummyThread, threading._MainThread))}\n"
      "def stop(frame, event, arg):\n"
      "    i = threading.get_ident()\n"
      "    if i == _me or i in named():\n"
      "        return None\n"
      "    raise SystemExit\n"
      "def trace(fn):\n"
      "    threading.settrace_all_threads(fn)\n"));
  PyRefOwned globals(py.PyDict_New());
  const bool done = RunAtEnd(interp, code.get(), globals.get());
  auto global = [&globals](const char* name) -> PyObject* {  // new reference, or null
    PyRefOwned key(py.PyUnicode_FromString(name));
    return key ? py.PyObject_GetItem(globals.get(), key.get()) : nullptr;
  };
  PyRefOwned named(done ? global("named") : nullptr);
  PyRefOwned stop(done ? global("stop") : nullptr);
  PyRefOwned trace(done ? global("trace") : nullptr);
  if (!named || !stop || !trace) return py.PyErr_Clear();  // Py_EndInterpreter decides
  bool tracing = false;
  for (int round = 0;; round++) {
    const int others = othersNow();
    PyRefOwned namedNow(CallVector(named.get(), nullptr, 0, nullptr));
    const Py_ssize_t namedCount = namedNow ? py.PyObject_Size(namedNow.get()) : -1;
    // Threads of `threading` are Py_EndInterpreter's to join (after threading's atexit hooks).
    if (namedCount < 0 || others <= namedCount) break;
    if (round % 5 == 0) {
      if (!tracing) {
        PyObject* args[] = {stop.get()};
        PyRefOwned set(CallVector(trace.get(), args, 1, nullptr));
        tracing = static_cast<bool>(set);
      }
      for (PyThreadState* ts = py.PyInterpreterState_ThreadHead(interp->state); ts;
           ts = py.PyThreadState_Next(ts)) {
        if (ts == interp->tstate) continue;
        PyRefOwned frame(py.PyThreadState_GetFrame(ts));  // this interpreter's: made safely here
        while (frame) {
          if (py.PyObject_SetAttrString(frame.get(), "f_trace", stop.get()) < 0) break;
          frame = PyRefOwned(py.PyObject_GetAttrString(frame.get(), "f_back"));
          if (frame.get() == py.None) break;
        }
      }
    }
    py.PyErr_Clear();
    PyThreadState* own = py.PyEval_SaveThread();  // let them run to their end
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    py.PyEval_RestoreThread(own);
  }
  if (tracing) {
    PyObject* args[] = {py.None};
    PyRefOwned unset(CallVector(trace.get(), args, 1, nullptr));
  }
  py.PyErr_Clear();
}
}  // namespace

void EndIsolatedInterpreter() {
  IsolatedInterpreter* interp = tls.isolated;
  if (!interp) return;
  // Visitors first (without our GIL, which one may be waiting for); then an interrupt one posted
  // is withdrawn, so that none can land in the stopping of the pool and loop (a terminate()
  // repeats them), the cleanup or the atexit handlers below.
  if (tls.attached) Detach(tls);
  CloseToVisitors(interp);
  py.PyEval_RestoreThread(interp->tstate);
  tls.attached = true;
  WithdrawInterrupt(tls);
  StopIsolatedAsync(interp);  // its pool threads and asyncio loop go next (leaves us detached)
  py.PyEval_RestoreThread(interp->tstate);
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
    RunAtEnd(interp, code.get(), globals.get());
    py.PyErr_Clear();
  }
  EndRawThreads(interp);
  UnloadPythonHelpers(interp->helpers, false);
  // Joins the interpreter's non-daemon threads, runs its atexit handlers, frees its modules;
  // leaves no thread state current (its GIL goes with it).
  py.Py_EndInterpreter(interp->tstate);
  tls.ForgetInterpreter();
  PointThreadAtIsolated(nullptr);
  isolatedInterpreters--;
  // Releases queued after this point (GC of this worker's proxies) carry a generation that no
  // interpreter has any more: the shared queue drops them.
  delete interp;
}

// --- other threads in an isolated interpreter (its callAsync pool, its Python threads calling JS) ---

void PointThreadAtIsolated(IsolatedInterpreter* interp) {
  tls.isolated = interp;
  Engine::isolatedGeneration = interp ? interp->generation : 0;
  isolatedHelpers = interp ? &interp->helpers : nullptr;
}

bool EnterIsolatedInterpreter(IsolatedInterpreter* interp) {
  if (!interp->state) return false;
  PyThreadState* ts = py.PyThreadState_New(interp->state);
  if (!ts) return false;
  PointThreadAtIsolated(interp);
  py.PyEval_RestoreThread(ts);  // the interpreter's own GIL
  tls.tstate = ts;
  tls.generation = interp->generation;
  tls.ownsTstate = false;  // deleted by LeaveIsolatedInterpreter, never by PyGILState
  tls.attached = true;
  threadStatesMade++;
  RegisterInterruptible(tls);
  AnnounceThreadToPython(tls);  // PointThreadAtIsolated made these helpers current
  Detach(tls);
  return true;
}

void LeaveIsolatedInterpreter() {
  if (!tls.isolated) return;
  if (tls.tstate) {
    if (!tls.attached) py.PyEval_RestoreThread(tls.tstate);
    if (tls.interruptPosted) WithdrawInterrupt(tls);
    {  // threading's record of this thread goes with it (3.12 would keep it in threading._active)
      PyRefOwned threading(py.PyImport_ImportModule("threading"));
      PyRefOwned active(threading ? py.PyObject_GetAttrString(threading.get(), "_active") : nullptr);
      PyRefOwned pop(active ? py.PyObject_GetAttrString(active.get(), "pop") : nullptr);
      PyRefOwned ident(py.PyLong_FromLongLong(static_cast<long long>(tls.pythonIdent)));
      PyObject* args[] = {ident.get(), py.None};
      PyRefOwned popped(pop && ident ? CallVector(pop.get(), args, 2, nullptr) : nullptr);
      py.PyErr_Clear();
    }  // every reference dropped while the thread state lives
    py.PyThreadState_Clear(tls.tstate);
    py.PyThreadState_DeleteCurrent();  // releases the interpreter's GIL
    threadStatesReleased++;
  }
  tls.ForgetInterpreter();
  PointThreadAtIsolated(nullptr);
}

// PythonCall's entry for a thread not attached yet (gil.h has the attached case inline).
bool PythonCall::AttachSlow() {
  if (!engine.BeginAttach()) {
    error_ = kShuttingDownMessage;
    return false;
  }
  Attach(ctx_);
  engine.EndAttach();
  attachedHere_ = true;
  // Shutdown may have begun while we waited for the GIL: it sets the state under the GIL, so
  // reading it now that we hold the GIL is decisive.
  if (!engine.running()) {
    Detach(ctx_);
    attachedHere_ = false;
    error_ = kShuttingDownMessage;
    return false;
  }
  return true;
}

// The last busy operation of a thread ended while shutdown waits for them.
void PythonCall::NotifyStopping() {
  std::lock_guard<std::mutex> lock(engine.waitMu);
  engine.waitCv.notify_all();
}
