#include "buffers.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "engine.h"
#include "gil.h"
#include "js_thread.h"
#include "python_helpers.h"

namespace {

// PyType_FromSpec's structs: part of the stable ABI, identical since 3.2.
struct TypeSlot {
  int slot;
  void* pfunc;
};
struct TypeSpec {
  const char* name;
  int basicsize;
  int itemsize;
  unsigned int flags;
  TypeSlot* slots;
};
constexpr int kSlotGetBuffer = 1;   // Py_bf_getbuffer
constexpr int kSlotDealloc = 52;    // Py_tp_dealloc
constexpr int kSlotDoc = 56;        // Py_tp_doc
constexpr unsigned kTypeFlagsDefault = 1u << 18;  // Py_TPFLAGS_DEFAULT

// What a pyembed.JsBuffer holds, after the object header (whose size depends on the build).
struct ExporterData {
  std::shared_ptr<v8::BackingStore>* store;  // owned; keeps the JS memory alive
  char* data;
  Py_ssize_t length;     // bytes
  Py_ssize_t itemsize;   // bytes per element (the JS TypedArray's)
  Py_ssize_t itemCount;  // shape when the consumer asks for the format
  Py_ssize_t byteCount;  // shape when it does not (plain bytes)
  Py_ssize_t one;        // stride of plain bytes
  char format[2];
};

PyObject* exporterType = nullptr;
uint64_t exporterGeneration = 0;
size_t headerSize = 0;

ExporterData* DataOf(PyObject* self) {
  return reinterpret_cast<ExporterData*>(reinterpret_cast<char*>(self) + headerSize);
}

int GetBuffer(PyObject* self, Py_buffer* view, int flags) {
  ExporterData* d = DataOf(self);
  if (!d->store) {
    view->obj = nullptr;
    py.PyErr_SetString(py.PyExc_TypeError, "pyembed.JsBuffer objects are made by pyembed only");
    return -1;
  }
  bool typed = (flags & kPyBufFormat) != 0;
  view->buf = d->data;
  view->obj = NewRef(self);
  view->len = d->length;
  view->readonly = 0;
  view->itemsize = typed ? d->itemsize : 1;
  view->format = typed ? d->format : nullptr;
  view->ndim = 1;
  view->shape = (flags & kPyBufNd) ? (typed ? &d->itemCount : &d->byteCount) : nullptr;
  view->strides = ((flags & kPyBufStrides) == kPyBufStrides) ? (typed ? &d->itemsize : &d->one) : nullptr;
  view->suboffsets = nullptr;
  view->internal = nullptr;
  return 0;
}

void Dealloc(PyObject* self) {
  ExporterData* d = DataOf(self);
  delete d->store;  // a BackingStore may be released on any thread
  d->store = nullptr;
  PyObject* type = TypeOf(self);
  py.PyObject_Free(self);
  py.Py_DecRef(type);  // instances of heap types own a reference to their type
}

char FormatOf(v8::Local<v8::Value> v, int* itemsize) {
  struct Kind {
    bool (v8::Value::*test)() const;
    char format;
    int size;
  };
  static const Kind kinds[] = {
      {&v8::Value::IsFloat64Array, 'd', 8},   {&v8::Value::IsFloat32Array, 'f', 4},
      {&v8::Value::IsInt32Array, 'i', 4},     {&v8::Value::IsUint32Array, 'I', 4},
      {&v8::Value::IsInt16Array, 'h', 2},     {&v8::Value::IsUint16Array, 'H', 2},
      {&v8::Value::IsInt8Array, 'b', 1},      {&v8::Value::IsBigInt64Array, 'q', 8},
      {&v8::Value::IsBigUint64Array, 'Q', 8},
  };
  v8::Value* raw = *v;
  for (const Kind& k : kinds) {
    if ((raw->*(k.test))()) {
      *itemsize = k.size;
      return k.format;
    }
  }
  *itemsize = 1;
  return 'B';  // Uint8Array, Uint8ClampedArray, Buffer, DataView, ArrayBuffer
}

// Python format string -> TypedArray element type (native byte order only).
enum class Element { kInt8, kUint8, kInt16, kUint16, kInt32, kUint32, kBigInt64, kBigUint64,
                     kFloat32, kFloat64, kRawBytes };

Element ElementOf(const char* format, Py_ssize_t itemsize) {
  if (!format) return Element::kUint8;
  const char* f = format;
  if (*f == '@' || *f == '=') f++;
  else if (*f == '<') f++;  // little endian: every platform we build for
  if (f[0] == '\0' || f[1] != '\0') return Element::kRawBytes;
  switch (f[0]) {
    case 'b': return Element::kInt8;
    case 'B': case 'c': case '?': return Element::kUint8;
    case 'h': return Element::kInt16;
    case 'H': return Element::kUint16;
    case 'i': case 'l': case 'q': case 'n':
      return itemsize == 4 ? Element::kInt32 : itemsize == 8 ? Element::kBigInt64 : Element::kRawBytes;
    case 'I': case 'L': case 'Q': case 'N':
      return itemsize == 4 ? Element::kUint32 : itemsize == 8 ? Element::kBigUint64 : Element::kRawBytes;
    case 'f': return itemsize == 4 ? Element::kFloat32 : Element::kRawBytes;
    case 'd': return itemsize == 8 ? Element::kFloat64 : Element::kRawBytes;
    default: return Element::kRawBytes;
  }
}

v8::Local<v8::TypedArray> NewTypedArray(Element e, v8::Local<v8::ArrayBuffer> ab, size_t count) {
  switch (e) {
    case Element::kInt8: return v8::Int8Array::New(ab, 0, count);
    case Element::kInt16: return v8::Int16Array::New(ab, 0, count);
    case Element::kUint16: return v8::Uint16Array::New(ab, 0, count);
    case Element::kInt32: return v8::Int32Array::New(ab, 0, count);
    case Element::kUint32: return v8::Uint32Array::New(ab, 0, count);
    case Element::kBigInt64: return v8::BigInt64Array::New(ab, 0, count);
    case Element::kBigUint64: return v8::BigUint64Array::New(ab, 0, count);
    case Element::kFloat32: return v8::Float32Array::New(ab, 0, count);
    case Element::kFloat64: return v8::Float64Array::New(ab, 0, count);
    case Element::kUint8:
    case Element::kRawBytes: return v8::Uint8Array::New(ab, 0, count);
  }
  return v8::Uint8Array::New(ab, 0, count);
}

struct ExportedView {
  Py_buffer view;
  uint64_t generation;
};

void ReleaseExportedViewNow(void* arg, bool live) {
  auto* exported = static_cast<ExportedView*>(arg);
  if (live) py.PyBuffer_Release(&exported->view);
  delete exported;
}

// The release queue of each live isolated interpreter, by generation: V8 may free a TypedArray's
// memory on a thread whose thread-locals name no interpreter (a GC thread).
std::mutex& isolatedQueuesMu = *new std::mutex();  // never destroyed: GC threads may outlive exit
std::unordered_map<uint64_t, PendingDecrefs*>& isolatedQueues =
    *new std::unordered_map<uint64_t, PendingDecrefs*>();

// V8's BackingStore deleter: may run on any thread, without the GIL.
void ReleaseExportedView(void*, size_t, void* arg) {
  auto* exported = static_cast<ExportedView*>(arg);
  {
    std::lock_guard<std::mutex> lock(isolatedQueuesMu);
    auto it = isolatedQueues.find(exported->generation);
    if (it != isolatedQueues.end()) {
      it->second->PushRelease(ReleaseExportedViewNow, exported, exported->generation);
      return;
    }
  }
  // The shared interpreter's (or a finalized interpreter's: then only the memory is freed).
  pendingDecrefs.PushRelease(ReleaseExportedViewNow, exported, exported->generation);
}

}  // namespace

