#include "interrupt.h"

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine.h"
#include "signals.h"

namespace {

struct Interruptible {
  ThreadContext* ctx;
  bool terminating = false;  // its worker is being terminated
  // The isolated interpreter of its thread state (gil.h), 0: the shared one. Read instead of
  // ctx's own fields, which a thread of another interpreter must not read without its GIL.
  uint64_t isolatedGeneration = 0;
};

// Lock order: the GIL before registryMu. Entries point at thread-local contexts: an entry is
// removed (under registryMu) before its thread's storage goes away.
std::mutex& registryMu = *new std::mutex();
auto& registry = *new std::unordered_map<unsigned long, Interruptible>();  // by Python thread id
std::atomic<int> terminating{0};  // entries with terminating set
std::atomic<bool> workersExiting{false};  // InterruptWorkersAtExit() was called (under registryMu)

std::mutex& workMu = *new std::mutex();
auto& work = *new std::vector<std::pair<void (*)(void*, bool), void*>>();  // under workMu
std::atomic<bool> workPending{false};

// Removes the calling thread's entry when the thread exits. Only touched at registration, so
// the hot paths' thread-local `tls` stays trivially destructible.
struct Unregister {
  unsigned long ident = 0;
  ThreadContext* ctx = nullptr;
  ~Unregister() {
    if (!ctx) return;
    std::lock_guard<std::mutex> lock(registryMu);
    auto it = registry.find(ident);
    if (it != registry.end() && it->second.ctx == ctx) {
      if (it->second.terminating) terminating--;
      registry.erase(it);
    }
  }
};
thread_local Unregister unregisterAtExit;

// Under registryMu, attached to the interpreter of `entry`: is this pyembed thread inside a
// Python call of that interpreter? (`self` does not count its own current entry call.)
bool InCall(const Interruptible& entry, const ThreadContext& self) {
  const ThreadContext& ctx = *entry.ctx;
  if (!ctx.tstate || ctx.generation != engine.generation()) return false;
  return ctx.callDepth > (&ctx == &self ? 1 : 0);
}

// The interpreter the calling thread is attached to, as Interruptible::isolatedGeneration.
uint64_t OwnInterpreter(const ThreadContext& self) {
  return self.isolated ? self.isolated->generation : 0;
}

// An interrupt to deliver in another (isolated) interpreter: VisitIsolatedInterpreter runs
// Deliver with that interpreter's GIL held.
struct Delivery {
  unsigned long ident;
  uint64_t generation;
  bool onlyTerminating;  // a termination's repeat: only while the entry is still terminating
  bool delivered = false;
};

void Deliver(void* arg) {
  auto& d = *static_cast<Delivery*>(arg);
  std::lock_guard<std::mutex> lock(registryMu);
  auto it = registry.find(d.ident);
  if (it == registry.end()) {
    // Not a pyembed thread: a thread Python started in that interpreter, or no thread at all.
    if (!d.onlyTerminating) d.delivered = py.PyThreadState_SetAsyncExc(d.ident, py.PyExc_KeyboardInterrupt) > 0;
    return;
  }
  const Interruptible& entry = it->second;
  // The thread moved on to another interpreter meanwhile; or is not (any more) in a call. Its
  // callDepth changes only under this interpreter's GIL, which we hold.
  if (entry.isolatedGeneration != d.generation) return;
  if (d.onlyTerminating && !entry.terminating) return;
  if (!entry.ctx->tstate || entry.ctx->callDepth == 0) return;
  PostInterrupt(*entry.ctx, py.PyExc_KeyboardInterrupt);
  d.delivered = true;
}

bool DeliverInIsolated(unsigned long ident, uint64_t generation, bool onlyTerminating) {
  Delivery d{ident, generation, onlyTerminating};
  return VisitIsolatedInterpreter(generation, Deliver, &d) && d.delivered;
}

// Attached: the id of Python's main thread (pyembed's interpreter thread, which runs only
// initialization and finalization: never a target).
unsigned long InterpreterThreadIdent() {
  static unsigned long ident = 0;
  static uint64_t generation = 0;
  if (generation == engine.generation()) return ident;
  PyRefOwned threading(py.PyImport_ImportModule("threading"));
  PyRefOwned mainThread(threading ? py.PyObject_GetAttrString(threading.get(), "main_thread") : nullptr);
  PyRefOwned main(mainThread ? CallVector(mainThread.get(), nullptr, 0, nullptr) : nullptr);
  PyRefOwned value(main ? py.PyObject_GetAttrString(main.get(), "ident") : nullptr);
  int overflow = 0;
  unsigned long found = value ? static_cast<unsigned long>(py.PyLong_AsLongLongAndOverflow(value.get(), &overflow)) : 0;
  if (!value || overflow || py.PyErr_Occurred()) {
    py.PyErr_Clear();
    return 0;
  }
  ident = found;
  generation = engine.generation();
  return ident;
}

}  // namespace

