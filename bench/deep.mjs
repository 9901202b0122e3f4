// How long pyembed takes to reject structures nested too deeply to convert, both ways, at three
// depths (the time should grow linearly with the depth), next to what JS's JSON.stringify and
// Python's json.dumps take to reject the same structure in the same run.
//   node bench/deep.mjs            (after npm run build and a native build)
import { PythonEngine } from '../dist/index.js';

const depths = [25_000, 50_000, 100_000];
const rounds = 5;

const nest = (n, wrap) => { let x = 1; for (let i = 0; i < n; i++) x = wrap(x); return x; };
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function time(f) {
  const samples = [];
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    try { f(); } catch { /* the rejection is what is timed */ }
    samples.push(performance.now() - start);
  }
  return median(samples);
}

PythonEngine.exec([
  'import json, time',
  'def nest(n, open_, close):',
  '    x = None',
  '    for _ in range(n):',
  '        x = eval(open_ + "x" + close, {"x": x})',
  '    return x',
  'def json_reject_ms(x):',
  '    best = []',
  '    for _ in range(5):',
  '        t = time.perf_counter()',
  '        try:',
  '            json.dumps(x)',
  '        except RecursionError:',
  '            pass',
  '        best.append((time.perf_counter() - t) * 1000)',
  '    return sorted(best)[2]',
].join('\n'));
const pyNest = PythonEngine.eval('nest');
const pyJsonReject = PythonEngine.eval('json_reject_ms');
const accept = PythonEngine.eval('lambda x: None');

const rows = [];
const jsKinds = [
  ['JS Array', (x) => [x]],
  ['JS object', (x) => ({ x })],
  ['JS Map', (x) => new Map([['k', x]])],
  ['JS Set', (x) => new Set([x])],
];
for (const [name, wrap] of jsKinds) {
  const cells = depths.map((d) => {
    const value = nest(d, wrap);
    return time(() => accept(value));
  });
  const value = nest(depths.at(-1), wrap);
  const json = name === 'JS Array' || name === 'JS object' ? time(() => JSON.stringify(value)) : undefined;
  rows.push([name + ' → Python', cells, json, 'JSON.stringify']);
}
const pyKinds = [['Python list', '[', ']'], ['Python dict', '{"k": ', '}'], ['Python tuple', '(', ',)']];
for (const [name, open, close] of pyKinds) {
  const cells = depths.map((d) => {
    const value = pyNest(d, open, close);
    return time(() => value.toJS());
  });
  const json = pyJsonReject(pyNest(depths.at(-1), open, close));
  rows.push([name + ' → JS (toJS)', cells, json, 'json.dumps']);
}

const ms = (x) => (x === undefined ? '–' : x < 10 ? x.toFixed(2) + ' ms' : x.toFixed(1) + ' ms');
console.log(`| structure | ${depths.map((d) => d.toLocaleString('en') + ' deep').join(' | ')} | ratio ${depths.at(-1) / depths[0]}× depth | peer rejecting ${depths.at(-1).toLocaleString('en')} deep |`);
console.log(`|---|${depths.map(() => '---:').join('|')}|---:|---|`);
for (const [name, cells, peer, peerName] of rows) {
  const ratio = (cells.at(-1) / cells[0]).toFixed(1) + '×';
  console.log(`| ${name} | ${cells.map(ms).join(' | ')} | ${ratio} | ${peer === undefined ? '–' : peerName + ' ' + ms(peer)} |`);
}
console.log(`\nNode ${process.version}, Python ${PythonEngine.version.split(' ')[0]}; medians of ${rounds} rounds; load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(', ')}`);
