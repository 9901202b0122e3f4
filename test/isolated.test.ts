// Isolated workers: PythonEngine.initialize({ interpreter: 'isolated' }) in a worker gives it its
// own interpreter and GIL (PEP 684, CPython 3.12+). Every scenario runs in a child process, with
// PYEMBED_PYTHON pointing at pyenv's CPython 3.12 / 3.13 (skipped when not installed) and 3.11
// for the clear error.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { explain, HOLD_THEN_CALL_MAIN, lastJson, pyenvPython, pyenvRoot, runScript } from './helpers.js';

// The main thread and a shared worker use the shared interpreter; two isolated workers have one
// each. Module state (an attribute set on the json module) is seen only where it was set.
const BASICS = `
  import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
  import { PythonEngine, Py, PyModule, PythonError } from 'pyembed';
  if (isMainThread) {
    PythonEngine.initialize();
    Py.import('json').marker = 'main';
    const run = (mode) => new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: mode });
      w.on('message', resolve);
      w.on('error', reject);
    });
    const [a, b, shared] = await Promise.all([run('isolated'), run('isolated'), run('shared')]);
    let mainIsolated;
    try { PythonEngine.initialize({ interpreter: 'isolated' }); } catch (e) { mainIsolated = e.message; }
    const json = Py.import('json');
    console.log(JSON.stringify({ a, b, shared, mainMarker: json.marker, mainIsolated }));
  } else {
    const mode = workerData;
    PythonEngine.initialize({ interpreter: mode });
    PythonEngine.initialize({ interpreter: mode }); // idempotent
    const json = Py.import('json');
    const builtins = Py.import('builtins');
    const out = { mode };
    out.sawMain = builtins.getattr(json, 'marker', 'none');
    if (mode === 'isolated') json.marker = 'worker-' + Py.import('threading').get_ident();
    out.marker = json.marker;
    out.sqrt = Py.import('math').sqrt(81);
    out.dumped = json.dumps(Py.toPython({ x: [1, 2] }));
    out.list = builtins.list(builtins.range(4)).toJS();
    const m = PyModule.fromString('iso_m', 'def add(a, b=1, *, scale=1):\\n    return (a + b) * scale\\n');
    out.call = m.add(2, Py.kw({ scale: 10 }));
    out.callback = PyModule.fromString('iso_cb', 'def twice(f, x):\\n    return f(f(x))\\n').twice((x) => x + 1, 40);
    try { json.loads('{nope'); } catch (e) { out.error = [e instanceof PythonError, e.type]; }
    try { Py.share(json); } catch (e) { out.share = e.message; }
    out.callAsync = await m.add.callAsync(1); // its own pool (test/isolated-async.test.ts)
    parentPort.postMessage(out);
  }
`;

// Each worker's interpreter ends when the worker exits, is terminated, or calls shutdown(): its
// atexit handlers run (Py_EndInterpreter), and the shared interpreter goes on.
const LIFECYCLE = `
  import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
  import { PythonEngine, Py, PyModule } from 'pyembed';
  const setup = (label) => PyModule.fromString('iso_exit', [
    'import atexit, os',
    'def said(label):',
    '    os.write(1, ("ended " + label + "\\\\n").encode())',
    'atexit.register(said, ' + JSON.stringify(label) + ')',
  ].join('\\n'));
  if (isMainThread) {
    PythonEngine.initialize();
    const run = (task) => new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: task });
      w.on('error', reject);
      w.on('exit', resolve);
      w.on('message', (m) => { if (m === 'terminate me') w.terminate(); });
    });
    await run('exit');
    await run('shutdown');
    await run('terminate');
    await run('terminate-mid-call');
    for (let i = 0; i < 20; i++) await run('generation');
    console.log(JSON.stringify({ main: Py.import('math').factorial(5) }));
  } else {
    PythonEngine.initialize({ interpreter: 'isolated' });
    if (workerData === 'exit') {
      setup('exit');
    } else if (workerData === 'shutdown') {
      setup('shutdown');
      PythonEngine.shutdown();
      // A new interpreter of its own afterwards: a fresh module table.
      PythonEngine.initialize({ interpreter: 'isolated' });
      const fresh = !Py.import('sys').modules.__contains__('iso_exit');
      setup('second ' + fresh);
    } else if (workerData === 'terminate') {
      setup('terminate');
      parentPort.postMessage('terminate me');
      setInterval(() => Py.import('math').sqrt(2), 1);
    } else if (workerData === 'terminate-mid-call') {
      setup('terminate-mid-call');
      parentPort.postMessage('terminate me');
      Py.import('time').sleep(0.5);
      setInterval(() => {}, 1000);
    } else {
      const m = PyModule.fromString('gen', 'data = [str(i) for i in range(10000)]\\ndef total():\\n    return len("".join(data))\\n');
      m.total();
    }
  }
`;

