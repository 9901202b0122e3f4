// callAsync, awaitAsync and Py.aiter in isolated workers (CPython 3.12+): each isolated
// interpreter has its own callAsync pool (threads with thread states of that interpreter) and
// its own asyncio loop, both ended before the interpreter. Every scenario runs in a child
// process with PYEMBED_PYTHON pointing at pyenv's CPython 3.12 / 3.13 (skipped when absent).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { explain, HOLD_THEN_CALL_MAIN, lastJson, pyenvPython, pyenvRoot, runScript } from './helpers.js';

// Script code: the main thread runs `mainSetup`, then one isolated worker (its workerData: whether
// asyncio works there), and prints each message the worker posts. The script goes on in the
// worker's branch, after `const out = {};`, and closes it.
function mainRunsOneWorker(mainSetup = ''): string {
  return `
  import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
  import { PythonEngine, Py, PyModule, PythonError } from 'pyembed';
  if (isMainThread) {
    PythonEngine.initialize();
    ${mainSetup}
    const w = new Worker(new URL(import.meta.url), { workerData: process.env.ASYNCIO_WORKS === '1' });
    w.on('message', (m) => { console.log(JSON.stringify(m)); });
    w.on('error', (e) => { console.error(e); process.exitCode = 1; });
  } else {
    PythonEngine.initialize({ interpreter: 'isolated' });
    const asyncioWorks = workerData;
    const out = {};`;
}

// Results, errors, keywords, coroutines, async iteration, a callback from a pool thread, and the
// module state the pool thread sees (the worker's own interpreter, not the shared one).
const BASICS = mainRunsOneWorker("Py.import('json').marker = 'main';") + `
    const m = PyModule.fromString('iso_async', [
      asyncioWorks ? 'import asyncio' : 'asyncio = None',
      'import json, threading',
      'def add(a, b=1, *, scale=1):',
      '    return (a + b) * scale',
      'def where():',
      '    return [getattr(json, "marker", "none"), threading.current_thread().name]',
      'def fail(x):',
      '    raise ValueError("bad " + str(x))',
      'def twice(f, x):',
      '    return f(f(x))',
      'async def later(x):',
      '    await asyncio.sleep(0.01)',
      '    return x * 2',
      'async def later_fail():',
      '    await asyncio.sleep(0)',
      '    raise KeyError("gone")',
      'async def agen(n):',
      '    for i in range(n):',
      '        await asyncio.sleep(0)',
      '        yield i',
      'async def plain(x):',
      '    return x',
    ].join('\\n'));
    Py.import('json').marker = 'worker';
    out.sum = await m.add.callAsync(2, Py.kw({ scale: 10 }));
    out.where = (await m.where.callAsync()).toJS();
    try { await m.fail.callAsync(7); } catch (e) {
      out.error = { isPythonError: e instanceof PythonError, type: e.type, message: e.message, traceback: e.pythonTraceback ?? e.stack };
    }
    out.callback = await m.twice.callAsync((x) => x + 1, 40);
    out.parallel = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => m.add.callAsync(i)));
    if (!asyncioWorks) {
      // CPython 3.12.0-3.12.3: asyncio in an isolated interpreter corrupts memory at exit.
      try { await Py.awaitAsync(m.plain(1)); } catch (e) { out.refused = e.message; }
      try { await m.plain.callAsync(1); } catch (e) { out.refusedByCall = e.message; }
      parentPort.postMessage(out);
      process.exit(0);
    }
    out.coroutineByCall = await m.later.callAsync(21);
    out.awaited = await Py.awaitAsync(m.later(5));
    out.awaitedWithSignal = await Py.awaitAsync(m.later(6), new AbortController().signal);
    try { await Py.awaitAsync(m.later_fail()); } catch (e) { out.coroutineError = [e instanceof PythonError, e.type]; }
    out.aiter = [];
    for await (const x of Py.aiter(m.agen(4))) out.aiter.push(x);
    out.aiterWithSignal = [];
    for await (const x of Py.aiter(m.agen(3), new AbortController().signal)) out.aiterWithSignal.push(x);
    parentPort.postMessage(out);
  }
`;

