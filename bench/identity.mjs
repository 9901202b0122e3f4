// The paths that identity (issue 15, item 2) touches, as ratios to a no-op call in the same run:
// results that are Python objects (the same one each time, or a new one each time) and JS
// functions passed to Python (the same one each time, or a new one each time). Run it on two
// builds to compare: `node bench/identity.mjs`. Prints a Markdown table.
import { PythonEngine, PyModule } from '../dist/index.js';
import { nsPerOp } from './lib/measure.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const N = Number(process.env.BENCH_N ?? 200_000);

PythonEngine.initialize();
const m = PyModule.fromString('bench_identity', `
def noop():
    pass
class Holder:
    pass
holder = Holder()
def same():
    return holder
def fresh():
    return Holder()
def take(f):
    pass
`);

const jsNs = (fn) => nsPerOp(fn, ROUNDS, N);

const { noop, same, fresh, take } = m;
const callback = () => 1;
const workloads = [
  ['no-op call `noop()`', () => { for (let i = 0; i < N; i++) noop(); }],
  ['the same object as result `same()`', () => { for (let i = 0; i < N; i++) same(); }],
  ['a new object as result `fresh()`', () => { for (let i = 0; i < N; i++) fresh(); }],
  ['the same JS function as argument `take(cb)`', () => { for (let i = 0; i < N; i++) take(callback); }],
  ['a new JS function as argument `take(() => i)`', () => { for (let i = 0; i < N; i++) take(() => i); }],
];
const rows = workloads.map(([name, fn]) => [name, jsNs(fn)]);
const base = rows[0][1];
console.log('| operation | ns | × no-op call |\n|---|---:|---:|');
for (const [name, ns] of rows) console.log(`| ${name} | ${ns.toFixed(1)} | ${(ns / base).toFixed(2)} |`);
