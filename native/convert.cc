#include "convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <unordered_map>
#include <unordered_set>

#include "callbacks.h"
#include "engine.h"
#include "gil.h"
#include "handles.h"
#include "js_thread.h"
#include "python_helpers.h"
#include "stack.h"
#include "v8_util.h"

namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

bool Fail(ConvertError* error, std::string message) {
  error->message = std::move(message);
  error->isTypeError = true;
  return false;
}

std::string ConstructorName(v8::Local<v8::Object> obj) {
  v8::String::Utf8Value name(v8::Isolate::GetCurrent(), obj->GetConstructorName());
  return *name ? *name : "object";
}

// --- JS -> Snapshot ---------------------------------------------------------------------------

struct JsWalk {
  JsThread* thread;
  v8::Isolate* isolate;
  v8::Local<v8::Context> ctx;
  ConvertError* error;
  PinnedHandles* pins;
  // Every container converted so far (shared and cyclic structures become one Python object),
  // by identity hash in an open-addressing table (no allocation per container): only objects
  // with the same hash are compared, so each costs O(1).
  struct Seen {
    int hash;
    v8::Local<v8::Object> obj;
    Snapshot* node;  // null: a free slot
  };
  std::vector<Seen> seen;
  size_t seenCount = 0;
  uint32_t refs = 0;  // refIds handed out
  int encoded = 0;  // registered encoders applied on the current path
};

bool Convert(JsWalk& w, v8::Local<v8::Value> v, Snapshot* out);

// Py.registerEncoder: a class instance the rules refuse, replaced by what its encoder returns
// (a PyObject or plain data). False with no error set when no encoder takes it.
bool Encode(JsWalk& w, v8::Local<v8::Object> obj, Snapshot* out, bool* handled) {
  *handled = false;
  if (w.thread->encodeHook.IsEmpty()) return true;
  v8::TryCatch tryCatch(w.isolate);
  v8::Local<v8::Value> argv[] = {obj};
  v8::Local<v8::Value> replacement;
  if (!w.thread->encodeHook.Get(w.isolate)->Call(w.ctx, v8::Undefined(w.isolate), 1, argv).ToLocal(&replacement)) {
    std::string why = "the encoder for a JS " + ConstructorName(obj) + " failed";
    if (tryCatch.HasCaught() && tryCatch.CanContinue()) {
      v8::String::Utf8Value text(w.isolate, tryCatch.Exception());
      if (*text) why += std::string(": ") + *text;
    }
    return Fail(w.error, why);
  }
  if (replacement->IsUndefined()) return true;
  *handled = true;
  if (w.encoded >= 32) {
    return Fail(w.error, "encoders nested more than 32 deep (does an encoder return the value it was given?)");
  }
  w.encoded++;
  bool ok = Convert(w, replacement, out);
  w.encoded--;
  return ok;
}

bool Convert(JsWalk& w, v8::Local<v8::Value> v, Snapshot* out);

size_t SeenSlot(int hash, size_t mask) {
  return static_cast<size_t>(static_cast<uint32_t>(hash) * 0x9E3779B9u) & mask;
}

void GrowSeen(JsWalk& w) {
  std::vector<JsWalk::Seen> old = std::move(w.seen);
  w.seen.assign(old.empty() ? 16 : old.size() * 2, JsWalk::Seen{0, {}, nullptr});
  size_t mask = w.seen.size() - 1;
  for (const JsWalk::Seen& e : old) {
    if (!e.node) continue;
    size_t i = SeenSlot(e.hash, mask);
    while (w.seen[i].node) i = (i + 1) & mask;
    w.seen[i] = e;
  }
}

// False with no error when `obj` was met before: `out` then names its snapshot (kRef).
bool EnterContainer(JsWalk& w, v8::Local<v8::Object> obj, Snapshot* out, bool* again) {
  int hash = obj->GetIdentityHash();
  if ((w.seenCount + 1) * 2 > w.seen.size()) GrowSeen(w);
  size_t mask = w.seen.size() - 1;
  size_t i = SeenSlot(hash, mask);
  for (; w.seen[i].node; i = (i + 1) & mask) {
    if (w.seen[i].hash == hash && w.seen[i].obj == obj) {
      Snapshot* target = w.seen[i].node;
      if (target->refId == 0) target->refId = ++w.refs;
      out->kind = Snapshot::Kind::kRef;
      out->i = target->refId;
      *again = true;
      return false;
    }
  }
  *again = false;
  ThreadContext& ctx = tls;
  if (StackNearlyExhausted(ctx)) return Fail(w.error, "structure nested too deeply to convert");
  if (ctx.isMainJsThread) LowerV8StackLimitForWalk(w.isolate, ctx);
  w.seen[i] = JsWalk::Seen{hash, obj, out};
  w.seenCount++;
  return true;
}

bool ArrayTooLong(JsWalk& w, uint32_t length) {
  if (length <= kMaxArrayLength) return false;
  *w.error = ArrayTooLongError(length);
  return true;
}

void CopyString(v8::Isolate* isolate, v8::Local<v8::String> s, Snapshot* out) {
  int length = s->Length();
  out->kind = Snapshot::Kind::kString;
  if (s->IsOneByte()) {
    out->encoding = Snapshot::Encoding::kLatin1;
    out->text.resize(length);
    WriteLatin1(isolate, s, reinterpret_cast<uint8_t*>(out->text.data()), length);
  } else {
    out->encoding = Snapshot::Encoding::kUtf16;
    out->text.resize(static_cast<size_t>(length) * 2);
    WriteUtf16(isolate, s, reinterpret_cast<uint16_t*>(out->text.data()), length);
  }
}

void BigIntToValue(v8::Local<v8::BigInt> big, Snapshot* out) {
  bool lossless = false;
  int64_t small = big->Int64Value(&lossless);
  if (lossless) {
    out->kind = Snapshot::Kind::kInt;
    out->i = small;
    return;
  }
  int count = big->WordCount();
  std::vector<uint64_t> words(count);
  int sign = 0;
  big->ToWordsArray(&sign, &count, words.data());
  static const char* digits = "0123456789abcdef";
  std::string hex = sign ? "-" : "";
  bool leading = true;
  for (int i = count - 1; i >= 0; i--) {
    for (int shift = 60; shift >= 0; shift -= 4) {
      int nibble = static_cast<int>((words[i] >> shift) & 0xf);
      if (leading && nibble == 0) continue;
      leading = false;
      hex.push_back(digits[nibble]);
    }
  }
  if (leading) hex.push_back('0');
  out->kind = Snapshot::Kind::kBigInt;
  out->text = std::move(hex);
}

void NumberToValue(double d, Snapshot* out) {
  if (NumberIsPythonInt(d)) {
    out->kind = Snapshot::Kind::kInt;
    out->i = static_cast<int64_t>(d);
  } else {
    out->kind = Snapshot::Kind::kFloat;
    out->d = d;
  }
}

bool ConvertArray(JsWalk& w, v8::Local<v8::Array> arr, Snapshot* out) {
  uint32_t n = arr->Length();
  bool again = false;
  if (ArrayTooLong(w, n)) return false;
  if (!EnterContainer(w, arr, out, &again)) return again;
  out->kind = Snapshot::Kind::kList;
  out->items.resize(n);
  // Leading numbers in bulk, as synchronous calls take them (each element is still read once).
  NumberBuffer numbers;
  v8::Local<v8::Value> stop;
  bool stopped = false;
  if (!ReadNumberPrefix(w.thread, w.ctx, arr, n, &numbers, &stop, &stopped)) {
    return Fail(w.error, "cannot read an array element");
  }
  auto first = static_cast<uint32_t>(numbers.values.size());
  for (uint32_t i = 0; i < first; i++) NumberToValue(numbers.values[i], &out->items[i]);
  for (uint32_t i = first; i < n; i++) {
    v8::Local<v8::Value> item;
    if (i == first && stopped) {
      item = stop;
    } else if (!arr->Get(w.ctx, i).ToLocal(&item)) {
      return Fail(w.error, "cannot read an array element");
    }
    if (!Convert(w, item, &out->items[i])) return false;
  }
  return true;
}

bool ConvertPlainObject(JsWalk& w, v8::Local<v8::Object> obj, Snapshot* out) {
  bool again = false;
  if (!EnterContainer(w, obj, out, &again)) return again;
  v8::Local<v8::Array> keys;
  if (!obj->GetOwnPropertyNames(w.ctx, kStringKeys,
                                v8::KeyConversionMode::kConvertToString)
           .ToLocal(&keys)) {
    return Fail(w.error, "cannot list the object's keys");
  }
  uint32_t n = keys->Length();
  out->kind = Snapshot::Kind::kDict;
  out->items.resize(static_cast<size_t>(n) * 2);
  for (uint32_t i = 0; i < n; i++) {
    v8::Local<v8::Value> key, item;
    if (!keys->Get(w.ctx, i).ToLocal(&key) || !obj->Get(w.ctx, key).ToLocal(&item)) {
      return Fail(w.error, "cannot read an object property");
    }
    CopyString(w.isolate, key.As<v8::String>(), &out->items[2 * i]);
    if (!Convert(w, item, &out->items[2 * i + 1])) return false;
  }
  return true;
}

