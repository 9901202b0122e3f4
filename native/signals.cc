#include "signals.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <mutex>
#include <thread>

#include "engine.h"
#include "gil.h"
#include "interrupt.h"

std::atomic<uint64_t> mainThreadCallEpoch{0};
std::atomic<bool> interruptHandlerInstalled{false};

namespace {

std::mutex handlerMu;          // install and restore
struct sigaction nodeAction;   // what was there before ours (under handlerMu)
int wakePipe[2] = {-1, -1};    // the signal handler writes, the watcher reads
unsigned long mainPythonThread = 0;
std::once_flag started;
std::atomic<bool> sigintPending{false};  // the pipe also wakes the watcher for terminations

void OnInterrupt(int sig, siginfo_t* info, void* context) {
  // Async-signal context: only async-signal-safe calls here.
  if (mainThreadCallEpoch.load(std::memory_order_acquire) & 1) {
    sigintPending.store(true, std::memory_order_release);
    char byte = 1;
    ssize_t ignored = write(wakePipe[1], &byte, 1);
    (void)ignored;
    return;
  }
  // Not in a Python call (the call ended a moment ago): do what Node would have done.
  if (nodeAction.sa_flags & SA_SIGINFO) {
    if (nodeAction.sa_sigaction) nodeAction.sa_sigaction(sig, info, context);
  } else if (nodeAction.sa_handler == SIG_DFL) {
    sigaction(SIGINT, &nodeAction, nullptr);
    raise(SIGINT);
  } else if (nodeAction.sa_handler != SIG_IGN && nodeAction.sa_handler) {
    nodeAction.sa_handler(sig);
  }
}

void Install() {
  std::lock_guard<std::mutex> lock(handlerMu);
  if (interruptHandlerInstalled.load(std::memory_order_relaxed)) return;
  struct sigaction ours = {};
  ours.sa_sigaction = OnInterrupt;
  ours.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&ours.sa_mask);
  if (sigaction(SIGINT, &ours, &nodeAction) == 0) {
    interruptHandlerInstalled.store(true, std::memory_order_release);
    // The call may have ended while we installed: put Node's handler back at once.
    if (!(mainThreadCallEpoch.load(std::memory_order_acquire) & 1)) {
      sigaction(SIGINT, &nodeAction, nullptr);
      interruptHandlerInstalled.store(false, std::memory_order_release);
    }
  }
}

void RaiseKeyboardInterrupt() {
  PythonCall call;  // attaches the watcher (it has its own thread state)
  if (!call.ok()) return;
  // Through interrupt.cc: posted only while the call runs, withdrawn if it ends first.
  if (mainThreadCallEpoch.load(std::memory_order_acquire) & 1) InterruptThread(mainPythonThread, tls);
}

void Watch() {
  tls.pythonName = "pyembed-interrupts";
  tls.pythonDaemon = true;
  tls.internalThread = true;
#ifdef __linux__
  // Woken by a JS thread (an abort(), a terminate()), it must not preempt that thread on its
  // core: the JS thread goes on with its event loop while this one waits for the GIL.
  sched_param batch{};
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
#endif
  uint64_t seen = 0;
  for (;;) {
    pollfd fd = {wakePipe[0], POLLIN, 0};
    int ready = poll(&fd, 1, 100);
    if (ready > 0) {
      char buffer[64];
      while (read(wakePipe[0], buffer, sizeof buffer) > 0) {
      }
      if (sigintPending.exchange(false, std::memory_order_acq_rel) && engine.running()) {
        RaiseKeyboardInterrupt();
      }
    }
    // Cancellations from JS threads; workers being terminated: at once, then every 100 ms while
    // one is still in Python.
    if (InterruptWorkPending()) DoInterruptWork();
    if (ready > 0) continue;
    uint64_t now = mainThreadCallEpoch.load(std::memory_order_acquire);
    // The same synchronous call as 100 ms ago: it is a long one, let Ctrl-C reach it.
    if ((now & 1) && now == seen && !interruptHandlerInstalled.load(std::memory_order_acquire)) {
      Install();
    }
    seen = now;
  }
}

}  // namespace

void RestoreNodeInterruptHandler() {
  std::lock_guard<std::mutex> lock(handlerMu);
  if (!interruptHandlerInstalled.load(std::memory_order_relaxed)) return;
  sigaction(SIGINT, &nodeAction, nullptr);
  interruptHandlerInstalled.store(false, std::memory_order_release);
}

void StartInterruptWatcher() {
  mainPythonThread = py.PyThread_get_thread_ident();
  StartWatcher();
}

void WakeWatcher() {
  StartWatcher();
  char byte = 2;
  ssize_t ignored = write(wakePipe[1], &byte, 1);
  (void)ignored;
}

void StartWatcher() {
  std::call_once(started, [] {
    if (pipe(wakePipe) != 0) return;
    for (int fd : wakePipe) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    std::thread(Watch).detach();
  });
}