void RegisterInterruptible(ThreadContext& ctx) {
  ctx.pythonIdent = py.PyThread_get_thread_ident();
  ctx.interruptPosted = false;
  bool exiting = false;
  {
    std::lock_guard<std::mutex> lock(registryMu);
    Interruptible& entry = registry[ctx.pythonIdent];
    if (entry.ctx != &ctx && entry.terminating) {
      entry.terminating = false;  // an exited thread's id, reused
      terminating--;
    }
    entry.ctx = &ctx;
    entry.isolatedGeneration = OwnInterpreter(ctx);
    unregisterAtExit.ident = ctx.pythonIdent;
    unregisterAtExit.ctx = &ctx;
    // A worker that starts using Python as the process exits (after the 'exit' event marked the
    // others, before Node stops it) is interrupted too.
    if (workersExiting.load(std::memory_order_relaxed) && ctx.nodeThreadId > 0 && !entry.terminating) {
      entry.terminating = true;
      terminating++;
      exiting = true;
    }
  }
  if (exiting) WakeWatcher();
}

void PostInterrupt(ThreadContext& ctx, PyObject* exc) {
  ctx.interruptPosted = true;
  py.PyThreadState_SetAsyncExc(ctx.pythonIdent, exc);
}

void WithdrawInterrupt(ThreadContext& ctx) {
  ctx.interruptPosted = false;
  py.PyThreadState_SetAsyncExc(ctx.pythonIdent, nullptr);
}

bool InterruptThread(unsigned long ident, ThreadContext& self) {
  if (ident == 0) return false;
  const uint64_t mine = OwnInterpreter(self);
  uint64_t elsewhere = 0;  // the isolated interpreter of the pyembed thread `ident`, not ours
  {
    std::lock_guard<std::mutex> lock(registryMu);
    auto it = registry.find(ident);
    if (it != registry.end()) {
      const Interruptible& entry = it->second;
      if (entry.isolatedGeneration == mine) {
        if (!InCall(entry, self)) return false;
        PostInterrupt(*entry.ctx, py.PyExc_KeyboardInterrupt);
        return true;
      }
      // A JS thread of the shared interpreter, asked from an isolated worker: out of its reach.
      if (entry.isolatedGeneration == 0) return false;
      elsewhere = entry.isolatedGeneration;
    }
  }
  if (elsewhere) return DeliverInIsolated(ident, elsewhere, false);
  // A thread Python started (threading.Thread, the asyncio loop): it runs Python all its life.
  // First in the caller's interpreter (the shared interpreter's main thread is pyembed's
  // interpreter thread: never a target), then in each isolated one.
  if (!mine && ident == InterpreterThreadIdent()) return false;
  if (py.PyThreadState_SetAsyncExc(ident, py.PyExc_KeyboardInterrupt) > 0) return true;
  for (uint64_t generation : LiveIsolatedInterpreters()) {
    if (generation != mine && DeliverInIsolated(ident, generation, false)) return true;
  }
  return false;
}

namespace {
// Marks the entries of the workers `nodeThreadId` (kEveryWorker: all of them) as terminating.
constexpr int64_t kEveryWorker = 0;  // Node's main thread is threadId 0: never a worker
bool MarkTerminating(int64_t nodeThreadId) {
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(registryMu);
    if (nodeThreadId == kEveryWorker) workersExiting.store(true, std::memory_order_relaxed);
    for (auto& [ident, entry] : registry) {
      int64_t id = entry.ctx->nodeThreadId;
      bool chosen = nodeThreadId == kEveryWorker ? id > 0 : id == nodeThreadId;
      if (!chosen || entry.terminating) continue;
      entry.terminating = true;
      terminating++;
      found = true;
    }
  }
  if (found) WakeWatcher();
  return found;
}
}  // namespace

bool InterruptTerminatingWorker(int64_t nodeThreadId) {
  return nodeThreadId != kEveryWorker && MarkTerminating(nodeThreadId);
}

void InterruptWorkersAtExit() { MarkTerminating(kEveryWorker); }

void InterruptTerminatingThreads() {
  std::lock_guard<std::mutex> lock(registryMu);
  for (auto& [ident, entry] : registry) {
    if (entry.terminating && entry.isolatedGeneration == 0 && InCall(entry, tls)) {
      PostInterrupt(*entry.ctx, py.PyExc_KeyboardInterrupt);
    }
  }
}

void PostAttachedWork(void (*run)(void*, bool), void* arg) {
  {
    std::lock_guard<std::mutex> lock(workMu);
    work.emplace_back(run, arg);
    workPending.store(true, std::memory_order_release);
  }
  WakeWatcher();
}

bool InterruptWorkPending() {
  return workPending.load(std::memory_order_acquire) || terminating.load(std::memory_order_relaxed) > 0;
}

void DoInterruptWork() {
  std::vector<std::pair<void (*)(void*, bool), void*>> batch;
  {
    std::lock_guard<std::mutex> lock(workMu);
    batch.swap(work);
    workPending.store(false, std::memory_order_release);
  }
  {
    PythonCall call;
    for (auto& [run, arg] : batch) run(arg, call.ok());
    if (call.ok()) InterruptTerminatingThreads();
  }
  // Isolated workers being terminated: each through its own interpreter's GIL, the shared one
  // released (VisitIsolatedInterpreter would release it anyway).
  std::vector<std::pair<unsigned long, uint64_t>> isolated;
  {
    std::lock_guard<std::mutex> lock(registryMu);
    for (auto& [ident, entry] : registry) {
      if (entry.terminating && entry.isolatedGeneration) isolated.emplace_back(ident, entry.isolatedGeneration);
    }
  }
  for (auto& [ident, generation] : isolated) DeliverInIsolated(ident, generation, true);
}
