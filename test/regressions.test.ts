// Crashes found while testing pyembed with every interpreter, kept as regression tests. Each
// runs in a child process, so a crash is a failed assertion, not a dead runner.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { explain, runScript } from './helpers.js';

// The last reference to a JS function of an exited worker, dropped later on another thread,
// frees the worker's JsThread, whose destructor resets its own v8::Global members (context,
// handleKey, errorFactory, ...) in the worker's isolate, which no longer exists: a segfault in
// v8::internal::GlobalHandles::Destroy (from JsThread::~JsThread via JsFunctionRef::Unref ->
// JsThread::Post -> ReleaseTask::Cancel). Without the explicit clear() it happens at exit, when
// finalization drops the reference, so it crashes intermittently. Every Python version.
test('dropping a JS function of an exited worker does not crash', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    import { Worker } from 'node:worker_threads';
    PythonEngine.exec('holder = {}');
    const source = "import { PythonEngine } from '" + import.meta.resolve('pyembed') + "';" +
      "PythonEngine.eval('holder').set('f', (x) => x + 1);";
    const worker = new Worker(new URL('data:text/javascript,' + encodeURIComponent(source)));
    await new Promise((resolve, reject) => { worker.on('exit', resolve); worker.on('error', reject); });
    PythonEngine.exec('holder.clear()');   // the last reference to the worker's function
    console.log('survived');
  `);
  assert.equal(r.signal, null, explain(r));
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.stdout.trim(), 'survived');
});

// CPython 3.12 cannot import _datetime, _asyncio or _decimal again after Py_FinalizeEx() and
// Py_Initialize() in one process (double free / segfault; also in a plain C embedding: an
// upstream bug, fixed in 3.13: python/cpython#118608, #116467). pyembed imports asyncio for every
// awaited coroutine, so `await coro; shutdown(); initialize(); await coro` crashes on 3.12.
// pyembed refuses such a restart with an explanation, as it does under daemon threads.
const python312 = (() => {
  const versions = path.join(process.env.PYENV_ROOT ?? path.join(os.homedir(), '.pyenv'), 'versions');
  const v = fs.existsSync(versions) ? fs.readdirSync(versions).find((d) => /^3\.12\.\d+$/.test(d)) : undefined;
  return v && path.join(versions, v, 'bin', 'python3');
})();

test('a restart after using asyncio on CPython 3.12 works or is refused clearly, never crashes', {
  skip: python312 && fs.existsSync(python312) ? false : 'no CPython 3.12 under pyenv',
}, async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    PythonEngine.exec('async def f():\\n    return 1\\n');
    await PythonEngine.eval('f()');
    PythonEngine.shutdown();
    try {
      PythonEngine.initialize();
      PythonEngine.exec('import asyncio, datetime');
      console.log('restarted');
    } catch (e) {
      console.log('refused: ' + e.message);
    }
  `, { env: { PYEMBED_PYTHON: python312 } });
  assert.equal(r.signal, null, explain(r));
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /^(restarted|refused: .+)$/m);
});

// A Python thread calling a worker's JS function while the worker makes synchronous Python calls
// borrows the worker's parked isolate; v8::Isolate::Enter on the borrower recorded the borrower's
// stack as the one the (cppgc) collector scans, and the worker's next full GC walked a range
// spanning two threads' stacks: SIGSEGV in IteratePointersInStack, in 5 runs of 6. The thread
// that takes its isolate back now enters it again to record its own stack.
test('a worker whose isolate Python threads borrowed survives full garbage collections', async () => {
  // Two runs side by side: the crash hit about half of the runs of one child.
  const script = `
    import { Worker, isMainThread } from 'node:worker_threads';
    import { PyModule, Py } from 'pyembed';
    if (isMainThread) {
      const m = PyModule.fromString('borrowed_gc', [
        'import threading',
        'fns, errors, stop = [], [], threading.Event()',
        'def noop(): pass',
        'def run():',
        '    while not stop.is_set():',
        '        for f in list(fns):',
        '            try:',
        '                f(1)',
        '            except Exception as e:',
        '                errors.append(repr(e))',
        'thread = threading.Thread(target=run)',
        'thread.start()',
        'def finish():',
        '    fns.clear(); stop.set(); thread.join()',
      ].join('\\n'));
      const worker = new Worker(new URL(import.meta.url));
      await new Promise((resolve, reject) => { worker.on('exit', resolve); worker.on('error', reject); });
      console.log('errors: ' + m.errors.length);
    } else {
      const m = Py.import('borrowed_gc');
      m.fns.append((x) => x * 3);
      for (let i = 0; i < 20000; i++) {
        m.noop();   // the Python thread may borrow the isolate while this call runs
        await new Promise((resolve) => setImmediate(resolve));
        if (i % 500 === 499) globalThis.gc();
      }
      m.finish();
    }
  `;
  const runs = await Promise.all([1, 2].map(() => runScript(script, { nodeArgs: ['--expose-gc'] })));
  for (const r of runs) {
    assert.equal(r.signal, null, explain(r));
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.stdout.trim(), 'errors: 0');
  }
});
