#include "stack.h"

#include <pthread.h>

#include <cstdint>

namespace {

// The calling thread's stack: its lowest usable address and where it starts (stacks grow down on
// every platform we build for); both 1 when they cannot be known (then nothing is checked).
void FindStack(uintptr_t* low, uintptr_t* high) {
  *low = *high = 1;
#ifdef __APPLE__
  void* top = pthread_get_stackaddr_np(pthread_self());
  size_t size = pthread_get_stacksize_np(pthread_self());
  *high = reinterpret_cast<uintptr_t>(top);
  *low = *high - size;
#else
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
      *low = reinterpret_cast<uintptr_t>(addr);
      *high = *low + size;
    }
    pthread_attr_destroy(&attr);
  }
#endif
}

}  // namespace

uintptr_t StackLow(ThreadContext& ctx) {
  if (ctx.stackLow == 0) FindStack(&ctx.stackLow, &ctx.stackHigh);
  return ctx.stackLow;
}

namespace {

uintptr_t Here() {
  volatile char marker = 0;
  return reinterpret_cast<uintptr_t>(&marker);
}

// V8's usual budget (about 1 MB below here), but never closer than 192 KB to the end of the
// thread's stack: the rest is for the native frames of pyembed and Python. 0: not known.
uintptr_t LimitFromHere(uintptr_t low) {
  if (low <= 1) return 0;
  uintptr_t usual = Here() - 984 * 1024;
  uintptr_t floor = low + 192 * 1024;
  return usual > floor ? usual : floor;
}

}  // namespace

void SetV8StackLimitForThisThread(v8::Isolate* isolate) {
  uintptr_t limit = LimitFromHere(StackLow(tls));
  if (limit) isolate->SetStackLimit(limit);
}

void LowerV8StackLimitFromHere(v8::Isolate* isolate, ThreadContext& ctx) {
  // Only inside a synchronous call from JS (ExtendV8StackLimitOnMainThread checks): V8's own
  // limit lies 984 KB below where the isolate started, and a callback nested in a call from JS
  // runs well below that point, so even the first value set here is lower than V8's.
  uintptr_t limit = LimitFromHere(StackLow(ctx));
  if (!limit || (ctx.v8StackLimit && limit >= ctx.v8StackLimit)) return;
  ctx.v8StackLimit = limit;
  isolate->SetStackLimit(limit);
}

void LowerV8StackLimitForWalk(v8::Isolate* isolate, ThreadContext& ctx) {
  if (StackLow(ctx) <= 1) return;
  // V8's own limit lies about 984 KB below the start (a little lower in fact: it counts from where
  // the isolate was made), or where pyembed lowered it.
  const uintptr_t current = ctx.v8StackLimit ? ctx.v8StackLimit : ctx.stackHigh - 984 * 1024;
  if (Here() > current + 128 * 1024) return;  // the usual case: far above it
  const uintptr_t limit = LimitFromHere(ctx.stackLow);
  if (!limit || limit >= current) return;
  ctx.v8StackLimit = limit;
  isolate->SetStackLimit(limit);
}
