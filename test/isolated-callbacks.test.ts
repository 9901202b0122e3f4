// Isolated workers (CPython 3.12+): JS callbacks from Python threads that the worker's own
// interpreter started, JSError and JsProxy there, JS bytes as Python buffers, PyModule.expose,
// GC of proxies, and the hint for extension modules without a GIL per interpreter. Every scenario
// runs in a child process with PYEMBED_PYTHON pointing at pyenv's 3.12 / 3.13 (skipped when not
// installed), so a crash or a deadlock is a failed test.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { explain, lastJson, pyenvPython, pyenvRoot, runScript, tmpDir } from './helpers.js';

// Script code: waits for a Python thread to call back while the worker idles (a promise alone
// does not keep a worker's event loop alive).
const IDLE_WAIT = `
  const idleWait = (start) => {
    const keepAlive = setInterval(() => {}, 1000);
    return new Promise(start).finally(() => clearInterval(keepAlive));
  };`;

// Runs the worker part of a script in one isolated worker and prints what it posts back.
const MAIN_RUNS_ONE_WORKER = `
  import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
  import { PythonEngine, Py, PyModule, PythonError } from 'pyembed';
${IDLE_WAIT}
  if (isMainThread) {
    PythonEngine.initialize();
    const w = new Worker(new URL(import.meta.url), { workerData: 'isolated' });
    const out = await new Promise((resolve, reject) => { w.on('message', resolve); w.on('error', reject); });
    console.log(JSON.stringify(out));
  } else {
    PythonEngine.initialize({ interpreter: 'isolated' });
    parentPort.postMessage(await work());
  }
`;

// Python helpers used by the worker scripts: in_thread runs fn(*args) on a new threading.Thread
// and joins it (the worker waits inside that synchronous call meanwhile).
const THREAD_HELPERS = `[
  'import threading, time',
  'def in_thread(fn, *args):',
  '    box = {}',
  '    def go():',
  '        try: box["value"] = fn(*args)',
  '        except BaseException as e: box["error"] = e',
  '    t = threading.Thread(target=go)',
  '    t.start(); t.join()',
  '    if "error" in box: raise box["error"]',
  '    return box.get("value")',
  'def sum_calls(f, n):',
  '    return sum(f(i) for i in range(n))',
  'def later(f, n, done):',
  '    def go():',
  '        time.sleep(0.05)',
  '        try: done(sum(f(i) for i in range(n)))',
  '        except BaseException as e: done(type(e).__name__ + ": " + str(e))',
  '    threading.Thread(target=go).start()',
].join('\\n')`;

const CALLBACKS = MAIN_RUNS_ONE_WORKER + `
  async function work() {
    const m = PyModule.fromString('iso_threads', ${THREAD_HELPERS} + '\\n' + [
      'def caught(f):',
      '    try: f()',
      '    except Exception as e: return [type(e).__name__, type(e).__module__, e.name, str(e)]',
      'def use_proxy(obj):',
      '    obj.count += 1',
      '    return [obj.name, obj.greet("py"), len(obj.items), list(obj.items)]',
      'def later_collect(f, done):',
      '    def go():',
      '        time.sleep(0.05)',
      '        try: done([f(i) for i in range(3)])',
      '        except BaseException as e: done([type(e).__name__, str(e)])',
      '    threading.Thread(target=go).start()',
      'def proxy_error(obj):',
      '    try: obj.fail()',
      '    except Exception as e: return [type(e).__name__, e.name, str(e)]',
    ].join('\\n'));
    const out = {};
    globalThis.__marker = 1;
    let runs = 0;
    const double = (i) => { runs++; return i * 2; };
    // While the worker is inside a synchronous call (the join): 100 callbacks from the thread.
    out.sync = m.in_thread(m.sum_calls, double, 100);
    out.syncRuns = runs;
    // The JS thread stays this worker's: a callback from the thread sees the worker's globals.
    out.workerGlobals = m.in_thread(() => typeof work === 'function' && globalThis.__marker === 1, 0) ?? null;
    // A JS error is pyembed's JSError in Python, on the worker's thread and on a Python thread.
    out.jsErrorHere = m.caught(() => { throw new TypeError('bad input'); }).toJS();
    const here = new SyntaxError('here');
    try { m.sum_calls(() => { throw here; }, 1); } catch (e) { out.sameErrorHere = e === here; }
    out.jsError = m.in_thread(m.caught, () => { throw new TypeError('bad input'); }).toJS();
    // ... and, raised again to JS, is the original JS value.
    const original = new RangeError('out of range');
    try { m.in_thread(() => { throw original; }); } catch (e) { out.sameError = e === original; }
    // While the worker is idle in its event loop.
    runs = 0;
    out.idle = await idleWait((resolve) => m.later(double, 50, resolve));
    out.idleRuns = runs;
    // ... with objects as results (made Python on the worker's thread), and a JS error.
    const collected = await idleWait((resolve) => m.later_collect((i) => ({ i, items: [i, 'x'] }), resolve));
    out.idleObjects = collected.toJS();
    const failed = await idleWait((resolve) => m.later_collect(() => { throw new Error('idle failure'); }, resolve));
    out.idleError = failed.toJS();
    // A JS object by reference (JsProxy), used from the Python thread.
    const obj = { name: 'box', count: 0, items: [1, 2, 3], greet(who) { return 'hi ' + who + ' from ' + this.name; },
                  fail() { throw new Error('proxied failure'); } };
    out.proxy = m.in_thread(m.use_proxy, Py.ref(obj)).toJS();
    out.proxyCount = obj.count;
    out.proxyError = m.in_thread(m.proxy_error, Py.ref(obj)).toJS();
    out.threadIdent = m.in_thread(() => Py.import('threading').get_ident(), 0);
    return out;
  }
`;

