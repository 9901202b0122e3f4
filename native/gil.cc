#include "gil.h"

#include "engine.h"
#include "python_helpers.h"

thread_local ThreadContext tls;
std::atomic<int64_t> threadStatesMade{0};
std::atomic<int64_t> threadStatesReleased{0};
PendingDecrefs& pendingDecrefs = *new PendingDecrefs();  // outlives every thread

void Attach(ThreadContext& tls) {
  uint64_t gen = engine.generation();
  if (tls.tstate && tls.generation == gen) {
    py.PyEval_RestoreThread(tls.tstate);
  } else {
    // First entry of this thread into this interpreter run: PyGILState_Ensure makes the thread
    // state and registers it as the thread's own, so extension modules that call
    // PyGILState_Ensure on this thread find it instead of making a second one. The state is kept
    // (the GILState counter stays at 1) and reused by every later attach.
    py.PyGILState_Ensure();
    tls.tstate = py.PyThreadState_Get();
    tls.generation = gen;
    tls.ownsTstate = true;
    threadStatesMade++;
    if (tls.isMainJsThread) StartInterruptWatcher();
    if (tls.pythonName && helpers.adoptThread) {
      PyRefOwned name(py.PyUnicode_FromString(tls.pythonName));
      PyObject* args[] = {name.get(), tls.pythonDaemon ? py.True : py.False};
      PyRefOwned ok(name ? CallVector(helpers.adoptThread, args, 2, nullptr) : nullptr);
      if (!ok) py.PyErr_Clear();
    }
  }
  tls.attached = true;
  if (pendingDecrefs.NonEmpty()) pendingDecrefs.Drain();
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
    pendingDecrefs.Push(o, generation);
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