bool ConvertMapOrSet(JsWalk& w, v8::Local<v8::Object> obj, bool isMap, Snapshot* out) {
  bool again = false;
  if (!EnterContainer(w, obj, out, &again)) return again;
  v8::Local<v8::Array> flat =
      isMap ? obj.As<v8::Map>()->AsArray() : obj.As<v8::Set>()->AsArray();
  uint32_t n = flat->Length();
  out->kind = isMap ? Snapshot::Kind::kDict : Snapshot::Kind::kSet;
  out->items.resize(n);
  for (uint32_t i = 0; i < n; i++) {
    v8::Local<v8::Value> item;
    if (!flat->Get(w.ctx, i).ToLocal(&item)) return Fail(w.error, "cannot read a collection entry");
    if (!Convert(w, item, &out->items[i])) return false;
  }
  return true;
}

bool IsPlainObject(JsWalk& w, v8::Local<v8::Object> obj) {
  v8::Local<v8::Value> proto = PrototypeOf(obj);
  if (proto->IsNull()) return true;
  if (!proto->IsObject()) return false;
  v8::Local<v8::Value> protoProto = PrototypeOf(proto.As<v8::Object>());
  // Object.prototype is the only ordinary object whose prototype is null.
  return protoProto->IsNull() && proto.As<v8::Object>()->GetConstructorName()->StringEquals(
                                     v8::String::NewFromUtf8Literal(w.isolate, "Object"));
}

bool Convert(JsWalk& w, v8::Local<v8::Value> v, Snapshot* out) {
  if (v->IsUndefined()) {
    out->kind = Snapshot::Kind::kUndefined;
    return true;
  }
  if (v->IsNull()) {
    out->kind = Snapshot::Kind::kNull;
    return true;
  }
  if (v->IsBoolean()) {
    out->kind = Snapshot::Kind::kBool;
    out->b = v->IsTrue();
    return true;
  }
  if (v->IsInt32()) {
    out->kind = Snapshot::Kind::kInt;
    out->i = v.As<v8::Int32>()->Value();
    return true;
  }
  if (v->IsNumber()) {
    NumberToValue(v.As<v8::Number>()->Value(), out);
    return true;
  }
  if (v->IsString()) {
    CopyString(w.isolate, v.As<v8::String>(), out);
    return true;
  }
  if (v->IsBigInt()) {
    BigIntToValue(v.As<v8::BigInt>(), out);
    return true;
  }
  if (v->IsSymbol()) return Fail(w.error, "cannot convert a JS Symbol to Python");
  if (v->IsProxy()) return Fail(w.error, "cannot convert a JS Proxy object to Python");
  if (!v->IsObject()) return Fail(w.error, "cannot convert this JS value to Python");

  v8::Local<v8::Object> obj = v.As<v8::Object>();
  // A pyembed proxy (or callable) carries its native handle as an own property.
  v8::Local<v8::Symbol> key = w.thread->handleKey.Get(w.isolate);
  if (obj->HasOwnProperty(w.ctx, key).FromMaybe(false)) {
    v8::Local<v8::Value> handleValue;
    PyHandle* h = nullptr;
    if (obj->Get(w.ctx, key).ToLocal(&handleValue)) h = HandleFromValue(w.thread, handleValue);
    if (!h) return Fail(w.error, "corrupt pyembed proxy");
    const char* why = nullptr;
    PyObject* live = LiveObject(h, &why);
    if (!live) return Fail(w.error, why);
    out->kind = Snapshot::Kind::kPyObject;
    out->obj = live;  // borrowed: the pin keeps it, even if a later getter disposes the proxy
    out->ownsRef = false;
    out->generation = h->generation;  // a later getter may shut Python down (and start it again)
    w.pins->Add(h);
    return true;
  }
  if (v->IsDate()) {
    out->kind = Snapshot::Kind::kDate;
    out->d = v.As<v8::Date>()->ValueOf();
    return true;
  }
  if (v->IsFunction()) {
    out->kind = Snapshot::Kind::kJsFunction;
    out->fn = NewJsFunctionRef(w.thread, v.As<v8::Function>());
    return true;
  }
  if (v->IsArray()) return ConvertArray(w, v.As<v8::Array>(), out);
  if (v->IsArrayBufferView() || v->IsArrayBuffer() || v->IsSharedArrayBuffer()) {
    std::string why;
    if (!CaptureJsBytes(v, &out->jsBytes, &why)) return Fail(w.error, why);
    out->kind = Snapshot::Kind::kJsBytes;
    return true;
  }
  if (v->IsMap()) return ConvertMapOrSet(w, obj, true, out);
  if (v->IsSet()) return ConvertMapOrSet(w, obj, false, out);
  if (w.thread->kwargsPrototype.Get(w.isolate)->StrictEquals(PrototypeOf(obj))) {
    return Fail(w.error, "Py.kw() keyword arguments can only be the last argument of a call");
  }
  if (IsPlainObject(w, obj)) return ConvertPlainObject(w, obj, out);
  bool encoded = false;
  bool ok = Encode(w, obj, out, &encoded);
  if (!ok || encoded) return ok;
  return Fail(w.error, "cannot convert a JS " + ConstructorName(obj) +
                           " to Python (pass a plain object, an array, or a primitive)");
}

// --- Python -> Snapshot -----------------------------------------------------------------------

// The payload is `data`, inside the immutable `o` (a str's UTF-8, a bytes' buffer): the snapshot
// keeps `o` alive instead of copying it.
void ViewInside(PyObject* o, const char* data, size_t length, Snapshot* out) {
  out->obj = NewRef(o);
  out->ownsRef = true;
  out->generation = engine.generation();
  out->view = data;
  out->viewLength = length;
}

bool TextOfStr(PyObject* o, Snapshot* out) {
  Py_ssize_t size = 0;
  const char* utf8 = py.PyUnicode_AsUTF8AndSize(o, &size);
  out->kind = Snapshot::Kind::kString;
  if (utf8) {
    out->encoding = Snapshot::Encoding::kUtf8;
    ViewInside(o, utf8, static_cast<size_t>(size), out);
    return true;
  }
  py.PyErr_Clear();
  if (!Utf16OfStr(o, &out->text)) return false;
  out->encoding = Snapshot::Encoding::kUtf16;
  return true;
}

bool IntToValue(PyObject* o, Snapshot* out) {
  int overflow = 0;
  long long v = py.PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow == 0) {
    if (v == -1 && py.PyErr_Occurred()) return false;
    out->kind = Snapshot::Kind::kInt;
    out->i = v;
    return true;
  }
  PyRefOwned hex(py.PyNumber_ToBase(o, 16));
  if (!hex) return false;
  Py_ssize_t n = 0;
  const char* s = py.PyUnicode_AsUTF8AndSize(hex.get(), &n);
  if (!s) return false;
  std::string text(s, static_cast<size_t>(n));
  // "0x1f" or "-0x1f"
  size_t at = text.find('x');
  out->kind = Snapshot::Kind::kBigInt;
  out->text = (text[0] == '-' ? "-" : "") + text.substr(at + 1);
  return true;
}

struct PyWalk {
  const ToJsOptions& options;
  // Every container converted so far: met again (shared, or a cycle), it becomes a kRef.
  std::unordered_map<PyObject*, Snapshot*> seen;
  uint32_t refs = 0;  // refIds handed out
  int depth = 0;      // containers on the current path (toJS({ depth }))
};

bool FromPython(PyWalk& w, PyObject* o, Snapshot* out);

// False with no error set when `o` was met before: `out` then names its snapshot (kRef).
bool EnterPyContainer(PyWalk& w, PyObject* o, Snapshot* out, bool* again) {
  auto [it, inserted] = w.seen.emplace(o, out);
  if (!inserted) {
    Snapshot* target = it->second;
    if (target->refId == 0) target->refId = ++w.refs;
    out->kind = Snapshot::Kind::kRef;
    out->i = target->refId;
    *again = true;
    return false;
  }
  *again = false;
  if (StackNearlyExhausted()) {
    py.PyErr_SetString(py.PyExc_RecursionError, "structure nested too deeply to convert to JS");
    return false;
  }
  w.depth++;
  return true;
}

bool ChangedSize() {
  py.PyErr_SetString(py.PyExc_RuntimeError, "a container changed size during conversion to JS");
  return false;
}

bool SequenceItems(PyWalk& w, PyObject* o, bool isTuple, Snapshot* out) {
  bool again = false;
  if (!EnterPyContainer(w, o, out, &again)) return again;
  Py_ssize_t n = isTuple ? py.PyTuple_Size(o) : py.PyList_Size(o);
  if (n > static_cast<Py_ssize_t>(kMaxArrayLength)) {
    py.PyErr_SetString(py.PyExc_ValueError,
                       ("a sequence of " + std::to_string(n) + " items is too long for a JS array").c_str());
    return false;
  }
  out->kind = isTuple ? Snapshot::Kind::kTuple : Snapshot::Kind::kList;
  out->items.resize(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; i++) {
    // A list may change size under us (an element's conversion cannot run Python code, but be
    // careful anyway): re-check the bound each time.
    Py_ssize_t now = isTuple ? n : py.PyList_Size(o);
    if (i >= now) {
      out->items.resize(static_cast<size_t>(i));
      break;
    }
    PyObject* item = isTuple ? py.PyTuple_GetItem(o, i) : py.PyList_GetItem(o, i);
    if (!item || !FromPython(w, item, &out->items[i])) return false;
  }
  w.depth--;
  return true;
}

