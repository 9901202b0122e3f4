#include "engine.h"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buffers.h"
#include "gil.h"
#include "python_helpers.h"

// Never destroyed: process exit must not join (or std::terminate on) the interpreter thread.
Engine& engine = *new Engine();
thread_local uint64_t Engine::isolatedGeneration = 0;

std::atomic<bool> forkedChild{false};
const char* const kForkedChildError =
    "this process was forked (os.fork() in Python code): pyembed cannot run in the child, which "
    "has neither Python's interpreter thread nor Node's threads; in the child, call os._exit() "
    "or exec another program (subprocess and multiprocessing's 'spawn' do that)";

[[noreturn]] void ExitForkedChild() {
  if (py.library && py.Py_IsInitialized()) {
    PyObject* sys = py.PyImport_ImportModule("sys");
    for (const char* name : {"stdout", "stderr"}) {
      PyObject* stream = sys ? py.PyObject_GetAttrString(sys, name) : nullptr;
      PyObject* flush = stream ? py.PyObject_GetAttrString(stream, "flush") : nullptr;
      PyObject* r = flush ? CallVector(flush, nullptr, 0, nullptr) : nullptr;
      for (PyObject* o : {r, flush, stream}) if (o) py.Py_DecRef(o);
    }
    if (sys) py.Py_DecRef(sys);
    py.PyErr_Clear();
  }
  std::string message = std::string("pyembed: ") + kForkedChildError + "\n";
  ssize_t ignored = write(2, message.data(), message.size());
  (void)ignored;
  _exit(70);
}

void WatchForFork() {
  static std::once_flag once;
  // The handler runs in the child, where only async-signal-safe work is allowed: one store.
  std::call_once(once, [] { pthread_atfork(nullptr, nullptr, [] { forkedChild.store(true); }); });
}

namespace {

bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (a == b) return true;
  if (stat(a.c_str(), &sa) != 0 || stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// UTF-8 to wchar_t (UTF-32 on Linux and macOS) without depending on the process locale.
std::wstring Widen(const std::string& s) {
  std::wstring out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    int extra;
    if (c < 0x80) { cp = c; extra = 0; }
    else if ((c >> 5) == 6) { cp = c & 0x1f; extra = 1; }
    else if ((c >> 4) == 14) { cp = c & 0x0f; extra = 2; }
    else { cp = c & 0x07; extra = 3; }
    i++;
    for (int k = 0; k < extra && i < s.size(); k++, i++) cp = (cp << 6) | (s[i] & 0x3f);
    out.push_back(static_cast<wchar_t>(cp));
  }
  return out;
}

// Py_SetProgramName keeps the pointer it is given: the string must outlive the interpreter.
std::wstring programName;

bool InitializeInterpreter(const EngineConfig& config, std::string* error) {
  if (py.PyInitConfig_Create && py.Py_InitializeFromInitConfig) {
    // PEP 741 (3.14+): configuration by name, no struct layouts.
    PyInitConfig* c = py.PyInitConfig_Create();
    if (!c) {
      *error = "PyInitConfig_Create failed";
      return false;
    }
    bool ok = py.PyInitConfig_SetStr(c, "program_name", config.executable.c_str()) == 0 &&
              py.PyInitConfig_SetInt(c, "install_signal_handlers", 0) == 0 &&
              py.PyInitConfig_SetInt(c, "parse_argv", 0) == 0 &&
              py.Py_InitializeFromInitConfig(c) == 0;
    if (!ok) {
      const char* msg = nullptr;
      py.PyInitConfig_GetError(c, &msg);
      *error = std::string("Python failed to initialize: ") + (msg ? msg : "unknown error");
    }
    py.PyInitConfig_Free(c);
    return ok;
  }
  // 3.9 to 3.13: the program name lets Python find its prefix and a virtualenv's pyvenv.cfg
  // exactly as that executable would; initsigs=0 leaves every signal handler to Node.
  // Py_SetPath(NULL) forgets the paths an earlier run computed: CPython keeps them across
  // Py_FinalizeEx and would start a restart as the first run's executable, prefix and sys.path.
  if (py.Py_SetPath) py.Py_SetPath(nullptr);
  programName = Widen(config.executable);
  py.Py_SetProgramName(programName.c_str());
  py.Py_InitializeEx(0);
  if (!py.Py_IsInitialized()) {
    *error = "Python failed to initialize";
    return false;
  }
  return true;
}

}  // namespace

