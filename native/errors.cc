#include "errors.h"

#include "callbacks.h"
#include "engine.h"
#include "gil.h"
#include "handles.h"
#include "js_thread.h"
#include "python_helpers.h"
#include "v8_util.h"

#include <cstring>

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

// A class's __name__, read from its tp_name as CPython's own type_name() does (no attribute
// lookup, no string made): a heap type's tp_name is its __name__ (kept in step when assigned),
// a static type's is "module.Name". tp_name follows PyObject_VAR_HEAD (the object header, whose
// ob_type ends at typeOffset + 8, then ob_size) in every CPython version.
constexpr unsigned long kTpFlagsHeapType = 1UL << 9;
const char* TpName(PyObject* type) {
  return *reinterpret_cast<const char* const*>(reinterpret_cast<const char*>(type) + py.typeOffset +
                                               sizeof(PyObject*) + sizeof(Py_ssize_t));
}
std::string TypeName(PyObject* type) {
  // Checked once on int's type; a layout that differs takes the attribute instead.
  static const bool layoutKnown = std::strcmp(TpName(py.PyLong_Type), "int") == 0;
  if (!layoutKnown) {
    PyRefOwned name(py.PyObject_GetAttrString(type, "__name__"));
    if (!name) py.PyErr_Clear();
    return name ? Utf8Of(name.get()) : "Exception";
  }
  const char* name = TpName(type);
  if (!name) return "Exception";
  if (!(py.PyType_GetFlags(type) & kTpFlagsHeapType)) {
    const char* dot = std::strrchr(name, '.');
    if (dot) name = dot + 1;
  }
  return name;
}

// str(exception) as UTF-8, or as UTF-16 when it has lone surrogates (JS strings keep them).
void SetMessage(PyObject* str, PythonErrorInfo* info) {
  Py_ssize_t n = 0;
  if (const char* s = py.PyUnicode_AsUTF8AndSize(str, &n)) {
    info->message.assign(s, static_cast<size_t>(n));
    return;
  }
  py.PyErr_Clear();
  if (!Utf16OfStr(str, &info->message)) {
    py.PyErr_Clear();
    info->message = "<str() failed: cannot encode it>";
    return;
  }
  info->messageUtf16 = true;
}