bool DictItems(PyWalk& w, PyObject* o, Snapshot* out) {
  bool again = false;
  if (!EnterPyContainer(w, o, out, &again)) return again;
  out->kind = w.options.dictAsMap ? Snapshot::Kind::kMap : Snapshot::Kind::kDict;
  // The items never move once made: w.seen points at them.
  Py_ssize_t size = py.PyObject_Size(o);
  if (size < 0) return false;
  out->items.reserve(2 * static_cast<size_t>(size));
  Py_ssize_t pos = 0;
  PyObject *key, *item;
  while (py.PyDict_Next(o, &pos, &key, &item)) {
    if (out->items.size() + 2 > out->items.capacity()) return ChangedSize();
    out->items.emplace_back();
    out->items.emplace_back();
    Snapshot& k = out->items[out->items.size() - 2];
    if (!FromPython(w, key, &k)) return false;
    // An int key of any size becomes its decimal text, as a JS property key would.
    if (!w.options.dictAsMap && k.kind != Snapshot::Kind::kString && k.kind != Snapshot::Kind::kInt &&
        k.kind != Snapshot::Kind::kBigInt && k.kind != Snapshot::Kind::kFloat &&
        k.kind != Snapshot::Kind::kBool) {
      py.PyErr_SetString(py.PyExc_TypeError,
                         "a dict key of this type cannot become a JS object key; use "
                         "toJS({ dict: 'map' })");
      return false;
    }
    if (!FromPython(w, item, &out->items.back())) return false;
  }
  w.depth--;
  return true;
}

bool SetItems(PyWalk& w, PyObject* o, Snapshot* out) {
  bool again = false;
  if (!EnterPyContainer(w, o, out, &again)) return again;
  PyRefOwned it(py.PyObject_GetIter(o));
  if (!it) return false;
  out->kind = Snapshot::Kind::kSet;
  Py_ssize_t size = py.PyObject_Size(o);
  if (size < 0) return false;
  out->items.reserve(static_cast<size_t>(size));  // never moved once made: w.seen points at them
  while (PyObject* item = py.PyIter_Next(it.get())) {
    PyRefOwned owned(item);
    if (out->items.size() + 1 > out->items.capacity()) return ChangedSize();
    out->items.emplace_back();
    if (!FromPython(w, item, &out->items.back())) return false;
  }
  if (py.PyErr_Occurred()) return false;
  w.depth--;
  return true;
}

// toJS() makes a memoryview one flat TypedArray: only right when its elements lie one after the
// other in one dimension. A strided or n-d view would come out as the raw memory under it (not
// what Python's tolist() shows), so it is refused with the ways to get it.
bool IsFlatContiguous(const PyBufferCapture& c) {
  bool flat = c.shape.size() == 1 &&
              (c.shape[0] <= 1 || c.strides[0] * static_cast<int64_t>(c.elementSize) == c.itemsize);
  if (flat) return true;
  auto list = [](const std::vector<int64_t>& values) {
    std::string text = "(";
    for (size_t k = 0; k < values.size(); k++) text += (k ? ", " : "") + std::to_string(values[k]);
    return text + (values.size() == 1 ? ",)" : ")");
  };
  std::vector<int64_t> byteStrides;
  for (int64_t stride : c.strides) byteStrides.push_back(stride * static_cast<int64_t>(c.elementSize));
  std::string message = "toJS() turns only a 1-D contiguous memoryview into a TypedArray; this one has shape " +
                        list(c.shape) + " and strides " + list(byteStrides) +
                        " (bytes): use getBuffer() for its memory with shape and strides, or tolist()";
  py.PyErr_SetString(py.PyExc_ValueError, message.c_str());
  return false;
}

bool FromPython(PyWalk& w, PyObject* o, Snapshot* out) {
  PyObject* type = TypeOf(o);
  if (o == py.None) {
    out->kind = Snapshot::Kind::kUndefined;
    return true;
  }
  if (type == py.PyBool_Type) {
    out->kind = Snapshot::Kind::kBool;
    out->b = o == py.True;
    return true;
  }
  if (type == py.PyLong_Type) return IntToValue(o, out);
  if (type == py.PyFloat_Type) {
    out->kind = Snapshot::Kind::kFloat;
    out->d = py.PyFloat_AsDouble(o);
    return true;
  }
  if (type == py.PyUnicode_Type) return TextOfStr(o, out);
  unsigned long flags = py.PyType_GetFlags(type);
  if (flags & kTpFlagsLongSubclass) return IntToValue(o, out);
  if (flags & kTpFlagsUnicodeSubclass) return TextOfStr(o, out);
  if (py.PyType_IsSubtype(type, py.PyFloat_Type)) {
    out->kind = Snapshot::Kind::kFloat;
    out->d = py.PyFloat_AsDouble(o);
    return !(out->d == -1.0 && py.PyErr_Occurred());
  }
  if (JsFunctionRef* ref = JsFunctionRefOf(o)) {
    ref->Ref();
    out->kind = Snapshot::Kind::kJsFunction;
    out->fn = ref;
    out->obj = NewRef(o);
    out->ownsRef = true;
    out->generation = engine.generation();
    out->handleFlags = kHandleCallable;
    return true;
  }
  if (w.options.deep) {
    // toJS({ depth }): containers below it stay Python objects.
    if (w.options.maxDepth < 0 || w.depth < w.options.maxDepth) {
      if (flags & kTpFlagsListSubclass) return SequenceItems(w, o, false, out);
      if (flags & kTpFlagsTupleSubclass) return SequenceItems(w, o, true, out);
      if (flags & kTpFlagsDictSubclass) return DictItems(w, o, out);
      if (type == py.PySet_Type || type == py.PyFrozenSet_Type ||
          py.PyType_IsSubtype(type, py.PySet_Type) ||
          py.PyType_IsSubtype(type, py.PyFrozenSet_Type)) {
        return SetItems(w, o, out);
      }
    }
    if (w.options.keepBuffers) {
      // bytes-likes are left as they are, below
    } else if (type == py.PyMemoryView_Type) {
      auto capture = std::make_unique<PyBufferCapture>();
      if (!CapturePyBuffer(o, capture.get())) return false;
      if (!IsFlatContiguous(*capture)) return false;
      out->kind = Snapshot::Kind::kPyBuffer;
      out->pyBuffer = std::move(capture);
      return true;
    } else if (flags & kTpFlagsBytesSubclass) {
      // bytes cannot change: keep a reference and copy once, straight into the JS memory.
      char* data = nullptr;
      Py_ssize_t n = 0;
      if (py.PyBytes_AsStringAndSize(o, &data, &n) < 0) return false;
      out->kind = Snapshot::Kind::kBytes;
      ViewInside(o, data, static_cast<size_t>(n), out);
      return true;
    } else if (type == py.PyByteArray_Type) {
      Py_buffer view;
      if (py.PyObject_GetBuffer(o, &view, kPyBufSimple) < 0) return false;
      out->kind = Snapshot::Kind::kBytes;
      out->text.assign(static_cast<const char*>(view.buf), static_cast<size_t>(view.len));
      py.PyBuffer_Release(&view);
      return true;
    }
  }
  out->kind = Snapshot::Kind::kPyObject;
  out->obj = NewRef(o);
  out->ownsRef = true;
  out->generation = engine.generation();
  out->handleFlags = HandleFlagsOf(o);
  return true;
}

// --- Snapshot -> JS ---------------------------------------------------------------------------

v8::MaybeLocal<v8::Value> BigIntFromHex(v8::Local<v8::Context> ctx, const std::string& text) {
  bool negative = !text.empty() && text[0] == '-';
  size_t start = negative ? 1 : 0;
  size_t digits = text.size() - start;
  std::vector<uint64_t> words((digits + 15) / 16, 0);
  for (size_t k = 0; k < digits; k++) {
    char c = text[text.size() - 1 - k];
    uint64_t nibble = (c >= '0' && c <= '9') ? c - '0' : (c | 0x20) - 'a' + 10;
    words[k / 16] |= nibble << (4 * (k % 16));
  }
  return AsValue(v8::BigInt::NewFromWords(ctx, negative ? 1 : 0, static_cast<int>(words.size()),
                                          words.data()));
}

