// The misuse suites' shared harness: each scenario runs in its own child process, which checks its
// own expectations with node:assert, then makes one more Python call and prints `FINAL 45`; the
// parent requires a clean exit, no signal, no timeout and that line.
import assert from 'node:assert/strict';

import { explain, runScript, type ChildOptions, type ChildResult } from './helpers.js';

export const prelude = `
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { Worker } from 'node:worker_threads';
import { PythonEngine, Py, PyModule, PythonError, ThreadState, isPyObject } from 'pyembed';
const { native } = await import(new URL('./dist/native.js', 'file://' + process.cwd() + '/').href);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pyembedUrl = import.meta.resolve('pyembed');
// Runs source text in a new worker that has PythonEngine, Py, PyModule, post(), workerData.
function inWorker(source, workerData) {
  const prefix = "import { PythonEngine, Py, PyModule } from '" + pyembedUrl + "';" +
    "import { parentPort, workerData } from 'node:worker_threads';" +
    "const post = (v) => parentPort.postMessage(v);";
  const worker = new Worker(prefix + source, { eval: true, workerData });
  const messages = [];
  const done = new Promise((resolve, reject) => {
    worker.on('message', (m) => messages.push(m));
    worker.on('error', reject);
    worker.on('exit', (code) => resolve({ code, messages }));
  });
  const next = async () => { const n = messages.length; while (messages.length === n) await sleep(5); return messages[n]; };
  return { worker, done, messages, next };
}
// Settles JS garbage collection and pyembed's queued decrefs (needs --expose-gc).
async function collect() {
  for (let i = 0; i < 6; i++) { globalThis.gc(); await sleep(5); }
  PythonEngine.eval('__import__("gc").collect()');
}
`;

export const epilogue = `
console.log('FINAL ' + PythonEngine.eval('sum(range(10))'));
`;

/** Runs one scenario; asserts a clean exit and a working interpreter at the end. */
export async function scenario(body: string, options: ChildOptions = {}): Promise<ChildResult> {
  const r = await runScript(prelude + body + epilogue, { timeoutMs: 60_000, ...options });
  assert.equal(r.timedOut, false, explain(r));
  assert.equal(r.signal, null, explain(r));
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /^FINAL 45$/m, explain(r));
  return r;
}

export const gc = { nodeArgs: ['--expose-gc'] };
// Scenarios that would expose a hang get a shorter leash, so a regression costs seconds, not a minute.
export const short = { timeoutMs: 20_000 };
