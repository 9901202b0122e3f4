// Ctrl-C: KeyboardInterrupt inside a long synchronous Python call; Node's behaviour otherwise.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { explain, runScript } from './helpers.js';

test('SIGINT during a long synchronous Python call raises KeyboardInterrupt there; the process goes on', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    const spin = PythonEngine.eval('lambda: [None for _ in iter(int, 1)]'); // loops forever
    console.log('ready');
    try { spin(); } catch (e) { console.log('caught', e.name, e.type); }
    console.log('still usable', PythonEngine.eval('6 * 7'));
  `, { signal: 'SIGINT', signalWhen: 'ready', signalAfterMs: 700, timeoutMs: 30_000 });
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /caught PythonError KeyboardInterrupt/);
  assert.match(r.stdout, /still usable 42/);
});

test('Python code can catch the KeyboardInterrupt itself', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    PythonEngine.exec(\`
def wait_for_ctrl_c():
    try:
        while True:
            pass
    except KeyboardInterrupt:
        return "interrupted and handled in Python"
\`);
    console.log('ready');
    console.log(PythonEngine.eval('wait_for_ctrl_c()'));
  `, { signal: 'SIGINT', signalWhen: 'ready', signalAfterMs: 700, timeoutMs: 30_000 });
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /interrupted and handled in Python/);
});

test('SIGINT when no Python call runs keeps Node\'s default: the process ends by the signal', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    PythonEngine.eval('__import__("time").sleep(0.3)'); // a call long enough for the watcher
    console.log('ready');
    setTimeout(() => console.log('not interrupted'), 5000);
  `, { signal: 'SIGINT', signalWhen: 'ready', signalAfterMs: 500, timeoutMs: 30_000 });
  assert.equal(r.signal, 'SIGINT', explain(r));
  assert.doesNotMatch(r.stdout, /not interrupted/);
});

test('a process.on("SIGINT") handler still gets SIGINT outside Python calls', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    process.on('SIGINT', () => { console.log('node handler ran'); process.exit(0); });
    PythonEngine.eval('__import__("time").sleep(0.3)');
    console.log('ready');
    setTimeout(() => console.log('not interrupted'), 5000);
  `, { signal: 'SIGINT', signalWhen: 'ready', signalAfterMs: 500, timeoutMs: 30_000 });
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /node handler ran/);
});

test("Python cannot install signal handlers over Node's", async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    try { PythonEngine.exec('import signal; signal.signal(signal.SIGTERM, lambda *a: None)'); }
    catch (e) { console.log(e.type + ': ' + e.message); }
  `);
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /ValueError: signal only works in main thread/);
});