namespace {

// Large copies go to malloc'd memory: V8's own allocation would first zero it, touching every
// page twice.
constexpr size_t kUninitializedCopyMin = 64 * 1024;

v8::Local<v8::ArrayBuffer> CopyToArrayBuffer(v8::Isolate* isolate, const char* data, size_t n) {
  if (n >= kUninitializedCopyMin) {
    if (void* memory = std::malloc(n)) {
      std::memcpy(memory, data, n);
      auto store = v8::ArrayBuffer::NewBackingStore(
          memory, n, [](void* d, size_t, void*) { std::free(d); }, nullptr);
      return v8::ArrayBuffer::New(isolate, std::move(store));
    }
  }
  auto buffer = v8::ArrayBuffer::New(isolate, n);
  if (n) std::memcpy(buffer->Data(), data, n);
  return buffer;
}

}  // namespace

// refs[refId]: the JS container that a kRef names; made before it is filled, so a container can
// hold itself.
using JsRefs = std::vector<v8::Local<v8::Value>>;
v8::MaybeLocal<v8::Value> ToJs(JsThread* t, Snapshot& v, bool nested, JsRefs& refs);

void RememberRef(JsRefs& refs, uint32_t refId, v8::Local<v8::Value> value) {
  if (refId == 0) return;
  if (refs.size() <= refId) refs.resize(refId + 1);
  refs[refId] = value;
}

v8::MaybeLocal<v8::Value> WrapHandle(JsThread* t, v8::Local<v8::Object> handle, bool nested) {
  if (!nested) return handle;
  v8::Local<v8::Value> argv[] = {handle};
  v8::Isolate* isolate = t->isolate;
  return t->wrapFactory.Get(isolate)->Call(isolate->GetCurrentContext(), v8::Undefined(isolate),
                                           1, argv);
}

v8::MaybeLocal<v8::Value> ToJs(JsThread* t, Snapshot& v, bool nested, JsRefs& refs) {
  v8::Isolate* isolate = t->isolate;
  // PythonToValue checked the stack while it nested this Snapshot, and a level of ToJs usually
  // takes less, but not in every build (with AddressSanitizer a ToJs frame is ~5 KB): a
  // container checks again before it recurses.
  if (!v.items.empty()) {
    ThreadContext& ctx = tls;
    if (StackNearlyExhausted(ctx)) {
      isolate->ThrowException(v8::Exception::RangeError(
          JsText(isolate, "structure nested too deeply to convert to JS")));
      return {};
    }
    if (ctx.isMainJsThread) LowerV8StackLimitForWalk(isolate, ctx);
  }
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  switch (v.kind) {
    case Snapshot::Kind::kUndefined:
    case Snapshot::Kind::kNaN:
      return v8::Undefined(isolate);
    case Snapshot::Kind::kNull:
      return v8::Null(isolate);
    case Snapshot::Kind::kBool:
      return v8::Boolean::New(isolate, v.b);
    case Snapshot::Kind::kInt:
      if (IsSafeInteger(v.i)) return v8::Number::New(isolate, static_cast<double>(v.i));
      return v8::BigInt::New(isolate, v.i);
    case Snapshot::Kind::kFloat:
      return v8::Number::New(isolate, v.d);
    case Snapshot::Kind::kDate:
      return AsValue(v8::Date::New(ctx, v.d));
    case Snapshot::Kind::kBigInt:
      return AsValue(BigIntFromHex(ctx, v.text));
    case Snapshot::Kind::kString:
      if (v.encoding == Snapshot::Encoding::kUtf8) {
        v8::Local<v8::String> s;
        if (!NewJsString(isolate, v.view ? v.view : v.text.data(), v.view ? v.viewLength : v.text.size())
                 .ToLocal(&s)) {
          isolate->ThrowException(v8::Exception::RangeError(JsText(isolate, "string too long for JS")));
          return {};
        }
        return s;
      }
      if ((v.encoding == Snapshot::Encoding::kUtf16 ? v.text.size() / 2 : v.text.size()) >
          static_cast<size_t>(v8::String::kMaxLength)) {
        isolate->ThrowException(v8::Exception::RangeError(JsText(isolate, "string too long for JS")));
        return {};
      }
      if (v.encoding == Snapshot::Encoding::kUtf16) {
        return AsValue(v8::String::NewFromTwoByte(
            isolate, reinterpret_cast<const uint16_t*>(v.text.data()), v8::NewStringType::kNormal,
            static_cast<int>(v.text.size() / 2)));
      }
      return AsValue(v8::String::NewFromOneByte(
          isolate, reinterpret_cast<const uint8_t*>(v.text.data()), v8::NewStringType::kNormal,
          static_cast<int>(v.text.size())));
    case Snapshot::Kind::kBytes: {
      const char* data = v.view ? v.view : v.text.data();
      size_t n = v.view ? v.viewLength : v.text.size();
      return v8::Uint8Array::New(CopyToArrayBuffer(isolate, data, n), 0, n);
    }
    case Snapshot::Kind::kRef: {
      size_t id = static_cast<size_t>(v.i);
      if (v.i <= 0 || id >= refs.size() || refs[id].IsEmpty()) {
        isolate->ThrowException(v8::Exception::Error(JsText(isolate, "pyembed: a shared reference names no container")));
        return {};
      }
      return refs[id];
    }
    case Snapshot::Kind::kList:
    case Snapshot::Kind::kTuple: {
      if (v.refId) {  // named by a kRef inside or after it: made first, filled after
        v8::Local<v8::Array> array = v8::Array::New(isolate, static_cast<int>(v.items.size()));
        RememberRef(refs, v.refId, array);
        for (size_t i = 0; i < v.items.size(); i++) {
          v8::Local<v8::Value> element;
          if (!ToJs(t, v.items[i], true, refs).ToLocal(&element)) return {};
          if (array->Set(ctx, static_cast<uint32_t>(i), element).IsNothing()) return {};
        }
        return array;
      }
      std::vector<v8::Local<v8::Value>> elements(v.items.size());
      for (size_t i = 0; i < v.items.size(); i++) {
        if (!ToJs(t, v.items[i], true, refs).ToLocal(&elements[i])) return {};
      }
      return v8::Array::New(isolate, elements.data(), elements.size());
    }
    case Snapshot::Kind::kDict: {
      size_t n = v.items.size() / 2;
      bool stringKeys = true;
      for (size_t i = 0; i < n && stringKeys; i++) stringKeys = v.items[2 * i].kind == Snapshot::Kind::kString;
      v8::Local<v8::Object> obj = v8::Object::New(isolate);
      RememberRef(refs, v.refId, obj);
      if (stringKeys && !v.refId) {
        // Python str keys are distinct: build the object in one step (much faster for big dicts).
        std::vector<v8::Local<v8::Name>> names(n);
        std::vector<v8::Local<v8::Value>> values(n);
        for (size_t i = 0; i < n; i++) {
          v8::Local<v8::Value> key;
          if (!ToJs(t, v.items[2 * i], true, refs).ToLocal(&key)) return {};
          names[i] = key.As<v8::Name>();
          if (!ToJs(t, v.items[2 * i + 1], true, refs).ToLocal(&values[i])) return {};
        }
        return v8::Object::New(isolate, PrototypeOf(obj), names.data(), values.data(), n);
      }
      for (size_t i = 0; i + 1 < v.items.size(); i += 2) {
        v8::Local<v8::Value> key, item;
        if (!ToJs(t, v.items[i], true, refs).ToLocal(&key)) return {};
        if (!key->IsString() && !key->ToString(ctx).ToLocal(&key)) return {};
        // 1 and '1' are two Python keys but one JS property name: refuse rather than drop one.
        v8::Maybe<bool> taken = obj->HasOwnProperty(ctx, key.As<v8::Name>());
        if (taken.IsNothing()) return {};
        if (taken.FromJust()) {
          v8::String::Utf8Value name(isolate, key);
          std::string message = std::string("two keys of the dict become the same JS property name '") +
                                (*name ? *name : "?") + "'; use toJS({ dict: 'map' }) to keep both";
          isolate->ThrowException(v8::Exception::TypeError(JsText(isolate, message.c_str())));
          return {};
        }
        if (!ToJs(t, v.items[i + 1], true, refs).ToLocal(&item)) return {};
        if (obj->CreateDataProperty(ctx, key.As<v8::Name>(), item).IsNothing()) return {};
      }
      return obj;
    }
    case Snapshot::Kind::kMap: {
      v8::Local<v8::Map> map = v8::Map::New(isolate);
      RememberRef(refs, v.refId, map);
      for (size_t i = 0; i + 1 < v.items.size(); i += 2) {
        v8::Local<v8::Value> key, item;
        if (!ToJs(t, v.items[i], true, refs).ToLocal(&key)) return {};
        if (!ToJs(t, v.items[i + 1], true, refs).ToLocal(&item)) return {};
        if (map->Set(ctx, key, item).IsEmpty()) return {};
      }
      return map;
    }
    case Snapshot::Kind::kSet: {
      v8::Local<v8::Set> set = v8::Set::New(isolate);
      RememberRef(refs, v.refId, set);
      for (auto& item : v.items) {
        v8::Local<v8::Value> js;
        if (!ToJs(t, item, true, refs).ToLocal(&js)) return {};
        if (set->Add(ctx, js).IsEmpty()) return {};
      }
      return set;
    }
    case Snapshot::Kind::kPyBuffer:
      return BuildTypedArray(isolate, v.pyBuffer.get());
    case Snapshot::Kind::kJsBytes:
      return v8::Undefined(isolate);  // only made from JS, never converted back
    case Snapshot::Kind::kJsFunction:
      // The JS function itself when it belongs to this JS thread; a function of another JS
      // thread stays a Python callable here.
      if (v.fn->thread == t) return v.fn->fn.Get(isolate);
      [[fallthrough]];
    case Snapshot::Kind::kPyObject: {
      // Only references taken from Python are converted to JS; borrowed ones came from JS.
      if (!v.ownsRef || !v.obj) return v8::Undefined(isolate);
      v8::Local<v8::Object> handle;
      if (!NewHandle(t, v.obj, v.handleFlags).ToLocal(&handle)) return {};  // v keeps its reference
      v.ownsRef = false;
      v.obj = nullptr;
      return WrapHandle(t, handle, nested);
    }
  }
  return v8::Undefined(isolate);
}

}  // namespace

