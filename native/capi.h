// The CPython C API as pyembed uses it: one table of function pointers filled from the libpython
// chosen at run time (dlopen + dlsym), so one build of the addon serves every CPython >= 3.9.
// No Python.h: we only use exported functions and data whose ABI is stable across versions, and
// never a struct layout that changes between builds (object headers, PyConfig, ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <sys/types.h>

struct PyObject;
struct PyThreadState;
struct PyInterpreterState;
struct PyInitConfig;
typedef ssize_t Py_ssize_t;
typedef int PyGILState_STATE;

// PEP 684 (3.12+): the layout of PyInterpreterConfig and PyStatus, identical in 3.12 and 3.13
// (cpython/pylifecycle.h, cpython/initconfig.h); pyembed has no Python headers to take them from.
struct PyInterpreterConfigLayout {
  int use_main_obmalloc;
  int allow_fork;
  int allow_exec;
  int allow_threads;
  int allow_daemon_threads;
  int check_multi_interp_extensions;
  int gil;  // 2: PyInterpreterConfig_OWN_GIL
};
struct PyStatusLayout {
  int type;  // 0: ok, 1: error, 2: exit
  const char* func;
  const char* err_msg;
  int exitcode;
};

typedef PyObject* (*PyCFunctionFast)(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                                      PyObject* kwnames);

struct PyMethodDef {
  const char* ml_name;
  void* ml_meth;
  int ml_flags;
  const char* ml_doc;
};

constexpr int kMethVarargs = 0x0001;
constexpr int kMethKeywords = 0x0002;
constexpr int kMethFastcall = 0x0080;

// tp_flags bits (stable since Python 3.0).
constexpr unsigned long kTpFlagsLongSubclass = 1UL << 24;
constexpr unsigned long kTpFlagsListSubclass = 1UL << 25;
constexpr unsigned long kTpFlagsTupleSubclass = 1UL << 26;
constexpr unsigned long kTpFlagsBytesSubclass = 1UL << 27;
constexpr unsigned long kTpFlagsUnicodeSubclass = 1UL << 28;
constexpr unsigned long kTpFlagsDictSubclass = 1UL << 29;
constexpr unsigned long kTpFlagsBaseExcSubclass = 1UL << 30;

// Py_buffer is part of the stable ABI (3.11) and unchanged since 3.0.
struct Py_buffer {
  void* buf;
  PyObject* obj;
  Py_ssize_t len;
  Py_ssize_t itemsize;
  int readonly;
  int ndim;
  char* format;
  Py_ssize_t* shape;
  Py_ssize_t* strides;
  Py_ssize_t* suboffsets;
  void* internal;
};
constexpr int kPyBufSimple = 0;
constexpr int kPyBufWritable = 0x0001;
constexpr int kPyBufFormat = 0x0004;
constexpr int kPyBufNd = 0x0008;
constexpr int kPyBufStrides = 0x0010 | kPyBufNd;
constexpr int kPyBufRecords = kPyBufStrides | kPyBufFormat;  // PyBUF_RECORDS_RO
constexpr int kPyMemoryRead = 0x100;
constexpr int kPyMemoryWrite = 0x200;

// PyStatus is returned by value from the 3.14 PyInitConfig API; its layout is fixed since 3.8.
struct PyStatus {
  int type;
  const char* func;
  const char* err_msg;
  int exitcode;
};

