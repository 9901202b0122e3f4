// A condition variable whose notify never waits for the threads it wakes.
//
// glibc's pthread_cond_signal/broadcast may block (in __condvar_quiesce_and_switch_g1) until
// waiters woken earlier have left the wait: when the notifier is a JS thread and the woken
// thread a callAsync pool thread that the scheduler has not run yet, the event loop stalls
// (perf sched: ~460 such waits in 3 s of four no-op callAsync loops). Here a notify is an atomic
// increment and, when someone waits, one FUTEX_WAKE, which never blocks. Same use as
// std::condition_variable: the state it guards changes under the same mutex.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <condition_variable>
#include <mutex>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

class WakeCondition {
 public:
  // Caller holds `lock`. May return spuriously (as std::condition_variable::wait).
  void wait(std::unique_lock<std::mutex>& lock) {
    waiters_.fetch_add(1);  // before reading seq_: a notify after this sees a waiter
    uint32_t seen = seq_.load();
    lock.unlock();
    Sleep(seen);
    waiters_.fetch_sub(1);
    lock.lock();
  }
  template <typename Pred>
  void wait(std::unique_lock<std::mutex>& lock, Pred done) {
    while (!done()) wait(lock);
  }
  void notify_one() { Notify(1); }
  void notify_all() { Notify(INT_MAX); }

 private:
  void Notify(int count) {
    seq_.fetch_add(1);
    if (waiters_.load() != 0) Wake(count);
  }
#ifdef __linux__
  // Returns at once when seq_ moved on since `seen` (a notify came after the caller unlocked).
  void Sleep(uint32_t seen) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&seq_), FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
  }
  void Wake(int count) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&seq_), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
  }
#else
  // Elsewhere a condition variable of its own (no glibc there); the notifier takes its mutex
  // only to order the wake after a sleeper's check, never to wait for the sleeper.
  void Sleep(uint32_t seen) {
    std::unique_lock<std::mutex> lock(sleepMu_);
    sleepCv_.wait(lock, [&] { return seq_.load() != seen; });
  }
  void Wake(int count) {
    { std::lock_guard<std::mutex> lock(sleepMu_); }
    if (count == 1) sleepCv_.notify_one();
    else sleepCv_.notify_all();
  }
  std::mutex sleepMu_;
  std::condition_variable sleepCv_;
#endif
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "a futex word");
  std::atomic<uint32_t> seq_{0};
  std::atomic<int> waiters_{0};
};
