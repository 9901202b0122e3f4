// Exit, shutdown and garbage collection, each in a child process.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { explain, runScript } from './helpers.js';

test('without shutdown(), Python is finalized at exit: atexit runs and output is flushed', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    PythonEngine.exec(\`
import atexit, sys
atexit.register(lambda: print("atexit ran", flush=True))
sys.stdout.write("buffered without newline")
\`);
    console.log('js done');
  `);
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /js done/);
  assert.match(r.stdout, /buffered without newline/);
  assert.match(r.stdout, /atexit ran/);
});

// pyembed finalizes Python in an 'exit' listener added by initialize(). Before, the
// application's own 'exit' listeners (added later, so run after it) found Python finalized and
// got "Python was shut down (PythonEngine.shutdown())", a shutdown they never asked for.
test("the application's own 'exit' listeners can use Python: pyembed's finalization runs after them", async () => {
  const r = await runScript(`
import { PyModule } from 'pyembed';
const m = PyModule.fromString('exit_listener', 'import atexit\\natexit.register(lambda: print("python atexit", flush=True))\\nvalue = 42\\n');
process.on('exit', (code) => console.log('listener sees', m.value, code));
setTimeout(() => { process.exitCode = 5; }, 10);
`);
  assert.equal(r.code, 5, explain(r));
  assert.equal(r.stdout, 'listener sees 42 5\npython atexit\n', explain(r));
});

test("an 'exit' listener that runs after pyembed's finalization is told why and what to do", async () => {
  const r = await runScript(`
import { PyModule, PythonEngine } from 'pyembed';
const m = PyModule.fromString('exit_listener', 'value = 42');
process.prependListener('exit', () => console.log('prepended sees', m.value));
process.on('exit', () => {  // added in the same run as the exit: after pyembed's
  for (const use of [() => m.value, () => PythonEngine.eval('1')]) {
    try { use(); console.log('no error'); } catch (e) { console.log(e.message); }
  }
});
process.exit(3);
`);
  assert.equal(r.code, 3, explain(r));
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[0], 'prepended sees 42', explain(r));
  assert.equal(lines.length, 3, explain(r));
  for (const line of lines.slice(1)) {
    assert.match(line, /^Python was finalized at process exit by pyembed's 'exit' listener.*process\.prependListener\('exit'/, explain(r));
  }
});

test('a process with running daemon Python threads exits cleanly', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    PythonEngine.exec(\`
import threading, time
def spin():
    while True: time.sleep(0.01)
def burn():
    while True: sum(range(1000))
for target in (spin, burn):
    threading.Thread(target=target, daemon=True).start()
\`);
    setTimeout(() => console.log('exiting'), 200);
  `, { timeoutMs: 30_000 });
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.signal, null);
  assert.match(r.stdout, /exiting/);
});

test('non-daemon Python threads are joined at exit, as Python does', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    PythonEngine.exec(\`
import threading, time
def late():
    time.sleep(0.3)
    print("non-daemon thread finished", flush=True)
threading.Thread(target=late).start()
\`);
  `);
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /non-daemon thread finished/);
});

test('explicit shutdown runs atexit once; exit after it is clean', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    PythonEngine.exec('import atexit; atexit.register(lambda: print("atexit ran", flush=True))');
    PythonEngine.shutdown();
    console.log('after shutdown');
  `);
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.stdout.match(/atexit ran/g)?.length, 1);
  assert.ok(r.stdout.indexOf('atexit ran') < r.stdout.indexOf('after shutdown'));
});

test('process.exit() inside a callback from Python does not crash', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    const f = PythonEngine.eval('lambda g: g()');
    f(() => { console.log('exiting from a callback'); process.exit(7); });
  `);
  assert.equal(r.code, 7, explain(r));
  assert.equal(r.signal, null);
});

test('shutdown() inside a callback from Python is refused with a clear error', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    const f = PythonEngine.eval('lambda g: g()');
    try { f(() => PythonEngine.shutdown()); } catch (e) { console.log(e.message); }
    console.log(PythonEngine.eval('1 + 1'));
  `);
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /cannot run inside a Python call/);
  assert.match(r.stdout, /^2$/m);
});

test('proxies are released when JS garbage-collects them', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    PythonEngine.exec(\`
class Tracked:
    alive = 0
    def __init__(self): Tracked.alive += 1
    def __del__(self): Tracked.alive -= 1
\`);
    const make = PythonEngine.eval('Tracked');
    for (let i = 0; i < 20000; i++) make();
    const before = PythonEngine.eval('Tracked.alive');
    for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
    const after = PythonEngine.eval('Tracked.alive');
    console.log(JSON.stringify({ before, after }));
  `, { nodeArgs: ['--expose-gc'] });
  assert.equal(r.code, 0, explain(r));
  const { before, after } = JSON.parse(r.stdout);
  assert.ok(before > 1000, `objects alive before GC: ${before}`);
  assert.ok(after < 100, `objects alive after GC: ${after}`);
});

test('a million calls do not leak Python objects or handles', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    const nativeModule = new URL('./dist/native.js', 'file://' + process.cwd() + '/').href;
    const { native } = await import(nativeModule);
    const f = PythonEngine.eval('lambda a, b, c: [a, b, c]');
    const count = PythonEngine.eval('lambda: len(__import__("gc").get_objects())');
    const run = () => { for (let i = 0; i < 250000; i++) f(i, 'text', 1.5); };
    run(); globalThis.gc(); await new Promise((r) => setTimeout(r, 10));
    const objectsBefore = count();
    for (let k = 0; k < 3; k++) run();
    globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); globalThis.gc();
    const objectsAfter = count();
    console.log(JSON.stringify({ objectsBefore, objectsAfter, handles: native.stats().handles }));
  `, { nodeArgs: ['--expose-gc'], timeoutMs: 120_000 });
  assert.equal(r.code, 0, explain(r));
  const { objectsBefore, objectsAfter, handles } = JSON.parse(r.stdout);
  assert.ok(objectsAfter - objectsBefore < 1000, `Python objects grew by ${objectsAfter - objectsBefore}`);
  assert.ok(handles < 1000, `live handles: ${handles}`);
});