// X-macro of every function pyembed calls. REQ: must exist in all supported versions.
// OPT: may be missing (newer or older API); the pointer is then null and callers check it.
#define PYEMBED_CAPI_FUNCTIONS(REQ, OPT)                                                          \
  /* lifecycle */                                                                                 \
  REQ(int, Py_IsInitialized, (void))                                                              \
  REQ(void, Py_InitializeEx, (int))                                                               \
  REQ(int, Py_FinalizeEx, (void))                                                                 \
  OPT(void, Py_SetProgramName, (const wchar_t*))                                                  \
  OPT(void, Py_SetPath, (const wchar_t*))                                                         \
  OPT(PyInitConfig*, PyInitConfig_Create, (void))                                                 \
  OPT(void, PyInitConfig_Free, (PyInitConfig*))                                                   \
  OPT(int, PyInitConfig_SetStr, (PyInitConfig*, const char*, const char*))                        \
  OPT(int, PyInitConfig_SetInt, (PyInitConfig*, const char*, int64_t))                            \
  OPT(int, PyInitConfig_GetError, (PyInitConfig*, const char**))                                  \
  OPT(int, Py_InitializeFromInitConfig, (PyInitConfig*))                                          \
  OPT(int, Py_IsFinalizing, (void))                                                               \
  OPT(int, _Py_IsFinalizing, (void))                                                              \
  /* threads and the GIL */                                                                       \
  REQ(PyThreadState*, PyEval_SaveThread, (void))                                                  \
  REQ(void, PyEval_RestoreThread, (PyThreadState*))                                               \
  REQ(PyGILState_STATE, PyGILState_Ensure, (void))                                                \
  REQ(void, PyGILState_Release, (PyGILState_STATE))                                               \
  REQ(PyThreadState*, PyThreadState_Get, (void))                                                  \
  REQ(PyThreadState*, PyThreadState_Swap, (PyThreadState*))                                       \
  OPT(unsigned long, _PyEval_GetSwitchInterval, (void))                                           \
  OPT(PyStatusLayout, Py_NewInterpreterFromConfig, (PyThreadState**, const PyInterpreterConfigLayout*)) \
  OPT(void, Py_EndInterpreter, (PyThreadState*))                                                  \
  OPT(PyThreadState*, PyThreadState_New, (PyInterpreterState*))                                   \
  OPT(void, PyThreadState_Clear, (PyThreadState*))                                                \
  OPT(void, PyThreadState_DeleteCurrent, (void))                                                  \
  OPT(PyInterpreterState*, PyInterpreterState_Main, (void))                                       \
  OPT(PyInterpreterState*, PyInterpreterState_Get, (void))                                        \
  OPT(PyThreadState*, PyInterpreterState_ThreadHead, (PyInterpreterState*))                        \
  OPT(PyThreadState*, PyThreadState_Next, (PyThreadState*))                                        \
  OPT(PyObject*, PyThreadState_GetFrame, (PyThreadState*))                                         \
  REQ(int, PyThreadState_SetAsyncExc, (unsigned long, PyObject*))                                 \
  REQ(unsigned long, PyThread_get_thread_ident, (void))                                           \
  OPT(int, PyErr_SetInterruptEx, (int))                                                           \
  /* reference counts */                                                                          \
  REQ(void, Py_IncRef, (PyObject*))                                                               \
  REQ(void, Py_DecRef, (PyObject*))                                                               \
  /* errors */                                                                                    \
  REQ(PyObject*, PyErr_Occurred, (void))                                                          \
  REQ(void, PyErr_Fetch, (PyObject**, PyObject**, PyObject**))                                    \
  REQ(void, PyErr_Restore, (PyObject*, PyObject*, PyObject*))                                     \
  REQ(void, PyErr_NormalizeException, (PyObject**, PyObject**, PyObject**))                       \
  OPT(PyObject*, PyErr_GetRaisedException, (void))                                                \
  OPT(void, PyErr_SetRaisedException, (PyObject*))                                                \
  REQ(int, PyException_SetTraceback, (PyObject*, PyObject*))                                      \
  REQ(PyObject*, PyException_GetCause, (PyObject*))                                               \
  REQ(void, PyErr_SetString, (PyObject*, const char*))                                            \
  REQ(void, PyErr_SetObject, (PyObject*, PyObject*))                                              \
  REQ(void, PyErr_Clear, (void))                                                                  \
  REQ(int, PyErr_ExceptionMatches, (PyObject*))                                                   \
  REQ(int, PyErr_GivenExceptionMatches, (PyObject*, PyObject*))                                   \
  REQ(PyObject*, PyErr_NoMemory, (void))                                                          \
  /* objects */                                                                                   \
  REQ(PyObject*, PyObject_GetAttr, (PyObject*, PyObject*))                                        \
  REQ(PyObject*, PyObject_GetAttrString, (PyObject*, const char*))                                \
  REQ(int, PyObject_SetAttr, (PyObject*, PyObject*, PyObject*))                                   \
  REQ(int, PyObject_SetAttrString, (PyObject*, const char*, PyObject*))                           \
  REQ(PyObject*, PyObject_Str, (PyObject*))                                                       \
  REQ(PyObject*, PyObject_Repr, (PyObject*))                                                      \
  REQ(PyObject*, PyObject_Call, (PyObject*, PyObject*, PyObject*))                                \
  OPT(PyObject*, PyObject_Vectorcall, (PyObject*, PyObject* const*, size_t, PyObject*))           \
  REQ(PyObject*, PyObject_VectorcallDict, (PyObject*, PyObject* const*, size_t, PyObject*))       \
  REQ(PyObject*, PyObject_GetItem, (PyObject*, PyObject*))                                        \
  REQ(int, PyObject_SetItem, (PyObject*, PyObject*, PyObject*))                                   \
  REQ(int, PyObject_DelItem, (PyObject*, PyObject*))                                              \
  REQ(int, PySequence_Contains, (PyObject*, PyObject*))                                           \
  REQ(Py_ssize_t, PyObject_Size, (PyObject*))                                                     \
  REQ(PyObject*, PyObject_GetIter, (PyObject*))                                                   \
  REQ(PyObject*, PyIter_Next, (PyObject*))                                                        \
  REQ(int, PyCallable_Check, (PyObject*))                                                         \
  REQ(int, PyObject_IsTrue, (PyObject*))                                                          \
  REQ(int, PyObject_RichCompareBool, (PyObject*, PyObject*, int))                                 \
  REQ(int, PyObject_IsInstance, (PyObject*, PyObject*))                                           \
  REQ(PyObject*, PyObject_Dir, (PyObject*))                                                       \
  REQ(PyObject*, PyWeakref_NewRef, (PyObject*, PyObject*))                                        \
  REQ(PyObject*, PyWeakref_GetObject, (PyObject*))                                                \
  REQ(unsigned long, PyType_GetFlags, (PyObject*))                                                \
  REQ(int, PyType_IsSubtype, (PyObject*, PyObject*))                                              \
  /* numbers */                                                                                   \
  REQ(PyObject*, PyLong_FromLongLong, (long long))                                                \
  REQ(long long, PyLong_AsLongLongAndOverflow, (PyObject*, int*))                                 \
  REQ(PyObject*, PyLong_FromString, (const char*, char**, int))                                   \
  REQ(PyObject*, PyNumber_ToBase, (PyObject*, int))                                               \
  REQ(PyObject*, PyFloat_FromDouble, (double))                                                    \
  REQ(double, PyFloat_AsDouble, (PyObject*))                                                      \
  /* strings and bytes */                                                                         \
  REQ(PyObject*, PyUnicode_FromStringAndSize, (const char*, Py_ssize_t))                          \
  REQ(PyObject*, PyUnicode_FromString, (const char*))                                             \
  REQ(PyObject*, PyUnicode_InternFromString, (const char*))                                       \
  REQ(void, PyUnicode_InternInPlace, (PyObject**))                                                \
  REQ(const char*, PyUnicode_AsUTF8AndSize, (PyObject*, Py_ssize_t*))                             \
  REQ(PyObject*, PyUnicode_FromKindAndData, (int, const void*, Py_ssize_t))                       \
  REQ(PyObject*, PyUnicode_DecodeUTF16, (const char*, Py_ssize_t, const char*, int*))             \
  REQ(PyObject*, PyUnicode_AsEncodedString, (PyObject*, const char*, const char*))                \
  REQ(PyObject*, PyBytes_FromStringAndSize, (const char*, Py_ssize_t))                            \
  REQ(int, PyBytes_AsStringAndSize, (PyObject*, char**, Py_ssize_t*))                             \
  REQ(PyObject*, PyBytes_FromObject, (PyObject*))                                                  \
  /* containers */                                                                                \
  REQ(PyObject*, PyList_New, (Py_ssize_t))                                                        \
  REQ(int, PyList_SetItem, (PyObject*, Py_ssize_t, PyObject*))                                    \
  REQ(Py_ssize_t, PyList_Size, (PyObject*))                                                       \
  REQ(PyObject*, PyList_GetItem, (PyObject*, Py_ssize_t))                                         \
  REQ(PyObject*, PyTuple_New, (Py_ssize_t))                                                       \
  REQ(int, PyTuple_SetItem, (PyObject*, Py_ssize_t, PyObject*))                                   \
  REQ(Py_ssize_t, PyTuple_Size, (PyObject*))                                                      \
  REQ(PyObject*, PyTuple_GetItem, (PyObject*, Py_ssize_t))                                        \
  REQ(PyObject*, PyDict_New, (void))                                                              \
  REQ(int, PyDict_SetItem, (PyObject*, PyObject*, PyObject*))                                     \
  REQ(int, PyDict_SetItemString, (PyObject*, const char*, PyObject*))                             \
  REQ(int, PyDict_Next, (PyObject*, Py_ssize_t*, PyObject**, PyObject**))                         \
  REQ(PyObject*, PySet_New, (PyObject*))                                                          \
  REQ(int, PySet_Add, (PyObject*, PyObject*))                                                     \
  /* modules */                                                                                   \
  REQ(PyObject*, PyImport_ImportModule, (const char*))                                            \
  REQ(PyObject*, PyImport_Import, (PyObject*))                                                    \
  REQ(PyObject*, PyImport_GetModuleDict, (void))                                                  \
  REQ(PyObject*, PyModule_GetDict, (PyObject*))                                                   \
  REQ(PyObject*, PyEval_GetBuiltins, (void))                                                      \
  REQ(PyObject*, Py_CompileString, (const char*, const char*, int))                               \
  REQ(PyObject*, PyImport_ExecCodeModuleEx, (const char*, PyObject*, const char*))                \
  /* callables made in C */                                                                       \
  REQ(PyObject*, PyCFunction_NewEx, (PyMethodDef*, PyObject*, PyObject*))                         \
  REQ(void*, PyCFunction_GetFunction, (PyObject*))                                                \
  REQ(PyObject*, PyCFunction_GetSelf, (PyObject*))                                                \
  REQ(PyObject*, PyCapsule_New, (void*, const char*, void (*)(PyObject*)))                        \
  REQ(void*, PyCapsule_GetPointer, (PyObject*, const char*))                                      \
  REQ(int, PyCapsule_IsValid, (PyObject*, const char*))                                           \
  /* buffers */                                                                                   \
  REQ(int, PyObject_GetBuffer, (PyObject*, Py_buffer*, int))                                      \
  REQ(void, PyBuffer_Release, (Py_buffer*))                                                       \
  REQ(PyObject*, PyMemoryView_FromMemory, (char*, Py_ssize_t, int))                               \
  REQ(PyObject*, PyMemoryView_FromObject, (PyObject*))                                            \
  /* types made in C */                                                                           \
  REQ(PyObject*, PyType_FromSpec, (void*))                                                        \
  REQ(PyObject*, PyType_GenericAlloc, (PyObject*, Py_ssize_t))                                    \
  REQ(void, PyObject_Free, (void*))

