// Call overhead in CPU time: a no-op call and an attribute read from JS (with and without a
// Py.GIL() scope) against the same operation in a Python loop, as the least CPU time per operation
// over R rounds. On a loaded machine CPU time moves less than wall-clock time (core.mjs gives the
// issue's ratios). N (300 000) operations per round, R (9) rounds, W: workloads (call,attr,three).
import { PythonEngine, Py, PyModule } from '../dist/index.js';
import { CORE_FIXTURE } from './lib/core-fixture.mjs';

PythonEngine.initialize();
const m = PyModule.fromString('bench_core_cpu', CORE_FIXTURE + `
import time
def py_ns(which, n):
    t0 = time.thread_time_ns()
    if which == 'call':
        for _i in range(n): noop()
    elif which == 'attr':
        for _i in range(n): holder.attr
    else:
        for _i in range(n): three(1, 'a', 2.5)
    return (time.thread_time_ns() - t0) / n
`);
const { noop, three, holder } = m;
const N = Number(process.env.N ?? 300_000);
const R = Number(process.env.R ?? 9);
const js = {
  call: () => { for (let i = 0; i < N; i++) noop(); },
  attr: () => { let x; for (let i = 0; i < N; i++) x = holder.attr; return x; },
  three: () => { for (let i = 0; i < N; i++) three(1, 'a', 2.5); },
};
function cpuNs(fn) {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / N;
}
const lines = [
  '| operation | Python (CPU ns) | JS → Python | ratio | in `Py.GIL()` | ratio |',
  '|---|---:|---:|---:|---:|---:|',
];
for (const w of (process.env.W ?? 'call,attr').split(',')) {
  const py = [];
  const plain = [];
  const scoped = [];
  js[w](); // warm up
  for (let r = 0; r < R; r++) {
    py.push(m.py_ns(w, N));
    plain.push(cpuNs(js[w]));
    const gil = Py.GIL();
    try {
      scoped.push(cpuNs(js[w]));
    } finally {
      gil.dispose();
    }
  }
  const [p, j, s] = [py, plain, scoped].map((a) => Math.min(...a));
  lines.push(`| ${w} | ${p.toFixed(1)} | ${j.toFixed(1)} | ${(j / p).toFixed(2)}× | ${s.toFixed(1)} | ${(s / p).toFixed(2)}× |`);
}
console.log(lines.join('\n'));
PythonEngine.shutdown();
