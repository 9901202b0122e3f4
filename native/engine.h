// The interpreter's lifetime. Python is initialized and finalized on one pyembed-owned thread
// (the "interpreter thread"), which is Python's main thread. So initialize() and shutdown() work
// the same from the JS main thread, from any worker, and at process exit: the caller only asks
// the interpreter thread and waits. JS threads never become Python's main thread, so Python code
// cannot install signal handlers over Node's (signal.signal raises ValueError off the main thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "capi.h"

// What every use of Python says after PythonEngine.shutdown() (src/engine.ts asks for it).
inline constexpr const char kShutDownMessage[] =
    "Python was shut down (PythonEngine.shutdown()); call PythonEngine.initialize() to start it "
    "again (objects of the old interpreter cannot be used)";

// The same, when pyembed's 'exit' listener finalized Python (src/engine.ts, stop(true)): an
// 'exit' listener that uses Python ran after it.
inline constexpr const char kShutDownAtExitMessage[] =
    "Python was finalized at process exit by pyembed's 'exit' listener, before this use: add an "
    "'exit' listener that uses Python with process.prependListener('exit', ...) (one added with "
    "process.on('exit', ...) runs before pyembed's only once the code that added it has returned)";

// What an attach, a new isolated interpreter or a queued call says once shutdown() has begun.
inline constexpr const char kShuttingDownMessage[] = "Python is shutting down";

enum class EngineState : int { kStopped, kStarting, kRunning, kStopping };

struct EngineConfig {
  std::string library;       // path of libpython
  std::string executable;    // sys.executable of the chosen interpreter (venvs are found from it)
  std::string helperSource;  // python/_pyembed.py
};

class Engine {
 public:
  // Blocks until Python runs (or failed to start). Idempotent.
  bool Start(const EngineConfig& config, std::string* error);
  // Returns once no Start() is in progress.
  void WaitForStart();
  // Finalizes Python on the interpreter thread and waits. Callers have made sure that no JS thread
  // is inside Python any more (see shutdown in addon.cc).
  void Stop();

  EngineState state() const { return state_.load(std::memory_order_acquire); }
  // state() == kRunning, ordered (seq_cst) against a shutdown's set_state(kStopping) and the
  // counters that shutdown reads next (attaching, isolatedInterpreters).
  bool runningSeqCst() const { return state_.load(std::memory_order_seq_cst) == EngineState::kRunning; }
  bool running() const { return state() == EngineState::kRunning; }
  // The interpreter the calling thread works with: an isolated worker's own (see gil.h), else
  // the shared one's current run.
  uint64_t generation() const {
    return isolatedGeneration ? isolatedGeneration : generation_.load(std::memory_order_acquire);
  }
  // Set while the calling thread (an isolated worker) has its own interpreter; 0 otherwise.
  static thread_local uint64_t isolatedGeneration;
  // The shared interpreter's current run, without the thread-local read (hot paths that know
  // the calling thread's context use GenerationOf in gil.h).
  uint64_t sharedGeneration() const { return generation_.load(std::memory_order_acquire); }
  void set_state(EngineState s) { state_.store(s, std::memory_order_seq_cst); }
  int finalizeResult() const { return finalizeResult_; }
  // True after a shutdown, until the next Start: entry points then refuse instead of restarting.
  bool wasStopped() const { return wasStopped_.load(std::memory_order_acquire); }
  // The last shutdown was pyembed's own at process exit (stop(true)), until the next Start.
  std::atomic<bool> stoppedAtExit{false};
  const EngineConfig& config() const { return config_; }

  // JS and pool threads inside a pyembed operation. Changed only by attached threads, so in GIL
  // builds the GIL orders it (no atomic on the hot path). A free-threaded build would need an
  // atomic here: src/locate.ts refuses those builds until then.
  int busyThreads = 0;
  // Threads between deciding to attach and holding the GIL. Shutdown waits for them too: CPython
  // ends (pthread_exit) any thread that takes the GIL while Py_FinalizeEx runs, and a JS thread
  // that vanished so would never report its exit. BeginAttach() is false (nothing counted) once
  // shutdown has begun; the seq_cst pair orders it against set_state(kStopping) in shutdown.
  std::atomic<int> attaching{0};
  bool BeginAttach() {
    attaching.fetch_add(1, std::memory_order_seq_cst);
    if (state_.load(std::memory_order_seq_cst) == EngineState::kRunning) return true;
    EndAttach();
    return false;
  }
  void EndAttach() { attaching.fetch_sub(1, std::memory_order_release); }
  std::mutex waitMu;
  std::condition_variable waitCv;  // notified when busyThreads drops while stopping

 private:
  void InterpreterThread(EngineConfig config);

  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<EngineState> state_{EngineState::kStopped};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> wasStopped_{false};
  std::thread thread_;
  bool startDone_ = false;
  bool stopRequested_ = false;
  bool stopped_ = false;
  std::string startError_;
  EngineConfig config_;         // of the last successful start
  std::string loadedLibrary_;   // the libpython this process loaded (once: it is never unloaded)
  int finalizeResult_ = 0;
  std::string restartRefusal_;  // why the last finalization makes a restart unsafe, if it does
};

extern Engine& engine;

// What a use of Python says once it was shut down (kShutDownMessage, or why at exit).
inline const char* ShutDownMessage() {
  return engine.stoppedAtExit.load(std::memory_order_relaxed) ? kShutDownAtExitMessage : kShutDownMessage;
}

// Set in the child of a fork() (os.fork() in Python code): only the forking thread exists there,
// without the interpreter thread, the pool, the other JS threads or Node's own threads, so
// pyembed refuses everything in it (see kForkedChildError); exec or os._exit() is the way out.
extern std::atomic<bool> forkedChild;
inline bool InForkedChild() { return forkedChild.load(std::memory_order_relaxed); }
extern const char* const kForkedChildError;
// Registers the at-fork handler that sets forkedChild (once per process).
void WatchForFork();
// Python code forked, and the call returned into pyembed in the child, which cannot go back to
// JS (V8 itself fails there without its threads): flushes Python's stdout and stderr (caller
// attached), says why on stderr and ends the child with status 70.
[[noreturn]] void ExitForkedChild();
