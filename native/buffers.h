// Binary data without copies, both ways.
//
// JS -> Python: an ArrayBuffer, TypedArray, DataView or Buffer becomes a writable memoryview over
// the same memory. Its exporter (a small C type, pyembed.JsBuffer) holds the V8 BackingStore, so
// the memory lives as long as Python holds the view, whatever happens to the JS object.
//
// Python -> JS: an object with the buffer protocol (bytes, bytearray, memoryview, array.array,
// numpy arrays) becomes a TypedArray over the object's own memory, via an external BackingStore
// whose deleter releases the Py_buffer (queued: V8 may run it on any thread, without the GIL).
// The Py_buffer keeps the Python object alive while the TypedArray lives. A read-only buffer
// (bytes, a read-only array) is copied instead: JS has no read-only TypedArray, and writing into
// an immutable Python object would break Python.
#pragma once

#include <v8.h>

#include <memory>
#include <string>
#include <vector>

#include "capi.h"

struct JsThread;

// A JS binary view captured on its JS thread (no GIL needed), for conversion later.
struct JsBytes {
  std::shared_ptr<v8::BackingStore> store;
  size_t offset = 0;
  size_t length = 0;  // bytes
  char format = 'B';  // struct-module format of one element
  int itemsize = 1;
};

// Isolate only: the view's memory. False (with `error`) for buffers that cannot be shared
// (resizable ArrayBuffers, which can shrink under Python's view). A growable SharedArrayBuffer
// (which only grows) is shared at its length when captured.
bool CaptureJsBytes(v8::Local<v8::Value> value, JsBytes* out, std::string* error);
// Isolate and GIL: a Python bytes copy of any JS binary data (resizable buffers included); null
// with a Python error set.
PyObject* CopyJsBytes(v8::Local<v8::Value> value);
// Caller attached: a memoryview over the captured memory (new reference), or null with a Python
// error set.
PyObject* MemoryViewOfJsBytes(const JsBytes& bytes);

// A Python object's buffer, captured under the GIL, to become a TypedArray on a JS thread.
struct PyBufferCapture {
  PyBufferCapture() = default;
  PyBufferCapture(const PyBufferCapture&) = delete;
  PyBufferCapture& operator=(const PyBufferCapture&) = delete;
  ~PyBufferCapture();  // releases the buffer if it was never turned into a TypedArray

  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements of the TypedArray
  int64_t offset = 0;            // index of the element at (0, 0, ...) in the TypedArray
  std::string format;
  int itemsize = 1;
  bool readonly = false;  // then `copy` holds the bytes: the TypedArray is a copy
  char* copy = nullptr;   // malloc'ed; handed over to V8 by BuildTypedArray (no second copy)

  void* exported = nullptr;  // the Py_buffer, shared with JS (writable buffers)
  char* start = nullptr;
  size_t span = 0;           // bytes covering every element
  int element = 0;           // TypedArray type (buffers.cc)
  size_t elementSize = 1;
};

// Caller attached: captures `o`'s buffer. False with a Python error set when it has none.
bool CapturePyBuffer(PyObject* o, PyBufferCapture* out);
// Isolate only: the TypedArray (zero-copy for writable buffers; consumes the capture).
v8::Local<v8::TypedArray> BuildTypedArray(v8::Isolate* isolate, PyBufferCapture* capture);

// Created once per interpreter run (on the interpreter thread, attached).
bool InitBufferType(std::string* error);
// Attached: a new exporter type for the current interpreter (an isolated one's own, kept in its
// PythonHelpers), or null with `error` set.
PyObject* NewBufferType(std::string* error);
// Where TypedArrays over an isolated interpreter's buffers queue their release (null: it ended).
class PendingDecrefs;
void RegisterIsolatedReleases(uint64_t generation, PendingDecrefs* queue);
void ClearBufferType();
