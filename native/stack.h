// C stack accounting. JS -> Python -> JS -> ... recursion uses native stack that neither V8's nor
// Python's recursion limits see in full, so pyembed checks the real stack at each crossing and
// fails with an error before the thread runs out.
#pragma once

#include <v8.h>

#include <cstddef>
#include <cstdint>

#include "gil.h"

uintptr_t StackLow(ThreadContext& ctx);

// True when the calling thread (whose context is `ctx`) has less than `reserve` bytes of stack.
inline bool StackNearlyExhausted(ThreadContext& ctx = tls, size_t reserve = 256 * 1024) {
  uintptr_t low = ctx.stackLow ? ctx.stackLow : StackLow(ctx);
  return low > 1 && reinterpret_cast<uintptr_t>(__builtin_frame_address(0)) < low + reserve;
}
// Tells V8 where this thread's stack ends (for threads V8 did not start, e.g. Python threads).
void SetV8StackLimitForThisThread(v8::Isolate* isolate);