// JS bytes as Python buffers, zero-copy, in the worker's own interpreter; also a view made on a
// Python thread (a callback's result) and views that outlive the worker's interpreter (shutdown).
const BUFFERS = MAIN_RUNS_ONE_WORKER + `
  async function work() {
    const m = PyModule.fromString('iso_bytes', ${THREAD_HELPERS} + '\\n' + [
      'kept = []',
      'def fill(view, start):',
      '    for i in range(len(view)): view[i] = start + i',
      '    return [type(view).__name__, view.format, view.itemsize, len(view), view.readonly, type(view.obj).__name__]',
      'def fill_result(f, start):',
      '    return fill(f(), start)',
      'def keep(view):',
      '    kept.append(view)',
    ].join('\\n'));
    const out = {};
    const bytes = new Uint8Array(4);
    out.info = m.fill(bytes, 10).toJS();
    out.bytes = [...bytes];
    const floats = new Float64Array(3);
    out.floatInfo = m.fill(floats, 0.5).toJS();
    out.floats = [...floats];
    const buf = Buffer.alloc(3);
    m.in_thread(m.fill, buf, 7);
    out.buf = [...buf];
    const fromThread = new Int32Array(2);
    out.threadInfo = m.in_thread(m.fill_result, () => fromThread, 40).toJS();
    out.fromThread = [...fromThread];
    // Views kept by Python when its interpreter ends: released then, the JS memory untouched.
    const kept = new Uint8Array([1, 2, 3]);
    m.keep(kept);
    m.keep(new Uint8Array(1 << 20));
    PythonEngine.shutdown();
    out.afterEnd = [...kept];
    return out;
  }
`;

// PyModule.expose in an isolated worker: Python imports the JS module, also from a thread.
const EXPOSE = MAIN_RUNS_ONE_WORKER + `
  async function work() {
    let calls = 0;
    PyModule.expose('jsside', { version: 3, add: (a, b) => { calls++; return a + b; } });
    const m = PyModule.fromString('iso_expose', ${THREAD_HELPERS} + '\\n' + [
      'import jsside',
      'def use():',
      '    return jsside.add(jsside.version, 4)',
    ].join('\\n'));
    return { direct: m.use(), fromThread: m.in_thread(m.use), calls };
  }
`;

