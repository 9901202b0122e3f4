// Conversions between JS and Python go through Snapshot, a thread-neutral snapshot:
//   JS -> Snapshot needs the isolate only;   Snapshot -> Python needs the GIL only;
//   Python -> Snapshot needs the GIL only;   Snapshot -> JS needs the isolate only.
// So a thread never has to hold both at once, which is what lets callAsync keep the event loop
// free of the GIL and lets callbacks respect the isolate-before-GIL order. Synchronous calls hold
// both and simply run the two halves back to back (primitives never allocate).
//
// The rules (documented in the README):
//   JS -> Python: undefined/null -> None, boolean -> bool, safe integer -> int, other number ->
//   float (so -0, NaN, 1e300 round-trip), bigint -> int, string -> str (lone surrogates kept),
//   ArrayBuffer/TypedArray/Buffer -> memoryview over the same memory, Array -> list, plain
//   object -> dict, Map -> dict, Set -> set, function -> Python callable, PyObject proxy -> the
//   same object. Cycles are an error.
//   Python -> JS (shallow, call results): None -> undefined, bool -> boolean, int -> number when
//   safe else bigint, float -> number, str -> string, a pyembed JS function -> that function,
//   anything else -> PyObject proxy. toJS() converts containers deeply (and a memoryview to a
//   TypedArray over its memory).
#pragma once

#include <v8.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "buffers.h"
#include "capi.h"

struct JsThread;
struct PyHandle;
struct JsFunctionRef;

struct Snapshot {
  enum class Kind : uint8_t {
    kUndefined,  // JS undefined / Python None
    kNull,       // JS null (-> None)
    kBool,
    kInt,        // fits int64
    kFloat,
    kBigInt,     // text: hex digits, optional leading '-'
    kString,     // text: latin1 (oneByte) or UTF-16 (from JS), or UTF-8 (from Python)
    kBytes,      // text: raw bytes
    kList,
    kTuple,      // Python tuple -> JS array (toJS)
    kDict,       // items: key, value, key, value, ...
    kSet,
    kMap,        // Python dict -> JS Map (toJS with dict: 'map')
    kPyObject,   // obj (owned if ownsRef, else borrowed from a live handle)
    kJsFunction, // fn, and obj when it came from Python
    kJsBytes,    // jsBytes: JS binary data, to become a memoryview over the same memory
    kPyBuffer,   // pyBuffer: a Python buffer, to become a TypedArray
    kDate,       // d: a JS Date's time value (ms since the epoch), to become an aware UTC datetime
    kRef,        // i: the refId of a container met earlier in the same walk (shared or cyclic)
    kNaN         // never produced: placeholder to keep switch statements exhaustive
  };
  enum class Encoding : uint8_t { kLatin1, kUtf16, kUtf8 };

  Kind kind = Kind::kUndefined;
  Encoding encoding = Encoding::kLatin1;
  bool ownsRef = false;
  uint32_t refId = 0;  // a container that a later kRef names (0: none does)
  union {
    bool b;
    int64_t i;
    double d;
  };
  PyObject* obj = nullptr;        // kPyObject; kString from Python (keeps `view` alive);
                                  // kJsFunction from Python (the callable wrapping fn)
  JsFunctionRef* fn = nullptr;    // kJsFunction (one count held)
  uint64_t generation = 0;     // of obj, when ownsRef
  uint8_t handleFlags = 0;     // kPyObject from Python: callable / awaitable (see handles.h)
  std::string text;            // string/bigint/bytes payload (owned copy)
  const char* view = nullptr;  // UTF-8 viewed inside `obj` (a Python str kept alive by it)
  size_t viewLength = 0;
  std::vector<Snapshot> items;
  JsBytes jsBytes;
  std::unique_ptr<PyBufferCapture> pyBuffer;

  Snapshot() : i(0) {}
  Snapshot(Snapshot&& other) noexcept;
  Snapshot& operator=(Snapshot&& other) noexcept;
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  ~Snapshot();
  void Reset();
};

// The keys of a plain object (or Py.kw) that become dict keys / keyword names: own, enumerable,
// strings (Symbol keys are JS-only, as in JSON).
constexpr v8::PropertyFilter kStringKeys =
    static_cast<v8::PropertyFilter>(v8::ONLY_ENUMERABLE | v8::SKIP_SYMBOLS);