void StringSnapshot(v8::Isolate* isolate, v8::Local<v8::String> s, Snapshot* out) { CopyString(isolate, s, out); }

bool Utf16OfStr(PyObject* str, std::string* out) {
  // Lone surrogates have no UTF-8 form; UTF-16 keeps them exactly, as JS strings do.
  PyRefOwned bytes(py.PyUnicode_AsEncodedString(str, "utf-16-le", "surrogatepass"));
  char* data = nullptr;
  Py_ssize_t n = 0;
  if (!bytes || py.PyBytes_AsStringAndSize(bytes.get(), &data, &n) < 0) return false;
  out->assign(data, static_cast<size_t>(n));
  return true;
}

ConvertError ArrayTooLongError(uint32_t length) {
  ConvertError error;
  error.message = "a JS array of length " + std::to_string(length) +
                  " is too long to convert to Python (the limit is " +
                  std::to_string(kMaxArrayLength) + " elements; holes would become None)";
  error.isTypeError = false;
  return error;
}

bool NumberIsPythonInt(double d) {
  return std::trunc(d) == d && std::fabs(d) <= kMaxSafeInteger && !(d == 0 && std::signbit(d));
}

Fast PrimitiveToPython(v8::Isolate* isolate, v8::Local<v8::Value> v, PyObject** out) {
  PyObject* o;
  if (v->IsInt32()) {
    o = py.PyLong_FromLongLong(v.As<v8::Int32>()->Value());
  } else if (v->IsNumber()) {
    double d = v.As<v8::Number>()->Value();
    o = NumberIsPythonInt(d) ? py.PyLong_FromLongLong(static_cast<long long>(d))
                             : py.PyFloat_FromDouble(d);
  } else if (v->IsString()) {
    v8::Local<v8::String> s = v.As<v8::String>();
    constexpr int kShort = 128;
    int length = s->Length();
    if (length > kShort || !s->IsOneByte()) return Fast::kNotHandled;
    uint8_t buffer[kShort];
    WriteLatin1(isolate, s, buffer, length);
    o = py.PyUnicode_FromKindAndData(1, buffer, length);
  } else if (v->IsBoolean()) {
    o = NewRef(v->IsTrue() ? py.True : py.False);
  } else if (v->IsNullOrUndefined()) {
    o = NewRef(py.None);
  } else {
    return Fast::kNotHandled;
  }
  *out = o;
  return o ? Fast::kDone : Fast::kPythonError;
}

PyObject* NumberToPython(double d) {
  // NumberIsPythonInt, with one conversion (the range test first: NaN fails it).
  if (d >= -kMaxSafeInteger && d <= kMaxSafeInteger) {
    auto i = static_cast<long long>(d);
    if (static_cast<double>(i) == d && (i != 0 || !std::signbit(d))) return py.PyLong_FromLongLong(i);
  }
  return py.PyFloat_FromDouble(d);
}

namespace {
thread_local std::vector<double> spareNumbers;  // the last NumberBuffer's memory, kept
constexpr size_t kSpareNumbersMax = size_t{1} << 20;  // keep at most 8 MB
}  // namespace

void NumberBuffer::Reuse() {
  if (values.capacity() == 0) values.swap(spareNumbers);
  values.clear();
}

void NumberBuffer::Keep() {
  if (values.capacity() > spareNumbers.capacity() && values.capacity() <= kSpareNumbersMax) {
    values.swap(spareNumbers);
  }
}

namespace {

constexpr uint32_t kNumberChunk = 16384;  // doubles per chunk: 128 KB per JS thread, kept

// (array, chunk, start, end): copies array[start..end) into chunk[0..) while they are numbers;
// returns how many it copied, or [how many, the element that is not a number].
constexpr char kNumberReaderSource[] =
    "(function readNumbers(a, out, start, end) {\n"
    "  for (let i = start; i < end; i++) {\n"
    "    const v = a[i];\n"
    "    if (typeof v !== 'number') return [i - start, v];\n"
    "    out[i - start] = v;\n"
    "  }\n"
    "  return end - start;\n"
    "})";

bool GetNumberReader(JsThread* t, v8::Local<v8::Context> ctx, v8::Local<v8::Function>* fn,
                     v8::Local<v8::Float64Array>* chunk) {
  v8::Isolate* isolate = t->isolate;
  if (t->numberReader.IsEmpty()) {
    v8::TryCatch tryCatch(isolate);  // not expected to fail; if it does, the caller reads one by one
    v8::Local<v8::Script> script;
    v8::Local<v8::Value> f;
    if (!v8::Script::Compile(ctx, v8::String::NewFromUtf8Literal(isolate, kNumberReaderSource)).ToLocal(&script) ||
        !script->Run(ctx).ToLocal(&f) || !f->IsFunction()) {
      return false;
    }
    v8::Local<v8::ArrayBuffer> buffer = v8::ArrayBuffer::New(isolate, kNumberChunk * sizeof(double));
    t->numberReader.Reset(isolate, f.As<v8::Function>());
    t->numberChunk.Reset(isolate, v8::Float64Array::New(buffer, 0, kNumberChunk));
  }
  *fn = t->numberReader.Get(isolate);
  *chunk = t->numberChunk.Get(isolate);
  return true;
}

}  // namespace

bool ReadNumberPrefix(JsThread* thread, v8::Local<v8::Context> context, v8::Local<v8::Array> array,
                      uint32_t length, NumberBuffer* buffer, v8::Local<v8::Value>* stop, bool* stopped) {
  *stopped = false;
  std::vector<double>* numbers = &buffer->values;
  v8::Local<v8::Function> reader;
  v8::Local<v8::Float64Array> chunk;
  // A getter run by the reader may convert another array, on this thread or, while this one is
  // parked in a call, on a thread that borrows the isolate: the chunk is then in use.
  if (thread->numberChunkBusy || length < kNumberPrefixMin || !GetNumberReader(thread, context, &reader, &chunk)) {
    return true;  // nothing read: the caller reads every element
  }
  buffer->Reuse();
  thread->numberChunkBusy = true;
  struct Release {
    JsThread* thread;
    ~Release() { thread->numberChunkBusy = false; }
  } release{thread};
  v8::Isolate* isolate = thread->isolate;
  numbers->reserve(length);
  for (uint32_t start = 0; start < length;) {
    uint32_t end = start + std::min(kNumberChunk, length - start);
    v8::Local<v8::Value> args[] = {array, chunk, v8::Integer::NewFromUnsigned(isolate, start),
                                   v8::Integer::NewFromUnsigned(isolate, end)};
    v8::Local<v8::Value> result;
    if (!reader->Call(context, v8::Undefined(isolate), 4, args).ToLocal(&result)) return false;
    uint32_t copied = end - start;
    if (!result->IsNumber()) {  // [how many, the element that is not a number]
      v8::Local<v8::Array> pair = result.As<v8::Array>();
      v8::Local<v8::Value> count;
      if (!pair->Get(context, 0).ToLocal(&count) || !pair->Get(context, 1).ToLocal(stop)) return false;
      copied = count.As<v8::Uint32>()->Value();
      *stopped = true;
    }
    size_t at = numbers->size();
    numbers->resize(at + copied);
    chunk->CopyContents(numbers->data() + at, copied * sizeof(double));
    if (*stopped) return true;
    start = end;
  }
  return true;
}

Fast PrimitiveToJs(v8::Isolate* isolate, PyObject* o, v8::Local<v8::Value>* out) {
  PyObject* type = TypeOf(o);
  if (o == py.None) {
    *out = v8::Undefined(isolate);
  } else if (type == py.PyLong_Type) {
    int overflow = 0;
    long long i = py.PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow != 0 || !IsSafeInteger(i)) return Fast::kNotHandled;
    *out = v8::Number::New(isolate, static_cast<double>(i));
  } else if (type == py.PyUnicode_Type) {
    Py_ssize_t n = 0;
    const char* utf8 = py.PyUnicode_AsUTF8AndSize(o, &n);
    if (!utf8) {  // lone surrogates: the general path keeps them
      py.PyErr_Clear();
      return Fast::kNotHandled;
    }
    v8::Local<v8::String> s;
    if (!NewJsString(isolate, utf8, static_cast<size_t>(n)).ToLocal(&s)) return Fast::kNotHandled;
    *out = s;
  } else if (type == py.PyFloat_Type) {
    *out = v8::Number::New(isolate, py.PyFloat_AsDouble(o));
  } else if (type == py.PyBool_Type) {
    *out = v8::Boolean::New(isolate, o == py.True);
  } else {
    return Fast::kNotHandled;
  }
  return Fast::kDone;
}

