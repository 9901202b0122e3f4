// valgrind: a worker thread joins the interpreter, shares an object, calls back, and exits.
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { PythonEngine, Py } from 'pyembed';

PythonEngine.exec('shared = [1, 2]');
const token = Py.share(PythonEngine.eval('shared'));
const source = `
  import { PythonEngine, Py } from ${JSON.stringify(import.meta.resolve('pyembed'))};
  import { parentPort, workerData } from 'node:worker_threads';
  const list = Py.unshare(workerData);
  list.append(3);
  const call = PythonEngine.eval('lambda f: f(20)');
  parentPort.postMessage(call((x) => x + 22));
`;
const worker = new Worker(source, { eval: true, workerData: token });
const [message] = await Promise.all([new Promise((r) => worker.once('message', r)), new Promise((r) => worker.once('exit', r))]);
assert.equal(message, 42);
assert.deepEqual(PythonEngine.eval('shared').toJS(), [1, 2, 3]);
console.log('OK');
