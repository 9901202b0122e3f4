// What a newcomer does in their first hour (issue 13): import their own .py files, set sys.path and
// sys.argv, read the stack of a failed callAsync, get results out of exec(), pass a Date, read the
// errors of a wrong setup, and hold the GIL from plain JavaScript.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { PythonEngine, PythonError, Py, PyModule, toJSDate } from 'pyembed';

import { explain, packageRoot, runScript, tsc } from './helpers.js';

// Inside the package, so that scripts written there can `import 'pyembed'` as a user's would.
const work = path.join(packageRoot, 'build', 'test-newcomer', String(process.pid));
after(() => fs.rmSync(work, { recursive: true, force: true }));

function project(name: string, files: Record<string, string>): string {
  const dir = path.join(work, name);
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

const GEOMETRY = 'def add(a: int, b: int = 1, *, scale: int = 1) -> int:\n    return (a + b) * scale\n';

// --- item 1: the working directory, and files given by path ------------------------------------

test('the working directory is first on sys.path, as with python -c; cwdOnPath: false leaves it out', async () => {
  const dir = project('cwd', { 'geometry.py': GEOMETRY });
  const r = await runScript(`
    import { Py, PythonEngine } from 'pyembed';
    console.log('add', Py.import('geometry').add(1, 2, Py.kw({ scale: 3 })));
    console.log('first', JSON.stringify(PythonEngine.eval('__import__("sys").path[0]')));
  `, { dir });
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /^add 9$/m);
  assert.match(r.stdout, /^first ""$/m); // "" (as python -c): follows process.chdir()
  const off = await runScript(`
    import { Py, PythonEngine } from 'pyembed';
    PythonEngine.initialize({ cwdOnPath: false });
    try { Py.import('geometry'); console.log('imported'); } catch (e) { console.log('error', e.type); }
  `, { dir });
  assert.equal(off.code, 0, explain(off));
  assert.match(off.stdout, /^error ModuleNotFoundError$/m);
});

