// Call overhead: a no-op call, an attribute read and a call with three arguments, from JS (with
// and without a Py.GIL() scope) against the same operation done by Python itself (timeit), all
// measured in this run. Prints a Markdown section; `npm run bench` collects it into RESULTS.md.
import { PythonEngine, Py, PyModule } from '../dist/index.js';
import { CORE_FIXTURE } from './lib/core-fixture.mjs';
import { median, nsPerOp } from './lib/measure.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const N = Number(process.env.BENCH_N ?? 1_000_000);

PythonEngine.initialize();
const m = PyModule.fromString('bench_core', CORE_FIXTURE + `
import timeit

timers = {}
def python_round_ns(stmt):
    # One timed round of stmt (calibrated once): ns per run.
    if stmt not in timers:
        timer = timeit.Timer(stmt, globals=globals())
        number, _ = timer.autorange()
        timers[stmt] = (timer, max(number, 200000))
    timer, number = timers[stmt]
    return timer.timeit(number) / number * 1e9
`);

// The three measurements of a workload take turns, round by round (Python, JS, JS in a scope),
// so that a change of the machine's load during the run moves all three alike: on a shared
// machine, measuring one after the other skewed the ratios by up to 3x between runs.
function measureInTurns(w) {
  const python = [];
  const plain = [];
  const scoped = [];
  w.js(); // warm up
  for (let r = 0; r < ROUNDS; r++) {
    python.push(m.python_round_ns(w.python));
    plain.push(nsPerOp(w.js, 1, N));
    const gil = Py.GIL();
    try {
      scoped.push(nsPerOp(w.js, 1, N));
    } finally {
      gil.dispose();
    }
  }
  return { python: median(python), jsPlain: median(plain), jsScoped: median(scoped) };
}

const { noop, three, holder } = m;
const workloads = [
  {
    name: 'no-op call `noop()`',
    python: 'noop()',
    js: () => { for (let i = 0; i < N; i++) noop(); },
  },
  {
    name: 'attribute read `holder.attr`',
    python: 'holder.attr',
    js: () => { let x; for (let i = 0; i < N; i++) x = holder.attr; return x; },
  },
  {
    name: "call with three arguments `three(1, 'a', 2.5)`",
    python: "three(1, 'a', 2.5)",
    js: () => { for (let i = 0; i < N; i++) three(1, 'a', 2.5); },
  },
];

const rows = [];
for (const w of workloads) {
  const { python, jsPlain, jsScoped } = measureInTurns(w);
  rows.push({ name: w.name, python, jsPlain, jsScoped });
  process.stderr.write(`  ${w.name}: python ${python.toFixed(1)} ns, js ${jsPlain.toFixed(1)} ns, js in Py.GIL() ${jsScoped.toFixed(1)} ns\n`);
}

const lines = [
  '| operation | Python → Python (timeit) | JS → Python | ratio | JS → Python in `Py.GIL()` | ratio |',
  '|---|---:|---:|---:|---:|---:|',
  ...rows.map((r) =>
    `| ${r.name} | ${r.python.toFixed(1)} ns | ${r.jsPlain.toFixed(1)} ns | ${(r.jsPlain / r.python).toFixed(2)}× | ${r.jsScoped.toFixed(1)} ns | ${(r.jsScoped / r.python).toFixed(2)}× |`),
];
console.log(lines.join('\n'));
