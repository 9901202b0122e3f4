// Any interpreter, any virtualenv: one build of pyembed, the Python chosen at run time.
//
// - A virtualenv made here from the system Python (/usr/bin/python3), isolated from the system's
//   site-packages, with a local package pip-installed into it offline. pyembed, pointed at the
//   venv's python (PYEMBED_PYTHON or initialize({ python })), must see that package and report
//   the venv as sys.prefix.
// - A smoke test with each CPython 3.9 ... 3.13 found under pyenv (skipped when missing).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { explain, lastJson, pyenvPython, pyenvRoot, runScript, tmpDir } from './helpers.js';

const SYSTEM_PYTHON = '/usr/bin/python3';
const PACKAGE = 'pyembed_venv_probe';

// pip without the machine's pip configuration (find-links, extra indexes): offline, --no-index.
function pipEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PIP_CONFIG_FILE: os.devNull, PIP_NO_INPUT: '1' };
  for (const key of Object.keys(env)) {
    if (key.startsWith('PIP_') && key !== 'PIP_CONFIG_FILE' && key !== 'PIP_NO_INPUT') delete env[key];
  }
  return env;
}

/**
 * A minimal local project: a pyproject.toml naming an in-tree PEP 517 backend (the venv has pip
 * and setuptools but not `wheel`, which setuptools of this age needs to build wheels; an in-tree
 * backend needs nothing, so `pip install --no-index --no-build-isolation` works offline anywhere).
 */
function writeProject(dir: string): void {
  fs.mkdirSync(path.join(dir, PACKAGE), { recursive: true });
  fs.writeFileSync(path.join(dir, 'pyproject.toml'), `[build-system]
requires = []
build-backend = "tiny_backend"
backend-path = ["."]
`);
  fs.writeFileSync(path.join(dir, PACKAGE, '__init__.py'), `
import sys
WHERE = "installed in a virtualenv"
def describe():
    return {"prefix": sys.prefix, "base_prefix": sys.base_prefix, "file": __file__}
`);
  fs.writeFileSync(path.join(dir, 'tiny_backend.py'), String.raw`
# A PEP 517 build backend that writes a pure-Python wheel of the package next to it.
import base64, hashlib, os, zipfile

NAME, VERSION = "${PACKAGE}", "1.0"
DIST_INFO = f"{NAME}-{VERSION}.dist-info"

def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    here = os.path.dirname(os.path.abspath(__file__))
    files = {}
    for name in sorted(os.listdir(os.path.join(here, NAME))):
        if name.endswith(".py"):
            with open(os.path.join(here, NAME, name), "rb") as f:
                files[f"{NAME}/{name}"] = f.read()
    files[f"{DIST_INFO}/METADATA"] = f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n".encode()
    files[f"{DIST_INFO}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: tiny_backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [_record_line(n, d) for n, d in files.items()] + [f"{DIST_INFO}/RECORD,,"]
    files[f"{DIST_INFO}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel_name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
    return wheel_name
`);
}

function canImport(python: string, module: string): boolean {
  return spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
}

let venv = '';
let venvPython = '';
let setupSkip = '';
const scratchDirs: string[] = [];

after(() => {
  for (const d of scratchDirs) fs.rmSync(d, { recursive: true, force: true });
});

before(() => {
  if (!fs.existsSync(SYSTEM_PYTHON)) {
    setupSkip = `${SYSTEM_PYTHON} is not installed`;
    return;
  }
  const root = tmpDir('pyembed-venv-');
  scratchDirs.push(root);
  venv = path.join(root, 'venv');
  const made = spawnSync(SYSTEM_PYTHON, ['-m', 'venv', venv], { encoding: 'utf8', env: pipEnv() });
  if (made.status !== 0) {
    // Debian without python3-venv: "ensurepip is not available".
    setupSkip = `cannot make a virtualenv with ${SYSTEM_PYTHON} -m venv (python3-venv missing?): ${made.stderr.trim().split('\n').pop()}`;
    return;
  }
  venvPython = path.join(venv, 'bin', 'python');
  const project = path.join(root, 'project');
  writeProject(project);
  execFileSync(venvPython, ['-m', 'pip', 'install', '--no-index', '--no-build-isolation', project], {
    env: pipEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 120_000,
  });
});

test('the local package is importable in the virtualenv only', (t) => {
  if (setupSkip) return t.skip(setupSkip);
  assert.equal(canImport(venvPython, PACKAGE), true);
  assert.equal(canImport(SYSTEM_PYTHON, PACKAGE), false);
  assert.equal(canImport('python3', PACKAGE), false);
});

const venvScript = (how: string) => `
  import { PythonEngine, Py } from 'pyembed';
  ${how}
  const probe = Py.import('${PACKAGE}');
  const sys = Py.import('sys');
  let numpy = true;
  try { Py.import('numpy'); } catch (e) { numpy = e.type; }
  console.log(JSON.stringify({
    where: probe.WHERE,
    described: probe.describe().toJS(),
    prefix: sys.prefix,
    executable: PythonEngine.python.executable,
    library: PythonEngine.python.library,
    numpy,
  }));
  PythonEngine.shutdown();
`;

