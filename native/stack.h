// C stack accounting. JS -> Python -> JS -> ... recursion uses native stack that neither V8's nor
// Python's recursion limits see in full, so pyembed checks the real stack at each crossing and
// fails with an error before the thread runs out.
#pragma once

#include <v8.h>

#include <cstddef>

// True when the calling thread has less than `reserve` bytes of stack left.
bool StackNearlyExhausted(size_t reserve = 256 * 1024);
// Tells V8 where this thread's stack ends (for threads V8 did not start, e.g. Python threads).
void SetV8StackLimitForThisThread(v8::Isolate* isolate);