// Data symbols: exception classes (PyObject* variables) and static type objects.
#define PYEMBED_CAPI_EXCEPTIONS(X)                                                                \
  X(PyExc_BaseException)                                                                          \
  X(PyExc_Exception)                                                                              \
  X(PyExc_TypeError)                                                                              \
  X(PyExc_ValueError)                                                                             \
  X(PyExc_RuntimeError)                                                                           \
  X(PyExc_AttributeError)                                                                         \
  X(PyExc_StopIteration)                                                                          \
  X(PyExc_OverflowError)                                                                          \
  X(PyExc_KeyboardInterrupt)                                                                      \
  X(PyExc_RecursionError)                                                                         \
  X(PyExc_SystemExit)                                                                             \
  X(PyExc_MemoryError)

#define PYEMBED_CAPI_TYPES(X)                                                                     \
  X(PyLong_Type)                                                                                  \
  X(PyFloat_Type)                                                                                 \
  X(PyUnicode_Type)                                                                               \
  X(PyBool_Type)                                                                                  \
  X(PyBytes_Type)                                                                                 \
  X(PyByteArray_Type)                                                                             \
  X(PyList_Type)                                                                                  \
  X(PyTuple_Type)                                                                                 \
  X(PyDict_Type)                                                                                  \
  X(PySet_Type)                                                                                   \
  X(PyFrozenSet_Type)                                                                             \
  X(PyCFunction_Type)                                                                             \
  X(PyCapsule_Type)                                                                               \
  X(PyCoro_Type)                                                                                  \
  X(PyMemoryView_Type)                                                                            \
  X(PyBaseObject_Type)