function checkVenvResult(stdout: string): void {
  const result = lastJson(stdout);
  assert.equal(result.where, 'installed in a virtualenv');
  assert.equal(fs.realpathSync(result.prefix), fs.realpathSync(venv));
  assert.equal(result.described.prefix, result.prefix);
  assert.equal(result.described.base_prefix, '/usr');
  assert.ok(
    fs.realpathSync(result.described.file).startsWith(fs.realpathSync(venv) + path.sep),
    `${result.described.file} is not inside ${venv}`,
  );
  assert.match(result.described.file, /site-packages/);
  assert.equal(result.executable, venvPython);
  // The venv's library is its base Python's.
  assert.match(result.library, /libpython3\.\d+\.so/);
  // Isolated from the system's site-packages: the system's numpy (if any) is not visible.
  if (canImport(SYSTEM_PYTHON, 'numpy')) assert.equal(result.numpy, 'ModuleNotFoundError');
}

test('a virtualenv chosen with PYEMBED_PYTHON: its packages, its sys.prefix', async (t) => {
  if (setupSkip) return t.skip(setupSkip);
  const r = await runScript(venvScript('PythonEngine.initialize();'), { env: { PYEMBED_PYTHON: venvPython } });
  assert.equal(r.code, 0, explain(r));
  checkVenvResult(r.stdout);
});

test('a virtualenv chosen with initialize({ python }), which wins over PYEMBED_PYTHON', async (t) => {
  if (setupSkip) return t.skip(setupSkip);
  const r = await runScript(venvScript(`PythonEngine.initialize({ python: ${JSON.stringify(venvPython)} });`), {
    env: { PYEMBED_PYTHON: '/nonexistent/python3' },
  });
  assert.equal(r.code, 0, explain(r));
  checkVenvResult(r.stdout);
});

/** A virtualenv without pip, from the system Python, in a scratch directory (`where` below it). */
function scratchVenv(prefix: string, options: string[] = [], where = ''): string {
  const root = tmpDir(prefix);
  scratchDirs.push(root);
  const dir = path.join(root, where, 'venv');
  execFileSync(SYSTEM_PYTHON, ['-m', 'venv', ...options, '--without-pip', dir]);
  return dir;
}

