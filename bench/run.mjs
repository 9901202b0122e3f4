// `npm run bench`: runs every benchmark in this folder, each in its own process, and writes
// bench/RESULTS.md with the machine, the versions and the exact command.
//
//   node bench/run.mjs [SUITE...]   only these suites (core, peers, threads, cancel, callbacks, errors, startup); default all
//   BENCH_OUT_DIR=DIR               write RESULTS.md and the chart there instead of bench/
//                                   (smoke runs: BENCH_QUICK=1 BENCH_OUT_DIR=build/bench-smoke)
// Each suite reads its own BENCH_* variables (see the top of each file); the ones set are
// recorded with the command.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const suites = [
  { id: 'core', file: 'core.mjs', title: 'Call overhead: JS → Python against Python → Python' },
  { id: 'peers', file: 'peers.mjs', title: 'pyembed and its peers' },
  { id: 'threads', file: 'threads.mjs', title: 'Threads and async' },
  { id: 'cancel', file: 'cancel.mjs', title: 'Cancelling Python code' },
  { id: 'callbacks', file: 'callbacks.mjs', title: 'JS callbacks called from Python, against node-calls-python' },
  { id: 'errors', file: 'errors.mjs', title: 'Exceptions across the boundary' },
  { id: 'startup', file: 'startup.mjs', title: 'Time to first call and memory per object' },
];

const only = process.argv.slice(2);
for (const id of only) {
  if (!suites.some((s) => s.id === id)) {
    console.error(`unknown suite '${id}' (suites: ${suites.map((s) => s.id).join(', ')})`);
    process.exit(2);
  }
}
const selected = suites.filter((s) => only.length === 0 || only.includes(s.id));
const outDir = path.resolve(process.env.BENCH_OUT_DIR || here);
fs.mkdirSync(outDir, { recursive: true });

function python(cmd) {
  try {
    return execFileSync(process.env.PYEMBED_PYTHON || 'python3', ['-c', cmd], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

// The exact command: what npm ran (or node), with the settings that change what is measured.
const settings = Object.keys(process.env)
  .filter((k) => /^(BENCH_|PYEMBED_PYTHON$)/.test(k) && k !== 'BENCH_OUT_DIR')
  .sort()
  .map((k) => `${k}=${process.env[k]}`);
const invoked = process.env.npm_lifecycle_event === 'bench'
  ? `npm run bench${only.length ? ` -- ${only.join(' ')}` : ''}`
  : `node bench/run.mjs${only.length ? ` ${only.join(' ')}` : ''}`;
const command = [...settings, invoked].join(' ');

const started = Date.now();
const loadAtStart = os.loadavg();
const sections = [];
for (const suite of selected) {
  const t0 = Date.now();
  process.stderr.write(`running ${suite.file} ...\n`);
  const r = spawnSync(process.execPath, [path.join(here, suite.file)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BENCH_OUT_DIR: outDir },
    maxBuffer: 64 * 2 ** 20,
  });
  const took = ((Date.now() - t0) / 1000).toFixed(0);
  process.stderr.write(`${suite.file} finished in ${took} s\n`);
  if (r.status !== 0) {
    const why = r.error ? r.error.message : r.signal ? `signal ${r.signal}` : `exit ${r.status}`;
    sections.push(`## ${suite.title}\n\nFailed (${why}).\n`);
    continue;
  }
  sections.push(`## ${suite.title}\n\n${r.stdout.trim()}\n`);
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const minutes = ((Date.now() - started) / 60000).toFixed(1);
const header = `# Benchmark results

Produced on ${new Date().toISOString().slice(0, 10)} by:

\`\`\`sh
${command}
\`\`\`

- Machine: ${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}; load average at the start ${loadAtStart.map((l) => l.toFixed(2)).join(', ')}
- Node.js ${process.version}, Python ${python('import sys; print(sys.version.split()[0])')} (${python('import sys; print(sys.executable)')})
- The run took ${minutes} minutes.

Times are medians of several rounds; ratios compare with the column named in each table, measured in the same run.
Earlier runs, the effect of each optimization, and where pyembed is not yet twice as fast as the fastest in-process peer (and why): [HISTORY.md](HISTORY.md).
`;
const resultsPath = path.join(outDir, 'RESULTS.md');
fs.writeFileSync(resultsPath, [header, ...sections].join('\n'));
process.stderr.write(`wrote ${path.relative(process.cwd(), resultsPath)} (${minutes} min)\n`);
