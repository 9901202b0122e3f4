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
// On Node's main thread, when Python calls back into JS inside a call from JS: V8's budget there is 984 KB for the
// whole thread, which nested JS -> Python -> JS calls (a few KB of native frames each) would use
// up after about 200 levels. Gives the callback V8's usual budget below the current position
// instead, never closer than 192 KB to the end of the stack (the margin Node leaves on worker
// threads, whose V8 limit is already that). Only ever lowers the limit, so JS never gets less
// stack than Node gave it.
void LowerV8StackLimitFromHere(v8::Isolate* isolate, ThreadContext& ctx);
inline void ExtendV8StackLimitOnMainThread(v8::Isolate* isolate, ThreadContext& ctx = tls) {
  // Only inside a synchronous call from JS (see stack.cc). The usual case, a callback no deeper
  // than where the limit was last lowered, would change nothing: checked here, inline.
  if (!ctx.isMainJsThread || ctx.callDepth == 0) return;
  constexpr uintptr_t kV8Budget = 984 * 1024;  // V8's own, on Node's main thread
  if (ctx.v8StackLimit &&
      reinterpret_cast<uintptr_t>(__builtin_frame_address(0)) - kV8Budget >= ctx.v8StackLimit) {
    return;
  }
  LowerV8StackLimitFromHere(isolate, ctx);
}
// On Node's main thread, in a native recursion that calls V8 at each level (a conversion walking
// nested containers): V8 14 checks that such calls run above its stack limit (a fatal
// "IsOnCentralStack" otherwise), and that limit lies 984 KB below the stack's start, far above
// where pyembed's own check (StackNearlyExhausted) stops. Close to it, lowers it as
// ExtendV8StackLimitOnMainThread does (never raises it).
void LowerV8StackLimitForWalk(v8::Isolate* isolate, ThreadContext& ctx);
