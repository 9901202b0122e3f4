// The package as a user gets it: `npm pack`, installed offline into a fresh folder outside this
// repository (so nothing of the repository's own node_modules, @types or tsconfig leaks in).
// - Its types compile in a TypeScript project with only `typescript` and pyembed, no @types/node
//   (strict, target es2022, module nodenext), with lib es2022 or esnext, and with @types/node too.
// - With no addon that loads (no prebuild for this Node ABI, no local build), importing it fails
//   with one error that says what was tried and what to do, and the process stays healthy.
// (scripts/check-package.mjs, `npm run test:package`, installs it on every Node major without a
// compiler; it needs the prebuilds, so CI runs it after `npm run prebuilds`.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { packageRoot, tmpDir } from './helpers.js';

let work = '';
let tarball = '';

function npm(args: string[], cwd: string): string {
  const r = spawnSync('npm', args, { cwd, encoding: 'utf8', timeout: 180_000 });
  assert.equal(r.status, 0, `npm ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** A fresh project with pyembed installed from the tarball (offline, no install scripts). */
function project(name: string): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
  npm(['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball], dir);
  return dir;
}

before(() => {
  work = tmpDir('pyembed-package-');
  const packed = npm(['pack', '--ignore-scripts', '--silent', '--pack-destination', work], packageRoot);
  tarball = path.join(work, packed.trim().split('\n').pop()!);
  assert.ok(fs.existsSync(tarball), `npm pack made no ${tarball}`);
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

// What a user writes: scopes and objects disposed by hand (target es2022 has no `using`).
const userCode = `
import { PythonEngine, Py, PyModule, type PyObject, type GILScope } from 'pyembed';

PythonEngine.initialize();
const math: PyObject = Py.import('math');
const scope: GILScope = Py.GIL();
let root: number;
try {
  root = math.sqrt(2) as number;
} finally {
  scope[Symbol.dispose]();
}
const m = PyModule.fromString('user_mod', 'def twice(x):\\n    return x * 2\\n');
const disposable: Disposable = m;
disposable[Symbol.dispose]();
export const result: number = root;
`;

function tsconfig(lib: string[] | undefined): object {
  return {
    compilerOptions: {
      target: 'es2022',
      module: 'nodenext',
      moduleResolution: 'nodenext',
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      ...(lib ? { lib } : {}),
    },
    include: ['index.ts'],
  };
}

function typeCheck(dir: string, config: string): { code: number | null; output: string } {
  const tsc = path.join(dir, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '--pretty', 'false', '-p', config], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

function linkFromRepo(dir: string, name: string): void {
  const target = path.join(dir, 'node_modules', name);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.symlinkSync(path.join(packageRoot, 'node_modules', name), target, 'dir');
}

const libs: [string, string[] | undefined][] = [
  ['the default lib of target es2022', undefined],
  ['lib es2022', ['es2022']],
  ['lib esnext', ['esnext']],
];

test('the published types compile in a project with only typescript and pyembed (no @types/node)', () => {
  const dir = project('types-without-node');
  linkFromRepo(dir, 'typescript');
  assert.ok(!fs.existsSync(path.join(dir, 'node_modules', '@types')), 'the project must have no @types');
  fs.writeFileSync(path.join(dir, 'index.ts'), userCode);
  for (const [label, lib] of libs) {
    const config = `tsconfig.${label.replace(/\W+/g, '-')}.json`;
    fs.writeFileSync(path.join(dir, config), JSON.stringify(tsconfig(lib)));
    const r = typeCheck(dir, config);
    assert.equal(r.code, 0, `${label}:\n${r.output}`);
  }
});

test('the published types compile beside @types/node', () => {
  const dir = project('types-with-node');
  for (const name of ['typescript', '@types/node', 'undici-types']) linkFromRepo(dir, name);
  fs.writeFileSync(path.join(dir, 'index.ts'), `${userCode}\nexport const pid: number = process.pid;\n`);
  // (@types/node is large: two libs, the narrowest and the widest.)
  for (const [label, lib] of libs.slice(1)) {
    const config = `tsconfig.${label.replace(/\W+/g, '-')}.json`;
    fs.writeFileSync(path.join(dir, config), JSON.stringify(tsconfig(lib)));
    const r = typeCheck(dir, config);
    assert.equal(r.code, 0, `${label}:\n${r.output}`);
  }
});

test('the types test would see a missing lib: a use of Disposable with no lib for it fails to compile', () => {
  // The check above is not vacuous: the same project setup rejects Disposable when nothing names
  // its lib (here: a file of the user's own, without pyembed).
  const dir = path.join(work, 'types-control');
  fs.mkdirSync(dir);
  linkFromRepo(dir, 'typescript');
  fs.writeFileSync(path.join(dir, 'index.ts'), 'export const d: Disposable | undefined = undefined;\n');
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig(['es2022'])));
  const r = typeCheck(dir, 'tsconfig.json');
  assert.notEqual(r.code, 0);
  assert.match(r.output, /Cannot find name 'Disposable'/);
});

/** Runs `import('pyembed')` in a child from a project folder whose pyembed has no usable addon. */
function importFails(dir: string): string {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `
    try {
      await import('pyembed');
      console.log('loaded');
    } catch (error) {
      console.log(error.message);
      console.log('still healthy:', 6 * 7);
    }`], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.doesNotMatch(r.stdout, /^loaded$/m);
  assert.match(r.stdout, /still healthy: 42/);
  return r.stdout;
}

test('no addon for this Node.js: one clear error naming what was tried and what to do', () => {
  const dir = project('no-addon');
  const pkg = path.join(dir, 'node_modules', 'pyembed');
  fs.rmSync(path.join(pkg, 'prebuilds'), { recursive: true, force: true });
  fs.rmSync(path.join(pkg, 'build'), { recursive: true, force: true });
  const message = importFails(dir);
  const abi = process.versions.modules;
  assert.match(message, new RegExp(`no native addon loads on this Node\\.js \\(${process.version.replace(/\./g, '\\.')}, ABI ${abi}, ${process.platform}-${process.arch}`));
  assert.match(message, /build[/\\]Release[/\\]pyembed\.node: not built/);
  assert.match(message, new RegExp(`prebuilds[/\\\\]${process.platform}-${process.arch}[/\\\\]node\\.abi${abi}(\\.glibc)?\\.node: not shipped`));
  assert.match(message, /Prebuilt addons in this package for [^:]+: none\./);
  assert.match(message, /npm rebuild pyembed/);

  // A local build for another Node ABI (build/config.gypi says which) is skipped, not loaded.
  fs.mkdirSync(path.join(pkg, 'build', 'Release'), { recursive: true });
  fs.writeFileSync(path.join(pkg, 'build', 'config.gypi'), '# made by the test\n{ "variables": { "node_module_version": 1 } }\n');
  fs.writeFileSync(path.join(pkg, 'build', 'Release', 'pyembed.node'), 'not a shared library');
  assert.match(importFails(dir), /build[/\\]Release[/\\]pyembed\.node: built for Node ABI 1\b/);

  // One that claims this ABI but does not load: its loader error is reported.
  fs.writeFileSync(path.join(pkg, 'build', 'config.gypi'), `{ "variables": { "node_module_version": ${abi} } }\n`);
  assert.match(importFails(dir), /build[/\\]Release[/\\]pyembed\.node: .*(invalid ELF header|file too short|not a valid)/i);
});
