// Call overhead: a no-op call, an attribute read and a call with three arguments, from JS (with
// and without a Py.GIL() scope) against the same operation done by Python itself (timeit), all
// measured in this run. Prints a Markdown section; `npm run bench` collects it into RESULTS.md.
import { PythonEngine, Py, PyModule } from '../dist/index.js';
import { nsPerOp } from './lib/measure.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const N = Number(process.env.BENCH_N ?? 1_000_000);

PythonEngine.initialize();
const m = PyModule.fromString('bench_core', `
import timeit
def noop():
    pass
def three(a, b, c):
    return c
class Holder:
    attr = 1
holder = Holder()

def python_ns(stmt, rounds):
    timer = timeit.Timer(stmt, globals=globals())
    number, _ = timer.autorange()
    number = max(number, 200000)
    return sorted(t / number * 1e9 for t in timer.repeat(rounds, number))[rounds // 2]
`);

const jsNs = (fn) => nsPerOp(fn, ROUNDS, N);

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
  const python = m.python_ns(w.python, ROUNDS);
  const jsPlain = jsNs(w.js);
  const gil = Py.GIL();
  let jsScoped;
  try {
    jsScoped = jsNs(w.js);
  } finally {
    gil.dispose();
  }
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