bool Engine::Start(const EngineConfig& config, std::string* error) {
  std::unique_lock<std::mutex> lock(mu_);
  // Another thread's start releases mu_ while it waits for the interpreter thread: wait for its
  // outcome, then decide (several workers may race to be the first to use Python).
  cv_.wait(lock, [this] { return state() != EngineState::kStarting; });
  if (state() == EngineState::kRunning) return true;
  if (state() != EngineState::kStopped) {
    *error = "Python is being shut down";
    return false;
  }
  // libpython is loaded once per process (it cannot be unloaded): a restart runs the same one.
  if (py.library && !SameFile(config.library, loadedLibrary_)) {
    *error = "this process already loaded " + loadedLibrary_ + ", and a process can run only one " +
             "libpython; " + config.executable + " needs " + config.library +
             ": use that Python in another process (a child process)";
    return false;
  }
  if (py.library && !config_.executable.empty() && config.executable != config_.executable &&
      !py.Py_SetPath) {
    *error = "this libpython cannot be restarted as another executable (" + config.executable +
             " after " + config_.executable + "): use it in another process (a child process)";
    return false;
  }
  if (!LoadCApi(config.library, error)) return false;
  if (loadedLibrary_.empty()) loadedLibrary_ = config.library;
  if (py.Py_IsInitialized()) {
    *error = "libpython is already initialized by someone else in this process";
    return false;
  }
  if (!restartRefusal_.empty()) {
    *error = "cannot start Python again in this process: " + restartRefusal_;
    return false;
  }
  if (thread_.joinable()) thread_.join();  // the previous run's interpreter thread has ended
  set_state(EngineState::kStarting);
  startDone_ = false;
  stopRequested_ = false;
  stopped_ = false;
  startError_.clear();
  // The new run's generation, before any Python object of it exists.
  generation_.fetch_add(1, std::memory_order_acq_rel);
  thread_ = std::thread(&Engine::InterpreterThread, this, config);
  cv_.wait(lock, [this] { return startDone_; });
  if (!startError_.empty()) {
    *error = startError_;
    thread_.join();  // the thread has finished: it never waits for mu_ after a failed start
    set_state(EngineState::kStopped);
    cv_.notify_all();
    return false;
  }
  config_ = config;
  config_.helperSource.clear();
  wasStopped_.store(false, std::memory_order_release);
  stoppedAtExit.store(false, std::memory_order_relaxed);
  set_state(EngineState::kRunning);
  cv_.notify_all();
  return true;
}

void Engine::WaitForStart() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return state() != EngineState::kStarting; });
}

void Engine::InterpreterThread(EngineConfig config) {
  std::string error;
  bool ok = InitializeInterpreter(config, &error) && FinishCApiAfterInit(&error) &&
            LoadPythonHelpers(config.helperSource, &error, sharedHelpers, true) && InitBufferType(&error);
  PyThreadState* mainState = nullptr;
  if (ok) {
    // Importing threading here makes this thread Python's main thread for the threading module,
    // whichever JS thread asked for initialization.
    PyObject* threading = py.PyImport_ImportModule("threading");
    if (threading) {
      py.Py_DecRef(threading);
    } else {
      py.PyErr_Clear();
    }
    mainState = py.PyEval_SaveThread();
  }
  if (!ok && py.library && py.Py_IsInitialized()) {
    py.PyErr_Clear();
    py.Py_FinalizeEx();  // started but unusable: undo, so a later initialize can try again
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    startError_ = ok ? "" : error;
    startDone_ = true;
  }
  cv_.notify_all();
  if (!ok) return;

  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return stopRequested_; });
  lock.unlock();
  py.PyEval_RestoreThread(mainState);
  if (sharedHelpers.stopLoop) {
    PyObject* r = CallVector(sharedHelpers.stopLoop, nullptr, 0, nullptr);
    if (r) py.Py_DecRef(r);
    else py.PyErr_Clear();
  }
  std::string refusal;
  if (sharedHelpers.restartHazards) {
    PyObject* reason = CallVector(sharedHelpers.restartHazards, nullptr, 0, nullptr);
    Py_ssize_t n = 0;
    const char* text = reason ? py.PyUnicode_AsUTF8AndSize(reason, &n) : nullptr;
    if (text) refusal.assign(text, static_cast<size_t>(n));
    if (reason) py.Py_DecRef(reason);
    py.PyErr_Clear();
  }
  UnloadPythonHelpers(sharedHelpers, true);
  ClearBufferType();
  int rc = py.Py_FinalizeEx();
  lock.lock();
  finalizeResult_ = rc;
  restartRefusal_ = refusal;
  stopped_ = true;
  cv_.notify_all();
}

void Engine::Stop() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!thread_.joinable() || stopped_) return;
  stopRequested_ = true;
  cv_.notify_all();
  cv_.wait(lock, [this] { return stopped_; });
  lock.unlock();
  thread_.join();
  lock.lock();
  wasStopped_.store(true, std::memory_order_release);
  set_state(EngineState::kStopped);
}