// Its own pool: while worker A's callAsync holds A's GIL in one long C call (sum() over a range
// never checks for a GIL drop request), worker B's callAsync in another isolated interpreter
// completes. In the shared mode (the control) B's call must wait for A's sum to end. A's sum
// takes seconds; B starts 50 ms after it began.
const PARALLEL = `
  import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
  import { PythonEngine, PyModule } from 'pyembed';
  if (isMainThread) {
    PythonEngine.initialize();${HOLD_THEN_CALL_MAIN}
  } else {
    const { mode, role } = workerData;
    PythonEngine.initialize({ interpreter: mode });
    const m = PyModule.fromString('own_pool', [
      'import time',
      'def hold(n, started):',
      '    started()',
      '    sum(range(n))',
      '    return time.time()',
      'def now():',
      '    return time.time()',
    ].join('\\n'));
    if (role === 'hold') {
      // started() is a JS callback: it runs on this worker's JS thread once the pool thread is
      // inside hold(), so the message goes out while the sum runs.
      parentPort.postMessage(await m.hold.callAsync(80_000_000, () => parentPort.postMessage('holding')));
    } else {
      parentPort.postMessage(await m.now.callAsync());
    }
  }
`;

// An abort interrupts the pool thread of the worker's own interpreter (KeyboardInterrupt at its
// next bytecode); an awaited coroutine's task is cancelled. The pool serves later calls.
const ABORT = mainRunsOneWorker() + `
    const m = PyModule.fromString('iso_abort', [
      asyncioWorks ? 'import asyncio' : 'asyncio = None',
      'state = {"cancelled": False}',
      'def spin(started):',
      '    started()',
      '    while True:',
      '        pass',
      'async def nap():',
      '    try:',
      '        await asyncio.sleep(100)',
      '    except asyncio.CancelledError:',
      '        state["cancelled"] = True',
      '        raise',
      'def add(a, b):',
      '    return a + b',
    ].join('\\n'));
    const controller = new AbortController();
    const t0 = Date.now();
    try {
      await m.spin.callAsync(() => setTimeout(() => controller.abort(), 100), controller.signal);
      out.spin = 'returned';
    } catch (e) {
      out.spin = { name: e.name, causeType: e.cause?.type };
    }
    out.spinSeconds = (Date.now() - t0) / 1000;
    out.after = await m.add.callAsync(2, 3);
    if (!asyncioWorks) {
      parentPort.postMessage(out);
      process.exit(0);
    }
    const napController = new AbortController();
    setTimeout(() => napController.abort(), 100);
    try { await Py.awaitAsync(m.nap(), napController.signal); out.nap = 'returned'; } catch (e) {
      out.nap = { name: e.name, causeType: e.cause?.type };
    }
    // Let the cancelled task finish on the loop.
    await new Promise((resolve) => setTimeout(resolve, 100));
    out.napCancelled = m.state.get('cancelled');
    parentPort.postMessage(out);
  }
`;

