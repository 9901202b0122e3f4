// Isolated workers (PythonEngine.initialize({ interpreter: 'isolated' }), CPython 3.12+) against
// the shared interpreter on the `spin` workload of bench/threads.mjs: pure-Python loops that hold
// the GIL. N workers each run the same fixed amount of work; the rows compare wall times within
// one run (throughput = N x work / wall time, scaling = against one worker of the same mode).
// The `callAsync` rows run the same work through callAsync (the shared pool, or the isolated
// worker's own pool of threads in its interpreter) instead of a synchronous call.
// Also: the time from `new Worker` to an isolated worker's first call, and the process's RSS
// growth per live isolated worker.
//
//   PYEMBED_PYTHON=~/.pyenv/versions/3.12.1/bin/python3 node bench/isolated.mjs
// Environment: BENCH_ISOLATED_WORKERS [2]  BENCH_ISOLATED_SPIN [5000000]  BENCH_ISOLATED_ROUNDS [3]
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

import { PythonEngine, PyModule } from '../dist/index.js';

const SOURCE = `
def spin(n):
    s = 0
    for i in range(n):
        s += i
    return s
`;

if (!isMainThread) {
  const { mode, n } = workerData;
  const [interpreter, via] = mode.split(' ');
  PythonEngine.initialize({ interpreter });
  const m = PyModule.fromString('bench_isolated', SOURCE);
  parentPort.postMessage('ready');
  parentPort.once('message', async () => {
    if (via === 'callAsync') await m.spin.callAsync(n);
    else m.spin(n);
    parentPort.postMessage('done');
  });
} else {
  const workers = Number(process.env.BENCH_ISOLATED_WORKERS ?? 2);
  const n = Number(process.env.BENCH_ISOLATED_SPIN ?? 5_000_000);
  const rounds = Number(process.env.BENCH_ISOLATED_ROUNDS ?? 3);
  PythonEngine.initialize();

  // Starts `count` workers, waits until all are ready, then times them all running spin(n).
  async function round(mode, count) {
    const ws = Array.from({ length: count }, () => new Worker(new URL(import.meta.url), { workerData: { mode, n } }));
    await Promise.all(ws.map((w) => new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); })));
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const done = ws.map((w) => new Promise((resolve) => w.once('message', resolve)));
    for (const w of ws) w.postMessage('go');
    await Promise.all(done);
    const ms = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);
    await Promise.all(ws.map((w) => w.terminate()));
    return { ms, cores: (cpu.user + cpu.system) / 1000 / ms };
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const results = {};
  const modes = ['shared', 'isolated', 'shared callAsync', 'isolated callAsync'];
  for (const mode of modes) {
    for (const count of [1, workers]) {
      const times = [];
      const cores = [];
      for (let r = 0; r < rounds; r++) {
        const { ms, cores: c } = await round(mode, count);
        times.push(ms);
        cores.push(c);
      }
      results[`${mode}:${count}`] = median(times);
      results[`${mode}:${count}:cores`] = median(cores);
      process.stderr.write(`${mode} x${count}: ${median(times).toFixed(0)} ms\n`);
    }
  }

  // Start-up and memory: workers that start an isolated interpreter, make one call, and stay.
  const startups = [];
  const live = [];
  const rssBefore = process.memoryUsage().rss;
  for (let i = 0; i < 4; i++) {
    const t0 = performance.now();
    const w = new Worker(new URL(import.meta.url), { workerData: { mode: 'isolated', n: 1 } });
    await new Promise((resolve) => w.once('message', resolve));
    startups.push(performance.now() - t0);
    live.push(w);
  }
  const rssPer = (process.memoryUsage().rss - rssBefore) / live.length / 2 ** 20;
  // The same for shared workers, as the reference (a Node worker's own cost is in both).
  await Promise.all(live.map((w) => w.terminate()));
  const sharedStartups = [];
  const sharedLive = [];
  const rssBeforeShared = process.memoryUsage().rss;
  for (let i = 0; i < 4; i++) {
    const t0 = performance.now();
    const w = new Worker(new URL(import.meta.url), { workerData: { mode: 'shared', n: 1 } });
    await new Promise((resolve) => w.once('message', resolve));
    sharedStartups.push(performance.now() - t0);
    sharedLive.push(w);
  }
  const rssPerShared = (process.memoryUsage().rss - rssBeforeShared) / sharedLive.length / 2 ** 20;
  await Promise.all(sharedLive.map((w) => w.terminate()));

  const row = (mode, count) => {
    const ms = results[`${mode}:${count}`];
    const scaling = (count * results[`${mode}:1`]) / ms;
    const cores = results[`${mode}:${count}:cores`];
    return `| ${mode} | ${count} | ${ms.toFixed(0)} ms | ${scaling.toFixed(2)}× | ${cores.toFixed(2)} |`;
  };
  console.log(`Python ${PythonEngine.version.split(' ')[0]}, Node ${process.version}, spin(${n}) per worker, median of ${rounds} rounds.\n`);
  console.log('| interpreter | workers | wall time | scaling (N × one worker\'s time / wall time) | cores busy (process CPU time / wall time) |');
  console.log('|---|---:|---:|---:|---:|');
  for (const mode of modes) for (const count of [1, workers]) console.log(row(mode, count));
  console.log(`\n${workers} isolated workers against ${workers} shared workers: ${(results[`shared:${workers}`] / results[`isolated:${workers}`]).toFixed(2)}× faster` +
    ` (through callAsync: ${(results[`shared callAsync:${workers}`] / results[`isolated callAsync:${workers}`]).toFixed(2)}×).\n`);
  console.log('| worker | start to first call (median of 4) | RSS growth per live worker |');
  console.log('|---|---:|---:|');
  console.log(`| isolated | ${median(startups).toFixed(1)} ms | ${rssPer.toFixed(1)} MiB |`);
  console.log(`| shared (reference) | ${median(sharedStartups).toFixed(1)} ms | ${rssPerShared.toFixed(1)} MiB |`);
}