namespace {

// Deeper structures, and any container met twice (shared or cyclic), take the Snapshot path
// for the whole value: it keeps the graph, with its own depth and stack checks.
constexpr size_t kFastNestingMax = 64;

// A set of pointers by open addressing: no allocation per insert, unlike std::unordered_set
// (which cost the fast path ~25 % on a list of 10 000 small dicts).
class PointerSet {
 public:
  // False when `p` was in the set already.
  bool Insert(PyObject* p) {
    if ((count_ + 1) * 2 > slots_.size()) Grow();
    size_t mask = slots_.size() - 1;
    for (size_t i = Hash(p) & mask;; i = (i + 1) & mask) {
      if (slots_[i] == p) return false;
      if (!slots_[i]) {
        slots_[i] = p;
        count_++;
        return true;
      }
    }
  }

 private:
  static size_t Hash(PyObject* p) {
    auto bits = reinterpret_cast<uintptr_t>(p);
    return static_cast<size_t>((bits >> 4) * 0x9E3779B97F4A7C15ull >> 16);
  }
  void Grow() {
    std::vector<PyObject*> old = std::move(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, nullptr);
    count_ = 0;
    for (PyObject* p : old) {
      if (p) Insert(p);
    }
  }
  std::vector<PyObject*> slots_;
  size_t count_ = 0;
};

struct FastWalk {
  JsThread* thread;
  const ToJsOptions& options;
  PointerSet seen;                       // the containers converted so far
  size_t depth = 0;                      // containers on the current path
  bool bail = false;                     // the whole value goes to the Snapshot path
  v8::Local<v8::Value> objectPrototype;  // Object.prototype, fetched on the first dict
};

Fast FastContainerToJs(FastWalk& w, PyObject* o, v8::Local<v8::Value>* out);

bool IsPyContainer(PyObject* type) {
  unsigned long flags = py.PyType_GetFlags(type);
  return (flags & (kTpFlagsListSubclass | kTpFlagsTupleSubclass | kTpFlagsDictSubclass)) ||
         type == py.PySet_Type || type == py.PyFrozenSet_Type || py.PyType_IsSubtype(type, py.PySet_Type) ||
         py.PyType_IsSubtype(type, py.PyFrozenSet_Type);
}

// An element of a list or a value of a dict: primitives and plain lists/dicts directly, anything
// else through a Snapshot.
Fast FastItemToJs(FastWalk& w, PyObject* item, v8::Local<v8::Value>* out) {
  Fast f = PrimitiveToJs(w.thread->isolate, item, out);
  if (f != Fast::kNotHandled) return f;
  PyObject* type = TypeOf(item);
  if (type == py.PyList_Type || (type == py.PyDict_Type && !w.options.dictAsMap)) {
    if (w.depth >= kFastNestingMax || !w.seen.Insert(item)) {
      w.bail = true;
      return Fast::kNotHandled;
    }
    f = FastContainerToJs(w, item, out);
    if (f != Fast::kNotHandled || w.bail) return f;
  }
  if (IsPyContainer(type)) {  // its Snapshot would not know the containers seen here
    w.bail = true;
    return Fast::kNotHandled;
  }
  Snapshot snapshot;
  if (!PythonToValue(item, w.options, &snapshot)) return Fast::kPythonError;
  if (!ValueToJs(w.thread, snapshot, /*wrap=*/true).ToLocal(out)) return Fast::kConvertError;
  return Fast::kDone;
}

// The scalars of a list or dict (exact int, float, bool, None), without a reference or a call
// through PrimitiveToJs: they run no Python code, so a borrowed item is safe. int32 values go
// through v8::Integer::New (a small integer needs no heap number). kNotHandled: anything else.
inline Fast ScalarToJs(v8::Isolate* isolate, PyObject* item, v8::Local<v8::Value>* out) {
  PyObject* type = TypeOf(item);
  if (type == py.PyLong_Type) {
    int overflow = 0;
    long long i = py.PyLong_AsLongLongAndOverflow(item, &overflow);
    if (overflow != 0 || !IsSafeInteger(i)) return Fast::kNotHandled;
    if (i >= INT32_MIN && i <= INT32_MAX) {
      *out = v8::Integer::New(isolate, static_cast<int32_t>(i));
    } else {
      *out = v8::Number::New(isolate, static_cast<double>(i));
    }
    return Fast::kDone;
  }
  if (type == py.PyFloat_Type) {
    *out = v8::Number::New(isolate, py.PyFloat_AsDouble(item));
    return Fast::kDone;
  }
  if (item == py.None) {
    *out = v8::Undefined(isolate);
    return Fast::kDone;
  }
  if (type == py.PyBool_Type) {
    *out = v8::Boolean::New(isolate, item == py.True);
    return Fast::kDone;
  }
  return Fast::kNotHandled;
}

Fast FastListToJs(FastWalk& w, PyObject* list, v8::Local<v8::Value>* out) {
  Py_ssize_t size = py.PyList_Size(list);
  if (size > static_cast<Py_ssize_t>(kMaxArrayLength)) return Fast::kNotHandled;
  v8::Isolate* isolate = w.thread->isolate;
  std::vector<v8::Local<v8::Value>> elements(static_cast<size_t>(size));
  size_t filled = 0;
  for (Py_ssize_t i = 0; i < size; i++) {
    PyObject* borrowed = py.PyList_GetItem(list, i);
    if (!borrowed) return Fast::kPythonError;
    if (filled == elements.size()) elements.emplace_back();  // the list grew (Python code ran)
    v8::Local<v8::Value>* slot = &elements[filled++];
    if (ScalarToJs(isolate, borrowed, slot) == Fast::kDone) continue;
    // Anything else may run Python code (a Snapshot conversion): hold the item, and read the
    // size again afterwards.
    PyRefOwned item(NewRef(borrowed));
    Fast f = FastItemToJs(w, item.get(), slot);
    if (f != Fast::kDone) return f;
    size = py.PyList_Size(list);
    if (size > static_cast<Py_ssize_t>(kMaxArrayLength)) return Fast::kNotHandled;
  }
  *out = v8::Array::New(isolate, elements.data(), filled);
  return Fast::kDone;
}

// Dict keys become JS property names, which V8 keeps unique in its string table: looking each
// one up there was most of a big dict's cost. Dicts often come in shapes (records, or the same
// dict again), so the names made for the last dict of each shape are kept, by position, and a
// key whose text is the same as the kept one's reuses its JS string. Shapes: by size and first
// key; up to kMaxShapeKeys keys each (texts and JS strings only: no Python reference is kept).
using CachedKey = JsThread::CachedKey;
constexpr size_t kMaxShapeKeys = 16384;

std::vector<CachedKey>& ShapeFor(JsThread* t, size_t n, const char* firstKey, Py_ssize_t length) {
  size_t h = n * 0x9E3779B97F4A7C15ull;
  if (firstKey) {
    for (Py_ssize_t i = 0; i < length && i < 16; i++) h = (h ^ static_cast<unsigned char>(firstKey[i])) * 0x100000001B3ull;
  }
  return t->keyShapes[(h >> 32) % t->keyShapes.size()];
}

// True when every key after `pos` is an exact str.
bool StrKeysFrom(PyObject* dict, Py_ssize_t pos) {
  PyObject *key, *value;
  while (py.PyDict_Next(dict, &pos, &key, &value)) {
    if (TypeOf(key) != py.PyUnicode_Type) return false;
  }
  return true;
}

Fast FastDictToJs(FastWalk& w, PyObject* dict, v8::Local<v8::Value>* out) {
  v8::Isolate* isolate = w.thread->isolate;
  Py_ssize_t size = py.PyObject_Size(dict);
  if (size < 0) return Fast::kPythonError;
  size_t n = static_cast<size_t>(size);
  // Keys other than exact str take the general path (its rules for them), which must not find
  // Python code already run: keys are checked as they come while the values are scalars (which
  // run none), and all the rest at once before the first value that may run some.
  bool keysChecked = false;
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  std::vector<v8::Local<v8::Name>> names;
  std::vector<v8::Local<v8::Value>> values;
  names.reserve(n);
  values.reserve(n);
  std::vector<CachedKey>* shape = nullptr;  // this dict's keys as last seen, by position
  while (py.PyDict_Next(dict, &pos, &key, &value)) {
    if (!keysChecked && TypeOf(key) != py.PyUnicode_Type) return Fast::kNotHandled;
    Py_ssize_t length = 0;
    const char* utf8 = py.PyUnicode_AsUTF8AndSize(key, &length);
    v8::Local<v8::String> name;
    if (names.empty() && n <= kMaxShapeKeys) shape = &ShapeFor(w.thread, n, utf8, length);
    CachedKey* cached = nullptr;
    if (shape && utf8) {
      size_t at = names.size();
      if (at >= shape->size()) shape->resize(at + 1);  // (a nested dict of this shape may have cut it)
      cached = &(*shape)[at];
      if (cached->text.size() == static_cast<size_t>(length) && std::memcmp(cached->text.data(), utf8, length) == 0) {
        name = cached->name.Get(isolate);
      }
    }
    if (name.IsEmpty()) {
      if (!utf8 || !NewJsString(isolate, utf8, static_cast<size_t>(length), v8::NewStringType::kInternalized)
                        .ToLocal(&name)) {
        py.PyErr_Clear();  // lone surrogates, or too long: the general path decides
        return Fast::kNotHandled;
      }
      if (cached) {
        cached->text.assign(utf8, static_cast<size_t>(length));
        cached->name.Reset(isolate, name);
      }
    }
    names.push_back(name);
    values.emplace_back();
    if (ScalarToJs(isolate, value, &values.back()) == Fast::kDone) continue;
    if (!keysChecked) {
      if (!StrKeysFrom(dict, pos)) return Fast::kNotHandled;
      keysChecked = true;
    }
    PyRefOwned keepKey(NewRef(key)), keepValue(NewRef(value));  // a Snapshot may run Python code
    Fast f = FastItemToJs(w, value, &values.back());
    if (f != Fast::kDone) return f;
  }
  if (shape && shape->size() > names.size()) shape->resize(names.size());
  if (names.size() != n) {
    py.PyErr_SetString(py.PyExc_RuntimeError, "dictionary changed size during conversion to JS");
    return Fast::kPythonError;
  }
  if (w.objectPrototype.IsEmpty()) w.objectPrototype = PrototypeOf(v8::Object::New(isolate));
  *out = v8::Object::New(isolate, w.objectPrototype, names.data(), values.data(), n);
  return Fast::kDone;
}

Fast FastContainerToJs(FastWalk& w, PyObject* o, v8::Local<v8::Value>* out) {
  w.depth++;
  Fast f = TypeOf(o) == py.PyList_Type ? FastListToJs(w, o, out) : FastDictToJs(w, o, out);
  w.depth--;
  return f;
}

}  // namespace