PyObject* NewBufferType(std::string* error) {
  PyRefOwned basicsize(py.PyObject_GetAttrString(py.PyBaseObject_Type, "__basicsize__"));
  int overflow = 0;
  long long header = basicsize ? py.PyLong_AsLongLongAndOverflow(basicsize.get(), &overflow) : -1;
  if (header <= 0) {
    py.PyErr_Clear();
    *error = "cannot read object.__basicsize__";
    return nullptr;
  }
  headerSize = static_cast<size_t>(header);  // the same in every interpreter of this libpython
  static TypeSlot slots[] = {
      {kSlotGetBuffer, reinterpret_cast<void*>(&GetBuffer)},
      {kSlotDealloc, reinterpret_cast<void*>(&Dealloc)},
      {kSlotDoc, const_cast<char*>("Memory of a JavaScript ArrayBuffer, shared with Python.")},
      {0, nullptr},
  };
  TypeSpec spec = {"pyembed.JsBuffer", static_cast<int>(headerSize + sizeof(ExporterData)), 0,
                   kTypeFlagsDefault, slots};
  PyObject* type = py.PyType_FromSpec(&spec);
  if (!type) {
    py.PyErr_Clear();
    *error = "cannot create the pyembed.JsBuffer type";
  }
  return type;
}

void RegisterIsolatedReleases(uint64_t generation, PendingDecrefs* queue) {
  std::lock_guard<std::mutex> lock(isolatedQueuesMu);
  if (queue) isolatedQueues[generation] = queue;
  else isolatedQueues.erase(generation);
}

