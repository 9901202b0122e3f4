{
  "targets": [
    {
      "target_name": "pyembed",
      "sources": [
        "native/addon.cc",
        "native/async_pool.cc",
        "native/buffers.cc",
        "native/callbacks.cc",
        "native/capi.cc",
        "native/convert.cc",
        "native/engine.cc",
        "native/errors.cc",
        "native/gil.cc",
        "native/handles.cc",
        "native/interrupt.cc",
        "native/js_thread.cc",
        "native/names.cc",
        "native/python_helpers.cc",
        "native/signals.cc",
        "native/stack.cc"
      ],
      "cflags_cc": ["-std=c++20", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-cast-function-type",
                     "-fvisibility=hidden", "-fvisibility-inlines-hidden", "-fno-semantic-interposition"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "libraries": ["-ldl", "-lpthread"],
      "xcode_settings": {
        "CLANG_CXX_LANGUAGE_STANDARD": "c++20",
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "OTHER_CPLUSPLUSFLAGS": ["-O2"]
      }
    }
  ]
}