struct CApi {
#define PYEMBED_DECLARE_FN(ret, name, args) ret(*name) args = nullptr;
  PYEMBED_CAPI_FUNCTIONS(PYEMBED_DECLARE_FN, PYEMBED_DECLARE_FN)
#undef PYEMBED_DECLARE_FN
#define PYEMBED_DECLARE_EXC(name) PyObject* name = nullptr;
  PYEMBED_CAPI_EXCEPTIONS(PYEMBED_DECLARE_EXC)
#undef PYEMBED_DECLARE_EXC
#define PYEMBED_DECLARE_TYPE(name) PyObject* name = nullptr;
  PYEMBED_CAPI_TYPES(PYEMBED_DECLARE_TYPE)
#undef PYEMBED_DECLARE_TYPE
  PyObject* None = nullptr;
  PyObject* True = nullptr;
  PyObject* False = nullptr;

  // Where ob_type sits in an object header: 8 in default builds, more in free-threaded or
  // trace-refs builds. Found at run time by looking at a known object.
  size_t typeOffset = sizeof(Py_ssize_t);
  int versionHex = 0;  // Py_Version style: 0x030B0700 for 3.11.7
  void* library = nullptr;
};

extern CApi py;

// Loads libpython with global symbol visibility (so C extension modules resolve against it) and
// fills `py`. On failure returns false and sets `error` to a sentence for the user.
bool LoadCApi(const std::string& libraryPath, std::string* error);
// Resolves data symbols that only exist once the interpreter runs (type offset, singletons).
bool FinishCApiAfterInit(std::string* error);

