/*
 * The C floor of bench/peers.mjs: the same workloads, done by a C program through the CPython C
 * API, with the conversions a binding has to make (Python ints to C integers and back, str to
 * UTF-8, bytes and buffers to C memory), and nothing else. No binding can do the same work for
 * less. Compiled at bench time (build/bench/floor) with `python3-config --includes` and
 * `python3-config --ldflags --embed`; prints one JSON line per workload, as the JS peers do.
 *
 *   floor BENCH_DIR ROUNDS ROUND_MS CELL_S LIST_N DICT_N BYTES_N CALLBACKS NUMPY_BYTES [WORKLOADS]
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static PyObject *noop_f, *three_f, *holder, *attr_name, *big_list, *big_dict, *big_bytes,
    *call_n_f, *c_ident_f, *big_array, *callbacks_obj;
static long list_n, dict_n, bytes_n, callbacks_n, numpy_bytes;
static char *scratch;
static char *c_bytes;
static long long *c_ints;
static volatile long long sink;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Python calls this C function as the callback (Python -> C -> Python). */
static PyObject *c_ident(PyObject *self, PyObject *arg) {
  (void)self;
  Py_INCREF(arg);
  return arg;
}
static PyMethodDef c_ident_def = {"c_ident", c_ident, METH_O, NULL};

static int op_noop(long reps) {
  for (long i = 0; i < reps; i++) {
    PyObject *r = PyObject_CallNoArgs(noop_f);
    if (r == NULL) return -1;
    Py_DECREF(r);
  }
  return 0;
}

static int op_three(long reps) {
  for (long i = 0; i < reps; i++) {
    PyObject *args[3] = {PyLong_FromLong(1), PyUnicode_FromStringAndSize("a", 1), PyFloat_FromDouble(2.5)};
    PyObject *r = PyObject_Vectorcall(three_f, args, 3, NULL);
    Py_DECREF(args[0]);
    Py_DECREF(args[1]);
    Py_DECREF(args[2]);
    if (r == NULL) return -1;
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(r, &len);
    if (s == NULL) { Py_DECREF(r); return -1; }
    memcpy(scratch, s, (size_t)len);
    Py_DECREF(r);
  }
  return 0;
}

static int op_attr(long reps) {
  for (long i = 0; i < reps; i++) {
    PyObject *r = PyObject_GetAttr(holder, attr_name);
    if (r == NULL) return -1;
    sink = PyLong_AsLongLong(r);
    Py_DECREF(r);
  }
  return 0;
}

/* list -> C array of integers -> a new list */
static int op_list(long reps) {
  for (long i = 0; i < reps; i++) {
    Py_ssize_t n = PyList_GET_SIZE(big_list);
    for (Py_ssize_t k = 0; k < n; k++) c_ints[k] = PyLong_AsLongLong(PyList_GET_ITEM(big_list, k));
    if (PyErr_Occurred()) return -1;
    PyObject *back = PyList_New(n);
    if (back == NULL) return -1;
    for (Py_ssize_t k = 0; k < n; k++) {
      PyObject *v = PyLong_FromLongLong(c_ints[k]);
      if (v == NULL) { Py_DECREF(back); return -1; }
      PyList_SET_ITEM(back, k, v);
    }
    Py_DECREF(back);
  }
  return 0;
}

/* dict -> UTF-8 keys copied out and C integer values */
static int op_dict(long reps) {
  for (long i = 0; i < reps; i++) {
    Py_ssize_t pos = 0, at = 0;
    PyObject *key, *value;
    while (PyDict_Next(big_dict, &pos, &key, &value)) {
      Py_ssize_t len;
      const char *s = PyUnicode_AsUTF8AndSize(key, &len);
      if (s == NULL) return -1;
      memcpy(scratch + at, s, (size_t)len);
      at += len;
      c_ints[pos % dict_n] = PyLong_AsLongLong(value);
    }
  }
  return 0;
}

/* C memory -> bytes, and bytes -> new C memory */
static int op_bytes(long reps) {
  for (long i = 0; i < reps; i++) {
    PyObject *b = PyBytes_FromStringAndSize(c_bytes, bytes_n);
    if (b == NULL) return -1;
    Py_DECREF(b);
    char *p;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(big_bytes, &p, &len) < 0) return -1;
    char *copy = malloc((size_t)len);
    memcpy(copy, p, (size_t)len);
    sink = copy[len - 1];
    free(copy);
  }
  return 0;
}

