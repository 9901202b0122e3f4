// Native handles: the JS-side owner of one strong reference to a Python object.
// A handle is a small V8 object with one internal field pointing at a PyHandle. The TypeScript
// proxy (src/proxy.ts) keeps it under a symbol. When JS garbage-collects it, a weak callback queues
// the decref (never a decref inside V8's GC: __del__ could run arbitrary Python); dispose() drops
// it at once under the GIL. Handles remember the interpreter generation they belong to, so after
// shutdown (and a new initialize) an old handle is an error, not a dangling pointer.
#pragma once

#include <v8.h>

#include <atomic>
#include <cstdint>

#include "capi.h"
#include "engine.h"
#include "v8_util.h"

struct JsThread;

struct PyHandle {
  JsThread* thread = nullptr;
  PyHandle* prev = nullptr;     // JsThread::handles list
  PyHandle* next = nullptr;
  PyHandle* older = nullptr;    // the process-wide list, newest first (under its mutex)
  PyHandle* newer = nullptr;
  // Strong reference, or null once released. Whoever exchanges it for null releases it: the
  // owning JS thread, or shutdown releasing what JS still holds (ReleaseHandlesBeforeFinalize).
  std::atomic<PyObject*> obj{nullptr};
  uint64_t generation = 0;
  int pins = 0;                 // async calls using obj off this thread (see async_pool.cc)
  bool disposed = false;        // dispose() was called (maybe deferred while pinned)
  uint8_t flags = 0;            // kHandleCallable | kHandleAwaitable, known when made
  PyObject* key = nullptr;      // its entry in JsThread::handleByObject (shared handles only)
  v8::Global<v8::Object> self;  // weak
};

constexpr uint8_t kHandleCallable = 1;
constexpr uint8_t kHandleAwaitable = 2;
// Caller attached: the flags of an object, for NewHandle.
uint8_t HandleFlagsOf(PyObject* o);

// Wraps an owned reference in a handle object, taking ownership on success. Empty (the caller
// keeps the reference) when V8 cannot make objects right now: its worker is being terminated.
// A shared handle is the live handle this thread already has for the object, if any (the extra
// reference is released); an unshared one is always new (for handles pyembed disposes itself).
// No GIL needed.
v8::MaybeLocal<v8::Object> NewHandle(JsThread* thread, PyObject* owned, uint8_t flags, bool shared = true);
// Field 0 of every handle holds this address: no other object can have it there, so checking it
// identifies a handle without V8's (slower) template instance check. Field 1 is the PyHandle.
extern const char kHandleTag;
// The PyHandle behind a handle object, or null if `value` is not one. Inline: every operation
// on an object starts here.
inline PyHandle* HandleFromValue(JsThread*, v8::Local<v8::Value> value) {
  if (!value->IsObject()) return nullptr;
  v8::Local<v8::Object> obj = value.As<v8::Object>();
  if (obj->InternalFieldCount() != 2 || FieldPointer(obj, 0) != &kHandleTag) return nullptr;
  return static_cast<PyHandle*>(FieldPointer(obj, 1));
}
// The live object behind a handle, or null with `*why` set (disposed, stale interpreter, ...).
PyObject* LiveObject(PyHandle* handle, const char** why);
// The same, for a caller that knows the calling thread's interpreter generation (GenerationOf).
// The checks inline, the reasons out of line.
const char* WhyNotLive(PyHandle* handle, uint64_t currentGeneration);
inline PyObject* LiveObject(PyHandle* h, const char** why, uint64_t currentGeneration) {
  PyObject* o = h->obj.load(std::memory_order_relaxed);
  if (__builtin_expect(o != nullptr && !h->disposed && h->generation == currentGeneration &&
                           engine.running(), 1)) {
    return o;
  }
  *why = WhyNotLive(h, currentGeneration);
  return nullptr;
}
// Drops the handle's reference now (caller attached) unless an async call pins it.
void DisposeHandle(PyHandle* handle);
void UnpinHandle(PyHandle* handle);  // on the owning JS thread, not attached
// JS thread exit: queue the release of every object its handles still own.
void ReleaseAllHandles(JsThread* thread);
// Shutdown, attached, with no JS thread inside Python any more: releases the objects that live
// handles of every JS thread still own, newest first, so that Python's own cleanup (a suspended
// generator's `finally`, a `with` block's __exit__, __del__) runs before finalization, as it
// would for objects held in __main__. The handles then read as shut down.
void ReleaseHandlesBeforeFinalize();
// A handle whose interpreter is gone: forget its object without releasing it.
void ForgetHandleObject(PyHandle* handle);
