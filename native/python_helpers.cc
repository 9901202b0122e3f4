#include "python_helpers.h"

#include "async_pool.h"
#include "buffers.h"
#include "callbacks.h"
#include "errors.h"
#include "gil.h"

PythonHelpers& sharedHelpers = *new PythonHelpers();  // read by threads that may outlive exit()
thread_local PythonHelpers* isolatedHelpers = nullptr;

namespace {

std::string CurrentErrorText() {
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  py.PyErr_Fetch(&type, &value, &tb);
  std::string text = "unknown error";
  if (value) {
    PyRefOwned s(py.PyObject_Str(value));
    Py_ssize_t n = 0;
    const char* utf8 = s ? py.PyUnicode_AsUTF8AndSize(s.get(), &n) : nullptr;
    if (utf8) text.assign(utf8, static_cast<size_t>(n));
  }
  py.PyErr_Clear();
  for (PyObject* o : {type, value, tb}) {
    if (o) py.Py_DecRef(o);
  }
  return text;
}

}  // namespace

bool LoadPythonHelpers(const std::string& source, std::string* error, PythonHelpers& helpers,
                       bool shared) {
  PyRefOwned code(py.Py_CompileString(source.c_str(), "<pyembed:_pyembed>", 257 /* Py_file_input */));
  PyRefOwned module(code ? py.PyImport_ExecCodeModuleEx("_pyembed", code.get(), "<pyembed:_pyembed>")
                         : nullptr);
  if (!module) {
    *error = "cannot load pyembed's Python helpers: " + CurrentErrorText();
    return false;
  }
  auto get = [&](const char* name) -> PyObject* {
    PyObject* o = py.PyObject_GetAttrString(module.get(), name);
    if (!o && error->empty()) *error = std::string("pyembed helper missing: ") + name;
    return o;
  };
  helpers.run = get("run");
  helpers.moduleFromString = get("module_from_string");
  helpers.exposeModule = get("expose_module");
  helpers.stopLoop = get("stop_loop");
  helpers.adoptThread = get("adopt_thread");
  helpers.restartHazards = get("restart_hazards");
  helpers.datetimeFromJs = get("datetime_from_js");
  PyRefOwned jsError(get("JSError"));
  PyRefOwned submit(get("submit_coroutine"));
  PyRefOwned version(get("version"));
  if (!error->empty()) {
    py.PyErr_Clear();
    return false;
  }
  if (shared) {
    SetJsErrorClass(jsError.get());
    SetCoroutineRunner(submit.get());
  } else {  // an isolated interpreter's own classes (coroutines: not in isolated workers yet)
    helpers.jsError = NewRef(jsError.get());
    InstallJsStackReader(jsError.get());
    helpers.interpreter = py.PyInterpreterState_Get ? py.PyInterpreterState_Get() : nullptr;
    helpers.bufferType = NewBufferType(error);
    if (!helpers.bufferType) return false;
    RegisterIsolatedReleases(engine.generation(), &CurrentPendingDecrefs());
  }
  PyRefOwned text(CallVector(version.get(), nullptr, 0, nullptr));
  Py_ssize_t n = 0;
  const char* utf8 = text ? py.PyUnicode_AsUTF8AndSize(text.get(), &n) : nullptr;
  helpers.version = utf8 ? std::string(utf8, static_cast<size_t>(n)) : "";
  py.PyErr_Clear();
  return true;
}

void UnloadPythonHelpers(PythonHelpers& helpers, bool shared) {
  for (PyObject** slot : {&helpers.run, &helpers.moduleFromString, &helpers.exposeModule,
                          &helpers.stopLoop, &helpers.adoptThread, &helpers.restartHazards,
                          &helpers.datetimeFromJs, &helpers.jsError, &helpers.bufferType}) {
    if (*slot) py.Py_DecRef(*slot);
    *slot = nullptr;
  }
  // (helpers.interpreter stays: its threads still call back while it ends, and get an error.)
  if (!shared) {
    RegisterIsolatedReleases(engine.generation(), nullptr);
    return;
  }
  SetJsErrorClass(nullptr);
  SetCoroutineRunner(nullptr);
}