static int op_callbacks(long reps) {
  for (long i = 0; i < reps; i++) {
    PyObject *args[2] = {c_ident_f, callbacks_obj};
    PyObject *r = PyObject_Vectorcall(call_n_f, args, 2, NULL);
    if (r == NULL) return -1;
    Py_DECREF(r);
  }
  return 0;
}

/* the array's buffer -> new C memory (a copy; a view would cost nothing) */
static int op_numpy(long reps) {
  for (long i = 0; i < reps; i++) {
    Py_buffer view;
    if (PyObject_GetBuffer(big_array, &view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    char *copy = malloc((size_t)view.len);
    memcpy(copy, view.buf, (size_t)view.len);
    sink = copy[view.len - 1];
    free(copy);
    PyBuffer_Release(&view);
  }
  return 0;
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    if ((unsigned char)*s < 0x20) printf("\\u%04x", *s); else putchar(*s);
  }
  putchar('"');
}

static void report_error(const char *name) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyObject *text = value ? PyObject_Str(value) : NULL;
  const char *msg = text ? PyUnicode_AsUTF8(text) : "unknown error";
  printf("{\"type\":\"skip\",\"workload\":\"%s\",\"reason\":", name);
  json_string(msg ? msg : "unknown error");
  printf("}\n");
  fflush(stdout);
  Py_XDECREF(text);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  PyErr_Clear();
}

static int rounds;
static double round_s, cell_s;
static const char *wanted;