// The worker ends while its pool thread runs Python: terminate() in an endless loop that swallows
// the first interrupts (and with a
// coroutine that never yields on its asyncio loop), shutdown() from the worker with a call in
// flight (the promise rejects; a new isolated interpreter works afterwards). The process stays
// healthy: the main thread still uses Python, and no hang (the runner's watchdog).
const ENDINGS = `
  import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
  import { PythonEngine, Py, PyModule } from 'pyembed';
  const source = [
    process.env.ASYNCIO_WORKS === '1' ? 'import asyncio' : 'asyncio = None',
    'import atexit, os',
    'def said(label):',
    '    os.write(1, ("ended " + label + "\\\\n").encode())',
    'def spin(started):',
    '    started()',
    '    while True:',
    '        pass',
    'def stubborn(started):',  // swallows the first KeyboardInterrupts: the next ones still end it
    '    started()',
    '    caught = 0',
    '    while True:',
    '        try:',
    '            while True:',
    '                pass',
    '        except KeyboardInterrupt:',
    '            caught += 1',
    '            if caught > 2:',
    '                raise',
    'async def busy():',
    '    while True:',
    '        pass',
    'def add(a, b):',
    '    return a + b',
  ].join('\\n');
  if (isMainThread) {
    PythonEngine.initialize();
    const out = {};
    const run = (task) => new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: task });
      w.on('error', reject);
      w.on('exit', resolve);
      w.on('message', (msg) => {
        if (msg === 'terminate me') w.terminate();
        else out[task] = msg;
      });
    });
    await run('terminate-callAsync');
    if (process.env.ASYNCIO_WORKS === '1') await run('terminate-coroutine');
    await run('shutdown-callAsync');
    out.main = Py.import('math').factorial(5);
    console.log(JSON.stringify(out));
  } else {
    PythonEngine.initialize({ interpreter: 'isolated' });
    const m = PyModule.fromString('iso_end', source);
    Py.import('atexit').register(m.said, workerData);
    if (workerData === 'terminate-callAsync') {
      m.stubborn.callAsync(() => parentPort.postMessage('terminate me'));
    } else if (workerData === 'terminate-coroutine') {
      Py.awaitAsync(m.busy());
      setTimeout(() => parentPort.postMessage('terminate me'), 300); // the coroutine spins by then
    } else {
      const pending = m.spin.callAsync(() => {
        setTimeout(() => {
          PythonEngine.shutdown();
          PythonEngine.initialize({ interpreter: 'isolated' });
          const again = PyModule.fromString('iso_again', source);
          pending.then(() => 'resolved', (e) => e.type ?? e.message).then(async (first) => {
            parentPort.postMessage({ first, again: await again.add.callAsync(20, 22) });
          });
        }, 50);
      });
    }
  }
`;

// Twenty isolated workers one after the other, each using callAsync and a coroutine (so each made
// pool threads and an asyncio loop thread): the process's thread count stays where it was after
// the first few (/proc/self/status), and nothing is left on stderr.
const GENERATIONS = `
  import fs from 'node:fs';
  import { Worker, isMainThread, parentPort } from 'node:worker_threads';
  import { PythonEngine, Py, PyModule } from 'pyembed';
  const threads = () => Number(/Threads:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);
  if (isMainThread) {
    PythonEngine.initialize();
    const counts = [];
    for (let i = 0; i < 20; i++) {
      const result = await new Promise((resolve, reject) => {
        const w = new Worker(new URL(import.meta.url));
        let got;
        w.on('message', (m) => { got = m; });
        w.on('error', reject);
        w.on('exit', () => resolve(got));
      });
      if (result !== 'ok 42 7') throw new Error('generation ' + i + ': ' + result);
      counts.push(threads());
    }
    console.log(JSON.stringify({ counts, main: Py.import('math').factorial(4) }));
  } else {
    PythonEngine.initialize({ interpreter: 'isolated' });
    const m = PyModule.fromString('gen', [
      process.env.ASYNCIO_WORKS === '1' ? 'import asyncio' : 'asyncio = None',
      'def add(a, b):',
      '    return a + b',
      'async def later(x):',
      '    await asyncio.sleep(0)',
      '    return x',
    ].join('\\n'));
    const [sum] = await Promise.all([m.add.callAsync(40, 2), m.add.callAsync(1, 1), m.add.callAsync(2, 2)]);
    const later = process.env.ASYNCIO_WORKS === '1' ? await Py.awaitAsync(m.later(7)) : 7;
    parentPort.postMessage('ok ' + sum + ' ' + later);
  }
`;