for (const minor of ['3.12', '3.13']) {
  const python = pyenvPython(minor);
  const skip = python ? false : `no CPython ${minor} under ${pyenvRoot}/versions`;

  test(`CPython ${minor}: isolated workers have their own module state; calls, callbacks, errors, callAsync; Py.share refused`, { skip }, async () => {
    const r = await runScript(BASICS, { env: { PYEMBED_PYTHON: python } });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    for (const w of [out.a, out.b]) {
      assert.equal(w.sawMain, 'none', 'an isolated worker must not see the main interpreter module state');
      assert.match(w.marker, /^worker-\d+$/);
      assert.equal(w.sqrt, 9);
      assert.equal(w.dumped, '{"x": [1, 2]}');
      assert.deepEqual(w.list, [0, 1, 2, 3]);
      assert.equal(w.call, 30);
      assert.equal(w.callback, 42);
      assert.deepEqual(w.error, [true, 'JSONDecodeError']);
      assert.match(w.share, /Py\.share cannot move Python objects out of or into an isolated worker/);
      assert.equal(w.callAsync, 2);
    }
    assert.notEqual(out.a.marker, out.b.marker);
    // The shared worker sees the main thread's module state; the workers' markers stayed theirs.
    assert.equal(out.shared.sawMain, 'main');
    assert.equal(out.mainMarker, 'main');
    assert.match(out.mainIsolated, /for worker threads/);
  });

  test(`CPython ${minor}: an isolated interpreter ends at worker exit, terminate() (also mid-call) and shutdown(); 20 generations`, { skip }, async () => {
    const r = await runScript(LIFECYCLE, { env: { PYEMBED_PYTHON: python }, timeoutMs: 120_000 });
    assert.equal(r.code, 0, explain(r));
    const ended = r.stdout.split('\n').filter((l) => l.startsWith('ended '));
    assert.deepEqual(ended, ['ended exit', 'ended shutdown', 'ended second true', 'ended terminate', 'ended terminate-mid-call']);
    assert.deepEqual(lastJson(r.stdout), { main: 120 });
  });
}

// Threads started with _thread (not threading) are not joined by Py_EndInterpreter, which
// aborts the process if one is still there: pyembed ends them (SystemExit) first. Threads of
// threading and a ThreadPoolExecutor are still joined, as CPython does.
const RAW_THREADS = `
  import { Worker, isMainThread, workerData } from 'node:worker_threads';
  import { PythonEngine, Py, PyModule } from 'pyembed';
  const cases = {
    sleeping: 'import _thread, time\\n_thread.start_new_thread(time.sleep, (0.5,))\\n',
    spinning: 'import _thread\\ndef f():\\n    while True:\\n        pass\\n_thread.start_new_thread(f, ())\\n',
    named: 'import _thread, threading, time\\ndef f():\\n    threading.current_thread()\\n    while True:\\n        time.sleep(0.01)\\n_thread.start_new_thread(f, ())\\n',
    joined: 'import threading, time, os\\ndef f():\\n    time.sleep(0.3)\\n    os.write(1, b"joined thread finished\\\\n")\\nthreading.Thread(target=f).start()\\n',
  };
  if (isMainThread) {
    PythonEngine.initialize();
    for (const name of Object.keys(cases)) {
      await new Promise((resolve, reject) => {
        const w = new Worker(new URL(import.meta.url), { workerData: name });
        w.on('exit', resolve);
        w.on('error', reject);
      });
      console.log('ended ' + name);
    }
    console.log(JSON.stringify({ main: Py.import('math').factorial(5) }));
  } else {
    PythonEngine.initialize({ interpreter: 'isolated' });
    PyModule.fromString('threads_' + workerData, cases[workerData]);
  }
`;

for (const minor of ['3.12', '3.13']) {
  const python = pyenvPython(minor);
  test(`CPython ${minor}: an isolated worker ends with _thread threads still running (no abort)`, {
    skip: python ? false : `no CPython ${minor} under ${pyenvRoot}/versions`,
  }, async () => {
    const r = await runScript(RAW_THREADS, { env: { PYEMBED_PYTHON: python }, timeoutMs: 120_000 });
    assert.equal(r.code, 0, explain(r));
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('ended ') || l.startsWith('joined'));
    assert.deepEqual(lines, ['ended sleeping', 'ended spinning', 'ended named', 'joined thread finished', 'ended joined']);
    assert.deepEqual(lastJson(r.stdout), { main: 120 });
    assert.doesNotMatch(r.stderr, /Fatal Python error/, r.stderr);
  });
}

