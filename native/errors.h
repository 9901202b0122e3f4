// Errors crossing the boundary. A Python exception reaching JS becomes a PythonError (made by the
// TypeScript factory so it has a JS stack) with the Python type name, message, formatted
// traceback and the exception object itself. A JS exception raised inside a JS callback became a
// pyembed.JSError in Python; if that reaches JS again it is the original JS value that is thrown.
#pragma once

#include <v8.h>

#include <string>

#include "capi.h"
#include "convert.h"

struct JsThread;
struct JsValueRef;

struct PythonErrorInfo {
  std::string type;
  std::string message;               // UTF-8, or UTF-16LE when messageUtf16
  bool messageUtf16 = false;         // str() has lone surrogates, which have no UTF-8 form
  bool hasCause = false;             // __cause__ is set (`raise X from Y`)
  Snapshot exception;                 // the exception object (kPyObject, owned)
  JsValueRef* original = nullptr;  // set when the exception carries a JS error of this thread
  bool present = false;
};

// Caller attached: takes the current Python exception (clearing it) into `info`. `thread` is the
// JS thread the error will be thrown on (to recognise its own JS errors).
void CapturePythonError(JsThread* thread, PythonErrorInfo* info);
// Caller holds the isolate: `info`'s message as a JS string (exactly, lone surrogates kept).
v8::Local<v8::String> MessageText(v8::Isolate* isolate, const PythonErrorInfo& info);
// Caller holds the isolate: the JS value to throw for `info`.
v8::Local<v8::Value> MakeJsError(JsThread* thread, PythonErrorInfo& info);
// Caller attached and holding the isolate: throws the current Python exception into JS.
void ThrowPythonError(JsThread* thread);
void ThrowConvertError(v8::Isolate* isolate, const ConvertError& error);
void ThrowError(v8::Isolate* isolate, const std::string& message);
void ThrowTypeError(v8::Isolate* isolate, const std::string& message);

// Caller attached: the current Python exception as one owned object (cleared), or null; and
// back (consumed), possibly on another thread.
PyObject* TakeException();
void RestoreException(PyObject* exception);

// The helper Python functions that errors need (from python/_pyembed.py).