inline PyObject* TypeOf(PyObject* o) {
  return *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(o) + py.typeOffset);
}
inline bool HasTypeFlag(PyObject* o, unsigned long flag) {
  return (py.PyType_GetFlags(TypeOf(o)) & flag) != 0;
}
inline PyObject* NewRef(PyObject* o) {
  py.Py_IncRef(o);
  return o;
}
// A vectorcall (args, then the values of the keywords named in kwnames): PyObject_Vectorcall where
// it is exported (3.10+), else PyObject_VectorcallDict with a dict built from kwnames.
PyObject* CallVector(PyObject* callable, PyObject* const* args, size_t nargs, PyObject* kwnames);

// Owns one strong reference; releases it with the GIL held (the caller's duty).
class PyRefOwned {
 public:
  PyRefOwned() = default;
  explicit PyRefOwned(PyObject* o) : obj_(o) {}
  PyRefOwned(const PyRefOwned&) = delete;
  PyRefOwned& operator=(const PyRefOwned&) = delete;
  PyRefOwned(PyRefOwned&& o) noexcept : obj_(o.obj_) { o.obj_ = nullptr; }
  PyRefOwned& operator=(PyRefOwned&& o) noexcept {
    reset(o.release());
    return *this;
  }
  ~PyRefOwned() { reset(); }
  PyObject* get() const { return obj_; }
  PyObject* release() {
    PyObject* o = obj_;
    obj_ = nullptr;
    return o;
  }
  void reset(PyObject* o = nullptr) {
    if (obj_) py.Py_DecRef(obj_);
    obj_ = o;
  }
  explicit operator bool() const { return obj_ != nullptr; }

 private:
  PyObject* obj_ = nullptr;
};
