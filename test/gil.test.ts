import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PythonEngine, Py, PyModule, ThreadState } from 'pyembed';

import { explain, runScript } from './helpers.js';

// threadState() is internal: [attached (holds the GIL), open scopes, operations in progress].
const nativeModule: string = new URL('../../dist/native.js', import.meta.url).href;
const { native } = (await import(nativeModule)) as { native: { threadState(): [boolean, number, number] } };

PythonEngine.initialize();

test('after initialize and between calls, this thread does not hold the GIL', () => {
  assert.deepEqual(native.threadState(), [false, 0, 0]);
  Py.import('math').sqrt(4);
  assert.deepEqual(native.threadState(), [false, 0, 0]);
  const cb = PyModule.fromString('gil_cb', 'def call(f): return f()').call;
  // While a JS callback runs, the GIL is released too.
  assert.deepEqual(cb(() => native.threadState()).toJS(), [false, 0, 1]);
});

test('Py.GIL() holds the GIL across operations, nests, and releases at the last dispose', () => {
  const outer = Py.GIL();
  assert.deepEqual(native.threadState(), [true, 1, 0]);
  const inner = Py.GIL();
  assert.equal(Py.import('math').sqrt(9), 3);
  assert.deepEqual(native.threadState(), [true, 2, 0]);
  inner.dispose();
  inner.dispose(); // twice: nothing more happens
  assert.deepEqual(native.threadState(), [true, 1, 0]);
  outer[Symbol.dispose]();
  assert.deepEqual(native.threadState(), [false, 0, 0]);
});

test('scopes disposed out of order still release the GIL once all are closed', () => {
  const a = Py.GIL();
  const b = Py.GIL();
  a.dispose();
  assert.deepEqual(native.threadState(), [true, 1, 0]);
  b.dispose();
  assert.deepEqual(native.threadState(), [false, 0, 0]);
});

test('using a scope across an await does not keep the GIL while the event loop idles', async () => {
  const scope = Py.GIL();
  try {
    assert.equal(native.threadState()[0], true);
    // Two immediates: the second runs in the next loop iteration, after its prepare phase.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.equal(native.threadState()[0], false); // released at the loop turn
    assert.equal(Py.import('math').floor(2.5), 2); // and taken again on the next operation
    assert.equal(native.threadState()[0], true);
  } finally {
    scope.dispose();
  }
  assert.equal(native.threadState()[0], false);
});

test('beginAllowThreads / endAllowThreads release and restore a scope', () => {
  const scope = Py.GIL();
  const state = PythonEngine.beginAllowThreads();
  assert.ok(state instanceof ThreadState);
  assert.deepEqual(native.threadState(), [false, 0, 0]);
  PythonEngine.endAllowThreads(state);
  assert.deepEqual(native.threadState(), [true, 1, 0]);
  scope.dispose();
  // Harmless outside a scope (pyembed already released the GIL).
  PythonEngine.endAllowThreads(PythonEngine.beginAllowThreads());
  assert.deepEqual(native.threadState(), [false, 0, 0]);
  assert.equal(PythonEngine.allowThreads(() => 5), 5);
});

test('a wrong or reused allow-threads token is a clear error', () => {
  const state = PythonEngine.beginAllowThreads();
  PythonEngine.endAllowThreads(state);
  assert.throws(() => PythonEngine.endAllowThreads(state), /already/);
  assert.throws(() => PythonEngine.endAllowThreads({} as ThreadState), TypeError);
  const first = PythonEngine.beginAllowThreads();
  const second = PythonEngine.beginAllowThreads();
  assert.throws(() => PythonEngine.endAllowThreads(first), /innermost/);
  PythonEngine.endAllowThreads(second);
  PythonEngine.endAllowThreads(first);
  assert.throws(() => PythonEngine.allowThreads(42 as never), TypeError);
});

test('a Python thread runs at once and keeps its rhythm while JS is busy and while it is idle', async () => {
  // The seed page's "Hello thread": prints every 100 ms. In pythonnet without BeginAllowThreads
  // it would not run while the host keeps the GIL.
  const r = await runScript(`
    import { PythonEngine, PyModule } from 'pyembed';
    PythonEngine.initialize();
    const m = PyModule.fromString('hello', \`
import threading, time
ticks = []
def say_hello():
    while True:
        ticks.append(time.monotonic())
        time.sleep(0.1)
def launch_hello():
    threading.Thread(name="Hello thread", target=say_hello, daemon=True).start()
\`);
    m.launch_hello();
    const start = Date.now();
    while (Date.now() - start < 1000) {} // JS busy, no Python calls
    const busy = m.ticks.length;
    await new Promise((r) => setTimeout(r, 1000)); // JS idle
    const idle = m.ticks.length - busy;
    console.log(JSON.stringify({ busy, idle }));
  `);
  assert.equal(r.code, 0, explain(r));
  const { busy, idle } = JSON.parse(r.stdout);
  // ~10 each; a starved thread would show 0 or 1 in the busy second.
  assert.ok(busy >= 5, `ticks while JS was busy: ${busy}`);
  assert.ok(idle >= 5, `ticks while JS was idle: ${idle}`);
});

test('a JS callback that blocks (LongRunningComputation) does not stall Python threads', async () => {
  const r = await runScript(`
    import { PythonEngine, PyModule } from 'pyembed';
    const m = PyModule.fromString('lrc', \`
import threading, time
ticks = []
def ticker():
    while True:
        ticks.append(1); time.sleep(0.05)
threading.Thread(target=ticker, daemon=True).start()
def run_host_code(f):
    before = len(ticks)
    f()
    return len(ticks) - before
\`);
    const sab = new Int32Array(new SharedArrayBuffer(4));
    // The JS callback sleeps for 1 s without calling beginAllowThreads.
    console.log(m.run_host_code(() => Atomics.wait(sab, 0, 0, 1000)));
  `);
  assert.equal(r.code, 0, explain(r));
  assert.ok(Number(r.stdout) >= 10, `ticks during the 1 s callback: ${r.stdout}`);
});
