#include "capi.h"

#include <dlfcn.h>

#include <cstring>

CApi py;

namespace {

template <typename T>
bool Resolve(void* lib, const char* name, T* slot, bool required, std::string* missing) {
  void* sym = dlsym(lib, name);
  *slot = reinterpret_cast<T>(sym);
  if (!sym && required) {
    if (!missing->empty()) *missing += ", ";
    *missing += name;
    return false;
  }
  return true;
}

}  // namespace

bool LoadCApi(const std::string& libraryPath, std::string* error) {
  if (py.library) return true;
  // RTLD_GLOBAL: extension modules (numpy, _ctypes, ...) are not linked against libpython and
  // expect its symbols in the global namespace, as they are in the python executable.
  void* lib = dlopen(libraryPath.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!lib) {
    const char* why = dlerror();
    *error = "cannot load libpython '" + libraryPath + "': " + (why ? why : "unknown error");
    return false;
  }
  std::string missing;
#define PYEMBED_RESOLVE_REQ(ret, name, args) Resolve(lib, #name, &py.name, true, &missing);
#define PYEMBED_RESOLVE_OPT(ret, name, args) Resolve(lib, #name, &py.name, false, &missing);
  PYEMBED_CAPI_FUNCTIONS(PYEMBED_RESOLVE_REQ, PYEMBED_RESOLVE_OPT)
#undef PYEMBED_RESOLVE_REQ
#undef PYEMBED_RESOLVE_OPT
#define PYEMBED_RESOLVE_TYPE(name) Resolve(lib, #name, &py.name, true, &missing);
  PYEMBED_CAPI_TYPES(PYEMBED_RESOLVE_TYPE)
#undef PYEMBED_RESOLVE_TYPE
  const int* version = reinterpret_cast<const int*>(dlsym(lib, "Py_Version"));  // 3.11+
  if (!py.Py_SetProgramName && !py.PyInitConfig_Create) {
    missing += missing.empty() ? "" : ", ";
    missing += "Py_SetProgramName or PyInitConfig_Create";
  }
  if (!missing.empty()) {
    *error = "libpython '" + libraryPath + "' lacks symbols pyembed needs (" + missing +
             "); pyembed supports CPython 3.9 or newer";
    dlclose(lib);
    py = CApi();
    return false;
  }
  py.versionHex = version ? *version : 0;
  py.library = lib;
  return true;
}

bool FinishCApiAfterInit(std::string* error) {
  void* lib = py.library;
#define PYEMBED_RESOLVE_EXC(name)                                                  \
  {                                                                                \
    auto slot = reinterpret_cast<PyObject**>(dlsym(lib, #name));                   \
    if (!slot || !*slot) {                                                         \
      *error = std::string("libpython does not export ") + #name;                  \
      return false;                                                                \
    }                                                                              \
    py.name = *slot;                                                               \
  }
  PYEMBED_CAPI_EXCEPTIONS(PYEMBED_RESOLVE_EXC)
#undef PYEMBED_RESOLVE_EXC
  py.None = reinterpret_cast<PyObject*>(dlsym(lib, "_Py_NoneStruct"));
  py.True = reinterpret_cast<PyObject*>(dlsym(lib, "_Py_TrueStruct"));
  py.False = reinterpret_cast<PyObject*>(dlsym(lib, "_Py_FalseStruct"));
  if (!py.None || !py.True || !py.False) {
    *error = "libpython does not export None/True/False";
    return false;
  }
  // Find ob_type in the object header by looking for int's type in a fresh int.
  PyObject* probe = py.PyLong_FromLongLong(1234567891011LL);
  if (!probe) {
    *error = "cannot create a Python int";
    return false;
  }
  bool found = false;
  for (size_t off = 0; off <= 8 * sizeof(void*); off += sizeof(void*)) {
    PyObject* candidate;
    std::memcpy(&candidate, reinterpret_cast<char*>(probe) + off, sizeof candidate);
    if (candidate == py.PyLong_Type) {
      py.typeOffset = off;
      found = true;
      break;
    }
  }
  py.Py_DecRef(probe);
  if (!found) {
    *error = "cannot find the type pointer in a Python object header";
    return false;
  }
  return true;
}

PyObject* CallVector(PyObject* callable, PyObject* const* args, size_t nargs, PyObject* kwnames) {
  if (py.PyObject_Vectorcall) return py.PyObject_Vectorcall(callable, args, nargs, kwnames);
  if (!kwnames) return py.PyObject_VectorcallDict(callable, args, nargs, nullptr);
  PyRefOwned kwargs(py.PyDict_New());
  if (!kwargs) return nullptr;
  Py_ssize_t nkw = py.PyTuple_Size(kwnames);
  for (Py_ssize_t i = 0; i < nkw; i++) {
    if (py.PyDict_SetItem(kwargs.get(), py.PyTuple_GetItem(kwnames, i), args[nargs + i]) < 0)
      return nullptr;
  }
  return py.PyObject_VectorcallDict(callable, args, nargs, kwargs.get());
}
