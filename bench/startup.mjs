// Time to first call and memory per object, all measured in this run:
// - time to first call: a fresh `node` that imports pyembed, starts Python and makes one call,
//   against `python3 -c pass`, `node -e 0` and pymport (bench/node_modules), pointed at the same
//   Python as pyembed (bench/lib/python-env.mjs);
// - memory, pyembed against pymport: the RSS growth per live PyObject (distinct Python objects,
//   each held by JS) and per proxy created (one Python object fetched again and again, each
//   result kept), and, for scale, per Python object kept by Python itself.
// Prints a Markdown section; `npm run bench` collects it into RESULTS.md.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describePython, peerEnv } from './lib/python-env.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const OBJECTS = Number(process.env.BENCH_OBJECTS ?? 200_000);
const py = describePython();
// The executable itself, not a launcher in front of it (a pyenv shim is a bash script: ~60 ms per
// start here), so that every row starts the same Python the same way.
const python = py.executable;
const pyembedEnv = { ...process.env, PYEMBED_PYTHON: python };

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function wallMs(cmd, args, env = process.env) {
  const samples = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    const result = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', env });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (result.status !== 0) return { error: (result.stderr || `exit ${result.status}`).trim().split('\n').pop() };
    samples.push(ms);
  }
  return { ms: median(samples) };
}

const dist = path.join(here, '..', 'dist', 'index.js');
const pymportDir = path.join(here, 'node_modules', 'pymport');
const hasPymport = fs.existsSync(pymportDir);
const pymportEnv = peerEnv({ id: 'pymport' }, py);

const firstCall = `const { PythonEngine, PyModule } = await import(${JSON.stringify(dist)});
PythonEngine.initialize();
PyModule.import('math').sqrt(4);`;
const rows = [
  ['`python3 -c pass`', wallMs(python, ['-c', 'pass'])],
  ['`node -e 0`', wallMs(process.execPath, ['-e', '0'])],
  ['pyembed: import, initialize, `math.sqrt(4)`', wallMs(process.execPath, ['--input-type=module', '-e', firstCall], pyembedEnv)],
];
if (hasPymport) {
  const pymportCall = `const { pymport } = await import(${JSON.stringify(path.join(pymportDir, 'lib', 'index.mjs'))});
pymport('math').get('sqrt').call(4);`;
  rows.push(['pymport: import (starts Python), `math.sqrt(4)`', wallMs(process.execPath, ['--input-type=module', '-e', pymportCall], pymportEnv)]);
}

// Memory, each library in a child of its own so that nothing else lives there. Each script
// defines make(n) (a list of n new objects) and same(n) (a list of one object n times), and how
// to fetch item i of a list as a JS-held PyObject.
const measureRss = `
const n = ${OBJECTS};
function rss() { globalThis.gc(); globalThis.gc(); return process.memoryUsage().rss; }
function perObject(makeList, item) {
  const list = makeList(n);
  const before = rss();
  const held = [];
  for (let i = 0; i < n; i++) held.push(item(list, i));
  const grown = (rss() - before) / n;
  if (held.length !== n) throw new Error('lost objects');
  return grown;
}
`;
const pyembedMemory = `
const { PythonEngine, PyModule } = await import(${JSON.stringify(dist)});
PythonEngine.initialize();
const m = PyModule.fromString('bench_memory', 'def make(n):\\n    return [object() for _ in range(n)]\\ndef same(n):\\n    return [object()] * n\\nkept = []\\ndef keep(n):\\n    kept.extend(object() for _ in range(n))\\n');
${measureRss}
const out = {};
let before = rss();
m.keep(n);
out.python = (rss() - before) / n;
out.pyobject = perObject((k) => m.make.callRaw(k), (list, i) => list.get(i));
out.proxy = perObject((k) => m.same.callRaw(k), (list, i) => list.get(i));
process.stdout.write(JSON.stringify(out));
`;
const pymportMemory = `
const { pyval } = await import(${JSON.stringify(path.join(pymportDir, 'lib', 'index.mjs'))});
${measureRss}
const out = {};
out.pyobject = perObject((k) => pyval('[object() for _ in range(' + k + ')]'), (list, i) => list.item(i));
out.proxy = perObject((k) => pyval('[object()] * ' + k), (list, i) => list.item(i));
process.stdout.write(JSON.stringify(out));
`;
function memory(script, env = process.env) {
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8', env });
  return r.status === 0 ? JSON.parse(r.stdout) : { error: (r.stderr || `exit ${r.status}`).trim().split('\n').pop() };
}
const mem = { pyembed: memory(pyembedMemory), pymport: hasPymport ? memory(pymportMemory, pymportEnv) : { error: 'not installed' } };

const base = rows[0][1].ms;
const bytes = (m, key) => (m.error ? `failed: ${m.error}` : m[key].toFixed(0));
const lines = [
  `Python ${py.version} (${py.basePrefix}) for both; pymport's addon is pointed at it with LD_LIBRARY_PATH and PYTHONHOME.`,
  '',
  '| start-up | time | against `python3 -c pass` |',
  '|---|---:|---:|',
  ...rows.map(([name, r]) => r.error
    ? `| ${name} | failed: ${r.error} | |`
    : `| ${name} | ${r.ms.toFixed(1)} ms | ${(r.ms / base).toFixed(2)}× |`),
  '',
];
if (!hasPymport) lines.push('pymport is not installed in bench/node_modules (`npm install --prefix bench`): its rows are left out.', '');
lines.push(
  `| memory (RSS growth, ${OBJECTS} objects) | pyembed: bytes per object | pymport |`,
  '|---|---:|---:|',
  `| a Python \`object()\` kept by Python (the floor) | ${bytes(mem.pyembed, 'python')} | |`,
  `| live PyObjects: ${OBJECTS} distinct objects, each held by JS | ${bytes(mem.pyembed, 'pyobject')} | ${bytes(mem.pymport, 'pyobject')} |`,
  `| proxies created: one object fetched ${OBJECTS} times, each result held | ${bytes(mem.pyembed, 'proxy')} | ${bytes(mem.pymport, 'proxy')} |`,
);
for (const line of lines) if (line.startsWith('|') && !line.startsWith('|---')) process.stderr.write(`  ${line}\n`);
console.log(lines.join('\n'));
