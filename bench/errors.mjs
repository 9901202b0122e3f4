// Exceptions across the boundary: a Python exception caught in JS and a JS error caught in Python,
// against a successful call of the same function, all measured in this run. Prints a Markdown section.
import { PythonEngine, PyModule } from '../dist/index.js';
import { nsPerOp } from './lib/measure.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const N = Number(process.env.BENCH_ERRORS_N ?? 20_000);

PythonEngine.initialize();
const m = PyModule.fromString('bench_errors', `
def maybe_fail(fail):
    if fail:
        raise ValueError("no")
    return 1

def call_js(fn, n):
    for _ in range(n):
        try:
            fn()
        except Exception:
            pass
`);

const perOpNs = (fn) => nsPerOp(fn, ROUNDS, N);

const { maybe_fail: maybeFail, call_js: callJs } = m;
const ok = perOpNs(() => { for (let i = 0; i < N; i++) maybeFail(false); });
const caught = perOpNs(() => {
  for (let i = 0; i < N; i++) {
    try { maybeFail(true); } catch { /* expected */ }
  }
});
const okCallback = () => 1;
const failCallback = () => { throw new Error('no'); };
const jsOk = perOpNs(() => callJs(okCallback, N));
const jsCaught = perOpNs(() => callJs(failCallback, N));

const rows = [
  ['Python exception caught in JS (`maybe_fail(True)` in try/catch)', ok, caught],
  ['JS error caught in Python (a callback that throws, in `try/except`)', jsOk, jsCaught],
];
for (const [name, good, bad] of rows) {
  process.stderr.write(`  ${name}: success ${good.toFixed(0)} ns, error ${bad.toFixed(0)} ns (${(bad / good).toFixed(1)}x)\n`);
}
console.log([
  '| operation | successful call | call that throws | ratio |',
  '|---|---:|---:|---:|',
  ...rows.map(([name, good, bad]) =>
    `| ${name} | ${(good / 1000).toFixed(2)} µs | ${(bad / 1000).toFixed(2)} µs | ${(bad / good).toFixed(1)}× |`),
].join('\n'));