Fast ContainerToJs(JsThread* thread, PyObject* o, const ToJsOptions& options, v8::Local<v8::Value>* out) {
  PyObject* type = TypeOf(o);
  if (!options.deep || !(type == py.PyList_Type || (type == py.PyDict_Type && !options.dictAsMap)) ||
      options.maxDepth >= 0 || options.keepBuffers) {  // the fast path converts everything
    return Fast::kNotHandled;
  }
  try {
    FastWalk w{thread, options, {}, 0, false, {}};
    w.seen.Insert(o);
    return FastContainerToJs(w, o, out);
  } catch (const std::exception&) {
    py.PyErr_NoMemory();
    return Fast::kPythonError;
  }
}

Snapshot::Snapshot(Snapshot&& other) noexcept
    : kind(other.kind),
      encoding(other.encoding),
      ownsRef(other.ownsRef),
      refId(other.refId),
      i(other.i),
      obj(other.obj),
      fn(other.fn),
      generation(other.generation),
      handleFlags(other.handleFlags),
      text(std::move(other.text)),
      view(other.view),
      viewLength(other.viewLength),
      items(std::move(other.items)),
      jsBytes(std::move(other.jsBytes)),
      pyBuffer(std::move(other.pyBuffer)) {
  other.ownsRef = false;
  other.kind = Kind::kUndefined;
  other.obj = nullptr;
  other.fn = nullptr;
}

Snapshot& Snapshot::operator=(Snapshot&& other) noexcept {
  if (this != &other) {
    Reset();
    kind = other.kind;
    encoding = other.encoding;
    ownsRef = other.ownsRef;
    refId = other.refId;
    i = other.i;
    obj = other.obj;
    fn = other.fn;
    generation = other.generation;
    handleFlags = other.handleFlags;
    text = std::move(other.text);
    view = other.view;
    viewLength = other.viewLength;
    items = std::move(other.items);
    jsBytes = std::move(other.jsBytes);
    pyBuffer = std::move(other.pyBuffer);
    other.ownsRef = false;
    other.kind = Kind::kUndefined;
    other.obj = nullptr;
    other.fn = nullptr;
  }
  return *this;
}

void Snapshot::Reset() {
  if (fn) fn->Unref();
  fn = nullptr;
  if (ownsRef && obj) ReleaseRef(obj, generation);
  obj = nullptr;
  ownsRef = false;
  refId = 0;
  kind = Kind::kUndefined;
  view = nullptr;
  items.clear();
  jsBytes.store.reset();
  pyBuffer.reset();
}

Snapshot::~Snapshot() { Reset(); }

// refs[refId]: the container (borrowed) that a kRef names; made before it is filled, so a
// container can hold itself.
using PyRefs = std::vector<PyObject*>;
PyObject* SnapshotToPython(JsThread* thread, Snapshot& v, PyRefs& refs);

PyObject* SnapshotToPython(JsThread* thread, Snapshot& v) {
  PyRefs refs;
  return SnapshotToPython(thread, v, refs);
}

void RememberRef(PyRefs& refs, uint32_t refId, PyObject* o) {
  if (refId == 0) return;
  if (refs.size() <= refId) refs.resize(refId + 1, nullptr);
  refs[refId] = o;
}

void AddCaughtMessage(v8::Isolate* isolate, v8::TryCatch& tryCatch, ConvertError* error) {
  if (!tryCatch.HasCaught()) return;
  if (tryCatch.HasTerminated() || !tryCatch.CanContinue()) {
    tryCatch.ReThrow();  // a worker being terminated stays terminated
    return;
  }
  v8::Local<v8::Message> message = tryCatch.Message();
  if (message.IsEmpty()) return;
  v8::String::Utf8Value text(isolate, message->Get());
  if (*text) error->message += std::string(" (") + *text + ")";
}

// No C++ exception leaves a conversion: memory that cannot be had (a huge string or container)
// becomes a clean error of the side that asked (a JS RangeError, a Python MemoryError).
constexpr const char* kOutOfMemory = "out of memory converting the value";

bool JsToValue(JsThread* thread, v8::Local<v8::Value> v, Snapshot* out, ConvertError* error,
               PinnedHandles* pins) {
  v8::Isolate* isolate = thread->isolate;
  // A getter that throws leaves no exception pending: its message joins the conversion error
  // (callAsync rejects with it rather than throwing the getter's error synchronously).
  v8::TryCatch tryCatch(isolate);
  try {
    JsWalk w{thread, isolate, isolate->GetCurrentContext(), error, pins, {}, 0};
    bool ok = Convert(w, v, out);
    if (!ok) AddCaughtMessage(isolate, tryCatch, error);
    return ok;
  } catch (const std::exception&) {  // bad_alloc, length_error
    out->Reset();
    error->message = kOutOfMemory;
    error->isTypeError = false;
    return false;
  }
}

bool JsArrayToValue(JsThread* thread, v8::Local<v8::Array> array, const std::vector<v8::Local<v8::Value>>& read,
                    Snapshot* out, ConvertError* error, PinnedHandles* pins) {
  v8::Isolate* isolate = thread->isolate;
  v8::TryCatch tryCatch(isolate);
  try {
    JsWalk w{thread, isolate, isolate->GetCurrentContext(), error, pins, {}, 0};
    uint32_t n = array->Length();
    bool again = false;
    if (ArrayTooLong(w, n) || !EnterContainer(w, array, out, &again)) return false;
    out->kind = Snapshot::Kind::kList;
    out->items.resize(n);
    for (uint32_t i = 0; i < n; i++) {
      v8::Local<v8::Value> item;
      if (i < read.size()) {
        item = read[i];
      } else if (!array->Get(w.ctx, i).ToLocal(&item)) {
        Fail(error, "cannot read an array element");
        AddCaughtMessage(isolate, tryCatch, error);
        return false;
      }
      if (!Convert(w, item, &out->items[i])) {
        AddCaughtMessage(isolate, tryCatch, error);
        return false;
      }
    }
    return true;
  } catch (const std::exception&) {
    out->Reset();
    error->message = kOutOfMemory;
    error->isTypeError = false;
    return false;
  }
}

PyObject* StringToPython(v8::Isolate* isolate, v8::Local<v8::String> s) {
  try {
    Snapshot v;
    CopyString(isolate, s, &v);
    return SnapshotToPython(nullptr, v);
  } catch (const std::exception&) {
    py.PyErr_NoMemory();
    return nullptr;
  }
}

void PinnedHandles::Add(PyHandle* handle) {
  handle->pins++;
  handles_.push_back(handle);
}

bool PinnedHandles::AnyShutDown() const {
  if (handles_.empty()) return false;
  uint64_t current = engine.generation();
  for (PyHandle* h : handles_) {
    if (h->generation != current) return true;
  }
  return false;
}

