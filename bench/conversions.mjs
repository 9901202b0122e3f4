// Big conversions, one build against another: CPU time per operation (process.cpuUsage: user +
// system, all threads), which a loaded machine distorts less than wall time.
//
//   node bench/conversions.mjs [ROOT...]   each ROOT: a pyembed checkout with dist/ and its addon
//                                          built (default: this one); the builds alternate, each
//                                          workload in a fresh child process
//
// Workloads: dict (one dict of 10 000 str keys to JS, converted again and again), records (a list
// of 10 000 dicts of 4 keys), unique (a different 10 000-key dict each time), list-to-js and
// list-to-py (100 000 ints each way), bytes (10 MB each way).
// Environment: BENCH_PASSES [3] (alternations), BENCH_ROUNDS [5] (rounds per child; the median is
// kept), BENCH_OPS [60] (operations per round), BENCH_WORKLOADS (comma-separated: only these).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const roots = process.argv.slice(2).length ? process.argv.slice(2).map((r) => path.resolve(r)) : [path.join(here, '..')];
const PASSES = Number(process.env.BENCH_PASSES ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const OPS = Number(process.env.BENCH_OPS ?? 60);
const WORKLOADS = ['dict', 'records', 'unique', 'list-to-js', 'list-to-py', 'bytes'].filter(
  (w) => !process.env.BENCH_WORKLOADS || process.env.BENCH_WORKLOADS.split(',').includes(w));

const child = `
const [root, workload, rounds, ops] = process.argv.slice(1);
const { PythonEngine, PyModule } = await import(root + '/dist/index.js');
PythonEngine.initialize();
const m = PyModule.fromString('bench_conversions', [
  'big_dict = {f"key{i}": i for i in range(10000)}',
  'records = [{"id": i, "name": str(i), "score": i / 2, "tags": ["x", "y"]} for i in range(10000)]',
  'many = [{f"u{j}_{i}": i for i in range(10000)} for j in range(40)]',
  'turn = [0]',
  'def unique():',
  '    turn[0] += 1',
  '    return many[turn[0] % 40]',
  'big_list = list(range(100000))',
  'big_bytes = bytes(range(256)) * 40960',
  'def fetch(name): return globals()[name]',
  'def size(v): return len(v)',
].join('\\n'));
const toJS = (make) => () => { const o = make(); const js = o.toJS(); o.dispose(); return js; };
const array = m.big_list.toJS();
const buffer = Buffer.alloc(10 * 1024 * 1024, 7);
const op = {
  dict: toJS(() => m.fetch('big_dict')),
  records: toJS(() => m.fetch('records')),
  unique: toJS(() => m.unique()),
  'list-to-js': toJS(() => m.fetch('big_list')),
  'list-to-py': () => m.size(array),
  bytes: () => { m.size(buffer); return toJS(() => m.fetch('big_bytes'))(); },
}[workload];
const samples = [];
for (let r = 0; r < Number(rounds); r++) {
  const c0 = process.cpuUsage();
  for (let i = 0; i < Number(ops); i++) op();
  const c = process.cpuUsage(c0);
  samples.push((c.user + c.system) / Number(ops));
}
samples.sort((a, b) => a - b);
process.stdout.write(String(samples[Math.floor(samples.length / 2)]));
`;

const results = new Map(); // workload -> root -> [µs per pass]
for (let pass = 0; pass < PASSES; pass++) {
  for (const workload of WORKLOADS) {
    for (const root of roots) {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', child, root, workload, String(ROUNDS), String(OPS)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${workload} in ${root}: ${r.stderr.trim()}`);
      if (!results.has(workload)) results.set(workload, new Map());
      const byRoot = results.get(workload);
      if (!byRoot.has(root)) byRoot.set(root, []);
      byRoot.get(root).push(Number(r.stdout));
      process.stderr.write(`  pass ${pass + 1} ${workload.padEnd(10)} ${path.basename(root).padEnd(16)} ${Number(r.stdout).toFixed(0)} µs\n`);
    }
  }
}
const fmt = (values) => values.map((v) => v.toFixed(0)).join(', ');
console.log(`| conversion (CPU µs per operation, ${PASSES} passes) | ${roots.map((r) => path.basename(r)).join(' | ')} |`);
console.log(`|---|${roots.map(() => '---:').join('|')}|`);
for (const [workload, byRoot] of results) console.log(`| ${workload} | ${roots.map((r) => fmt(byRoot.get(r))).join(' | ')} |`);