bool InitBufferType(std::string* error) {
  exporterType = NewBufferType(error);
  exporterGeneration = engine.generation();
  return exporterType != nullptr;
}

void ClearBufferType() {
  if (exporterType && exporterGeneration == engine.generation()) py.Py_DecRef(exporterType);
  exporterType = nullptr;
}

bool CaptureJsBytes(v8::Local<v8::Value> value, JsBytes* out, std::string* error) {
  v8::Local<v8::ArrayBuffer> buffer;
  if (value->IsArrayBufferView()) {
    auto view = value.As<v8::ArrayBufferView>();
    buffer = view->Buffer();  // also moves a small on-heap typed array's data off the heap
    out->offset = view->ByteOffset();
    out->length = view->ByteLength();
    out->format = FormatOf(value, &out->itemsize);
  } else if (value->IsArrayBuffer()) {
    buffer = value.As<v8::ArrayBuffer>();
    out->length = buffer->ByteLength();
  } else if (value->IsSharedArrayBuffer()) {
    // A growable SharedArrayBuffer is shared too: its memory is reserved up front and never moves
    // or shrinks, so the view (of the length at this moment) stays valid.
    auto shared = value.As<v8::SharedArrayBuffer>();
    out->store = shared->GetBackingStore();
    out->length = shared->ByteLength();
    return true;
  } else {
    *error = "not binary data";
    return false;
  }
  out->store = buffer->GetBackingStore();
  // A resizable ArrayBuffer can shrink, and V8 then makes the pages past the new length
  // inaccessible: a memoryview kept by Python would read them and crash. Refused; Py.bytes()
  // copies it. (A TypedArray over a growable SharedArrayBuffer gets here too: its buffer is a
  // SharedArrayBuffer, which only grows.)
  if (out->store->IsResizableByUserJavaScript() && !out->store->IsShared()) {
    out->store.reset();
    *error = "a resizable ArrayBuffer (or a view of one) cannot be shared with Python: it can "
             "shrink under Python's memoryview. Use Py.bytes(data) for a copy, or a fixed-length "
             "ArrayBuffer";
    return false;
  }
  return true;
}

PyObject* CopyJsBytes(v8::Local<v8::Value> value) {
  size_t n = 0;
  if (value->IsArrayBufferView()) n = value.As<v8::ArrayBufferView>()->ByteLength();
  else if (value->IsArrayBuffer()) n = value.As<v8::ArrayBuffer>()->ByteLength();
  else if (value->IsSharedArrayBuffer()) n = value.As<v8::SharedArrayBuffer>()->ByteLength();
  PyObject* bytes = py.PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(n));
  if (!bytes || n == 0) return bytes;
  char* data = nullptr;
  Py_ssize_t size = 0;
  if (py.PyBytes_AsStringAndSize(bytes, &data, &size) < 0) {
    py.Py_DecRef(bytes);
    return nullptr;
  }
  // Through the buffer, not ArrayBufferView::CopyContents, which misreads views of resizable
  // buffers.
  const char* source;
  if (value->IsArrayBufferView()) {
    auto view = value.As<v8::ArrayBufferView>();
    source = static_cast<const char*>(view->Buffer()->Data()) + view->ByteOffset();
  } else {
    source = static_cast<const char*>(value->IsArrayBuffer() ? value.As<v8::ArrayBuffer>()->Data()
                                                             : value.As<v8::SharedArrayBuffer>()->Data());
  }
  std::memcpy(data, source, n);
  return bytes;
}

PyObject* MemoryViewOfJsBytes(const JsBytes& bytes) {
  // Types are per interpreter: an isolated worker's own interpreter has its own exporter type.
  PyObject* type = isolatedHelpers ? isolatedHelpers->bufferType
                   : exporterGeneration == engine.generation() ? exporterType
                                                               : nullptr;
  if (!type) {
    py.PyErr_SetString(py.PyExc_RuntimeError, "pyembed buffers are not ready (the interpreter is ending)");
    return nullptr;
  }
  PyRefOwned exporter(py.PyType_GenericAlloc(type, 0));
  if (!exporter) return nullptr;
  ExporterData* d = DataOf(exporter.get());
  d->store = new std::shared_ptr<v8::BackingStore>(bytes.store);
  char* base = bytes.store && bytes.store->Data() ? static_cast<char*>(bytes.store->Data()) : nullptr;
  static char empty[8];
  d->data = base ? base + bytes.offset : empty;
  d->length = static_cast<Py_ssize_t>(bytes.length);
  d->itemsize = bytes.itemsize;
  d->itemCount = d->length / d->itemsize;
  d->byteCount = d->length;
  d->one = 1;
  d->format[0] = bytes.format;
  d->format[1] = '\0';
  return py.PyMemoryView_FromObject(exporter.get());
}