test('a virtualenv with --system-site-packages sees the system packages too', async (t) => {
  if (setupSkip) return t.skip(setupSkip);
  if (!canImport(SYSTEM_PYTHON, 'numpy')) return t.skip(`numpy is not installed for ${SYSTEM_PYTHON}`);
  const shared = scratchVenv('pyembed-venv-shared-', ['--system-site-packages']);
  const r = await runScript(`
    import { Py } from 'pyembed';
    const sys = Py.import('sys');
    console.log(JSON.stringify({ prefix: sys.prefix, numpy: Py.import('numpy').__file__ }));
  `, { env: { PYEMBED_PYTHON: path.join(shared, 'bin', 'python') } });
  assert.equal(r.code, 0, explain(r));
  const result = JSON.parse(r.stdout.trim());
  assert.equal(fs.realpathSync(result.prefix), fs.realpathSync(shared));
  assert.match(result.numpy, /^\/usr\/lib\/python3\/dist-packages\/numpy\//);
});

test("asking the venv's python where libpython is runs none of its site-packages' .pth code", async (t) => {
  if (setupSkip) return t.skip(setupSkip);
  // A .pth line starting with `import` runs at every start that imports `site` (twice in a venv:
  // CPython's site adds the venv's site-packages twice): this one writes the pid of the process
  // it runs in. pyembed's own start of Python imports site; its probe, another process, must not.
  const counted = scratchVenv('pyembed-venv-pth-');
  const python = path.join(counted, 'bin', 'python');
  const sitePackages = execFileSync(python, ['-c', 'import site; print(site.getsitepackages()[0])'], { encoding: 'utf8' }).trim();
  const starts = path.join(path.dirname(counted), 'starts.txt');
  fs.writeFileSync(path.join(sitePackages, 'count_starts.pth'),
    `import os; open(${JSON.stringify(starts)}, 'a').write('%d\\n' % os.getpid())\n`);
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    PythonEngine.initialize();
    console.log(JSON.stringify({ pid: PythonEngine.eval('__import__("os").getpid()'), prefix: PythonEngine.eval('__import__("sys").prefix') }));
  `, { env: { PYEMBED_PYTHON: python } });
  assert.equal(r.code, 0, explain(r));
  const { pid, prefix } = lastJson(r.stdout);
  assert.equal(fs.realpathSync(prefix), fs.realpathSync(counted));
  const pids = fs.readFileSync(starts, 'utf8').split('\n').filter(Boolean).map(Number);
  assert.ok(pids.length > 0 && pids.every((p) => p === pid), `.pth code ran in processes ${pids} (pyembed's is ${pid})`);
});

test('a virtualenv whose path has spaces, quotes and non-ASCII letters', async (t) => {
  if (setupSkip) return t.skip(setupSkip);
  const odd = scratchVenv('pyembed-venv-odd-', [], `dir with 'quotes' "and" ü € spaces`);
  const python = path.join(odd, 'bin', 'python');
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    PythonEngine.initialize();
    console.log(JSON.stringify({ executable: PythonEngine.python.executable, prefix: PythonEngine.eval('__import__("sys").prefix') }));
  `, { env: { PYEMBED_PYTHON: python } });
  assert.equal(r.code, 0, explain(r));
  const result = lastJson(r.stdout);
  assert.equal(result.executable, python);
  assert.equal(fs.realpathSync(result.prefix), fs.realpathSync(odd));
});

// --- every CPython version: one build, the version chosen at run time ------------------------


const SMOKE = `
  import { PythonEngine, Py, PyModule, PythonError } from 'pyembed';
  const out = {};
  PythonEngine.initialize();
  out.version = PythonEngine.version.split(' ')[0];
  out.executable = PythonEngine.python.executable;
  const m = PyModule.fromString('smoke', [
    'import asyncio, threading',
    'def add(a, b=10, *, scale=1):',
    '    return (a + b) * scale',
    'def call_back(f, x):',
    '    return f(x) + 1',
    'def call_back_from_thread(f):',
    '    out = []',
    '    t = threading.Thread(target=lambda: out.append(f(20)))',
    '    t.start(); t.join()',
    '    return out[0]',
    'def fail(message):',
    '    raise KeyError(message)',
    'async def later(x):',
    '    await asyncio.sleep(0.01)',
    '    return x * 3',
    'def squares(n):',
    '    for i in range(n):',
    '        yield i * i',
  ].join('\\n'));
  out.call = m.add(1, Py.kw({ scale: 2 }));
  out.callback = m.call_back((x) => x * 2, 20);
  out.threadCallback = m.call_back_from_thread((x) => x + 22);
  try { m.fail('missing'); } catch (e) { out.error = [e instanceof PythonError, e.type, e.message]; }
  try { m.call_back(() => { throw new RangeError('from JS'); }, 0); } catch (e) { out.jsError = [e instanceof RangeError, e.message]; }
  out.callAsync = await m.add.callAsync(2, 3);
  out.awaited = await m.later(5);
  out.iterated = [...m.squares(4)];
  out.conversions = Py.toPython({ list: [1, 'two', 3.5, null, true], big: 2n ** 70n }).toJS();
  PythonEngine.shutdown();
  out.afterShutdown = PythonEngine.isInitialized;
  try {
    PythonEngine.initialize();
    out.restarted = PythonEngine.eval('6 * 7');
    PythonEngine.shutdown();
  } catch (e) {
    out.restarted = 'refused: ' + e.message;
  }
  console.log(JSON.stringify(out, (k, v) => typeof v === 'bigint' ? v.toString() + 'n' : v));
`;

for (const minor of ['3.9', '3.10', '3.11', '3.12', '3.13']) {
  const python = pyenvPython(minor);
  test(`CPython ${minor}: initialize, call, callback, exception, async, shutdown, restart`, {
    skip: python ? false : `no CPython ${minor} under ${pyenvRoot}/versions`,
  }, async () => {
    const r = await runScript(SMOKE, { env: { PYEMBED_PYTHON: python } });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.ok(out.version.startsWith(minor + '.'), out.version);
    assert.equal(out.executable, python);
    assert.equal(out.call, 22);
    assert.equal(out.callback, 41);
    assert.equal(out.threadCallback, 42);
    assert.deepEqual(out.error, [true, 'KeyError', "'missing'"]);
    assert.deepEqual(out.jsError, [true, 'from JS']);
    assert.equal(out.callAsync, 5);
    assert.equal(out.awaited, 15);
    assert.deepEqual(out.iterated, [0, 1, 4, 9]);
    assert.deepEqual(out.conversions, { list: [1, 'two', 3.5, null, true], big: '1180591620717411303424n' });
    assert.equal(out.afterShutdown, false);
    if (minor === '3.12') {
      // asyncio ran: CPython 3.12 would crash on a restart (see regressions.test.ts), so it is refused.
      assert.match(String(out.restarted), /^refused: cannot start Python again.*CPython 3\.12/);
    } else {
      assert.equal(out.restarted, 42);
    }
  });
}

for (const minor of ['3.6', '3.7', '3.8']) {
  const python = pyenvPython(minor);
  test(`CPython ${minor} is refused with a clear error`, {
    skip: python ? false : `no CPython ${minor} under ${pyenvRoot}/versions`,
  }, async () => {
    const r = await runScript(`
      import { PythonEngine } from 'pyembed';
      try { PythonEngine.initialize(); console.log('started'); } catch (e) { console.log(e.message); }
    `, { env: { PYEMBED_PYTHON: python } });
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, new RegExp(`is Python ${minor.replace('.', '\\.')}\\.\\d+; pyembed needs CPython 3\\.9 or newer`));
  });
}
