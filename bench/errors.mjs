// Exceptions across the boundary: a Python exception caught in JS and a JS error caught in Python,
// against a successful call of the same function, all measured in this run. Prints a Markdown section.
import { PythonEngine, PyModule } from '../dist/index.js';
import { median, nsPerOp } from './lib/measure.mjs';

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

// The success and the error loops take turns, round by round, so that a change in the machine's
// load (other processes share its cores) moves both alike: the ratio is what this measures.
function pairedNsPerOp(good, bad) {
  const goodNs = [];
  const badNs = [];
  for (let r = 0; r < ROUNDS; r++) {
    goodNs.push(nsPerOp(good, 1, N));
    badNs.push(nsPerOp(bad, 1, N));
  }
  return [median(goodNs), median(badNs)];
}

const { maybe_fail: maybeFail, call_js: callJs } = m;
const [ok, caught] = pairedNsPerOp(
  () => { for (let i = 0; i < N; i++) maybeFail(false); },
  () => {
    for (let i = 0; i < N; i++) {
      try { maybeFail(true); } catch { /* expected */ }
    }
  });
// V8's own floor: a JS error thrown and caught in JS, against a JS no-op call. Nothing pyembed
// does is in it; the Python exception above takes these frames and throws like it.
function jsNoop(fail) {
  if (fail) throw new Error('no');
  return 1;
}
let sink = 0;
const [jsNoopNs, jsThrowNs] = pairedNsPerOp(
  () => { for (let i = 0; i < N; i++) sink += jsNoop(false); },
  () => {
    for (let i = 0; i < N; i++) {
      try { jsNoop(true); } catch { /* expected */ }
    }
  });
if (sink === 0) throw new Error('the no-op loop did not run');
const okCallback = () => 1;
const failCallback = () => { throw new Error('no'); };
const [jsOk, jsCaught] = pairedNsPerOp(() => callJs(okCallback, N), () => callJs(failCallback, N));

const rows = [
  ['Python exception caught in JS (`maybe_fail(True)` in try/catch)', ok, caught],
  ['JS error caught in Python (a callback that throws, in `try/except`)', jsOk, jsCaught],
  ['reference: JS `throw new Error()` caught in JS, against a JS no-op call (V8 alone)', jsNoopNs, jsThrowNs],
];
const floorRatio = jsThrowNs / ok;  // what the first row's ratio would be if pyembed added nothing to V8's throw
for (const [name, good, bad] of rows) {
  process.stderr.write(`  ${name}: success ${good.toFixed(1)} ns, error ${bad.toFixed(0)} ns (${(bad / good).toFixed(1)}x)\n`);
}
process.stderr.write(`  V8's throw against a successful Python call: ${floorRatio.toFixed(1)}x\n`);
console.log([
  '| operation | successful call | call that throws | ratio |',
  '|---|---:|---:|---:|',
  ...rows.map(([name, good, bad]) =>
    `| ${name} | ${good < 100 ? `${good.toFixed(1)} ns` : `${(good / 1000).toFixed(2)} µs`} | ${(bad / 1000).toFixed(2)} µs | ${(bad / good).toFixed(1)}× |`),
  `| V8's JS throw against the successful Python call of the first row (the floor of its ratio) | ${(ok / 1000).toFixed(2)} µs | ${(jsThrowNs / 1000).toFixed(2)} µs | ${floorRatio.toFixed(1)}× |`,
].join('\n'));
