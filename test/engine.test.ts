import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { PythonEngine, PythonError, Py } from 'pyembed';

import { explain, runScript, tmpDir } from './helpers.js';

test('initialize is idempotent and returns with the GIL released', () => {
  PythonEngine.initialize();
  PythonEngine.initialize();
  assert.equal(PythonEngine.isInitialized, true);
  assert.match(PythonEngine.version, /^3\.\d+\.\d+/);
  assert.ok(fs.existsSync(PythonEngine.python.library));
});

test('exec and eval share __main__ by default, or use the given globals', () => {
  PythonEngine.exec('engine_test_value = 6 * 7');
  assert.equal(PythonEngine.eval('engine_test_value'), 42);
  const globals = Py.toPython({ x: 5 });
  PythonEngine.exec('y = x * 2', globals);
  assert.equal(globals.get('y'), 10);
  assert.equal(PythonEngine.eval('x + y', { x: 1, y: 2 }), 3);
});

test('a syntax error is a PythonError SyntaxError naming the line', () => {
  assert.throws(
    () => PythonEngine.exec('a = 1\nb = (\n'),
    (e: unknown) => e instanceof PythonError && e.type === 'SyntaxError' && /line 2/.test(e.message),
  );
});

test('sys.exit() in Python is an error in JS and the process goes on', () => {
  assert.throws(() => PythonEngine.exec('import sys; sys.exit(3)'), (e: unknown) =>
    e instanceof PythonError && e.type === 'SystemExit' && e.message === '3');
  assert.throws(() => PythonEngine.exec('raise SystemExit("bye")'), { type: 'SystemExit', message: 'bye' });
  assert.equal(PythonEngine.eval('1 + 1'), 2);
});

test('API misuse gets a JS TypeError', () => {
  // @ts-expect-error wrong type on purpose
  assert.throws(() => PythonEngine.exec(42), TypeError);
  assert.throws(() => PythonEngine.eval('1', 5 as never), TypeError);
  assert.throws(() => PythonEngine.initialize({ asyncThreads: 0 }), TypeError);
  assert.throws(() => PythonEngine.exec('x = 1', [] as never), PythonError); // a list is not a dict
});

test('shutdown, old proxies throw a clear error, initialize starts a fresh interpreter', async () => {
  const r = await runScript(`
    import { PythonEngine, Py } from 'pyembed';
    import assert from 'node:assert/strict';
    PythonEngine.initialize();
    const math = Py.import('math');
    PythonEngine.exec('import sys; sys.marker = 1');
    PythonEngine.shutdown();
    PythonEngine.shutdown(); // idempotent
    assert.equal(PythonEngine.isInitialized, false);
    assert.throws(() => math.sqrt, /shut down/);
    assert.throws(() => math.pi, /shut down/);
    assert.throws(() => Py.import('os'), /was shut down.*initialize/); // calls after shutdown
    PythonEngine.initialize();
    assert.equal(PythonEngine.eval('hasattr(__import__("sys"), "marker")'), false);
    assert.throws(() => math.sqrt(4), /shut down/);
    assert.equal(Py.import('math').sqrt(16), 4);
    console.log('ok');
  `);
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /ok/);
});

test('first use of any entry point initializes with defaults', async () => {
  const r = await runScript(`
    import { Py, PythonEngine } from 'pyembed';
    console.log(PythonEngine.isInitialized, Py.import('os').getcwd() === process.cwd(), PythonEngine.isInitialized);
  `);
  assert.equal(r.stdout.trim(), 'false true true', explain(r));
});

test('a missing interpreter is a clear error naming what was tried', async () => {
  const r = await initializeWith('/nonexistent/python9');
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /cannot run the Python interpreter '\/nonexistent\/python9'/);
  assert.match(r.stdout, /PYEMBED_PYTHON/);
});

/** A stand-in python executable that answers pyembed's probe with `answer` (after some other output). */
function fakePython(answer: { version: string; shared: boolean; library: string; freeThreaded?: boolean }): string {
  const fake = path.join(tmpDir('pyembed-fake-'), 'python3');
  const fields = [fake, answer.version, answer.version, answer.shared ? '1' : '0', answer.library, answer.freeThreaded ? '1' : '0'];
  const printed = ['PYEMBED-PROBE', ...fields].join('\\000');
  fs.writeFileSync(fake, `#!/bin/sh\necho 'a wrapper printing first'\nprintf '${printed}'\n`, { mode: 0o755 });
  return fake;
}

/** What initialize() says when PYEMBED_PYTHON is `python`. */
function initializeWith(python: string) {
  return runScript(`
    import { PythonEngine } from 'pyembed';
    try { PythonEngine.initialize(); } catch (e) { console.log(e.message); }
  `, { env: { PYEMBED_PYTHON: python } });
}

test('an interpreter without a shared libpython is a clear error, not a crash', async () => {
  const r = await initializeWith(fakePython({ version: '3.11.0', shared: false, library: '' }));
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /has no shared libpython/);
  assert.match(r.stdout, /--enable-shared/);
});

test('a free-threaded build is refused with the reason', async () => {
  const r = await initializeWith(fakePython({ version: '3.13.0', shared: true, library: '/lib/x.so', freeThreaded: true }));
  assert.match(r.stdout, /free-threaded \(no-GIL\) build/, explain(r));
});

test('too old a Python is refused with the reason', async () => {
  const r = await initializeWith(fakePython({ version: '3.7.9', shared: true, library: '/lib/x.so' }));
  assert.match(r.stdout, /Python 3\.7\.9; pyembed needs CPython 3\.9 or newer/, explain(r));
});

test('C extension modules load (libpython symbols are global)', () => {
  assert.equal(PythonEngine.eval('__import__("ctypes").sizeof(__import__("ctypes").c_int)'), 4);
  assert.equal(PythonEngine.eval('str(__import__("decimal").Decimal("1.10") + 1)'), '2.10');
  assert.equal(PythonEngine.eval('__import__("sqlite3").connect(":memory:").execute("select 40+2").fetchone()[0]'), 42);
});

test('restarting under daemon threads of the old interpreter is refused (it would crash CPython)', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    PythonEngine.exec('import threading, time\\nthreading.Thread(target=lambda: time.sleep(30), daemon=True).start()');
    PythonEngine.shutdown();
    try { PythonEngine.initialize(); } catch (e) { console.log(e.message); }
  `);
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /cannot start Python again in this process: 1 Python thread/);
});
