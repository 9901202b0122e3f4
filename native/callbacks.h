// JS functions called from Python. A JS function handed to Python becomes a builtin function
// object (PyCFunction) whose self is a capsule holding a JsFunctionRef. Calling it from any
// Python thread reaches the JS thread that owns the function:
//   - on a thread that holds that isolate: run it right here (GIL released while JS runs);
//   - otherwise: queue a task and wait with the GIL released, borrowing the isolate if its
//     owner is parked in a synchronous call (see js_thread.h).
// A JS exception becomes a Python pyembed.JSError carrying the original JS value, which turns
// back into that same JS value if it reaches JS again.
#pragma once

#include <v8.h>

#include <atomic>
#include <string>

#include "capi.h"

struct JsThread;

#include "js_thread.h"

struct JsFunctionRef : JsHeld {
  JsThread* thread;                // the owning JS thread (ref held)
  v8::Global<v8::Function> fn;     // used only by a thread holding thread->isolate
  std::atomic<int> refs{1};
  std::string name;
  PyMethodDef def{};               // per function so Python shows the JS function's name
  int identityHash = 0;            // fn's, its key in JsThread::functionRefs
  // Under the GIL: a weak reference (owned) to the Python callable made for this ref, so the
  // same JS function converts to the same Python object while that object lives.
  PyObject* callable = nullptr;
  uint64_t callableGeneration = 0;

  void Ref() { refs.fetch_add(1, std::memory_order_relaxed); }
  bool TryRef() {  // a ref whose count reached 0 is being released: never revive it
    int n = refs.load(std::memory_order_relaxed);
    while (n > 0) {
      if (refs.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) return true;
    }
    return false;
  }
  void Unref();                    // any thread; the Global is released on the JS thread
  void DropJsReferences() override { fn.Reset(); }
};

// On a thread holding the isolate: wraps a JS function (a count of its live ref, or a new ref).
JsFunctionRef* NewJsFunctionRef(JsThread* thread, v8::Local<v8::Function> fn);
// Caller attached: the Python callable for a ref (takes one count of `ref`).
PyObject* MakePythonCallable(JsFunctionRef* ref);
// The ref behind a Python object made by MakePythonCallable, or null (borrowed).
JsFunctionRef* JsFunctionRefOf(PyObject* o);

// A JS exception value kept for Python (inside a JSError). Released on its JS thread.
struct JsValueRef;
// Caller holds the isolate: capture `exception` for raising later under the GIL.
JsValueRef* CaptureJsException(JsThread* thread, v8::Local<v8::Value> exception);
// Caller attached: raise pyembed.JSError for the captured value (consumes it).
void RaiseJsError(JsValueRef* captured);
// Caller attached: if `exc` is a JSError raised from `thread`'s JS, the original JS value's ref.
JsValueRef* OriginalJsError(PyObject* exc, JsThread* thread);
v8::Local<v8::Value> JsValueOf(JsValueRef* ref, v8::Isolate* isolate);

// Registers the helper Python objects callbacks need (the JSError class).
void SetJsErrorClass(PyObject* cls);
// Gives a JSError class (an isolated interpreter's own) its reader of JS stacks, for js_stack.
void InstallJsStackReader(PyObject* cls);
void ClearCallbackHelpers();