for (const minor of ['3.12', '3.13']) {
  const python = pyenvPython(minor);
  const skip = python ? false : `no CPython ${minor} under ${pyenvRoot}/versions`;
  // CPython 3.12.0-3.12.3 corrupt memory at exit once asyncio ran in a subinterpreter
  // (python/cpython#119213): there coroutines are refused, and the scenarios leave asyncio out.
  const patch = /[/\\]3\.12\.(\d+)[/\\]/.exec(python ?? '')?.[1];
  const asyncioWorks = patch === undefined || Number(patch) >= 4;
  const env = { PYEMBED_PYTHON: python, ASYNCIO_WORKS: asyncioWorks ? '1' : '0' };

  test(`CPython ${minor}: callAsync, awaitAsync and Py.aiter in an isolated worker`, { skip }, async () => {
    const r = await runScript(BASICS, { env });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.equal(out.sum, 30);
    assert.deepEqual(out.where, ['worker', 'pyembed-async'], 'the pool thread runs in the worker\'s interpreter');
    assert.equal(out.error.isPythonError, true);
    assert.equal(out.error.type, 'ValueError');
    assert.match(out.error.message, /bad 7/);
    assert.match(out.error.traceback, /in fail/);
    assert.equal(out.callback, 42);
    assert.deepEqual(out.parallel, [2, 3, 4, 5, 6, 7]);
    if (!asyncioWorks) {
      assert.match(out.refused, /coroutines cannot run in an isolated worker on CPython 3\.12\.0-3\.12\.3.*#119213/);
      assert.match(out.refusedByCall, /coroutines cannot run in an isolated worker/);
      return;
    }
    assert.equal(out.coroutineByCall, 42);
    assert.equal(out.awaited, 10);
    assert.equal(out.awaitedWithSignal, 12);
    assert.deepEqual(out.coroutineError, [true, 'KeyError']);
    assert.deepEqual(out.aiter, [0, 1, 2, 3]);
    assert.deepEqual(out.aiterWithSignal, [0, 1, 2]);
    assert.doesNotMatch(r.stderr, /Exception ignored|Traceback|Fatal/, r.stderr);
  });

  test(`CPython ${minor}: callAsync in two isolated workers runs in parallel (shared-mode control waits)`, { skip }, async () => {
    const r = await runScript(PARALLEL, { env, timeoutMs: 120_000 });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.equal(out.isolated.bCalledFirst, true, JSON.stringify(out));
    assert.ok(out.shared.secondsBeforeHoldEnded < 0.1, 'the control (one shared GIL): ' + JSON.stringify(out));
  });

  test(`CPython ${minor}: an AbortSignal interrupts an isolated worker's callAsync and cancels its coroutine`, { skip }, async () => {
    const r = await runScript(ABORT, { env });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.deepEqual(out.spin, { name: 'AbortError', causeType: 'KeyboardInterrupt' }, JSON.stringify(out));
    assert.equal(out.after, 5, 'the pool serves the next call');
    if (!asyncioWorks) return;
    assert.deepEqual(out.nap, { name: 'AbortError', causeType: 'CancelledError' }, JSON.stringify(out));
    assert.equal(out.napCancelled, true);
  });

  test(`CPython ${minor}: an isolated worker terminated or shut down during callAsync ends cleanly`, { skip }, async () => {
    const r = await runScript(ENDINGS, { env, timeoutMs: 60_000 });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.deepEqual(out['shutdown-callAsync'], { first: 'KeyboardInterrupt', again: 42 });
    assert.equal(out.main, 120);
    const ended = r.stdout.split('\n').filter((l) => l.startsWith('ended '));
    const expected = ['ended terminate-callAsync', 'ended terminate-coroutine', 'ended shutdown-callAsync'];
    assert.deepEqual(ended, asyncioWorks ? expected : expected.filter((l) => !l.includes('coroutine')));
    assert.doesNotMatch(r.stderr, /Fatal|Exception ignored/, r.stderr);
  });

  test(`CPython ${minor}: 20 generations of isolated workers using callAsync leave no thread behind`, { skip }, async () => {
    const r = await runScript(GENERATIONS, { env, timeoutMs: 180_000 });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.equal(out.main, 24);
    // Node's own threads settle within the first generations; pool and loop threads must not
    // pile up (each generation made at least 4 of them).
    const settled = out.counts[4];
    assert.ok(Math.max(...out.counts.slice(5)) <= settled + 2, JSON.stringify(out.counts));
    assert.doesNotMatch(r.stderr, /Exception ignored|Fatal/, r.stderr);
  });
}
