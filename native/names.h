// Attribute names: JS property keys to interned Python strings. `obj.attr` from JS would
// otherwise build and hash a new Python string on every access. Property keys reaching us are
// (almost always) V8-internalized strings, so a small direct-mapped cache keyed by the V8 string's
// identity answers most lookups with one pointer comparison; Python then finds the interned name
// in the type's and object's dicts by identity too.
#pragma once

#include <v8.h>

#include <array>
#include <cstdint>

#include "capi.h"

class NameCache {
 public:
  // A new reference to the interned Python str for `key` (caller attached), or null with a Python
  // error set.
  PyObject* Get(v8::Isolate* isolate, v8::Local<v8::String> key);
  // The same, for a caller that knows its interpreter generation (no thread-local read). A hit
  // inline, a miss out of line.
  PyObject* Get(v8::Isolate* isolate, v8::Local<v8::String> key, uint64_t generation) {
    Entry& e = entries_[static_cast<uint32_t>(key->GetIdentityHash()) % entries_.size()];
    if (e.name && e.generation == generation && e.key == key) {
      py.Py_IncRef(e.name);
      return e.name;
    }
    return Miss(isolate, key, generation, e);
  }
  // Drops every entry (on the owning JS thread; decrefs are queued if not attached).
  void Clear();

 private:
  struct Entry {
    v8::Global<v8::String> key;
    PyObject* name = nullptr;  // owned
    uint64_t generation = 0;
  };
  [[gnu::noinline]] PyObject* Miss(v8::Isolate* isolate, v8::Local<v8::String> key, uint64_t generation, Entry& e);
  std::array<Entry, 256> entries_;
};
