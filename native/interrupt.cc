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
};

// Lock order: the GIL before registryMu. Entries point at thread-local contexts: an entry is
// removed (under registryMu) before its thread's storage goes away.
std::mutex& registryMu = *new std::mutex();
auto& registry = *new std::unordered_map<unsigned long, Interruptible>();  // by Python thread id
std::atomic<int> terminating{0};  // entries with terminating set

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

// Under registryMu, attached: is this pyembed thread inside a Python call of the running
// interpreter? (`self` does not count its own current entry call.)
bool InCall(const ThreadContext& ctx, const ThreadContext& self) {
  if (!ctx.tstate || ctx.generation != engine.generation()) return false;
  return ctx.callDepth > (&ctx == &self ? 1 : 0);
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
  std::lock_guard<std::mutex> lock(registryMu);
  Interruptible& entry = registry[ctx.pythonIdent];
  if (entry.ctx != &ctx && entry.terminating) {
    entry.terminating = false;  // an exited thread's id, reused
    terminating--;
  }
  entry.ctx = &ctx;
  unregisterAtExit.ident = ctx.pythonIdent;
  unregisterAtExit.ctx = &ctx;
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
  {
    std::lock_guard<std::mutex> lock(registryMu);
    auto it = registry.find(ident);
    if (it != registry.end()) {
      ThreadContext& target = *it->second.ctx;
      if (!InCall(target, self)) return false;
      PostInterrupt(target, py.PyExc_KeyboardInterrupt);
      return true;
    }
  }
  // A thread Python started (threading.Thread, the asyncio loop): it runs Python all its life.
  if (ident == 0 || ident == InterpreterThreadIdent()) return false;
  return py.PyThreadState_SetAsyncExc(ident, py.PyExc_KeyboardInterrupt) > 0;
}

bool InterruptTerminatingWorker(int64_t nodeThreadId) {
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(registryMu);
    for (auto& [ident, entry] : registry) {
      if (entry.ctx->nodeThreadId != nodeThreadId || entry.terminating) continue;
      entry.terminating = true;
      terminating++;
      found = true;
    }
  }
  if (found) WakeWatcher();
  return found;
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
  PythonCall call;
  for (auto& [run, arg] : batch) run(arg, call.ok());
  if (!call.ok()) return;
  std::lock_guard<std::mutex> lock(registryMu);
  for (auto& [ident, entry] : registry) {
    if (entry.terminating && InCall(*entry.ctx, tls)) {
      PostInterrupt(*entry.ctx, py.PyExc_KeyboardInterrupt);
    }
  }
}