// Kinds whose snapshot, made from a JS value, holds no object (no Python reference, JS function
// or memory): any thread can make them Python, with the GIL.
inline bool IsScalar(Snapshot::Kind kind) {
  switch (kind) {
    case Snapshot::Kind::kUndefined:
    case Snapshot::Kind::kNull:
    case Snapshot::Kind::kBool:
    case Snapshot::Kind::kInt:
    case Snapshot::Kind::kFloat:
    case Snapshot::Kind::kBigInt:
    case Snapshot::Kind::kString:
    case Snapshot::Kind::kDate:
      return true;
    default:
      return false;
  }
}

struct ConvertError {
  std::string message;
  bool isTypeError = true;  // else RangeError / Python ValueError
};

// The longest array converted either way: V8's limit for an array with its elements in one block
// (FixedArray::kMaxLength). A longer JS array is necessarily sparse (its length set, or a far
// index), and its holes would all become None: refused up front (RangeError) instead of
// allocating a list of billions of Nones; a longer Python sequence cannot become a JS array.
constexpr uint32_t kMaxArrayLength = 134217725;
ConvertError ArrayTooLongError(uint32_t length);

struct ToJsOptions {
  bool deep = false;
  bool dictAsMap = false;
  bool wrapTopLevel = false;  // a top-level Python object becomes a proxy, not a bare handle
  int maxDepth = -1;          // deep: containers nested deeper than this stay Python objects (-1: no limit)
  bool keepBuffers = false;   // deep: bytes, bytearray and memoryview stay Python objects
};

// The Python objects of PyObject proxies met while converting JS values, pinned: a getter that
// runs later in the conversion cannot dispose them (DisposeHandle defers), so the borrowed
// pointers in the Snapshot stay valid until the Snapshot became Python objects. On the JS thread.
class PinnedHandles {
 public:
  PinnedHandles() = default;
  PinnedHandles(const PinnedHandles&) = delete;
  PinnedHandles& operator=(const PinnedHandles&) = delete;
  ~PinnedHandles();
  void Add(PyHandle* handle);
  // True when a pinned handle belongs to an interpreter that is no longer the running one (a
  // getter that ran after the handle was met shut Python down, and maybe started it again).
  bool AnyShutDown() const;
  // The caller takes the pins over (and unpins them later, on this JS thread).
  std::vector<PyHandle*> Take() { return std::move(handles_); }

 private:
  std::vector<PyHandle*> handles_;
};

// JS -> Snapshot. May run JS (getters): call it without the GIL. On failure returns false with
// `error` set (no JS exception pending).
bool JsToValue(JsThread* thread, v8::Local<v8::Value> v, Snapshot* out, ConvertError* error,
               PinnedHandles* pins);
// A JS array as a list snapshot, in one walk (so it may hold itself), when its first
// `read.size()` elements were read already (each element is read once).
bool JsArrayToValue(JsThread* thread, v8::Local<v8::Array> array, const std::vector<v8::Local<v8::Value>>& read,
                    Snapshot* out, ConvertError* error, PinnedHandles* pins);
// Big arrays of numbers (the common big argument): reads the numbers at the start of `array`
// (whose length was `length` when the caller read it), in chunks, by a small JS function that the
// JIT compiles, instead of one V8 API read per element. Each element is read once: when an
// element is not a number, `*stop` holds it and `*stopped` is set (it is element
// numbers->values.size()).
// False: a JS exception is pending (a getter threw). Worth it from kNumberPrefixMin elements.
constexpr uint32_t kNumberPrefixMin = 64;
// Doubles whose memory is reused by the next buffer on this thread (a big array's numbers would
// otherwise take fresh pages, and page faults, on every call).
struct NumberBuffer {
  NumberBuffer() = default;
  ~NumberBuffer() {
    if (values.capacity() != 0) Keep();
  }
  void Reuse();  // empty, with the kept memory
  NumberBuffer(const NumberBuffer&) = delete;
  NumberBuffer& operator=(const NumberBuffer&) = delete;
  std::vector<double> values;

 private:
  void Keep();
};
bool ReadNumberPrefix(JsThread* thread, v8::Local<v8::Context> context, v8::Local<v8::Array> array,
                      uint32_t length, NumberBuffer* numbers, v8::Local<v8::Value>* stop, bool* stopped);
