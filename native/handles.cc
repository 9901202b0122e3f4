#include "handles.h"

#include <mutex>
#include <vector>

#include "engine.h"
#include "gil.h"
#include "js_thread.h"
#include "v8_util.h"

alignas(8) const char kHandleTag = 0;  // see handles.h

namespace {

// Every live handle of every JS thread, newest first: shutdown walks it from another thread, so
// linking, unlinking and that walk take this mutex (making and dropping handles, not using them).
std::mutex& allHandlesMu = *new std::mutex();
PyHandle* newestHandle = nullptr;

void Link(PyHandle* h) {
  h->next = h->thread->handles;
  if (h->next) h->next->prev = h;
  h->thread->handles = h;
  std::lock_guard<std::mutex> lock(allHandlesMu);
  h->older = newestHandle;
  if (h->older) h->older->newer = h;
  newestHandle = h;
}

// Takes the handle out of its thread's identity index (NewHandle's same-object lookup).
void Forget(PyHandle* h) {
  if (!h->key) return;
  auto& index = h->thread->handleByObject;
  auto found = index.find(h->key);
  if (found != index.end() && found->second == h) index.erase(found);
  h->key = nullptr;
}

// Unlinks and deletes the handle; its reference, if it still has one, is queued for release.
void Drop(PyHandle* h) {
  Forget(h);
  if (h->prev) h->prev->next = h->next;
  else h->thread->handles = h->next;
  if (h->next) h->next->prev = h->prev;
  {
    std::lock_guard<std::mutex> lock(allHandlesMu);
    if (h->newer) h->newer->older = h->older;
    else newestHandle = h->older;
    if (h->older) h->older->newer = h->newer;
  }
  h->self.Reset();
  if (PyObject* o = h->obj.exchange(nullptr)) CurrentPendingDecrefs().Push(o, h->generation);
  delete h;
}

void OnHandleCollected(const v8::WeakCallbackInfo<PyHandle>& info) { Drop(info.GetParameter()); }

}  // namespace

void ReleaseAllHandles(JsThread* thread) {
  thread->handleByObject.clear();
  while (PyHandle* h = thread->handles) Drop(h);
}

void ReleaseHandlesBeforeFinalize() {
  uint64_t gen = engine.generation();
  std::vector<PyObject*> held;
  {
    std::lock_guard<std::mutex> lock(allHandlesMu);
    for (PyHandle* h = newestHandle; h; h = h->older) {
      if (h->generation != gen) continue;
      if (PyObject* o = h->obj.exchange(nullptr)) held.push_back(o);
    }
  }
  // Not under the mutex: releasing runs Python code, which may make or drop handles.
  for (PyObject* o : held) py.Py_DecRef(o);
}

void ForgetHandleObject(PyHandle* h) { h->obj.store(nullptr, std::memory_order_relaxed); }

uint8_t HandleFlagsOf(PyObject* o) {
  return static_cast<uint8_t>((py.PyCallable_Check(o) ? kHandleCallable : 0) |
                              (TypeOf(o) == py.PyCoro_Type ? kHandleAwaitable : 0));
}

v8::MaybeLocal<v8::Object> NewHandle(JsThread* thread, PyObject* owned, uint8_t flags, bool shared) {
  v8::Isolate* isolate = thread->isolate;
  if (shared) {
    auto found = thread->handleByObject.find(owned);
    if (found != thread->handleByObject.end()) {
      PyHandle* known = found->second;
      // The address alone is not enough: a disposed handle's object may be gone and the address
      // reused, and a handle of a finalized interpreter is stale.
      if (known->obj.load(std::memory_order_relaxed) == owned && !known->disposed &&
          known->generation == engine.generation() && !known->self.IsEmpty()) {
        ReleaseRef(owned, engine.generation());  // the handle already owns one reference
        return known->self.Get(isolate);
      }
      known->key = nullptr;
      thread->handleByObject.erase(found);
    }
  }
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::Local<v8::Object> obj;
  if (!thread->handleTemplate.Get(isolate)->NewInstance(ctx).ToLocal(&obj)) return {};
  auto* h = new PyHandle();
  h->thread = thread;
  h->obj.store(owned, std::memory_order_relaxed);
  h->flags = flags;
  h->generation = engine.generation();
  Link(h);
  if (shared) {
    h->key = owned;
    thread->handleByObject.emplace(owned, h);
  }
  SetFieldPointer(obj, 0, const_cast<char*>(&kHandleTag));
  SetFieldPointer(obj, 1, h);
  h->self.Reset(isolate, obj);
  h->self.SetWeak(h, OnHandleCollected, v8::WeakCallbackType::kParameter);
  return obj;
}

PyObject* LiveObject(PyHandle* h, const char** why) {
  return LiveObject(h, why, engine.generation());
}

const char* WhyNotLive(PyHandle* h, uint64_t currentGeneration) {
  if (!engine.running()) return ShutDownMessage();
  if (h->generation != currentGeneration) return "this Python object belongs to an interpreter that was shut down";
  return "this Python object was disposed";
}

void DisposeHandle(PyHandle* h) {
  if (h->disposed) return;
  h->disposed = true;
  if (h->pins > 0) return;  // the last unpin releases it
  ReleaseRef(h->obj.exchange(nullptr), h->generation);
}

void UnpinHandle(PyHandle* h) {
  if (--h->pins == 0 && h->disposed) ReleaseRef(h->obj.exchange(nullptr), h->generation);
}