// Proxies in both directions are released when the other side drops them: Python objects when JS
// garbage-collects their PyObjects; JS functions when Python drops them (the JS function becomes
// collectable again).
const GC = MAIN_RUNS_ONE_WORKER + `
  async function work() {
    const m = PyModule.fromString('iso_gc', [
      'import weakref, gc',
      'refs = []',
      'class Tracked: pass',
      'def make():',
      '    t = Tracked()',
      '    refs.append(weakref.ref(t))',
      '    return t',
      'def alive():',
      '    gc.collect()',
      '    return sum(1 for r in refs if r() is not None)',
      'import array',
      'def make_array():',
      '    a = array.array("d", [1.5, 2.5])',
      '    refs.append(weakref.ref(a))',
      '    return a',
      'held = []',
      'def hold(f): held.append(f)',
      'def drop(): held.clear(); gc.collect()',
    ].join('\\n'));
    const tick = () => new Promise((resolve) => setTimeout(resolve, 10));
    (() => { for (let i = 0; i < 50; i++) m.make(); })();
    const before = m.alive();
    let after = before;
    for (let i = 0; i < 50 && after > 0; i++) { globalThis.gc(); await tick(); after = m.alive(); }
    // TypedArrays over Python buffers (zero-copy): released when JS collects them (V8 may free
    // their memory on another thread).
    let typed = 0;
    (() => { for (let i = 0; i < 20; i++) typed += m.make_array().toTypedArray()[1]; })();
    const arraysBefore = m.alive();
    let arraysAfter = arraysBefore;
    for (let i = 0; i < 50 && arraysAfter > 0; i++) { globalThis.gc(); await tick(); arraysAfter = m.alive(); }
    let finalized = 0;
    const registry = new FinalizationRegistry(() => { finalized++; });
    (() => { for (let i = 0; i < 20; i++) { const f = () => i; registry.register(f, i); m.hold(f); } })();
    m.drop();
    for (let i = 0; i < 50 && finalized < 20; i++) { globalThis.gc(); await tick(); m.alive(); }
    return { before, after, finalized, typed, arraysBefore, arraysAfter };
  }
`;

// The worker ends while a Python thread of its interpreter waits on a JS callback: the thread gets
// an error (it prints it), never a hang or a crash. Cases:
//  - idle: the callback is queued while the worker's JS is busy; the worker is terminated;
//  - sync: the worker waits in a synchronous call (the join) while the callback runs JS that never
//    ends; the worker is terminated;
//  - shutdown: the worker calls shutdown() while a thread is about to call back (joined by it).
const WORKER_ENDS = `
  import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
  import { PythonEngine, Py, PyModule } from 'pyembed';
  if (isMainThread) {
    PythonEngine.initialize();
    const run = (task) => new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: task });
      w.on('error', reject);
      w.on('exit', resolve);
      w.on('message', (m) => { if (m === 'terminate me') setTimeout(() => w.terminate(), 200); });
    });
    for (const task of ['idle', 'sync', 'shutdown']) await run(task);
    console.log(JSON.stringify({ main: Py.import('math').factorial(5) }));
  } else {
    PythonEngine.initialize({ interpreter: 'isolated' });
    const m = PyModule.fromString('iso_end', [
      'import threading, time, os',
      'def say(text): os.write(1, (text + "\\\\n").encode())',
      'busy = threading.Event()',
      'def mark_busy(): busy.set()',
      'def call_from_thread(f, label, delay=0, after_busy=False):',
      '    def go():',
      '        if after_busy: busy.wait()',
      '        time.sleep(delay)',
      '        try:',
      '            f()',
      '            say(label + ": returned")',
      '        except BaseException as e:',
      '            say(label + ": " + type(e).__name__ + ": " + str(e))',
      '    t = threading.Thread(target=go)',
      '    t.start()',
      '    return t',
    ].join('\\n'));
    const task = workerData;
    if (task === 'idle') {
      parentPort.postMessage('terminate me');
      m.call_from_thread(() => 1, 'idle', 0.1, true);
      m.mark_busy();  // the thread calls back 0.1 s later, once this JS is busy:
      const until = Date.now() + 60_000;
      while (Date.now() < until) {}  // the callback stays queued until terminate()
    } else if (task === 'sync') {
      parentPort.postMessage('terminate me');
      // The callback never ends: terminate() stops it, wherever the worker waits (join, or the
      // return of call_from_thread if the thread was that fast).
      const t = m.call_from_thread(() => { for (;;) {} }, 'sync');
      t.join();
    } else {
      m.call_from_thread(() => 1, 'shutdown', 0.3);
      PythonEngine.shutdown();
    }
  }
`;

// A shared worker and an isolated worker make callbacks from Python threads at the same time
// (both idle-loop and synchronous waits), each getting its own results.
const SHARED_AND_ISOLATED = `
  import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
  import { PythonEngine, Py, PyModule } from 'pyembed';
${IDLE_WAIT}
  if (isMainThread) {
    PythonEngine.initialize();
    const run = (mode) => new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: mode });
      w.on('message', resolve);
      w.on('error', reject);
    });
    const results = await Promise.all([run('shared'), run('isolated'), run('shared'), run('isolated')]);
    console.log(JSON.stringify(results));
  } else {
    const mode = workerData;
    PythonEngine.initialize({ interpreter: mode });
    const m = PyModule.fromString('both_' + mode, ${THREAD_HELPERS});
    const k = mode === 'shared' ? 3 : 5;
    let sync = 0, idle = 0;
    for (let round = 0; round < 20; round++) {
      sync += m.in_thread(m.sum_calls, (i) => i * k, 30);
      idle += await idleWait((resolve) => m.later((i) => i * k, 30, resolve));
    }
    parentPort.postMessage({ mode, sync, idle, isolated: Py.import('sys').modules.__contains__('both_shared') === (mode === 'shared') });
  }
`;

