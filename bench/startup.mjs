// Time to first call and memory per object, all measured in this run:
// - time to first call: a fresh `node` that imports pyembed, starts Python and makes one call,
//   against `python3 -c pass` and `node -e 0` (and pymport, if bench/node_modules has it);
// - memory: the RSS growth per live PyObject (a Python int kept by JS) and per proxy made
//   (the same objects' JS wrappers), and, for scale, per Python int kept by Python itself.
// Prints a Markdown section; `npm run bench` collects it into RESULTS.md.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const OBJECTS = Number(process.env.BENCH_OBJECTS ?? 200_000);
const python = process.env.PYEMBED_PYTHON || 'python3';

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function wallMs(cmd, args) {
  const samples = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    const result = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (result.status !== 0) return { error: (result.stderr || `exit ${result.status}`).trim().split('\n').pop() };
    samples.push(ms);
  }
  return { ms: median(samples) };
}

const dist = path.join(here, '..', 'dist', 'index.js');
const firstCall = `const { PythonEngine, PyModule } = await import(${JSON.stringify(dist)});
PythonEngine.initialize();
PyModule.import('math').sqrt(4);`;
const pymportDir = path.join(here, 'node_modules', 'pymport');
const rows = [
  ['`python3 -c pass`', wallMs(python, ['-c', 'pass'])],
  ['`node -e 0`', wallMs(process.execPath, ['-e', '0'])],
  ['pyembed: import, initialize, `math.sqrt(4)`', wallMs(process.execPath, ['--input-type=module', '-e', firstCall])],
];
if (fs.existsSync(pymportDir)) {
  const pymportCall = `const { pymport } = await import(${JSON.stringify(pymportDir)});
pymport('math').get('sqrt').call(4);`;
  rows.push(['pymport: import, `math.sqrt(4)`', wallMs(process.execPath, ['--input-type=module', '-e', pymportCall])]);
}

// Memory, in a child of its own so that nothing else lives there.
const memoryScript = `
const { PythonEngine, PyModule } = await import(${JSON.stringify(dist)});
PythonEngine.initialize();
const m = PyModule.fromString('bench_memory', 'def make(n):\\n    return [object() for _ in range(n)]\\nkept = []\\ndef keep(n):\\n    kept.extend(object() for _ in range(n))\\n');
const n = ${OBJECTS};
function rss() { globalThis.gc(); globalThis.gc(); return process.memoryUsage().rss; }
const out = {};
let before = rss();
m.keep(n);
out.python = (rss() - before) / n;
before = rss();
const list = m.make.callRaw(n);
const handles = [];
const len = list.length;
for (let i = 0; i < len; i++) handles.push(list.get(i));
out.pyobject = (rss() - before) / n;
process.stdout.write(JSON.stringify(out));
`;
const memory = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', memoryScript], { encoding: 'utf8' });
const mem = memory.status === 0 ? JSON.parse(memory.stdout) : undefined;

const base = rows[0][1].ms;
const lines = [
  '| start-up | time | against `python3 -c pass` |',
  '|---|---:|---:|',
  ...rows.map(([name, r]) => r.error
    ? `| ${name} | failed: ${r.error} | |`
    : `| ${name} | ${r.ms.toFixed(1)} ms | ${(r.ms / base).toFixed(2)}× |`),
  '',
];
if (!fs.existsSync(pymportDir)) lines.push('pymport is not installed in bench/node_modules (`npm install --prefix bench`): its row is left out.', '');
if (mem) {
  lines.push(
    `| memory (RSS growth, ${OBJECTS} objects) | bytes per object |`,
    '|---|---:|',
    `| a Python \`object()\` kept by Python (the floor) | ${mem.python.toFixed(0)} |`,
    `| the same, each held by JS as a live PyObject (handle + proxy) | ${mem.pyobject.toFixed(0)} |`,
  );
} else {
  lines.push(`memory measurement failed: ${(memory.stderr || '').trim().split('\n').pop()}`);
}
for (const line of lines) if (line.startsWith('|') && !line.startsWith('|---')) process.stderr.write(`  ${line}\n`);
console.log(lines.join('\n'));