test('PYTHONSAFEPATH keeps the working directory off sys.path, as it does for python', async (t) => {
  if (Number(PythonEngine.version.split('.')[1]) < 11) return t.skip('PYTHONSAFEPATH is Python 3.11+');
  const dir = project('safepath', { 'geometry.py': GEOMETRY });
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    console.log('has cwd', PythonEngine.eval('"" in __import__("sys").path'));
  `, { dir, env: { PYTHONSAFEPATH: '1' } });
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /^has cwd false$/m);
});

test('PyModule.import() takes ./, ../ and absolute paths and file: URLs; the file\'s siblings import too', async () => {
  const dir = project('files', {
    'app/lib/tool.py': 'import sibling\ndef answer():\n    return sibling.VALUE * 2\n',
    'app/lib/sibling.py': 'VALUE = 21\n',
    'app/other/peer.py': 'NAME = "peer"\n',
    'app/pkg/__init__.py': 'from .inner import WHO\n',
    'app/pkg/inner.py': 'WHO = "package"\n',
  });
  const r = await runScript(`
    import { PyModule } from 'pyembed';
    const tool = PyModule.import('./lib/tool.py');
    console.log('relative', tool.answer());
    console.log('same module', PyModule.import(new URL('./lib/tool.py', import.meta.url)) .equals(tool),
      PyModule.import(import.meta.dirname + '/lib/tool.py').equals(tool));
    console.log('url string', PyModule.import(new URL('./other/peer.py', import.meta.url).href).NAME);
    console.log('package', PyModule.import('./pkg').WHO);
    process.chdir('lib');
    console.log('parent', PyModule.import('../other/peer.py').NAME);
  `, { dir: path.join(dir, 'app') });
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /^relative 42$/m);
  assert.match(r.stdout, /^same module true true$/m);
  assert.match(r.stdout, /^url string peer$/m);
  assert.match(r.stdout, /^package package$/m);
  assert.match(r.stdout, /^parent peer$/m);
});

test('PyModule.import() of a file: clear errors for a missing file, a non-.py file and a name clash', () => {
  const dir = project('import-errors', { 'json.py': 'X = 1\n', 'notes.txt': 'x\n', 'ok_mod.py': 'Y = 2\n' });
  const fails = (target: string | URL, type: string, message: RegExp) =>
    assert.throws(() => PyModule.import(target), (e: unknown) =>
      e instanceof PythonError && e.type === type && message.test(e.message));
  fails(path.join(dir, 'missing.py'), 'ModuleNotFoundError', /no Python file at .*missing\.py/);
  fails(path.join(dir, 'notes.txt'), 'ModuleNotFoundError', /not a \.py file/);
  Py.import('json');
  fails(pathToFileURL(path.join(dir, 'json.py')), 'ImportError', /a different module 'json' is already imported/);
  assert.equal(PyModule.import(pathToFileURL(path.join(dir, 'ok_mod.py'))).Y, 2);
  assert.throws(() => PyModule.import('file://host/x.py'), TypeError);
});

test("the README's stubs example works at run time: stubs, compile, run from the module's folder", async () => {
  const dir = project('stubs', {
    'geometry.py': GEOMETRY,
    'main.ts': "import { Py, PyModule } from 'pyembed';\nimport type { Geometry } from './geometry.js';\n" +
      "const g = PyModule.import('geometry') as Geometry;\nconsole.log('sum', g.add(1, 2, Py.kw({ scale: 3 })));\n",
    'tsconfig.json': JSON.stringify({
      compilerOptions: { target: 'es2022', module: 'nodenext', strict: true, outDir: 'out', rootDir: '.', skipLibCheck: true, types: [] },
      include: ['*.ts'],
    }),
  });
  const stubs = await runScript(`
    process.argv.push('stubs', 'geometry', '--out', 'geometry.d.ts');
    await import(${JSON.stringify(pathToFileURL(path.join(packageRoot, 'dist', 'cli', 'main.js')).href)});
  `, { dir });
  assert.equal(stubs.code, 0, explain(stubs));
  const compiled = tsc(['-p', dir]);
  assert.equal(compiled.code, 0, compiled.output);
  const run = await runScript(fs.readFileSync(path.join(dir, 'out', 'main.js'), 'utf8'), { dir });
  assert.equal(run.code, 0, explain(run));
  assert.match(run.stdout, /^sum 9$/m);
});

// --- item 12: path, programName, argv ----------------------------------------------------------

test('initialize({ path, programName, argv }) sets sys.path and sys.argv before any Python code runs', async () => {
  const dir = project('options', { 'extra/helper_mod.py': 'import sys\nSEEN_ARGV = list(sys.argv)\n' });
  const r = await runScript(`
    import { Py, PythonEngine } from 'pyembed';
    PythonEngine.initialize({ path: ['extra'], programName: 'mytool', argv: ['--fast', 'x'] });
    PythonEngine.initialize({ path: ['extra'], programName: 'mytool', argv: ['--fast', 'x'] }); // same: fine
    console.log('argv', JSON.stringify(Py.import('helper_mod').SEEN_ARGV.toJS()));
    const sysPath = PythonEngine.eval('__import__("sys").path').toJS();
    console.log('path', JSON.stringify(sysPath.slice(0, 2)));
    console.log('argparse', PythonEngine.eval('__import__("argparse").ArgumentParser().prog'));
    try { PythonEngine.initialize({ argv: ['other'] }); } catch (e) { console.log('again', e.message); }
    for (const bad of [{ path: 'extra' }, { argv: [1] }, { programName: 3 }, { cwdOnPath: 'no' }]) {
      try { PythonEngine.initialize(bad); } catch (e) { console.log('bad', e.name); }
    }
  `, { dir });
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /^argv \["mytool","--fast","x"\]$/m);
  assert.ok(r.stdout.includes(`path ${JSON.stringify(['', path.join(dir, 'extra')])}`), r.stdout);
  assert.match(r.stdout, /^argparse mytool$/m);
  assert.match(r.stdout, /^again Python is already running, and the options argv only take effect when it starts/m);
  assert.equal(r.stdout.match(/^bad TypeError$/gm)?.length, 4, r.stdout);
});

// --- item 4: the stack of a failed callAsync ---------------------------------------------------

test('a failed callAsync carries the JS stack of the code that awaited it', async () => {
  const m = PyModule.fromString('newcomer_async', 'def boom(x):\n    raise ValueError(x)\n');
  async function innerCaller(): Promise<unknown> {
    return await m.boom.callAsync('no');
  }
  async function outerCaller(): Promise<unknown> {
    return await innerCaller();
  }
  const error = await outerCaller().then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof PythonError);
  assert.equal(error.type, 'ValueError');
  assert.match(error.stack ?? '', /^PythonError: ValueError: no\n/);
  assert.match(error.stack ?? '', /at async innerCaller .*newcomer\.test\.js/);
  assert.match(error.stack ?? '', /at async outerCaller /);
  assert.match(error.stack ?? '', /raise ValueError\(x\)/); // the Python traceback stays
  assert.doesNotMatch(error.stack ?? '', /errorFactory/);
});

// --- item 5: exec with a plain object ----------------------------------------------------------

test('exec(code, plainObject) writes back the names the code assigned or deleted', () => {
  const scope: Record<string, unknown> = { x: 2, gone: 1, kept: [1, 2] };
  PythonEngine.exec('y = x * 21\ndel gone\nimport math\ndef twice(v):\n    return 2 * v', scope);
  assert.equal(scope.y, 42);
  assert.equal(scope.x, 2);
  assert.equal('gone' in scope, false);
  assert.deepEqual(scope.kept, [1, 2]); // unchanged names keep their JS values
  assert.equal((scope.math as { pi: number }).pi, Math.PI);
  assert.equal((scope.twice as (v: number) => number)(4), 8);
  assert.equal(Object.keys(scope).includes('__builtins__'), false);
  const walrus: Record<string, unknown> = {};
  assert.equal(PythonEngine.eval('(z := 5) + 1', walrus), 6);
  assert.equal(walrus.z, 5);
  assert.equal(PythonEngine.eval('x * 2', new Map([['x', 3]]) as never), 6); // a Map is converted, not written to
  const failed: Record<string, unknown> = { a: 1 };
  assert.throws(() => PythonEngine.exec('b = 2\nraise KeyError("k")', failed), PythonError);
  assert.deepEqual(failed, { a: 1 }); // an exception writes nothing back
});

// --- item 6: JS Dates --------------------------------------------------------------------------

test('a JS Date becomes an aware UTC datetime: arguments, containers, keywords, callbacks, callAsync', async () => {
  const m = PyModule.fromString('newcomer_dates', `
import datetime
def describe(d):
    return (d.isoformat(), d.tzinfo is datetime.timezone.utc)
def nested(v):
    return [type(x).__name__ for x in (v[0], v[1]["at"])]
def from_callback(f):
    return f().isoformat()
`);
  const when = new Date('2024-02-27T12:00:00.123Z');
  assert.deepEqual(m.describe(when).toJS(), ['2024-02-27T12:00:00.123000+00:00', true]);
  assert.deepEqual(m.nested([when, { at: when }]).toJS(), ['datetime', 'datetime']);
  assert.deepEqual(m.describe(Py.kw({ d: when })).toJS(), ['2024-02-27T12:00:00.123000+00:00', true]);
  assert.equal(m.from_callback(() => when), '2024-02-27T12:00:00.123000+00:00');
  assert.deepEqual((await m.describe.callAsync(when)).toJS(), ['2024-02-27T12:00:00.123000+00:00', true]);
  assert.equal(toJSDate(Py.toPython(when)).getTime(), when.getTime()); // round trip
  assert.equal((Py.toPython({ d: when }).toJS({ datetime: 'date' }) as { d: Date }).d.getTime(), when.getTime());
  assert.equal(m.describe(new Date(-1)).toJS()[0], '1969-12-31T23:59:59.999000+00:00');
  assert.throws(() => m.describe(new Date(NaN)), (e: unknown) => e instanceof PythonError && e.type === 'ValueError' && /invalid JS Date/.test(e.message));
  assert.throws(() => m.describe(new Date(8.64e15)), (e: unknown) => e instanceof PythonError && e.type === 'OverflowError' && /years 1 to 9999/.test(e.message));
});

// --- item 7: error messages --------------------------------------------------------------------

test('after shutdown, Python entry points, old objects and callAsync all say the same, with the way forward', async () => {
  const r = await runScript(`
    import { Py, PythonEngine } from 'pyembed';
    const f = Py.import('math').sqrt;
    PythonEngine.shutdown();
    const messages = new Set();
    for (const use of [() => Py.import('os'), () => f(4), () => f.callAsync(4), () => PythonEngine.eval('1')]) {
      try { await use(); messages.add('no error'); } catch (e) { messages.add(e.message); }
    }
    console.log(JSON.stringify([...messages]));
  `);
  assert.equal(r.code, 0, explain(r));
  const messages = JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
  assert.equal(messages.length, 1, r.stdout);
  assert.match(messages[0]!, /^Python was shut down \(PythonEngine\.shutdown\(\)\); call PythonEngine\.initialize\(\) to start it again/);
});

test('an executable that is not Python, and a Python 2, get messages that say what happened and what to do', async () => {
  const fakePython2 = project('fake', {
    'python2.7': '#!/bin/sh\n# Answers like CPython 2.7: no -I option; -V prints on stderr.\n' +
      'case "$1" in\n  -V|--version) echo "Python 2.7.18" >&2; exit 0;;\n' +
      '  -I) echo "Unknown option: -I" >&2; exit 2;;\nesac\nexit 2\n',
  });
  fs.chmodSync(path.join(fakePython2, 'python2.7'), 0o755);
  const tryPython = async (python: string) => {
    const r = await runScript(`
      import { PythonEngine } from 'pyembed';
      try { PythonEngine.initialize(); } catch (e) { console.log(e.message); }
    `, { env: { PYEMBED_PYTHON: python } });
    assert.equal(r.code, 0, explain(r));
    return r.stdout;
  };
  const silent = await tryPython('/usr/bin/true');
  assert.match(silent, /'\/usr\/bin\/true' did not answer like a Python interpreter \(asked to print its configuration, it printed nothing\)/);
  assert.match(silent, /point PYEMBED_PYTHON/);
  const old = await tryPython(path.join(fakePython2, 'python2.7'));
  assert.match(old, /is Python 2\.7\.18; pyembed needs CPython 3\.9 or newer \(this one is too old\)/);
  // A real Python 2, when pyenv has one.
  const pyenv = path.join(process.env.PYENV_ROOT ?? path.join(process.env.HOME ?? '/root', '.pyenv'), 'versions');
  const real = fs.existsSync(pyenv) ? fs.readdirSync(pyenv).find((v) => v.startsWith('2.')) : undefined;
  if (real) assert.match(await tryPython(path.join(pyenv, real, 'bin', 'python')), /is Python 2\.\d+\.\d+; pyembed needs CPython 3\.9 or newer/);
});

// --- item 11: Py.withGIL -----------------------------------------------------------------------

test('Py.withGIL(fn) returns fn\'s result, nests, and ends its scope even when fn throws', async () => {
  const { native } = await import(pathToFileURL(path.join(packageRoot, 'dist', 'native.js')).href);
  const depth = () => native.threadState()[1] as number;
  const inner = Py.withGIL(() => Py.withGIL(() => [depth(), PythonEngine.eval('6 * 7')]));
  assert.deepEqual(inner, [2, 42]);
  assert.equal(depth(), 0);
  assert.throws(() => Py.withGIL(() => { throw new RangeError('inside'); }), RangeError);
  assert.equal(depth(), 0);
  assert.throws(() => Py.withGIL('no' as never), TypeError);
});
