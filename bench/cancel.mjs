// Cancelling Python code: how long from `abort()` to the rejection of the promise.
//
// 1. callAsync of pure-Python code (a busy loop) with an AbortSignal, aborted once the loop runs:
//    the time until the promise rejects (KeyboardInterrupt raised in the loop, its finally run,
//    the error carried back to the event loop).
// 2. A coroutine awaiting asyncio.sleep, aborted: its task is cancelled on pyembed's asyncio loop.
//    Most of it is the GIL switch interval (5 ms): the thread that raises the exception waits that
//    long for the spinning thread to hand the GIL over. abort() itself only hands off to it.
// 3. For scale, in the same run: a `callAsync` round trip of a no-op (the crossing both ways that
//    an abort also pays), and `worker.terminate()` of a worker inside a pure-Python loop (shared,
//    and on CPython 3.12+ isolated: PYEMBED_PYTHON chooses the Python).
//
// Prints a Markdown section on stdout, progress on stderr. Environment (BENCH_QUICK=1: small):
//   BENCH_CANCEL_SAMPLES [500]  BENCH_CANCEL_WORKERS [20]
import { Worker } from 'node:worker_threads';

import { PythonEngine, PyModule } from '../dist/index.js';

import { envNumber, median, quantile, quick } from './lib/measure.mjs';

const SAMPLES = envNumber('BENCH_CANCEL_SAMPLES', quick ? 50 : 500);
const WORKERS = envNumber('BENCH_CANCEL_WORKERS', quick ? 3 : 20);

const SOURCE = `
import asyncio, itertools

def spin(flag):
    try:
        flag[0] = 1
        for _ in itertools.count():
            pass
    finally:
        flag[0] = 2

async def wait_long():
    await asyncio.sleep(3600)

def noop():
    pass
`;

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const tick = () => new Promise((resolve) => setImmediate(resolve));

function stats(samples) {
  return { p50: median(samples), p99: quantile(samples, 0.99), max: Math.max(...samples), n: samples.length };
}

function fmt(ms) {
  return ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(1)} µs`;
}

let withoutCause = 0; // aborts that rejected before the Python code stopped (after 100 ms)
const abortItself = []; // how long abort() kept the event loop (the listener hands off)
const abortBare = []; // abort() of a signal nobody listens to: Node's own cost

async function abortRunning(m, flag) {
  const samples = [];
  for (let i = 0; i < SAMPLES; i++) {
    flag[0] = 0;
    const ac = new AbortController();
    const call = m.spin.callAsync(flag, ac.signal);
    while (Atomics.load(flag, 0) === 0) await tick();
    const t0 = now();
    ac.abort();
    abortItself.push(now() - t0);
    const bare = new AbortController();
    const t1 = now();
    bare.abort();
    abortBare.push(now() - t1);
    try {
      await call;
      throw new Error('the call was not aborted');
    } catch (error) {
      if (error.name !== 'AbortError') throw error;
      if (error.cause?.type !== 'KeyboardInterrupt') withoutCause++; // rejected after 100 ms
    }
    samples.push(now() - t0);
    while (Atomics.load(flag, 0) !== 2) await tick(); // its finally ran
  }
  return stats(samples);
}

async function abortCoroutine(m) {
  const samples = [];
  for (let i = 0; i < SAMPLES; i++) {
    const ac = new AbortController();
    const call = m.wait_long.callAsync(ac.signal);
    await new Promise((resolve) => setTimeout(resolve, 1)); // the coroutine is waiting
    const t0 = now();
    ac.abort();
    try {
      await call;
    } catch (error) {
      if (error.name !== 'AbortError') throw error;
    }
    samples.push(now() - t0);
  }
  return stats(samples);
}

async function roundTrip(m) {
  const samples = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = now();
    await m.noop.callAsync();
    samples.push(now() - t0);
  }
  return stats(samples);
}

// interpreter: 'shared', or 'isolated' (the worker's own interpreter and GIL, CPython 3.12+).
async function terminateWorkers(interpreter) {
  const url = new URL('../dist/index.js', import.meta.url).href;
  const samples = [];
  for (let i = 0; i < WORKERS; i++) {
    const worker = new Worker(
      `import { PythonEngine } from '${url}'; import { parentPort } from 'node:worker_threads';
       PythonEngine.initialize({ interpreter: '${interpreter}' });
       parentPort.postMessage('start');
       PythonEngine.exec('import itertools\\nfor _ in itertools.count(): pass');`,
      { eval: true },
    );
    await new Promise((resolve) => worker.once('message', resolve));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const t0 = now();
    await worker.terminate();
    samples.push(now() - t0);
  }
  return stats(samples);
}

PythonEngine.initialize();
const m = PyModule.fromString('bench_cancel', SOURCE);
const flag = new Int32Array(new SharedArrayBuffer(4));
process.stderr.write('cancel: warming up\n');
await roundTrip(m);
process.stderr.write('cancel: callAsync round trips\n');
const trip = await roundTrip(m);
process.stderr.write('cancel: aborting pure-Python calls\n');
const running = await abortRunning(m, flag);
process.stderr.write('cancel: aborting coroutines\n');
const coroutine = await abortCoroutine(m);
process.stderr.write('cancel: terminating workers\n');
const terminated = await terminateWorkers('shared');
const isolatedSupported = PythonEngine.eval('__import__("sys").version_info >= (3, 12)');
const terminatedIsolated = isolatedSupported ? await terminateWorkers('isolated') : undefined;

const row = (what, s, ratio = true) =>
  `| ${what} | ${s.n} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.max)} | ${ratio ? `${(s.p50 / trip.p50).toFixed(1)}×` : ''} |`;
console.log(`Time from \`abort()\` (or \`terminate()\`) until the promise settles, on the main thread, in milliseconds of wall time; ${SAMPLES} samples per row (${WORKERS} workers). "vs round trip": the median against the median \`await noop.callAsync()\` of the same run. Pure-Python aborts that rejected after 100 ms, before the code stopped (no \`cause\`): ${withoutCause}.

| what | samples | p50 | p99 | max | vs round trip |
|---|---:|---:|---:|---:|---:|
${row('`await noop.callAsync()` round trip (reference)', trip)}
${row('callAsync of a pure-Python loop, `abort()` → rejection (AbortError, cause KeyboardInterrupt)', running)}
${row('… of which `abort()` itself (the event loop does not wait for the GIL)', stats(abortItself))}
${row('`abort()` of a signal without listeners (Node alone, reference)', stats(abortBare))}
${row('callAsync of a coroutine in `asyncio.sleep`, `abort()` → rejection (task cancelled)', coroutine)}
${row('`worker.terminate()` of a worker in a pure-Python loop → exit', terminated)}
${terminatedIsolated ? row('… of an isolated worker (its own interpreter and GIL)', terminatedIsolated) : '| (isolated workers: CPython 3.12+ only) | | | | | |'}
`);