// A module with single-phase initialization (no PEP 489 slots), as numpy still is.
const SINGLE_PHASE_C = `
#define PY_SSIZE_T_CLEAN
#include <Python.h>
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "single_phase", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_single_phase(void) { return PyModule_Create(&def); }
`;

const SINGLE_PHASE = `
  import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
  import { PythonEngine, Py, PythonError } from 'pyembed';
  const dir = process.env.SINGLE_PHASE_DIR;
  if (isMainThread) {
    PythonEngine.initialize();
    const run = (mode) => new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: mode });
      w.on('message', resolve);
      w.on('error', reject);
    });
    console.log(JSON.stringify({ isolated: await run('isolated'), shared: await run('shared') }));
  } else {
    PythonEngine.initialize({ interpreter: workerData });
    Py.import('sys').path.insert(0, dir);
    try {
      parentPort.postMessage({ imported: Py.import('single_phase').__name__ });
    } catch (e) {
      parentPort.postMessage({ isPythonError: e instanceof PythonError, type: e.type, message: e.message });
    }
  }
`;

/** Builds the single-phase module for `python` into a new folder; a reason string if it cannot. */
function buildSinglePhase(python: string): { dir: string } | string {
  const config = spawnSync(python, ['-c', [
    'import sysconfig, json',
    'print(json.dumps([sysconfig.get_paths()["include"], sysconfig.get_config_var("EXT_SUFFIX"), sysconfig.get_config_var("CC") or "cc"]))',
  ].join('\n')], { encoding: 'utf8' });
  if (config.status !== 0) return `cannot read ${python}'s sysconfig: ${config.stderr}`;
  const [include, suffix] = JSON.parse(config.stdout) as [string, string, string];
  const dir = tmpDir('pyembed-single-phase-');
  const source = path.join(dir, 'single_phase.c');
  fs.writeFileSync(source, SINGLE_PHASE_C);
  const cc = process.env.CC ?? 'cc';
  const built = spawnSync(cc, ['-shared', '-fPIC', '-I', include, '-o', path.join(dir, 'single_phase' + suffix), source], { encoding: 'utf8' });
  if (built.error) return `no C compiler (${cc}): ${built.error.message}`;
  if (built.status !== 0) return `${cc} failed: ${built.stderr}`;
  return { dir };
}

