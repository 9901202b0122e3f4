#include "errors.h"

#include "callbacks.h"
#include "engine.h"
#include "gil.h"
#include "handles.h"
#include "js_thread.h"
#include "python_helpers.h"

namespace {

PyObject* describeException = nullptr;  // owned; _pyembed.describe_exception
uint64_t describeGeneration = 0;

}  // namespace

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

// type name, message and traceback through the Python helper; falls back to str() alone.
void Describe(PyObject* exc, PythonErrorInfo* info) {
  PyObject* describe = isolatedHelpers ? isolatedHelpers->describe
                       : describeGeneration == engine.generation() ? describeException : nullptr;
  if (describe) {
    PyObject* args[] = {exc};
    PyRefOwned parts(CallVector(describe, args, 1, nullptr));
    if (parts && py.PyTuple_Size(parts.get()) == 3) {
      info->type = Utf8Of(py.PyTuple_GetItem(parts.get(), 0));
      info->message = Utf8Of(py.PyTuple_GetItem(parts.get(), 1));
      info->traceback = Utf8Of(py.PyTuple_GetItem(parts.get(), 2));
      // CPython's words for an extension module without a GIL per interpreter (numpy today).
      if (isolatedHelpers && info->message.find("does not support loading in subinterpreters") != std::string::npos) {
        info->message += " (pyembed: this worker runs an isolated interpreter; extension modules "
                         "that do not support one, such as numpy today, work in the default "
                         "shared interpreter: PythonEngine.initialize() without interpreter: "
                         "'isolated')";
      }
      return;
    }
    py.PyErr_Clear();
  }
  PyRefOwned text(py.PyObject_Str(exc));
  info->message = Utf8Of(text.get());
  PyRefOwned name(py.PyObject_GetAttrString(TypeOf(exc), "__name__"));
  info->type = name ? Utf8Of(name.get()) : "Exception";
  if (!name) py.PyErr_Clear();
}

}  // namespace

void SetDescribeException(PyObject* fn) {
  if (describeException && describeGeneration == engine.generation()) {
    py.Py_DecRef(describeException);
  }
  describeException = fn ? NewRef(fn) : nullptr;
  describeGeneration = engine.generation();
}

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
  v8::Local<v8::Value> argv[] = {
      JsText(isolate, info.type),
      JsText(isolate, info.message),
      JsText(isolate, info.traceback),
      excHandle,
  };
  v8::Local<v8::Value> error;
  if (!thread->errorFactory.Get(isolate)->Call(ctx, v8::Undefined(isolate), 4, argv).ToLocal(&error)) {
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