// Type name, message and whether a cause is chained: all a PythonError needs at once. The
// traceback text is formatted by JS only when it is read (formatting costs ~100x a call).
void Describe(PyObject* exc, PythonErrorInfo* info) {
  info->type = TypeName(TypeOf(exc));
  PyRefOwned text(py.PyObject_Str(exc));
  if (text) {
    SetMessage(text.get(), info);
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

// Sets up what MakeRealmError needs from errorRealmMaker's answer (once per thread). False:
// every error is left to the factory.
bool ErrorRealmReady(JsThread* t) {
  if (t->errorRealmAsked) return !t->errorContext.IsEmpty();
  t->errorRealmAsked = true;
  v8::Isolate* isolate = t->isolate;
  if (t->errorRealmMaker.IsEmpty()) return false;
  v8::TryCatch tryCatch(isolate);  // no realm only means the slower factory
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::Local<v8::Value> answer;
  if (!t->errorRealmMaker.Get(isolate)->Call(ctx, v8::Undefined(isolate), 0, nullptr).ToLocal(&answer) ||
      !answer->IsObject()) {
    return false;
  }
  v8::Local<v8::Object> settings = answer.As<v8::Object>();
  auto get = [&](const char* key) -> v8::Local<v8::Value> {
    v8::Local<v8::Value> value;
    if (!settings->Get(ctx, JsText(isolate, key)).ToLocal(&value)) return v8::Undefined(isolate);
    return value;
  };
  v8::Local<v8::Value> realmError = get("error"), mainError = get("mainError"), prototype = get("prototype"),
                       mapped = get("mapped");
  if (!realmError->IsFunction() || !mainError->IsFunction() || !prototype->IsObject() || !mapped->IsInt32Array()) {
    return false;
  }
  v8::Local<v8::Context> realm;
  if (!CreationContextOf(isolate, realmError.As<v8::Object>()).ToLocal(&realm)) return false;
  v8::Local<v8::Int32Array> flags = mapped.As<v8::Int32Array>();
  if (flags->Length() < 1) return false;
  t->errorsMappedStore = flags->Buffer()->GetBackingStore();
  t->errorsMapped = reinterpret_cast<const int32_t*>(static_cast<const char*>(t->errorsMappedStore->Data()) +
                                                     flags->ByteOffset());
  t->realmError.Reset(isolate, realmError.As<v8::Object>());
  t->mainError.Reset(isolate, mainError.As<v8::Object>());
  t->pythonErrorPrototype.Reset(isolate, prototype.As<v8::Object>());
  t->exceptionKey.Reset(isolate, v8::Private::New(isolate, JsText(isolate, "pyembed.exception")));
  t->typeKey.Reset(isolate, v8::String::NewFromUtf8Literal(isolate, "type", v8::NewStringType::kInternalized));
  t->stackTraceLimitKey.Reset(
      isolate, v8::String::NewFromUtf8Literal(isolate, "stackTraceLimit", v8::NewStringType::kInternalized));
  t->errorContext.Reset(isolate, realm);
  return true;
}

// A PythonError made here, in one piece: an Error of the realm (V8 takes the JS frames once, and
// its own `stack`, formatted when first read, asks the realm's Error.prepareStackTrace, which
// adds the Python type and traceback), given PythonError.prototype, `type` and the handle of the
// exception under a private key (errorException reads it: the PyObject is made when `pyException`
// is first read; a private key costs half a non-enumerable symbol's definition). The object keeps
// V8's fast layout: nothing is redefined, and its shape changes are the same each time.
v8::MaybeLocal<v8::Value> MakeRealmError(JsThread* t, PythonErrorInfo& info, v8::Local<v8::Value> excHandle) {
  v8::Isolate* isolate = t->isolate;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  // The frames taken are as many as this context's Error.stackTraceLimit says, as for its errors.
  v8::Local<v8::String> limitKey = t->stackTraceLimitKey.Get(isolate);
  v8::Local<v8::Value> limit;
  // No number: V8 takes no frames and leaves `stack` undefined; the factory's error keeps its text.
  if (!t->mainError.Get(isolate)->Get(ctx, limitKey).ToLocal(&limit) || !limit->IsNumber()) return {};
  if (t->realmStackTraceLimit.IsEmpty() || !limit->StrictEquals(t->realmStackTraceLimit.Get(isolate))) {
    if (!t->realmError.Get(isolate)->Set(ctx, limitKey, limit).FromMaybe(false)) return {};
    t->realmStackTraceLimit.Reset(isolate, limit);
  }
  v8::Local<v8::Value> error;
  {
    v8::Context::Scope realmScope(t->errorContext.Get(isolate));
    error = v8::Exception::Error(MessageText(isolate, info));
  }
  if (!error->IsObject()) return {};
  v8::Local<v8::Object> object = error.As<v8::Object>();
  if (!SetPrototypeOf(object, ctx, t->pythonErrorPrototype.Get(isolate)).FromMaybe(false) ||
      !object->CreateDataProperty(ctx, t->typeKey.Get(isolate), JsText(isolate, info.type)).FromMaybe(false) ||
      !object->SetPrivate(ctx, t->exceptionKey.Get(isolate), excHandle).FromMaybe(false)) {
    return {};
  }
  return error;
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

v8::Local<v8::String> MessageText(v8::Isolate* isolate, const PythonErrorInfo& info) {
  return info.messageUtf16 ? JsTextFromUtf16(isolate, info.message) : JsText(isolate, info.message);
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
  if (!info.hasCause && ErrorRealmReady(thread) && *thread->errorsMapped == 0) {
    v8::TryCatch tryCatch(isolate);  // a failure here only means the factory makes it
    v8::Local<v8::Value> error;
    if (MakeRealmError(thread, info, excHandle).ToLocal(&error)) return error;
  }
  // The JS frames, taken here rather than by the factory: the walk then starts at the caller's
  // frame (the factory's own optimized frame costs a deoptimization summary to skip) and the
  // stack names no frame of pyembed's error machinery.
  v8::Local<v8::Value> site = v8::Exception::Error(v8::String::Empty(isolate));
  v8::Local<v8::Value> argv[] = {
      JsText(isolate, info.type),
      MessageText(isolate, info),
      excHandle,
      v8::Boolean::New(isolate, info.hasCause),
      site,
  };
  v8::Local<v8::Value> error;
  if (!thread->errorFactory.Get(isolate)->Call(ctx, v8::Undefined(isolate), 5, argv).ToLocal(&error)) {
    return v8::Exception::Error(MessageText(isolate, info));
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
