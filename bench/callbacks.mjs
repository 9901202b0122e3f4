// A JS callback called from Python on the calling thread: pyembed against node-calls-python, in
// child processes that take turns (pyembed, then node-calls-python, PASSES times), so both meet
// the same machine load. Each child times ROUNDS rounds of `call_n(cb, N)` and reports its best
// round, as wall time and as CPU time per callback (CPU time counts this process's threads only,
// so a loaded machine's waits for a core do not count). Prints a Markdown table.
//
//   node bench/callbacks.mjs         (also part of `npm run bench`: node bench/run.mjs callbacks)
//   BENCH_CALLBACKS_N [300000]  BENCH_ROUNDS [5]  BENCH_PASSES [3]  (BENCH_QUICK=1: all small)
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { envNumber, quick } from './lib/measure.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const N = envNumber('BENCH_CALLBACKS_N', quick ? 20_000 : 300_000);
const ROUNDS = envNumber('BENCH_ROUNDS', quick ? 2 : 5);
const PASSES = envNumber('BENCH_PASSES', quick ? 1 : 3);
const source = 'def call_n(f, n):\n    r = None\n    for i in range(n):\n        r = f(i)\n    return r\n';

async function child(peer) {
  let callN;
  if (peer === 'pyembed') {
    const { PythonEngine, PyModule } = await import('../dist/index.js');
    PythonEngine.initialize();
    const m = PyModule.fromString('bench_callbacks', source);
    callN = (f, n) => m.call_n(f, n);
  } else {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const { interpreter: py } = await import('node-calls-python');
    const file = path.join(os.tmpdir(), `pyembed-bench-callbacks-${process.pid}.py`);
    fs.writeFileSync(file, source);
    const m = py.importSync(file, false);
    fs.rmSync(file);
    callN = (f, n) => py.callSync(m, 'call_n', f, n);
  }
  const cb = (i) => i;
  if (callN(cb, 10) !== 9) throw new Error(`${peer}: wrong result`);
  let wall = Infinity;
  let cpu = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    callN(cb, N);
    wall = Math.min(wall, Number(process.hrtime.bigint() - t0) / N);
    const used = process.cpuUsage(c0);
    cpu = Math.min(cpu, ((used.user + used.system) * 1000) / N);
  }
  console.log(JSON.stringify({ wall, cpu }));
}

if (process.argv[2] === '--peer') {
  await child(process.argv[3]);
} else {
  const rows = [];
  const run = (peer) => JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--peer', peer],
    { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').at(-1));
  for (let pass = 1; pass <= PASSES; pass++) {
    const ours = run('pyembed');
    let theirs;
    try {
      theirs = run('node-calls-python');
    } catch (error) {  // not installed (npm run bench installs it), or it failed to load
      const why = String(error.stderr || error.message).trim().split('\n')[0];
      console.log(`node-calls-python did not run (${why}); pyembed alone: ${ours.cpu.toFixed(0)} ns CPU, ${ours.wall.toFixed(0)} ns wall per callback.`);
      process.exit(0);
    }
    rows.push({ pass, ours, theirs });
    process.stderr.write(`  pass ${pass}: pyembed ${ours.cpu.toFixed(0)} ns CPU, node-calls-python ${theirs.cpu.toFixed(0)} ns CPU\n`);
  }
  const ns = (v) => `${v.toFixed(0)} ns`;
  console.log([
    `Best of ${ROUNDS} rounds of ${N.toLocaleString('en-US')} callbacks per process; the ratio is node-calls-python's time over pyembed's (above 1: pyembed is faster).`,
    '',
    '| pass | pyembed wall | pyembed CPU | node-calls-python wall | node-calls-python CPU | ratio (CPU) | ratio (wall) |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(({ pass, ours, theirs }) =>
      `| ${pass} | ${ns(ours.wall)} | ${ns(ours.cpu)} | ${ns(theirs.wall)} | ${ns(theirs.cpu)} | ${(theirs.cpu / ours.cpu).toFixed(2)}× | ${(theirs.wall / ours.wall).toFixed(2)}× |`),
  ].join('\n'));
}