// What isolated workers cannot do yet is a clear error, never a crash; the shared interpreter
// cannot be shut down under a live isolated one, and can once it ended; no noise on stderr.
const LIMITS = `
  import { Worker, isMainThread, parentPort } from 'node:worker_threads';
  import { PythonEngine, Py, PyModule } from 'pyembed';
  if (isMainThread) {
    PythonEngine.initialize();
    const out = {};
    const w = new Worker(new URL(import.meta.url));
    w.on('message', (m) => {
      if (m !== 'alive') return Object.assign(out, m);
      try { PythonEngine.shutdown(); } catch (e) { out.sharedShutdown = e.message; }
      out.stillRunning = PythonEngine.isInitialized;
      w.postMessage('end');
    });
    w.on('exit', () => {
      PythonEngine.shutdown();
      out.afterEnd = PythonEngine.isInitialized;
      console.log(JSON.stringify(out));
    });
  } else {
    PythonEngine.initialize({ interpreter: 'isolated' });
    const out = {};
    const m = PyModule.fromString('limits', [
      'import threading',
      'def gen(n):',
      '    yield from range(n)',
      'def blen(b):',
      '    return len(bytes(b))',
      'def from_thread(f):',
      '    r = []',
      '    def go():',
      '        try: r.append(f(1))',
      '        except Exception as e: r.append(type(e).__name__ + ": " + str(e))',
      '    t = threading.Thread(target=go)',
      '    t.start(); t.join()',
      '    return r',
    ].join('\\n'));
    out.iterated = [...m.gen(3)];
    const scope = Py.GIL();
    out.inScope = Py.import('math').sqrt(4);
    scope[Symbol.dispose]();
    out.buffer = m.blen(new Uint8Array([1, 2, 3]));  // once a limit, see isolated-callbacks.test.ts
    out.fromThread = m.from_thread((x) => x).toJS();
    out.interruptSelf = PythonEngine.interrupt(PythonEngine.threadId); // no call of its own runs
    parentPort.postMessage(out);
    parentPort.postMessage('alive');
    parentPort.once('message', () => process.exit(0));
  }
`;

for (const minor of ['3.12', '3.13']) {
  const python = pyenvPython(minor);
  test(`CPython ${minor}: isolated workers' limits are clear errors; the shared interpreter outlives them`, {
    skip: python ? false : `no CPython ${minor} under ${pyenvRoot}/versions`,
  }, async () => {
    const r = await runScript(LIMITS, { env: { PYEMBED_PYTHON: python } });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.deepEqual(out.iterated, [0, 1, 2]);
    assert.equal(out.inScope, 2);
    assert.equal(out.buffer, 3);
    assert.deepEqual(out.fromThread, [1]);
    assert.equal(out.interruptSelf, false);
    assert.match(out.sharedShutdown, /isolated workers still run their own interpreters/);
    assert.equal(out.stillRunning, true);
    assert.equal(out.afterEnd, false);
    assert.doesNotMatch(r.stderr, /Exception ignored|Traceback/, r.stderr);
  });
}

// shutdown() on the main thread while a worker's initialize({ interpreter: 'isolated' }) makes
// its interpreter: the two settle it, at any moment. Either the shutdown wins and the worker's
// initialize() throws, or the worker's interpreter was already made and shutdown() refuses.
// (Before, a shutdown in that window finalized under the creation: CPython ended the worker's
// thread, which never reported its exit, and the process hung.)
const SHUTDOWN_RACE = `
  import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
  import { PythonEngine, Py } from 'pyembed';
  if (isMainThread) {
    const outcomes = [];
    for (const delayMs of [0, 0.2, 0.5, 1, 2, 3, 5, 8, 12, 20, 30, 45]) {
      PythonEngine.initialize();
      const started = new Int32Array(new SharedArrayBuffer(4));
      const w = new Worker(new URL(import.meta.url), { workerData: started });
      const exited = new Promise((resolve) => w.once('exit', resolve));
      const said = new Promise((resolve) => {
        w.on('message', resolve);
        w.on('error', (e) => resolve('worker error: ' + e.message));
        exited.then((code) => resolve('exit ' + code));
      });
      while (Atomics.load(started, 0) === 0) {} // the worker is about to initialize
      const t0 = performance.now();
      while (performance.now() - t0 < delayMs) {}
      let main;
      try { PythonEngine.shutdown(); main = 'shut down'; } catch (e) { main = e.message; }
      const worker = await said;
      await exited;
      outcomes.push({ main, worker });
      if (PythonEngine.isInitialized) PythonEngine.shutdown(); // the worker has ended
    }
    console.log(JSON.stringify(outcomes));
  } else {
    Atomics.store(workerData, 0, 1);
    try {
      PythonEngine.initialize({ interpreter: 'isolated' });
      parentPort.postMessage('ran ' + Py.import('math').factorial(4));
    } catch (e) {
      parentPort.postMessage('refused: ' + e.message);
    }
  }
`;

