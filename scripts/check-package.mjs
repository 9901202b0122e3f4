// `npm run test:package`: the npm tarball as a user gets it, on every supported Node major.
// Packs pyembed (`npm pack`: prepack builds dist/ and the prebuilds), checks what the tarball
// holds, then on each major installs it into a fresh project, offline, with a PATH that has only
// that major's node and sh (no compiler, no make, no Python): once with --ignore-scripts and once with
// the install script (which must find the prebuild and compile nothing); then runs a small
// import/require and call smoke with that node. PYEMBED_NODE_MAJORS=22,26 limits the majors.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { MATRIX, nodeBinary } from './node-matrix.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const npmCli = path.resolve(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
// The Python pyembed would use, as a real path (a pyenv shim needs a PATH that has pyenv).
const python = execFileSync(process.env.PYEMBED_PYTHON || 'python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
const only = (process.env.PYEMBED_NODE_MAJORS ?? '').split(',').filter(Boolean).map(Number);
const majors = MATRIX.filter((e) => only.length === 0 || only.includes(e.major));

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pyembed-check-package-'));
const failures = [];

function check(label, ok, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${label}${ok || !detail ? '' : `\n${detail}`}`);
  if (!ok) failures.push(label);
  return ok;
}

function sh(command, args, options) {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 300_000, ...options });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

try {
  // 1. The tarball (prepack: dist/ and the prebuilds, rebuilt only where stale).
  const packed = sh('npm', ['pack', '--silent', '--pack-destination', work], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  if (!check('npm pack', packed.ok, packed.output)) process.exit(1);
  const tarball = path.join(work, packed.output.trim().split('\n').pop());
  const entries = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n');
  for (const e of majors) {
    const abi = execFileSync(nodeBinary(e), ['-p', 'process.versions.modules'], { encoding: 'utf8' }).trim();
    const file = `package/prebuilds/linux-x64/node.abi${abi}.glibc.node`;
    check(`the tarball ships the Node ${e.major} prebuild (${file.slice(8)})`, entries.includes(file));
  }
  for (const file of ['package/LICENSE', 'package/README.md', 'package/dist/index.d.ts', 'package/scripts/install.mjs', 'package/binding.gyp']) {
    check(`the tarball ships ${file.slice(8)}`, entries.includes(file));
  }
  const stray = entries.filter((e) => /^package\/(bench|test|src|build|node_modules|\.node-matrix)\//.test(e));
  check('the tarball ships no bench/, test/, src/, build/ or node_modules/', stray.length === 0, stray.slice(0, 5).join('\n'));
  console.log(`tarball: ${path.basename(tarball)}, ${(fs.statSync(tarball).size / 1e6).toFixed(1)} MB, ${entries.filter(Boolean).length} files`);

  const smoke = `
    import assert from 'node:assert/strict';
    import { createRequire } from 'node:module';
    import { PythonEngine, Py, PyModule, PythonError } from 'pyembed';
    PythonEngine.initialize();
    assert.equal(Py.import('math').sqrt(16), 4);
    const m = PyModule.fromString('smoke', 'def apply(f, x):\\n    return f(x) * 2\\n');
    assert.equal(m.apply((x) => x + 1, 20), 42);
    assert.throws(() => PythonEngine.eval('1 / 0'), (e) => e instanceof PythonError && e.type === 'ZeroDivisionError');
    assert.equal(await Py.import('math').factorial.callAsync(5), 120);
    const fromRequire = createRequire(import.meta.url)('pyembed');
    assert.equal(fromRequire.PythonEngine, PythonEngine);
    PythonEngine.shutdown();
    console.log('smoke ok on', process.version);
  `;

  // 2. Each major: install and run with nothing but that node on PATH.
  for (const e of majors) {
    const node = nodeBinary(e);
    const bin = path.join(work, `bin-${e.major}`);
    fs.mkdirSync(bin);
    fs.symlinkSync(node, path.join(bin, 'node'));
    fs.symlinkSync('/bin/sh', path.join(bin, 'sh')); // npm runs scripts with sh
    const env = { HOME: process.env.HOME ?? os.homedir(), PATH: bin, PYEMBED_PYTHON: python, npm_config_update_notifier: 'false' };
    const tools = sh('/bin/sh', ['-c', 'for t in cc c++ gcc g++ make python3; do command -v $t && exit 1; done; exit 0'], { env });
    check(`Node ${e.major}: no compiler, make or python3 on the PATH`, tools.ok, tools.output);
    for (const mode of ['--ignore-scripts', 'install script']) {
      const dir = path.join(work, `node${e.major}-${mode === '--ignore-scripts' ? 'ignore-scripts' : 'scripts'}`);
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
      const args = [npmCli, 'install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball];
      if (mode === '--ignore-scripts') args.push('--ignore-scripts');
      const installed = sh(node, args, { cwd: dir, env });
      if (!check(`Node ${e.major}: npm install (${mode}) without a compiler`, installed.ok, installed.output)) continue;
      if (mode === 'install script') {
        check(`Node ${e.major}: the install script used the prebuild (compiled nothing)`,
          /using the prebuilt addon prebuilds\/linux-x64\/node\.abi\d+\.glibc\.node/.test(installed.output), installed.output);
      }
      check(`Node ${e.major} (${mode}): no local build in the installed package`,
        !fs.existsSync(path.join(dir, 'node_modules', 'pyembed', 'build')));
      fs.writeFileSync(path.join(dir, 'smoke.mjs'), smoke);
      const ran = sh(node, ['smoke.mjs'], { cwd: dir, env });
      check(`Node ${e.major} (${mode}): import, calls both ways, errors, callAsync, require()`, ran.ok && /smoke ok/.test(ran.output), ran.output);
    }
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

console.log(`\npackage check on Node ${majors.map((e) => e.major).join(', ')}: ${failures.length ? `${failures.length} FAILED` : 'all passed'}`);
process.exit(failures.length ? 1 : 0);