PinnedHandles::~PinnedHandles() {
  for (PyHandle* h : handles_) UnpinHandle(h);
}

PyObject* ValueToPython(JsThread* thread, Snapshot& v) {
  try {
    return SnapshotToPython(thread, v);
  } catch (const std::exception&) {
    py.PyErr_NoMemory();
    return nullptr;
  }
}

PyObject* SnapshotToPython(JsThread* thread, Snapshot& v, PyRefs& refs) {
  switch (v.kind) {
    case Snapshot::Kind::kRef: {
      size_t id = static_cast<size_t>(v.i);
      if (v.i <= 0 || id >= refs.size() || !refs[id]) {
        py.PyErr_SetString(py.PyExc_RuntimeError, "pyembed: a shared reference names no container");
        return nullptr;
      }
      return NewRef(refs[id]);
    }
    case Snapshot::Kind::kUndefined:
    case Snapshot::Kind::kNull:
    case Snapshot::Kind::kNaN:
      return NewRef(py.None);
    case Snapshot::Kind::kBool:
      return NewRef(v.b ? py.True : py.False);
    case Snapshot::Kind::kInt:
      return py.PyLong_FromLongLong(v.i);
    case Snapshot::Kind::kFloat:
      return py.PyFloat_FromDouble(v.d);
    case Snapshot::Kind::kDate: {
      if (!CurrentHelpers().datetimeFromJs) {  // finalization has begun (Python threads still run then)
        py.PyErr_SetString(py.PyExc_RuntimeError, "cannot convert a JS Date: Python is shutting down");
        return nullptr;
      }
      PyRefOwned ms(py.PyFloat_FromDouble(v.d));
      PyObject* arg = ms.get();
      return ms ? CallVector(CurrentHelpers().datetimeFromJs, &arg, 1, nullptr) : nullptr;
    }
    case Snapshot::Kind::kBigInt:
      return py.PyLong_FromString(v.text.c_str(), nullptr, 16);
    case Snapshot::Kind::kString: {
      if (v.encoding == Snapshot::Encoding::kLatin1) {
        return py.PyUnicode_FromKindAndData(1, v.text.data(), static_cast<Py_ssize_t>(v.text.size()));
      }
      if (v.encoding == Snapshot::Encoding::kUtf8) {
        const char* data = v.view ? v.view : v.text.data();
        size_t n = v.view ? v.viewLength : v.text.size();
        return py.PyUnicode_FromStringAndSize(data, static_cast<Py_ssize_t>(n));
      }
      const uint16_t* units = reinterpret_cast<const uint16_t*>(v.text.data());
      size_t n = v.text.size() / 2;
      bool surrogates = false;
      for (size_t k = 0; k < n; k++) {
        if ((units[k] & 0xF800) == 0xD800) {
          surrogates = true;
          break;
        }
      }
      if (!surrogates) return py.PyUnicode_FromKindAndData(2, units, static_cast<Py_ssize_t>(n));
      // Pairs become one code point; lone surrogates are kept as they are.
      int byteorder = -1;  // little endian
      return py.PyUnicode_DecodeUTF16(v.text.data(), static_cast<Py_ssize_t>(v.text.size()),
                                      "surrogatepass", &byteorder);
    }
    case Snapshot::Kind::kBytes:
      if (v.view) return NewRef(v.obj);  // a Python bytes object, unchanged
      return py.PyBytes_FromStringAndSize(v.text.data(), static_cast<Py_ssize_t>(v.text.size()));
    case Snapshot::Kind::kJsBytes:
      return MemoryViewOfJsBytes(v.jsBytes);
    case Snapshot::Kind::kPyBuffer:
      return NewRef(py.None);  // only made from Python, never converted back
    case Snapshot::Kind::kList:
    case Snapshot::Kind::kTuple: {
      bool tuple = v.kind == Snapshot::Kind::kTuple;
      Py_ssize_t n = static_cast<Py_ssize_t>(v.items.size());
      PyRefOwned seq(tuple ? py.PyTuple_New(n) : py.PyList_New(n));
      if (!seq) return nullptr;
      RememberRef(refs, v.refId, seq.get());
      for (Py_ssize_t k = 0; k < n; k++) {
        PyObject* item = SnapshotToPython(thread, v.items[k], refs);
        if (!item) return nullptr;
        if ((tuple ? py.PyTuple_SetItem(seq.get(), k, item) : py.PyList_SetItem(seq.get(), k, item)) < 0)
          return nullptr;
      }
      return seq.release();
    }
    case Snapshot::Kind::kDict:
    case Snapshot::Kind::kMap: {
      PyRefOwned dict(py.PyDict_New());
      if (!dict) return nullptr;
      RememberRef(refs, v.refId, dict.get());
      for (size_t k = 0; k + 1 < v.items.size(); k += 2) {
        PyRefOwned key(SnapshotToPython(thread, v.items[k], refs));
        if (!key) return nullptr;
        PyRefOwned item(SnapshotToPython(thread, v.items[k + 1], refs));
        if (!item) return nullptr;
        if (py.PyDict_SetItem(dict.get(), key.get(), item.get()) < 0) return nullptr;
      }
      return dict.release();
    }
    case Snapshot::Kind::kSet: {
      PyRefOwned set(py.PySet_New(nullptr));
      if (!set) return nullptr;
      RememberRef(refs, v.refId, set.get());
      for (auto& item : v.items) {
        PyRefOwned element(SnapshotToPython(thread, item, refs));
        if (!element || py.PySet_Add(set.get(), element.get()) < 0) return nullptr;
      }
      return set.release();
    }
    case Snapshot::Kind::kPyObject:
      if (v.ownsRef) {
        v.ownsRef = false;
        PyObject* o = v.obj;
        v.obj = nullptr;
        return o;
      }
      // Borrowed from a proxy when the JS value was captured: a getter that ran after that may
      // have shut its interpreter down, and this may be a new one.
      if (v.generation != engine.generation()) {
        py.PyErr_SetString(py.PyExc_TypeError,
                           "this Python object belongs to an interpreter that was shut down");
        return nullptr;
      }
      return NewRef(v.obj);
    case Snapshot::Kind::kJsFunction: {
      if (v.ownsRef && v.obj) {
        v.ownsRef = false;
        PyObject* o = v.obj;
        v.obj = nullptr;
        return o;
      }
      JsFunctionRef* ref = v.fn;
      v.fn = nullptr;
      return MakePythonCallable(ref);
    }
  }
  return NewRef(py.None);
}

bool PythonToValue(PyObject* o, const ToJsOptions& options, Snapshot* out) {
  try {
    PyWalk w{options, {}, 0, 0};
    return FromPython(w, o, out);
  } catch (const std::exception&) {
    out->Reset();
    py.PyErr_NoMemory();
    return false;
  }
}

v8::MaybeLocal<v8::Value> ValueToJs(JsThread* thread, Snapshot& v, bool wrap) {
  try {
    JsRefs refs;
    return ToJs(thread, v, wrap, refs);
  } catch (const std::exception&) {
    thread->isolate->ThrowException(
        v8::Exception::RangeError(JsText(thread->isolate, kOutOfMemory)));
    return {};
  }
}

v8::MaybeLocal<v8::Value> PythonToJs(JsThread* thread, PyObject* o, const ToJsOptions& options) {
  Snapshot v;
  if (!PythonToValue(o, options, &v)) return {};
  return ValueToJs(thread, v, false);
}

v8::MaybeLocal<v8::String> NewJsString(v8::Isolate* isolate, const char* utf8, size_t length,
                                       v8::NewStringType type) {
  if (length > static_cast<size_t>(v8::String::kMaxLength)) return {};
  // ASCII (most keys and short texts) is also Latin-1: V8 then skips its UTF-8 decoder.
  constexpr size_t kAsciiScanMax = 256;
  if (length <= kAsciiScanMax) {
    unsigned char any = 0;
    for (size_t i = 0; i < length; i++) any |= static_cast<unsigned char>(utf8[i]);
    if (any < 0x80) {
      return v8::String::NewFromOneByte(isolate, reinterpret_cast<const uint8_t*>(utf8), type,
                                        static_cast<int>(length));
    }
  }
  return v8::String::NewFromUtf8(isolate, utf8, type, static_cast<int>(length));
}

v8::Local<v8::String> JsText(v8::Isolate* isolate, const std::string& text) {
  size_t length = std::min(text.size(), kJsTextMax);
  v8::Local<v8::String> s;
  if (!NewJsString(isolate, text.data(), length).ToLocal(&s)) return v8::String::Empty(isolate);
  return s;
}

v8::Local<v8::String> JsTextFromUtf16(v8::Isolate* isolate, const std::string& utf16) {
  size_t units = std::min(utf16.size() / 2, kJsTextMax);
  v8::Local<v8::String> s;
  if (!v8::String::NewFromTwoByte(isolate, reinterpret_cast<const uint16_t*>(utf16.data()),
                                  v8::NewStringType::kNormal, static_cast<int>(units))
           .ToLocal(&s)) {
    return v8::String::Empty(isolate);
  }
  return s;
}
