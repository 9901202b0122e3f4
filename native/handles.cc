#include "handles.h"

#include "engine.h"
#include "gil.h"
#include "js_thread.h"
#include "v8_util.h"

// Field 0 of every handle holds this address: no other object can have it there, so checking it
// identifies a handle without V8's (slower) template instance check. Field 1 is the PyHandle.
alignas(8) const char kHandleTag = 0;

namespace {

void Unlink(PyHandle* h) {
  if (h->prev) h->prev->next = h->next;
  else h->thread->handles = h->next;
  if (h->next) h->next->prev = h->prev;
}

void OnHandleCollected(const v8::WeakCallbackInfo<PyHandle>& info) {
  PyHandle* h = info.GetParameter();
  h->self.Reset();
  Unlink(h);
  if (h->obj) pendingDecrefs.Push(h->obj, h->generation);
  delete h;
}

}  // namespace

void ReleaseAllHandles(JsThread* thread) {
  while (PyHandle* h = thread->handles) {
    Unlink(h);
    h->self.Reset();
    if (h->obj) pendingDecrefs.Push(h->obj, h->generation);
    delete h;
  }
}

uint8_t HandleFlagsOf(PyObject* o) {
  return static_cast<uint8_t>((py.PyCallable_Check(o) ? kHandleCallable : 0) |
                              (TypeOf(o) == py.PyCoro_Type ? kHandleAwaitable : 0));
}

v8::MaybeLocal<v8::Object> NewHandle(JsThread* thread, PyObject* owned, uint8_t flags) {
  v8::Isolate* isolate = thread->isolate;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::Local<v8::Object> obj;
  if (!thread->handleTemplate.Get(isolate)->NewInstance(ctx).ToLocal(&obj)) return {};
  auto* h = new PyHandle();
  h->thread = thread;
  h->next = thread->handles;
  if (h->next) h->next->prev = h;
  thread->handles = h;
  h->obj = owned;
  h->flags = flags;
  h->generation = engine.generation();
  SetFieldPointer(obj, 0, const_cast<char*>(&kHandleTag));
  SetFieldPointer(obj, 1, h);
  h->self.Reset(isolate, obj);
  h->self.SetWeak(h, OnHandleCollected, v8::WeakCallbackType::kParameter);
  return obj;
}

PyHandle* HandleFromValue(JsThread*, v8::Local<v8::Value> value) {
  if (!value->IsObject()) return nullptr;
  v8::Local<v8::Object> obj = value.As<v8::Object>();
  if (obj->InternalFieldCount() != 2 || FieldPointer(obj, 0) != &kHandleTag) {
    return nullptr;
  }
  return static_cast<PyHandle*>(FieldPointer(obj, 1));
}

PyObject* LiveObject(PyHandle* h, const char** why) {
  if (h->generation != engine.generation() || !engine.running()) {
    *why = "this Python object belongs to an interpreter that was shut down";
    return nullptr;
  }
  if (h->disposed || !h->obj) {
    *why = "this Python object was disposed";
    return nullptr;
  }
  return h->obj;
}

void DisposeHandle(PyHandle* h) {
  if (h->disposed) return;
  h->disposed = true;
  if (h->pins > 0) return;  // the last unpin releases it
  PyObject* o = h->obj;
  h->obj = nullptr;
  ReleaseRef(o, h->generation);
}

void UnpinHandle(PyHandle* h) {
  if (--h->pins == 0 && h->disposed && h->obj) {
    PyObject* o = h->obj;
    h->obj = nullptr;
    ReleaseRef(o, h->generation);
  }
}