PyBufferCapture::~PyBufferCapture() {
  std::free(copy);
  if (exported) {
    auto* e = static_cast<ExportedView*>(exported);
    CurrentPendingDecrefs().PushRelease(ReleaseExportedViewNow, e, e->generation);
  }
}

// True when a buffer format (PEP 3118, struct syntax) has Python object pointers ('O'), e.g. a
// numpy array of dtype object. Field names (between colons) are not type codes.
static bool HasObjectPointers(const char* format) {
  for (const char* f = format; f && *f; f++) {
    if (*f == ':') {
      const char* end = std::strchr(f + 1, ':');
      if (!end) return false;
      f = end;
    } else if (*f == 'O') {
      return true;
    }
  }
  return false;
}

bool CapturePyBuffer(PyObject* o, PyBufferCapture* out) {
  auto* exported = new ExportedView();
  exported->generation = engine.generation();
  Py_buffer& view = exported->view;
  bool readonly = false;
  if (py.PyObject_GetBuffer(o, &view, kPyBufRecords | kPyBufWritable) < 0) {
    py.PyErr_Clear();
    if (py.PyObject_GetBuffer(o, &view, kPyBufRecords) < 0) {
      delete exported;
      return false;
    }
    readonly = true;
  }
  if (HasObjectPointers(view.format)) {
    // Bytes of PyObject pointers: JS could read addresses, and a write would corrupt Python's
    // objects (Python's own memoryview refuses to read or write them too).
    std::string message = std::string("this buffer holds Python object pointers (format '") + view.format +
                          "', e.g. a numpy array of dtype object), which JS cannot share: convert it "
                          "in Python (.tolist())";
    py.PyBuffer_Release(&view);
    delete exported;
    py.PyErr_SetString(py.PyExc_TypeError, message.c_str());
    return false;
  }
  out->format = view.format ? view.format : "B";
  out->itemsize = static_cast<int>(view.itemsize);
  out->readonly = readonly;
  Element element = ElementOf(view.format, view.itemsize);
  int64_t elementSize = element == Element::kRawBytes ? 1 : view.itemsize;
  // The memory span covering every element, whatever the strides' signs.
  int64_t low = 0, high = 0, contiguous = view.itemsize;
  std::vector<int64_t> strides(static_cast<size_t>(view.ndim));
  out->shape.assign(static_cast<size_t>(view.ndim), 0);
  for (int d = view.ndim - 1; d >= 0; d--) {
    int64_t n = view.shape ? view.shape[d] : view.len / view.itemsize;
    int64_t stride = view.strides ? view.strides[d] : contiguous;
    contiguous *= n;
    out->shape[d] = n;
    strides[d] = stride;
    int64_t extent = n > 0 ? (n - 1) * stride : 0;
    if (extent < 0) low += extent;
    else high += extent;
  }
  for (int64_t s : strides) {
    if (s % elementSize != 0) element = Element::kRawBytes;
  }
  if (element == Element::kRawBytes) elementSize = 1;
  for (int64_t& s : strides) s /= elementSize;
  out->strides = std::move(strides);
  out->offset = -low / elementSize;
  out->element = static_cast<int>(element);
  out->elementSize = static_cast<size_t>(elementSize);
  out->span = view.len == 0 ? 0 : static_cast<size_t>(high - low + view.itemsize);
  out->start = static_cast<char*>(view.buf) + low;
  if (readonly || out->span == 0) {
    if (out->span) {
      out->copy = static_cast<char*>(std::malloc(out->span));
      if (!out->copy) {
        py.PyBuffer_Release(&view);
        delete exported;
        py.PyErr_NoMemory();
        return false;
      }
      std::memcpy(out->copy, out->start, out->span);
    }
    py.PyBuffer_Release(&view);
    delete exported;
  } else {
    out->exported = exported;
  }
  return true;
}

v8::Local<v8::TypedArray> BuildTypedArray(v8::Isolate* isolate, PyBufferCapture* c) {
  v8::Local<v8::ArrayBuffer> ab;
  if (c->exported) {
    // The TypedArray keeps the Py_buffer (and so the object) until V8 frees the BackingStore.
    std::unique_ptr<v8::BackingStore> store =
        v8::ArrayBuffer::NewBackingStore(c->start, c->span, ReleaseExportedView, c->exported);
    c->exported = nullptr;
    ab = v8::ArrayBuffer::New(isolate, std::move(store));
  } else if (c->copy) {
    std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(
        c->copy, c->span, [](void* data, size_t, void*) { std::free(data); }, nullptr);
    c->copy = nullptr;
    ab = v8::ArrayBuffer::New(isolate, std::move(store));
  } else {
    ab = v8::ArrayBuffer::New(isolate, 0);
  }
  return NewTypedArray(static_cast<Element>(c->element), ab, c->span / c->elementSize);
}
