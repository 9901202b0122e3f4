#include "js_thread.h"

#include <algorithm>
#include <thread>
#include <vector>

#include "handles.h"
#include "stack.h"

JsThread::JsThread(v8::Isolate* iso) : isolate(iso), ownerThread(pthread_self()) {}

bool JsThread::Alive() {
  std::lock_guard<std::mutex> lock(mu);
  return alive;
}

bool JsThread::Post(Task* task) {
  posting.fetch_add(1);  // before reading `incoming`: Shutdown waits until we are done with `wake`
  Task* head = incoming.load();
  do {
    if (head == Closed()) {
      posting.fetch_sub(1);
      // Cancel() assumes the task's V8 references are gone: Shutdown drops them (on the JS
      // thread) for every task it still holds, this one included. Wait until it has.
      while (!jsReferencesDropped.load()) std::this_thread::yield();
      task->Cancel();
      return false;
    }
    task->next_ = head;
  } while (!incoming.compare_exchange_weak(head, task));
  // The event loop drains it when the JS thread is idle; a borrower drains it sooner when the JS
  // thread is parked in a synchronous call (told through cv, only if one waits: the mutex is
  // then taken and dropped before the notification, so its check-then-wait cannot miss it).
  uv_async_send(wake);
  if (servingWaiters.load() != 0) {
    { std::lock_guard<std::mutex> lock(mu); }
    cv.notify_all();
  }
  posting.fetch_sub(1);
  return true;
}

void JsThread::DrainTasks() {
  for (;;) {
    if (!ready) {
      // (Closed only by Shutdown, on the holder's thread: never under a drain.)
      Task* head = incoming.load(std::memory_order_relaxed);
      if (head == nullptr || head == Closed()) return;
      Task* batch = incoming.exchange(nullptr);
      // Newest first: reversed into posting order.
      Task* oldest = nullptr;
      while (batch) {
        Task* next = batch->next_;
        batch->next_ = oldest;
        oldest = batch;
        batch = next;
      }
      ready = oldest;
    }
    Task* task = ready;
    ready = task->next_;
    task->next_ = nullptr;
    v8::HandleScope scope(isolate);
    task->Run(this);
  }
}

Borrowed::Borrowed(JsThread* t)
    : locker_(t->isolate),
      isolateScope_(t->isolate),
      handleScope_(t->isolate),
      contextScope_(t->context.Get(t->isolate)) {
  // V8 sizes a new thread's stack by its own default; a Python thread may have less. (The JS
  // thread itself gets its own limits back from V8 when it re-locks.)
  if (t->owner != &tls) SetV8StackLimitForThisThread(t->isolate);
}

void JsThread::BorrowAndDrain(std::unique_lock<std::mutex>& lock) {
  if (!TakeHolder(&tls)) return;  // the owner took it back first (a callback of its own)
  borrows.fetch_add(1, std::memory_order_relaxed);
  lock.unlock();
  {
    Borrowed scopes(this);
    DrainTasks();
  }
  lock.lock();
  holder.store(nullptr, std::memory_order_release);
  cv.notify_all();
}

