#include "names.h"

#include "convert.h"
#include "engine.h"
#include "gil.h"

PyObject* NameCache::Get(v8::Isolate* isolate, v8::Local<v8::String> key) {
  return Get(isolate, key, engine.generation());
}

PyObject* NameCache::Miss(v8::Isolate* isolate, v8::Local<v8::String> key, uint64_t gen, Entry& e) {
  // The whole name, lone surrogates and NULs included, as Python's getattr() would get it.
  PyObject* name = StringToPython(isolate, key);
  if (!name) return nullptr;
  // Interned, Python's dict lookups compare the name by identity (as for names in Python code).
  py.PyUnicode_InternInPlace(&name);
  if (e.name) ReleaseRef(e.name, e.generation);
  e.key.Reset(isolate, key);
  e.name = NewRef(name);
  e.generation = gen;
  return name;
}

void NameCache::Clear() {
  for (Entry& e : entries_) {
    if (e.name) ReleaseRef(e.name, e.generation);
    e.name = nullptr;
    e.key.Reset();
  }
}