// A JS number as a Python int or float (the number rule): a new reference, or null.
PyObject* NumberToPython(double d);
// A JS string as a Python str, lone surrogates kept (as values are): source text and names
// reach Python whole, never cut or re-encoded. Null with a Python error set. Caller attached.
PyObject* StringToPython(v8::Isolate* isolate, v8::Local<v8::String> s);
// Caller holds the isolate: `s`, exactly (UTF-16 unless one-byte), as a kString snapshot that any
// thread can turn into a Python str (ValueToPython) under the GIL.
void StringSnapshot(v8::Isolate* isolate, v8::Local<v8::String> s, Snapshot* out);
// After a conversion failed inside `tryCatch`: the message of the JS exception a getter threw
// joins `error` (and the exception is dropped), or, when JS is being terminated, it is rethrown.
void AddCaughtMessage(v8::Isolate* isolate, v8::TryCatch& tryCatch, ConvertError* error);
// Snapshot -> Python: a new reference, or null with a Python exception set. Caller attached.
PyObject* ValueToPython(JsThread* thread, Snapshot& v);


// Python -> Snapshot. Caller attached. Returns false with a Python exception set.
bool PythonToValue(PyObject* o, const ToJsOptions& options, Snapshot* out);
// Snapshot -> JS. Takes the Python references it needs into handles. Never touches Python, except
// that it may queue decrefs. Python objects nested in containers always become PyObject proxies;
// a top-level one becomes a proxy too with `wrap`, else a bare handle (src/proxy.ts wraps it).
v8::MaybeLocal<v8::Value> ValueToJs(JsThread* thread, Snapshot& v, bool wrap = false);


// Fast paths for synchronous calls, which hold both the GIL and the isolate: primitives go
// straight across without a Snapshot (converting a primitive runs no JS code). They apply
// exactly the rules above; anything they do not handle goes through the Snapshot path.
inline bool IsFastPrimitive(v8::Local<v8::Value> v) {
  return v->IsNumber() || v->IsString() || v->IsBoolean() || v->IsNullOrUndefined();
}
enum class Fast { kNotHandled, kDone, kPythonError, kConvertError };
Fast PrimitiveToPython(v8::Isolate* isolate, v8::Local<v8::Value> v, PyObject** out);
Fast PrimitiveToJs(v8::Isolate* isolate, PyObject* o, v8::Local<v8::Value>* out);
// Big lists and dicts (records) are common: (deep) Python lists and str-keyed dicts, nested or
// not, straight to JS Arrays and objects, caller attached and holding the isolate; other
// elements take the Snapshot path. kNotHandled: not such a container (use the Snapshot path).
Fast ContainerToJs(JsThread* thread, PyObject* o, const ToJsOptions& options, v8::Local<v8::Value>* out);

// The number rule: a JS number becomes a Python int only when it is a safe integer and not -0.
bool NumberIsPythonInt(double d);
// The int rule: a Python int becomes a JS number only within the safe range.
inline bool IsSafeInteger(int64_t i) { return i >= -9007199254740991LL && i <= 9007199254740991LL; }

// Convenience for synchronous paths that hold both the GIL and the isolate.
v8::MaybeLocal<v8::Value> PythonToJs(JsThread* thread, PyObject* o, const ToJsOptions& options);

// A JS string from UTF-8; empty when it is longer than V8's maximum string length. Property
// names are best made kInternalized (V8 would internalize a copy of them anyway).
v8::MaybeLocal<v8::String> NewJsString(v8::Isolate* isolate, const char* utf8, size_t length,
                                       v8::NewStringType type = v8::NewStringType::kNormal);
// For messages: never fails (a message longer than kJsTextMax code units is cut).
inline constexpr size_t kJsTextMax = size_t{1} << 20;
v8::Local<v8::String> JsText(v8::Isolate* isolate, const std::string& text);
// The same from UTF-16LE bytes (what Utf16OfStr makes).
v8::Local<v8::String> JsTextFromUtf16(v8::Isolate* isolate, const std::string& utf16);
// Caller attached: a Python str as UTF-16LE bytes, lone surrogates kept (they have no UTF-8
// form). False with a Python error set.
bool Utf16OfStr(PyObject* str, std::string* out);
