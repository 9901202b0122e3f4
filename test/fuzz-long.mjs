#!/usr/bin/env node
// The long fuzz run (`npm run fuzz`): every property of test/fuzz-properties.ts, at least 100 000
// cases in all (default 500 000), from a random seed unless one is given. Records the result in
// test/FUZZ-RESULTS.md and exits 1 if a property failed.
//
//   npm run fuzz                              # 500 000 cases, random seed
//   npm run fuzz -- --cases 1000000 --seed 42 # more cases, a given seed (to replay a failure)
//   npm run fuzz -- --no-record               # do not rewrite FUZZ-RESULTS.md
//
// Properties are the compiled ones in build/test (npm run fuzz builds them first).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import fc from 'fast-check';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: process.env.FUZZ_CASES ?? '500000' },
    seed: { type: 'string', default: process.env.FUZZ_SEED },
    size: { type: 'string', default: 'medium' },
    'no-record': { type: 'boolean', default: false },
  },
});
const totalCases = Number(values.cases);
if (!Number.isInteger(totalCases) || totalCases < 1) throw new Error(`--cases must be a positive integer, not ${values.cases}`);
const seed = values.seed !== undefined ? Number(values.seed) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
fc.configureGlobal({ baseSize: values.size });

const { fuzzProperties } = await import(new URL('../build/test/fuzz-properties.js', import.meta.url).href);
const { PythonEngine } = await import('pyembed');

const properties = fuzzProperties();
const weights = properties.reduce((sum, p) => sum + p.weight, 0);
const results = [];
const started = Date.now();
let remaining = totalCases;
properties.forEach((p, i) => {
  const share = i === properties.length - 1 ? remaining : Math.round((totalCases * p.weight) / weights);
  const numRuns = Math.max(1, Math.min(share, p.maxCases ?? share));
  remaining -= numRuns;
  const t0 = Date.now();
  const details = fc.check(p.property, { seed, numRuns });
  const seconds = (Date.now() - t0) / 1000;
  const result = {
    name: p.name,
    cases: details.numRuns,
    seconds,
    passed: !details.failed,
    counterexample: details.failed ? fc.stringify(details.counterexample) : undefined,
    path: details.failed ? details.counterexamplePath : undefined,
    error: details.failed ? String(details.errorInstance?.message ?? details.error).split('\n').slice(0, 6).join('\n') : undefined,
  };
  results.push(result);
  console.log(`${result.passed ? 'PASS' : 'FAIL'} ${p.name}: ${result.cases} cases in ${seconds.toFixed(1)} s`);
  if (!result.passed) console.log(`  counterexample: ${result.counterexample}\n  path: ${result.path}\n  ${result.error}`);
});
const seconds = (Date.now() - started) / 1000;
const cases = results.reduce((sum, r) => sum + r.cases, 0);
const passed = results.every((r) => r.passed);
console.log(`${passed ? 'PASS' : 'FAIL'}: ${cases} cases, seed ${seed}, ${seconds.toFixed(1)} s`);

if (!values['no-record']) {
  const git = (...args) => {
    try {
      return execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  };
  const command = ['npm run fuzz', ...(process.argv.slice(2).length ? ['--', ...process.argv.slice(2)] : [])].join(' ');
  const lines = [
    '# Fuzz results',
    '',
    'Written by `npm run fuzz` (test/fuzz-long.mjs) after each long run; the properties and what',
    '"exact" means are in [fuzz-properties.ts](fuzz-properties.ts). `npm test` runs the same properties',
    'with a few hundred cases from a fixed seed (test/fuzz.test.ts).',
    '',
    '## Last run',
    '',
    `- Result: **${passed ? 'pass' : 'FAIL'}**`,
    `- Cases: ${cases}`,
    `- Seed: ${seed} (replay: \`npm run fuzz -- --seed ${seed} --cases ${totalCases} --size ${values.size}\`)`,
    `- Duration: ${seconds.toFixed(1)} s`,
    `- Command: \`${command}\``,
    `- Date: ${new Date().toISOString()}`,
    `- Commit: ${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain') ? ' (with uncommitted changes)' : ''}`,
    `- Node ${process.version}, Python ${PythonEngine.version.split(' ')[0]} (${PythonEngine.python.executable}), fast-check size \`${values.size}\``,
    '',
    '| Property | Cases | Seconds | Result |',
    '|---|---:|---:|---|',
    ...results.map((r) => `| ${r.name} | ${r.cases} | ${r.seconds.toFixed(1)} | ${r.passed ? 'pass' : 'FAIL'} |`),
    '',
  ];
  for (const r of results.filter((x) => !x.passed)) {
    lines.push(`### Failure: ${r.name}`, '', '```', `counterexample: ${r.counterexample}`, `path: ${r.path}`, r.error, '```', '');
  }
  fs.writeFileSync(path.join(here, 'FUZZ-RESULTS.md'), lines.join('\n'));
}
process.exitCode = passed ? 0 : 1;