bool JsThread::TryBorrow(ThreadContext& ctx) {
  std::lock_guard<std::mutex> lock(mu);
  if (!alive || !TakeHolder(&ctx)) return false;
  // The owner on its own stack changes nothing Reclaim must fix.
  if (owner != &ctx) borrows.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void JsThread::EndBorrow() {
  {
    std::lock_guard<std::mutex> lock(mu);
    holder.store(nullptr, std::memory_order_release);
  }
  cv.notify_all();
}

void JsThread::Hold(JsHeld* h) {
  std::lock_guard<std::mutex> lock(mu);
  held.insert(h);
}

void JsThread::Unhold(JsHeld* h) {
  std::lock_guard<std::mutex> lock(mu);
  held.erase(h);
}

void JsThread::Shutdown() {
  std::unordered_set<JsHeld*> holding;
  {
    std::lock_guard<std::mutex> lock(mu);
    alive = false;
    holding.swap(held);
  }
  // From here every Post() cancels its task; those under way finish with `wake` before it closes.
  Task* posted = incoming.exchange(Closed());
  while (posting.load() != 0) std::this_thread::yield();
  cv.notify_all();
  for (JsHeld* h : holding) h->DropJsReferences();
  jsReferencesDropped.store(true);  // late posters may cancel their tasks from here on
  std::vector<Task*> pending;
  for (Task* task = ready; task; task = task->next_) pending.push_back(task);
  ready = nullptr;
  size_t fromReady = pending.size();
  for (Task* task = posted == Closed() ? nullptr : posted; task; task = task->next_) pending.push_back(task);
  std::reverse(pending.begin() + static_cast<std::ptrdiff_t>(fromReady), pending.end());  // posting order
  for (Task* task : pending) task->Cancel();
  ReleaseAllHandles(this);
  names.Clear();
  // The JsThread itself may outlive the isolate (Python can still hold a function of this thread
  // and drop it later, from any thread): its own V8 references must go now, on this thread.
  context.Reset();
  handleKey.Reset();
  doneSentinel.Reset();
  errorFactory.Reset();
  wrapFactory.Reset();
  handleTemplate.Reset();
  handleClass.Reset();
  kwargsPrototype.Reset();
  encodeHook.Reset();
  numberReader.Reset();
  numberChunk.Reset();
  errorRealmMaker.Reset();
  errorContext.Reset();
  realmError.Reset();
  mainError.Reset();
  pythonErrorPrototype.Reset();
  exceptionKey.Reset();
  typeKey.Reset();
  stackTraceLimitKey.Reset();
  realmStackTraceLimit.Reset();
  errorsMapped = nullptr;
  errorsMappedStore.reset();
  for (std::vector<CachedKey>& shape : keyShapes) shape.clear();
}

void ParkedIsolate::Park(JsThread* thread) {
  thread_ = thread;
  unlocker_.emplace(thread->isolate);
  {
    std::lock_guard<std::mutex> lock(thread->mu);
    thread->holder.store(nullptr, std::memory_order_release);
    borrowsAtPark_ = thread->borrows.load(std::memory_order_relaxed);
  }
  thread->cv.notify_all();
}

namespace {

// A thread entering an isolate records its own stack as the one V8's garbage collector scans
// (Isolate::Enter sets the heap's stack start). A borrower entered on its own stack; the thread
// that takes the isolate back has not left it, so it must record its stack again itself, or a
// later GC would scan a range that spans two threads' stacks. Entering again does that.
void RestoreStackStart(v8::Isolate* isolate) {
  isolate->Enter();
  isolate->Exit();
}

}  // namespace

void ParkedIsolate::Reclaim() {
  JsThread* t = thread_;
  if (!t) return;
  thread_ = nullptr;
  std::unique_lock<std::mutex> lock(t->mu);
  if (t->TakeHolder(&tls)) {
    uint64_t borrows = t->borrows.load(std::memory_order_relaxed);
    lock.unlock();
    unlocker_.reset();  // the V8 lock is free: this does not block
    if (borrows != borrowsAtPark_) {
      RestoreStackStart(t->isolate);
      t->borrowsSeenByOwner = borrows;
    }
    return;
  }
  // Another thread runs JS on this isolate: wait for it without the GIL (it may need the GIL to
  // finish), then take the isolate, then the GIL again (isolate before GIL).
  lock.unlock();
  bool wasAttached = tls.attached;
  if (wasAttached) Detach();
  lock.lock();
  t->cv.wait(lock, [t] { return t->TakeHolder(&tls); });
  uint64_t borrows = t->borrows.load(std::memory_order_relaxed);
  lock.unlock();
  unlocker_.reset();
  RestoreStackStart(t->isolate);  // someone else ran JS on it just now
  t->borrowsSeenByOwner = borrows;
  if (wasAttached) {
    py.PyEval_RestoreThread(tls.tstate);
    tls.attached = true;
  }
}
