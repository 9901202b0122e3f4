// Interrupting Python code: PythonEngine.interrupt(threadId), an AbortSignal on callAsync, and
// worker.terminate(). Each raises an exception in the target thread with
// PyThreadState_SetAsyncExc: it lands at that thread's next bytecode (never inside a C call).
//
// A thread pyembed owns (a JS thread, a callAsync pool thread) runs Python only inside a pyembed
// call, so it is targeted only while such a call runs (callDepth > 0, read under the GIL), and an
// exception posted to it that has not landed when the call ends is withdrawn there, under the GIL
// as the post was: it can never land in a later call. Other threads (threading.Thread) are
// targeted directly.
#pragma once

#include <cstdint>

#include "gil.h"

// Attached, at a thread's first entry into an interpreter run: makes it findable by its Python
// thread id (and a JS thread by its Node threadId).
void RegisterInterruptible(ThreadContext& ctx);

// Attached: posts `exc` (a new exception class reference is not needed: a borrowed class) to the
// thread of `ctx`, which the caller knows is inside a call.
void PostInterrupt(ThreadContext& ctx, PyObject* exc);

// Attached: PythonEngine.interrupt(ident). KeyboardInterrupt in that thread if it runs Python
// (a pyembed thread: only inside a call). `self` is the caller's own context (its own entry call
// does not count as running Python). A thread of the caller's interpreter directly; one of an
// isolated interpreter through that interpreter's GIL (the caller's is released meanwhile); a
// thread of the shared interpreter cannot be reached from an isolated worker. Returns whether a
// thread was interrupted.
bool InterruptThread(unsigned long ident, ThreadContext& self);

// Any thread, no GIL needed: the worker whose Node threadId this is is being terminated. Its
// Python code gets KeyboardInterrupt now (from the watcher thread), and again every 100 ms while
// it stays inside a Python call, until it exits; in an isolated worker through its own
// interpreter's GIL. False: no such worker has used Python.
bool InterruptTerminatingWorker(int64_t nodeThreadId);

// Any thread, no GIL needed: the process is exiting (the main thread's 'exit' event), and Node is
// about to stop every worker and wait for each: their Python code is interrupted as if each
// worker were terminated (a worker inside a Python call would never stop otherwise).
void InterruptWorkersAtExit();

// Attached to the shared interpreter (the watcher; shutdown waiting for busy threads): raises
// KeyboardInterrupt in the shared interpreter's threads of terminating workers inside a call.
void InterruptTerminatingThreads();

// Work that needs the GIL, handed to the watcher thread by a JS thread so that its event loop
// never waits for the GIL (an abort() listener). `run(arg, true)` is called attached; when
// Python is not running, `run(arg, false)` unattached (only to release what arg owns).
void PostAttachedWork(void (*run)(void* arg, bool live), void* arg);

// The watcher thread (signals.cc), not attached: delivers the terminations asked for and runs
// the posted work.
bool InterruptWorkPending();
void DoInterruptWork();
