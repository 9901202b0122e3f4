#include "stack.h"

#include <pthread.h>

#include <cstdint>

namespace {

struct StackBounds {
  uintptr_t low = 0;  // lowest usable address (stacks grow down on every platform we build for)
  bool known = false;
};

thread_local StackBounds bounds;

const StackBounds& CurrentBounds() {
  if (!bounds.known) {
    bounds.known = true;
    pthread_attr_t attr;
#ifdef __APPLE__
    void* top = pthread_get_stackaddr_np(pthread_self());
    size_t size = pthread_get_stacksize_np(pthread_self());
    bounds.low = reinterpret_cast<uintptr_t>(top) - size;
    (void)attr;
#else
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      void* addr = nullptr;
      size_t size = 0;
      if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
        bounds.low = reinterpret_cast<uintptr_t>(addr);
      }
      pthread_attr_destroy(&attr);
    }
#endif
  }
  return bounds;
}

uintptr_t Here() {
  volatile char marker = 0;
  return reinterpret_cast<uintptr_t>(&marker);
}

}  // namespace

bool StackNearlyExhausted(size_t reserve) {
  const StackBounds& b = CurrentBounds();
  if (!b.low) return false;
  uintptr_t sp = Here();
  return sp < b.low + reserve;
}

void SetV8StackLimitForThisThread(v8::Isolate* isolate) {
  const StackBounds& b = CurrentBounds();
  if (!b.low) return;
  // V8's usual budget (about 1 MB below here), but never closer than 192 KB to the end of the
  // thread's stack: the rest is for the native frames of pyembed and Python.
  uintptr_t usual = Here() - 984 * 1024;
  uintptr_t floor = b.low + 192 * 1024;
  isolate->SetStackLimit(usual > floor ? usual : floor);
}
