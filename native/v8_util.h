// Small helpers over the V8 API used by several files.
#pragma once

#include <v8.h>

// For V8 results we deliberately ignore (a failure leaves a pending exception the caller sees).
template <typename T>
inline void IgnoreResult(T&&) {}

template <typename T>
inline v8::MaybeLocal<v8::Value> AsValue(v8::MaybeLocal<T> maybe) {
  v8::Local<T> local;
  if (!maybe.ToLocal(&local)) return {};
  return local;
}
