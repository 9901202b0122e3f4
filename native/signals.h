// Ctrl-C. Node owns the process's signals and Python never installs handlers (Py_InitializeEx(0),
// and Python's main thread is pyembed's interpreter thread). But a user who presses Ctrl-C while
// the JS main thread is stuck in a long synchronous Python call expects what Python does:
// KeyboardInterrupt in that code, not a dead process.
//
// So a watcher thread samples, every 100 ms, whether the main thread is in the same synchronous
// Python call as last time. Only then does it install pyembed's SIGINT handler (remembering
// Node's); the call's end puts Node's back. A SIGINT in between wakes the watcher, which raises
// KeyboardInterrupt in the main thread's Python code (PyThreadState_SetAsyncExc). Short calls pay
// two plain stores; outside long calls Node's behaviour is untouched.
#pragma once

#include <atomic>
#include <cstdint>

// Written by the JS main thread only, at the start and end of its outermost Python call: odd
// while a call runs. The watcher reads it.
extern std::atomic<uint64_t> mainThreadCallEpoch;
extern std::atomic<bool> interruptHandlerInstalled;

inline void MainThreadCallStarted() {
  mainThreadCallEpoch.store(mainThreadCallEpoch.load(std::memory_order_relaxed) + 1,
                            std::memory_order_release);
}
void RestoreNodeInterruptHandler();
inline void MainThreadCallEnded() {
  mainThreadCallEpoch.store(mainThreadCallEpoch.load(std::memory_order_relaxed) + 1,
                            std::memory_order_release);
  if (interruptHandlerInstalled.load(std::memory_order_acquire)) RestoreNodeInterruptHandler();
}

// On the JS main thread, attached: remember its Python thread id and start the watcher (once).
void StartInterruptWatcher();
// Any thread: starts the watcher if needed (it also delivers worker terminations: interrupt.h).
void StartWatcher();
// Any thread: wakes the watcher now (worker terminations to deliver).
void WakeWatcher();
