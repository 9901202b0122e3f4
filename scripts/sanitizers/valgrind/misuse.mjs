// valgrind: misuse that used to crash or corrupt memory (see test/misuse.test.ts): workers
// terminated in the middle of calls and callbacks, an exited worker's JS function released by
// Python, a getter that restarts Python while a call captures its arguments, a coroutine pending
// at shutdown, a Py.GIL() scope closed inside a callback.
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { PythonEngine, Py, PyModule } from 'pyembed';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pyembedUrl = import.meta.resolve('pyembed');
function inWorker(source) {
  const prefix = `import { PythonEngine } from ${JSON.stringify(pyembedUrl)};
    import { parentPort } from 'node:worker_threads';
    const post = (v) => parentPort.postMessage(v);`;
  const worker = new Worker(prefix + source, { eval: true });
  const messages = [];
  const first = new Promise((r) => worker.once('message', r));
  worker.on('message', (m) => messages.push(m));
  worker.on('error', (e) => { console.error(e); process.exitCode = 1; });
  const done = new Promise((r) => worker.on('exit', r));
  return { worker, first, done, messages };
}

PythonEngine.exec('import time\ndef propagate(f):\n    return f()\nholder = {}');

// terminated while Python runs its JS callback, and while its Python call sleeps
for (const source of [
  "PythonEngine.eval('propagate')(() => { post('in callback'); for (;;) {} });",
  "const f = PythonEngine.eval('lambda f: (time.sleep(0.5), f())'); post('start'); f(() => [1, 2]);",
]) {
  const w = inWorker(source);
  await w.first;
  await sleep(200);
  await w.worker.terminate();
  await w.done;
  assert.equal(PythonEngine.eval('1 + 1'), 2);
}

// Python drops the last reference to a JS function of a worker that has exited
const w = inWorker("PythonEngine.eval('holder').set('f', () => 1); post('set');");
await w.done;
PythonEngine.exec('holder.clear()\nimport gc\ngc.collect()');

// a getter restarts Python while a call captures its arguments: the old proxy is refused
const old = PythonEngine.eval('[1, 2]');
const restart = { get x() { PythonEngine.shutdown(); PythonEngine.initialize(); return 1; } };
assert.throws(() => Py.toPython([old, restart]), /interpreter that was shut down/);
assert.throws(() => PythonEngine.eval('lambda *a: a')(old, restart), /interpreter that was shut down/);

// a coroutine pending at shutdown rejects
const m = PyModule.fromString('vg_pending', 'import asyncio\nasync def forever():\n    await asyncio.sleep(3600)\n');
const settled = Promise.resolve(m.forever()).then(() => 'resolved', () => 'rejected');
await sleep(300);
PythonEngine.shutdown();
assert.equal(await settled, 'rejected');
PythonEngine.initialize();

// a Py.GIL() scope closed inside a callback stays closed
const outer = Py.GIL();
PythonEngine.eval('lambda f: f()')(() => outer.dispose());
assert.equal(outer.isOpen, false);
assert.equal(PythonEngine.eval('sum(range(10))'), 45);
console.log('OK');