static int selected(const char *name) {
  if (wanted == NULL || *wanted == '\0') return 1;
  size_t n = strlen(name);
  for (const char *p = wanted; (p = strstr(p, name)) != NULL; p += n) {
    if ((p == wanted || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
  }
  return 0;
}

/* Calibrated like bench/lib/measure.mjs: rounds of ~round_s, at most cell_s in all (>= 3 rounds). */
static void measure(const char *name, int (*op)(long), double units, const char *note) {
  if (!selected(name)) return;
  if (op(1) < 0) { report_error(name); return; }
  long reps = 1;
  double t;
  for (;;) {
    double t0 = now();
    if (op(reps) < 0) { report_error(name); return; }
    t = now() - t0;
    if (t >= round_s / 4 || reps >= (1L << 30)) break;
    reps *= 2;
  }
  double per_op = t / (double)reps;
  reps = (long)(round_s / per_op + 0.5);
  if (reps < 1) reps = 1;
  int count = rounds;
  if ((double)count * (double)reps * per_op > cell_s) {
    count = (int)(cell_s / ((double)reps * per_op));
    if (count < 3) count = 3;
  }
  printf("{\"type\":\"result\",\"workload\":\"%s\",\"units\":%.0f,\"reps\":%ld,\"samples\":[", name, units, reps);
  double best = 0;
  for (int r = 0; r < count; r++) {
    double t0 = now();
    if (op(reps) < 0) { printf("]}\n"); report_error(name); return; }
    double rate = (double)reps * units / (now() - t0);
    if (rate > best) best = rate;
    printf("%s%.6g", r ? "," : "", rate);
  }
  printf("]");
  if (note) { printf(",\"note\":"); json_string(note); }
  printf("}\n");
  fflush(stdout);
  fprintf(stderr, "  %-18s %-10s %14.0f ops/s (best round)\n", "c", name, best);
}

/* What fresh memory costs on this machine (page faults) against copying into memory in use:
 * every transfer that allocates new buffers pays the first, and on some VMs it dominates. */
static void memory_probe(void) {
  const size_t n = 8u << 20;
  const int times = 8;
  double t0 = now();
  for (int i = 0; i < times; i++) {
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    memset(p, 1, n);
    munmap(p, n);
  }
  double fresh = now() - t0;
  char *a = malloc(n), *b = malloc(n);
  memset(a, 1, n);
  memset(b, 2, n);
  t0 = now();
  for (int i = 0; i < times; i++) { memcpy(b, a, n); a[i] = b[n - 1 - i]; }
  double copy = now() - t0;
  sink = b[n / 2];
  free(a);
  free(b);
  printf("{\"type\":\"machine\",\"freshUsPerMB\":%.1f,\"memcpyUsPerMB\":%.1f}\n",
         fresh / times / 8 * 1e6, copy / times / 8 * 1e6);
  fflush(stdout);
}

static PyObject *get(PyObject *module, const char *name) {
  PyObject *r = PyObject_GetAttrString(module, name);
  if (r == NULL) { PyErr_Print(); exit(1); }
  return r;
}

int main(int argc, char **argv) {
  if (argc < 10) {
    fprintf(stderr, "usage: %s BENCH_DIR ROUNDS ROUND_MS CELL_S LIST_N DICT_N BYTES_N CALLBACKS NUMPY_BYTES [WORKLOADS]\n", argv[0]);
    return 2;
  }
  const char *bench_dir = argv[1];
  rounds = atoi(argv[2]);
  round_s = atof(argv[3]) / 1000.0;
  cell_s = atof(argv[4]);
  list_n = atol(argv[5]);
  dict_n = atol(argv[6]);
  bytes_n = atol(argv[7]);
  callbacks_n = atol(argv[8]);
  numpy_bytes = atol(argv[9]);
  wanted = argc > 10 ? argv[10] : NULL;

  memory_probe();
  Py_Initialize();
  PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
  PyObject *dir = PyUnicode_FromString(bench_dir);
  PyList_Insert(sys_path, 0, dir);
  Py_DECREF(dir);
  PyObject *m = PyImport_ImportModule("peers");
  if (m == NULL) { PyErr_Print(); return 1; }
  PyObject *info = PyObject_CallMethod(m, "setup", "llll", list_n, dict_n, bytes_n, numpy_bytes);
  if (info == NULL) { PyErr_Print(); return 1; }
  PyObject *json = PyImport_ImportModule("json");
  PyObject *info_text = PyObject_CallMethod(json, "dumps", "O", info);
  printf("{\"type\":\"info\",%s\n", PyUnicode_AsUTF8(info_text) + 1);
  fflush(stdout);

  noop_f = get(m, "noop");
  three_f = get(m, "three");
  holder = get(m, "holder");
  attr_name = PyUnicode_InternFromString("attr");
  big_list = get(m, "big_list");
  big_dict = get(m, "big_dict");
  big_bytes = get(m, "big_bytes");
  call_n_f = get(m, "call_n");
  big_array = get(m, "big_array");
  c_ident_f = PyCFunction_New(&c_ident_def, NULL);
  callbacks_obj = PyLong_FromLong(callbacks_n);

  size_t scratch_size = 64 + (size_t)dict_n * 32;
  scratch = malloc(scratch_size);
  c_ints = malloc(sizeof(long long) * (size_t)(list_n > dict_n ? list_n : dict_n) + 8);
  c_bytes = malloc((size_t)bytes_n + 1);
  memset(c_bytes, 7, (size_t)bytes_n);

  measure("noop", op_noop, 1, NULL);
  measure("three", op_three, 1, "C values in (PyLong, PyUnicode, PyFloat), UTF-8 out");
  measure("attr", op_attr, 1, "`PyObject_GetAttr` + `PyLong_AsLongLong`");
  measure("list", op_list, 1, "to a C array of integers and back to a new list");
  measure("dict", op_dict, 1, "keys copied out as UTF-8, values as C integers");
  measure("bytes", op_bytes, 1, "a copy each way");
  measure("callbacks", op_callbacks, (double)callbacks_n, "Python calls a C function");
  if (selected("async")) {
    printf("{\"type\":\"skip\",\"workload\":\"async\",\"reason\":\"no C equivalent measured\"}\n");
  }
  if (big_array != Py_None) {
    measure("numpy", op_numpy, 1, "the buffer copied (`PyObject_GetBuffer` + memcpy)");
  } else if (selected("numpy")) {
    printf("{\"type\":\"skip\",\"workload\":\"numpy\",\"reason\":\"numpy is not importable\"}\n");
  }
  fflush(stdout);
  return 0;
}
