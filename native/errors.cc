#include "errors.h"

#include "callbacks.h"
#include "engine.h"
#include "gil.h"
#include "handles.h"
#include "js_thread.h"
#include "python_helpers.h"

PyObject* TakeException() {
  if (py.PyErr_GetRaisedException) return py.PyErr_GetRaisedException();
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  py.PyErr_Fetch(&type, &value, &tb);
  if (!type) return nullptr;
  py.PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) py.PyException_SetTraceback(value, tb);
  if (type) py.Py_DecRef(type);
  if (tb) py.Py_DecRef(tb);
  return value;
}

void RestoreException(PyObject* exception) {
  if (!exception) {
    py.PyErr_SetString(py.PyExc_RuntimeError, "a JS callback failed without an exception");
    return;
  }
  py.PyErr_SetObject(TypeOf(exception), exception);
  py.Py_DecRef(exception);
}

namespace {

std::string Utf8Of(PyObject* str) {
  Py_ssize_t n = 0;
  const char* s = str ? py.PyUnicode_AsUTF8AndSize(str, &n) : nullptr;
  if (!s) {
    py.PyErr_Clear();
    return "";
  }
  return std::string(s, static_cast<size_t>(n));
}

// Type name, message and whether a cause is chained: all a PythonError needs at once. The
// traceback text is formatted by JS only when it is read (formatting costs ~100x a call).
void Describe(PyObject* exc, PythonErrorInfo* info) {
  PyRefOwned name(py.PyObject_GetAttrString(TypeOf(exc), "__name__"));
  info->type = name ? Utf8Of(name.get()) : "Exception";
  if (!name) py.PyErr_Clear();
  PyRefOwned text(py.PyObject_Str(exc));
  if (text) {
    info->message = Utf8Of(text.get());
  } else {  // a failing __str__ must not hide the original error
    PyRefOwned failure(TakeException());
    PyRefOwned failureName(failure ? py.PyObject_GetAttrString(TypeOf(failure.get()), "__name__") : nullptr);
    if (!failureName) py.PyErr_Clear();
    info->message = "<str() failed: " + (failureName ? Utf8Of(failureName.get()) : std::string("?")) + ">";
  }
  // CPython's words for an extension module without a GIL per interpreter (numpy today).
  if (isolatedHelpers && info->message.find("does not support loading in subinterpreters") != std::string::npos) {
    info->message += " (pyembed: this worker runs an isolated interpreter; extension modules "
                     "that do not support one, such as numpy today, work in the default "
                     "shared interpreter: PythonEngine.initialize() without interpreter: "
                     "'isolated')";
  }
  PyRefOwned cause(py.PyException_GetCause(exc));
  info->hasCause = static_cast<bool>(cause);
}

}  // namespace

void CapturePythonError(JsThread* thread, PythonErrorInfo* info) {
  PyObject* exc = TakeException();
  info->present = true;
  if (!exc) {
    info->type = "SystemError";
    info->message = "error return without an exception set";
    return;
  }
  info->original = thread ? OriginalJsError(exc, thread) : nullptr;
  Describe(exc, info);
  info->exception.kind = Snapshot::Kind::kPyObject;
  info->exception.obj = exc;  // the reference FetchException gave us
  info->exception.ownsRef = true;
  info->exception.generation = engine.generation();
  info->exception.handleFlags = HandleFlagsOf(exc);
}

v8::Local<v8::Value> MakeJsError(JsThread* thread, PythonErrorInfo& info) {
  v8::Isolate* isolate = thread->isolate;
  if (info.original) return JsValueOf(info.original, isolate);
  if (!info.present) {  // a pyembed error that never was a Python exception
    v8::Local<v8::String> text = JsText(isolate, info.message);
    return info.type == "TypeError" ? v8::Exception::TypeError(text) : v8::Exception::Error(text);
  }
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::Local<v8::Value> excHandle = v8::Undefined(isolate);
  if (info.exception.kind == Snapshot::Kind::kPyObject) {
    v8::Local<v8::Value> h;
    if (ValueToJs(thread, info.exception).ToLocal(&h)) excHandle = h;
  }
  // The JS frames, taken here rather than by the factory: the walk then starts at the caller's
  // frame (the factory's own optimized frame costs a deoptimization summary to skip) and the
  // stack names no frame of pyembed's error machinery.
  v8::Local<v8::Value> site = v8::Exception::Error(v8::String::Empty(isolate));
  v8::Local<v8::Value> argv[] = {
      JsText(isolate, info.type),
      JsText(isolate, info.message),
      excHandle,
      v8::Boolean::New(isolate, info.hasCause),
      site,
  };
  v8::Local<v8::Value> error;
  if (!thread->errorFactory.Get(isolate)->Call(ctx, v8::Undefined(isolate), 5, argv).ToLocal(&error)) {
    return v8::Exception::Error(JsText(isolate, info.message));
  }
  return error;
}

void ThrowPythonError(JsThread* thread) {
  PythonErrorInfo info;
  CapturePythonError(thread, &info);
  v8::Local<v8::Value> error = MakeJsError(thread, info);
  thread->isolate->ThrowException(error);
}

void ThrowConvertError(v8::Isolate* isolate, const ConvertError& error) {
  if (error.isTypeError) {
    ThrowTypeError(isolate, error.message);
  } else {
    isolate->ThrowException(v8::Exception::RangeError(
        JsText(isolate, error.message)));
  }
}

void ThrowError(v8::Isolate* isolate, const std::string& message) {
  isolate->ThrowException(v8::Exception::Error(JsText(isolate, message)));
}

void ThrowTypeError(v8::Isolate* isolate, const std::string& message) {
  isolate->ThrowException(
      v8::Exception::TypeError(JsText(isolate, message)));
}