for (const minor of ['3.12', '3.13']) {
  const python = pyenvPython(minor);
  test(`CPython ${minor}: shutdown() racing an isolated worker's initialize() is a clear error on one side, never a lost thread`, {
    skip: python ? false : `no CPython ${minor} under ${pyenvRoot}/versions`,
  }, async () => {
    const r = await runScript(SHUTDOWN_RACE, { env: { PYEMBED_PYTHON: python }, timeoutMs: 90_000 });
    assert.equal(r.code, 0, explain(r));
    const outcomes: { main: string; worker: string }[] = lastJson(r.stdout);
    assert.equal(outcomes.length, 12);
    const all = JSON.stringify(outcomes);
    // The window was hit: a shutdown while the interpreter was being made.
    assert.ok(outcomes.some((o) => o.worker === 'refused: Python is shutting down'), all);
    for (const { main, worker } of outcomes) {
      if (main === 'shut down') {
        // refused (during the shutdown, or after it), or made and ended (the worker's script
        // done) before the shutdown began
        assert.match(worker, /^refused: Python (is shutting down$|was shut down)|^ran 24$/, all);
      } else {
        assert.match(main, /isolated worker/, all);
        assert.equal(worker, 'ran 24', all);
      }
    }
    assert.doesNotMatch(r.stderr, /Exception ignored|Fatal Python error/, r.stderr);
  });
}

// Its own GIL: while worker A holds its interpreter's GIL in one long C call (sum() over a range
// never checks for a GIL drop request), worker B's call in another isolated interpreter completes.
// In the shared mode (the control) B's call must wait for A's sum to end.
// (A's sum takes several seconds; B starts 50 ms after it began.)
const OWN_GIL = `
  import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
  import { PythonEngine, PyModule } from 'pyembed';
  if (isMainThread) {
    PythonEngine.initialize();${HOLD_THEN_CALL_MAIN}
  } else {
    const { mode, role } = workerData;
    PythonEngine.initialize({ interpreter: mode });
    const m = PyModule.fromString('own_gil', [
      'import time',
      'def hold(n):',
      '    sum(range(n))',
      '    return time.time()',
      'def now():',
      '    return time.time()',
    ].join('\\n'));
    if (role === 'hold') {
      parentPort.postMessage('holding');
      parentPort.postMessage(m.hold(80_000_000));
    } else {
      parentPort.postMessage(m.now());
    }
  }
`;

for (const minor of ['3.12', '3.13']) {
  const python = pyenvPython(minor);
  test(`CPython ${minor}: an isolated worker's call runs while another isolated worker holds its own GIL`, {
    skip: python ? false : `no CPython ${minor} under ${pyenvRoot}/versions`,
  }, async () => {
    const r = await runScript(OWN_GIL, { env: { PYEMBED_PYTHON: python }, timeoutMs: 120_000 });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.equal(out.isolated.bCalledFirst, true, JSON.stringify(out));
    assert.ok(out.shared.secondsBeforeHoldEnded < 0.1, 'the control (one shared GIL): ' + JSON.stringify(out));
  });
}

test('CPython 3.11: isolated workers are a clear error', { skip: pyenvPython('3.11') ? false : 'no CPython 3.11 under pyenv' }, async () => {
  const r = await runScript(`
    import { Worker, isMainThread, parentPort } from 'node:worker_threads';
    import { PythonEngine, Py } from 'pyembed';
    if (isMainThread) {
      const w = new Worker(new URL(import.meta.url));
      w.on('message', (m) => console.log(JSON.stringify(m)));
    } else {
      let error;
      try { PythonEngine.initialize({ interpreter: 'isolated' }); } catch (e) { error = e.message; }
      parentPort.postMessage({ error, shared: Py.import('math').sqrt(4) });
    }
  `, { env: { PYEMBED_PYTHON: pyenvPython('3.11') } });
  assert.equal(r.code, 0, explain(r));
  const out = lastJson(r.stdout);
  assert.match(out.error, /need CPython 3\.12 or newer; this is 3\.11\./);
  assert.equal(out.shared, 2, 'the worker can still use the shared interpreter');
});
