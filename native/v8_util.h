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

// V8 API differences between the Node majors pyembed supports (20: V8 11, 22: V8 12, 24: V8 13,
// 26: V8 14). V8 13 added the V2 string writes and GetPrototypeV2; V8 14 removed the old forms
// and made internal-field pointers take a type tag.
inline v8::Local<v8::Value> PrototypeOf(v8::Local<v8::Object> obj) {
#if V8_MAJOR_VERSION >= 13
  return obj->GetPrototypeV2();
#else
  return obj->GetPrototype();
#endif
}

inline v8::Maybe<bool> SetPrototypeOf(v8::Local<v8::Object> obj, v8::Local<v8::Context> ctx, v8::Local<v8::Value> proto) {
#if V8_MAJOR_VERSION >= 13
  return obj->SetPrototypeV2(ctx, proto);
#else
  return obj->SetPrototype(ctx, proto);
#endif
}

inline v8::MaybeLocal<v8::Context> CreationContextOf(v8::Isolate* isolate, v8::Local<v8::Object> obj) {
#if V8_MAJOR_VERSION >= 13
  return obj->GetCreationContext(isolate);
#else
  (void)isolate;
  return obj->GetCreationContext();
#endif
}

// Copies `length` Latin-1 code units of a one-byte string (no terminating NUL).
inline void WriteLatin1(v8::Isolate* isolate, v8::Local<v8::String> s, uint8_t* out, int length) {
#if V8_MAJOR_VERSION >= 13
  s->WriteOneByteV2(isolate, 0, static_cast<uint32_t>(length), out);
#else
  s->WriteOneByte(isolate, out, 0, length, v8::String::NO_NULL_TERMINATION);
#endif
}

// Copies `length` UTF-16 code units (no terminating NUL).
inline void WriteUtf16(v8::Isolate* isolate, v8::Local<v8::String> s, uint16_t* out, int length) {
#if V8_MAJOR_VERSION >= 13
  s->WriteV2(isolate, 0, static_cast<uint32_t>(length), out);
#else
  s->Write(isolate, out, 0, length, v8::String::NO_NULL_TERMINATION);
#endif
}

inline void SetFieldPointer(v8::Local<v8::Object> obj, int index, void* value) {
#if V8_MAJOR_VERSION >= 14
  obj->SetAlignedPointerInInternalField(index, value, v8::kEmbedderDataTypeTagDefault);
#else
  obj->SetAlignedPointerInInternalField(index, value);
#endif
}

inline void* FieldPointer(v8::Local<v8::Object> obj, int index) {
#if V8_MAJOR_VERSION >= 14
  return obj->GetAlignedPointerFromInternalField(index, v8::kEmbedderDataTypeTagDefault);
#else
  return obj->GetAlignedPointerFromInternalField(index);
#endif
}
