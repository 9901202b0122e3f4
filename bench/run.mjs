// `npm run bench`: runs every benchmark in this folder, each in its own process, and writes
// bench/RESULTS.md with the machine, the versions and the exact command.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const suites = [
  { file: 'core.mjs', title: 'Call overhead: JS → Python against Python → Python' },
];

function python(cmd) {
  try {
    return execFileSync(process.env.PYEMBED_PYTHON || 'python3', ['-c', cmd], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

const sections = [];
for (const suite of suites) {
  process.stderr.write(`running ${suite.file} ...\n`);
  const r = spawnSync(process.execPath, [path.join(here, suite.file)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: process.env,
  });
  if (r.status !== 0) {
    sections.push(`## ${suite.title}\n\nFailed (exit ${r.status}).\n`);
    continue;
  }
  sections.push(`## ${suite.title}\n\n${r.stdout.trim()}\n`);
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const header = `# Benchmark results

Produced by \`npm run bench\` (\`node bench/run.mjs\`) on ${new Date().toISOString().slice(0, 10)}.

- Machine: ${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}
- Node.js ${process.version}, Python ${python('import sys; print(sys.version.split()[0])')} (${python('import sys; print(sys.executable)')})

Times are medians of several rounds; ratios compare with the first column measured in the same run.
`;
fs.writeFileSync(path.join(here, 'RESULTS.md'), [header, ...sections].join('\n'));
process.stderr.write('wrote bench/RESULTS.md\n');
