// The Python helper module (python/_pyembed.py): loaded on the interpreter thread right after
// Py_Initialize, before anyone else may enter Python, so every JS thread finds it ready.
#pragma once

#include <string>

#include "capi.h"

struct PythonHelpers {
  PyObject* run = nullptr;               // run(code, globals, mode, filename)
  PyObject* moduleFromString = nullptr;  // module_from_string(name, code)
  PyObject* exposeModule = nullptr;      // expose_module(name, attributes)
  PyObject* stopLoop = nullptr;          // stop_loop()
  PyObject* adoptThread = nullptr;       // adopt_thread(name, daemon)
  PyObject* restartHazards = nullptr;    // restart_hazards()
  PyObject* datetimeFromJs = nullptr;    // datetime_from_js(ms): a JS Date's time as a datetime
  // An isolated interpreter's own (the shared one keeps its in callbacks.cc and buffers.cc):
  PyObject* jsError = nullptr;           // pyembed.JSError
  PyObject* bufferType = nullptr;        // pyembed.JsBuffer, the exporter of JS bytes
  PyInterpreterState* interpreter = nullptr;  // which interpreter these helpers belong to
  std::string version;                   // sys.version
};

// The shared interpreter's helpers, and an isolated worker's own (null on other threads).
extern PythonHelpers& sharedHelpers;
extern thread_local PythonHelpers* isolatedHelpers;
inline PythonHelpers& CurrentHelpers() { return isolatedHelpers ? *isolatedHelpers : sharedHelpers; }

// Attached, right after the interpreter started (`shared`: the shared one, on its thread).
bool LoadPythonHelpers(const std::string& source, std::string* error, PythonHelpers& into, bool shared);
// Before finalization, attached: drop our references.
void UnloadPythonHelpers(PythonHelpers& from, bool shared);