for (const minor of ['3.12', '3.13']) {
  const python = pyenvPython(minor);
  const skip = python ? false : `no CPython ${minor} under ${pyenvRoot}/versions`;
  const env = { PYEMBED_PYTHON: python };

  test(`CPython ${minor}: callbacks from a Python thread of an isolated interpreter, in a synchronous call and while idle; JSError; JsProxy`, { skip }, async () => {
    const r = await runScript(CALLBACKS, { env, timeoutMs: 60_000 });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.equal(out.sync, 9900);
    assert.equal(out.syncRuns, 100);
    assert.equal(out.workerGlobals, true);
    assert.deepEqual(out.jsErrorHere, ['JSError', '_pyembed', 'TypeError', 'TypeError: bad input']);
    assert.equal(out.sameErrorHere, true, 'the original JS error must come back to JS');
    assert.deepEqual(out.jsError, ['JSError', '_pyembed', 'TypeError', 'TypeError: bad input']);
    assert.equal(out.sameError, true, 'the original JS error must come back to JS');
    assert.equal(out.idle, 2450);
    assert.equal(out.idleRuns, 50);
    assert.deepEqual(out.idleObjects, [{ i: 0, items: [0, 'x'] }, { i: 1, items: [1, 'x'] }, { i: 2, items: [2, 'x'] }]);
    assert.deepEqual(out.idleError, ['JSError', 'Error: idle failure']);
    assert.deepEqual(out.proxy, ['box', 'hi py from box', 3, [1, 2, 3]]);
    assert.equal(out.proxyCount, 1);
    assert.deepEqual(out.proxyError, ['JSError', 'Error', 'Error: proxied failure']);
    // A callback from the thread may use Python itself (in the thread's interpreter).
    assert.equal(typeof out.threadIdent, 'number');
    assert.doesNotMatch(r.stderr, /Exception ignored|Traceback/, r.stderr);
  });

  test(`CPython ${minor}: JS bytes are Python buffers (zero-copy) in an isolated worker`, { skip }, async () => {
    const r = await runScript(BUFFERS, { env });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.deepEqual(out.info, ['memoryview', 'B', 1, 4, false, 'JsBuffer']);
    assert.deepEqual(out.bytes, [10, 11, 12, 13]);
    assert.deepEqual(out.floatInfo, ['memoryview', 'd', 8, 3, false, 'JsBuffer']);
    assert.deepEqual(out.floats, [0.5, 1.5, 2.5]);
    assert.deepEqual(out.buf, [7, 8, 9]);
    assert.deepEqual(out.threadInfo, ['memoryview', 'i', 4, 2, false, 'JsBuffer']);
    assert.deepEqual(out.fromThread, [40, 41]);
    assert.deepEqual(out.afterEnd, [1, 2, 3]);
    assert.doesNotMatch(r.stderr, /Exception ignored|Traceback/, r.stderr);
  });

  test(`CPython ${minor}: PyModule.expose in an isolated worker, used from its Python threads too`, { skip }, async () => {
    const r = await runScript(EXPOSE, { env });
    assert.equal(r.code, 0, explain(r));
    assert.deepEqual(lastJson(r.stdout), { direct: 7, fromThread: 7, calls: 2 });
  });

  test(`CPython ${minor}: proxies in an isolated worker are released when collected`, { skip }, async () => {
    const r = await runScript(GC, { env, nodeArgs: ['--expose-gc'] });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.equal(out.before, 50, JSON.stringify(out));
    assert.equal(out.after, 0, 'Python objects must be released when JS collects their proxies: ' + JSON.stringify(out));
    assert.equal(out.finalized, 20, 'JS functions must be released when Python drops them: ' + JSON.stringify(out));
    assert.equal(out.typed, 50);
    assert.equal(out.arraysBefore, 20, JSON.stringify(out));
    assert.equal(out.arraysAfter, 0, 'Python buffers must be released when JS collects their TypedArrays: ' + JSON.stringify(out));
  });

  test(`CPython ${minor}: a worker that ends while a Python thread waits on a callback gives that thread an error`, { skip }, async () => {
    const r = await runScript(WORKER_ENDS, { env, timeoutMs: 60_000 });
    assert.equal(r.code, 0, explain(r));
    const said = r.stdout.split('\n').filter((l) => /^(idle|sync|shutdown): /.test(l));
    assert.equal(said.length, 3, explain(r));
    assert.match(said[0], /^idle: RuntimeError: .*(worker\) has exited|terminated)/);
    assert.match(said[1], /^sync: RuntimeError: JS execution was terminated/);
    assert.match(said[2], /^shutdown: (returned|RuntimeError: .*)$/);
    assert.deepEqual(lastJson(r.stdout), { main: 120 });
  });

  test(`CPython ${minor}: shared and isolated workers make callbacks from Python threads at the same time`, { skip }, async () => {
    const r = await runScript(SHARED_AND_ISOLATED, { env, timeoutMs: 120_000 });
    assert.equal(r.code, 0, explain(r));
    const sum30 = (30 * 29) / 2;
    for (const w of lastJson(r.stdout)) {
      const k = w.mode === 'shared' ? 3 : 5;
      assert.equal(w.sync, 20 * sum30 * k, JSON.stringify(w));
      assert.equal(w.idle, 20 * sum30 * k, JSON.stringify(w));
      assert.equal(w.isolated, true, JSON.stringify(w));
    }
  });

  test(`CPython ${minor}: an extension module without a GIL per interpreter is an ImportError with a hint in an isolated worker`, { skip }, async (t) => {
    const built = buildSinglePhase(python!);
    if (typeof built === 'string') return t.skip(built);
    try {
      const r = await runScript(SINGLE_PHASE, { env: { ...env, SINGLE_PHASE_DIR: built.dir } });
      assert.equal(r.code, 0, explain(r));
      const out = lastJson(r.stdout);
      assert.equal(out.isolated.isPythonError, true, JSON.stringify(out));
      assert.equal(out.isolated.type, 'ImportError');
      assert.match(out.isolated.message, /does not support loading in subinterpreters/);
      assert.match(out.isolated.message, /pyembed: this worker runs an isolated interpreter.*shared interpreter/);
      assert.deepEqual(out.shared, { imported: 'single_phase' }, 'the same module imports in the shared mode');
    } finally {
      fs.rmSync(built.dir, { recursive: true, force: true });
    }
  });
}
