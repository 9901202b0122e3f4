// The misuse suite, lifecycle and threads: who starts Python, who stops it, which threads outlive
// which, objects crossing threads, fork, restarts with another interpreter, cleanup at shutdown.
// Each scenario runs in its own child process (see misuse-harness.ts), so a crash is a failed test.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { explain, runScript } from './helpers.js';
import { gc, scenario, short } from './misuse-harness.js';

// A child whose main thread does not load pyembed until `body` does (the harness's prelude
// imports it at once, which would keep the addon loaded and hide what these scenarios test).
// The same contract as scenario(): the body checks itself, then main prints FINAL 45.
async function workersOnly(body: string, timeoutMs = 60_000): Promise<void> {
  const r = await runScript(`
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pyembedUrl = import.meta.resolve('pyembed');
// Runs source text in a new worker that has PythonEngine and post(); resolves with its messages.
function inWorker(source, workerData) {
  const prefix = "import { PythonEngine, Py } from '" + pyembedUrl + "';" +
    "import { parentPort, workerData } from 'node:worker_threads';" +
    "const post = (v) => parentPort.postMessage(v);";
  const worker = new Worker(prefix + source, { eval: true, workerData });
  const messages = [];
  worker.on('message', (m) => messages.push(m));
  const done = new Promise((resolve, reject) => {
    worker.on('error', reject);
    worker.on('exit', (code) => resolve({ code, messages }));
  });
  return { worker, done };
}
${body}
const { PythonEngine } = await import('pyembed');
console.log('FINAL ' + PythonEngine.eval('sum(range(10))'));
`, { timeoutMs });
  assert.equal(r.timedOut, false, explain(r));
  assert.equal(r.signal, null, explain(r));
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /^FINAL 45$/m, explain(r));
}

// --- only workers use Python ----------------------------------------------------------------

test('Python used only from a worker: after it exits, a later worker and then the main thread use it', async () => {
  await workersOnly(`
    const first = await inWorker('post(PythonEngine.eval("6 * 7"))').done;
    assert.deepEqual(first, { code: 0, messages: [42] });
    // The addon used to be unloaded with the last environment that loaded it, while Python's
    // threads still ran its code: a crash about a second later, or "already initialized".
    await sleep(2500);
    const second = await inWorker('post(PythonEngine.eval("__import__(\\'sys\\').modules[\\'__main__\\'].__dict__.setdefault(\\'seen\\', 0) + 1"))').done;
    assert.deepEqual(second, { code: 0, messages: [1] });
    await sleep(500);
  `);
});

test('eight workers racing to be the first to initialize Python all succeed', async () => {
  await workersOnly(`
    const runs = Array.from({ length: 8 }, (_, i) =>
      inWorker('post(PythonEngine.eval("__import__(\\'threading\\').current_thread().name + \\':\\' + str(n * n)", { n: workerData }))', i).done);
    const results = await Promise.all(runs);
    for (const [i, r] of results.entries()) {
      assert.equal(r.code, 0);
      assert.match(r.messages[0], new RegExp('^JS-worker-\\\\d+:' + i * i + '$'));
    }
    const threads = new Set(results.map((r) => r.messages[0].split(':')[0]));
    assert.equal(threads.size, 8);
  `);
});

test('eight workers racing their first call, each with explicit initialize(), one interpreter for all', async () => {
  await workersOnly(`
    const runs = Array.from({ length: 8 }, () => inWorker(\`
      PythonEngine.initialize();
      PythonEngine.initialize();
      post(PythonEngine.eval('id(__import__("sys"))'));
    \`).done);
    const results = await Promise.all(runs);
    assert.ok(results.every((r) => r.code === 0));
    assert.equal(new Set(results.map((r) => r.messages[0])).size, 1); // the same sys module
  `);
});

test('a pool of workers replaced 100 times (4 at a time), none on main until the end', async () => {
  await workersOnly(`
    let total = 0;
    for (let round = 0; round < 25; round++) {
      const runs = Array.from({ length: 4 }, (_, i) =>
        inWorker('const f = PythonEngine.eval("lambda a, b: a * b"); post(f(' + round + ', ' + i + '));').done);
      for (const r of await Promise.all(runs)) {
        assert.equal(r.code, 0);
        total += r.messages[0];
      }
    }
    assert.equal(total, 6 * (24 * 25 / 2)); // sum over rounds of round * (0 + 1 + 2 + 3)
    const { native } = await import(new URL('./dist/native.js', 'file://' + process.cwd() + '/').href);
    (await import('pyembed')).PythonEngine.eval('1');
    const s = native.stats();
    // Each worker's thread state went with it: only main's is left.
    assert.equal(s.threadStatesMade - s.threadStatesReleased, 1);
  `, 120_000);
});

test('a worker that shuts Python down, then workers and main that start it again', async () => {
  await workersOnly(`
    const a = await inWorker('post(PythonEngine.eval("1 + 1")); PythonEngine.shutdown(); post(PythonEngine.isInitialized);').done;
    assert.deepEqual(a.messages, [2, false]);
    await sleep(300);
    const b = await inWorker(\`
      try { PythonEngine.eval('1'); } catch (e) { post(e.message); }
      PythonEngine.initialize();
      post(PythonEngine.eval('2 + 2'));
    \`).done;
    assert.match(b.messages[0], /shut down.*initialize/);
    assert.equal(b.messages[1], 4);
  `);
});

test('workers racing initialize() and shutdown() in loops: every call works or fails clearly', async () => {
  await workersOnly(`
    const runs = Array.from({ length: 4 }, (_, i) => inWorker(\`
      const outcomes = new Set();
      for (let k = 0; k < 15; k++) {
        try {
          PythonEngine.initialize();
          outcomes.add('eval ' + PythonEngine.eval('6 * 7'));
        } catch (e) { outcomes.add('error ' + e.message.split(/[:;(]/)[0].trim()); }
        try { if (k % 3 === workerData % 3) PythonEngine.shutdown(); } catch (e) { outcomes.add('shutdown ' + e.message); }
      }
      post([...outcomes]);
    \`, i).done);
    const expected = /^(eval 42|error (Python was shut down|Python is not running|Python is shutting down|Python is being shut down))$/;
    for (const r of await Promise.all(runs)) {
      assert.equal(r.code, 0);
      for (const o of r.messages[0]) assert.match(o, expected);
    }
    const engine = (await import('pyembed')).PythonEngine;
    if (!engine.isInitialized) engine.initialize();
  `);
});

test('process exit while workers are inside Python calls, main never used Python: no hang, no crash', async () => {
  const r = await runScript(`
import { Worker } from 'node:worker_threads';
const pyembedUrl = import.meta.resolve('pyembed');
let started = 0;
for (let i = 0; i < 3; i++) {
  const w = new Worker("import { PythonEngine } from " + JSON.stringify(pyembedUrl) + "; import { parentPort } from 'node:worker_threads';" +
    "parentPort.postMessage('go'); PythonEngine.eval(" + JSON.stringify("__import__('time').sleep(0.3) or sum(range(10**6))") + ");", { eval: true });
  w.on('message', () => { if (++started === 3) setTimeout(() => { console.log('exiting'); process.exit(0); }, 100); });
}
`, { timeoutMs: 30_000 });
  assert.equal(r.timedOut, false, explain(r));
  assert.equal(r.signal, null, explain(r));
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /exiting/);
});

test('only workers used Python: process exit still finalizes it (atexit handlers, held generators)', async () => {
  const r = await runScript(`
import { Worker } from 'node:worker_threads';
const pyembedUrl = import.meta.resolve('pyembed');
const source = "import { PyModule } from " + JSON.stringify(pyembedUrl) + ";" +
  "const m = PyModule.fromString('exit_hooks', " + JSON.stringify([
    'import atexit',
    'def gen():',
    '    try:',
    '        yield 1',
    '    finally:',
    '        print("generator finally", flush=True)',
    'atexit.register(lambda: print("python atexit ran", flush=True))',
  ].join('\\n')) + ");" +
  "globalThis.held = m.gen(); globalThis.held.__next__();";
const w = new Worker(source, { eval: true });
w.on('exit', (code) => console.log('worker exit ' + code));
`, { timeoutMs: 30_000 });
  assert.equal(r.timedOut, false, explain(r));
  assert.equal(r.signal, null, explain(r));
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /worker exit 0\ngenerator finally\npython atexit ran\n$/, explain(r));
});

// --- main and workers -----------------------------------------------------------------------

test('main initializes; every worker exits (normally, by error, terminated mid-call); Python stays healthy', async () => {
  await scenario(`
    PythonEngine.initialize();
    const before = native.stats();
    const normal = inWorker('post(PythonEngine.eval("[1, 2]").toJS());');
    const failing = inWorker('PythonEngine.eval("1 / 0");').done.then(() => 'resolved', (e) => e.message);
    const busy = inWorker('post("busy"); PythonEngine.eval("__import__(\\'time\\').sleep(1)");');
    assert.deepEqual((await normal.done).messages, [[1, 2]]);
    assert.match(await failing, /division by zero/);
    while (busy.messages.length === 0) await sleep(5);
    await sleep(100);
    await busy.worker.terminate();
    for (let i = 0; i < 200 && native.stats().threadStatesReleased - before.threadStatesReleased < 3; i++) await sleep(10);
    const after = native.stats();
    assert.equal(after.threadStatesMade - before.threadStatesMade, 3);
    assert.equal(after.threadStatesReleased - before.threadStatesReleased, 3);
    assert.equal(PythonEngine.eval('len(__import__("threading").enumerate()) >= 1'), true);
  `);
});

test('shutdown() from a worker while other workers and main keep calling: clear errors, then a restart', async () => {
  await scenario(`
    PythonEngine.initialize();
    const callers = [0, 1, 2].map(() => inWorker(\`
      const errors = new Set();
      post(PythonEngine.eval('"started"'));
      let ok = 1;  // that call
      const until = Date.now() + 1500;
      while (Date.now() < until) {
        try { PythonEngine.eval('sum(range(100))'); ok++; } catch (e) { errors.add(e.message.split(':')[0]); }
      }
      post({ ok, errors: [...errors] });
    \`));
    while (callers.some((c) => c.messages.length === 0)) await sleep(5);
    await sleep(50);
    // A thread waiting for the GIL when finalization began used to be ended by CPython
    // (pthread_exit): its worker never reported its exit, and this scenario hung.
    const stopper = inWorker('PythonEngine.shutdown(); post(PythonEngine.isInitialized);');
    assert.deepEqual((await stopper.done).messages, [false]);
    let mainError;
    try { PythonEngine.eval('1'); } catch (e) { mainError = e.message; }
    assert.match(mainError, /shut down/);
    for (const c of callers) {
      const { code, messages: [started, r] } = await c.done;
      assert.equal(started, 'started');
      assert.equal(code, 0);
      assert.ok(r.ok > 0);
      for (const e of r.errors) assert.match(e, /shut down|shutting down|Python is not running|Python was shut down/);
    }
    PythonEngine.initialize();
  `);
});

// --- objects crossing threads ---------------------------------------------------------------

test('a PyObject in postMessage, workerData or structuredClone: DataCloneError naming Py.share', async () => {
  await scenario(`
    const list = PythonEngine.eval('[1, 2]');
    const len = PythonEngine.eval('len');
    const { MessageChannel } = await import('node:worker_threads');
    const { port1, port2 } = new MessageChannel();
    const clone = { name: 'DataCloneError', message: /Py\\.share/ };
    for (const v of [list, { nested: [1, list] }, new Map([['k', list]]), len, [len]]) {
      assert.throws(() => port1.postMessage(v), clone);
      assert.throws(() => structuredClone(v), clone);
      assert.throws(() => new Worker('1', { eval: true, workerData: v }), clone);
    }
    const w = inWorker('post(1)');
    assert.throws(() => w.worker.postMessage({ list }), clone);
    await w.done;
    port1.close(); port2.close();
    // The proxy itself is untouched: attributes, methods, conversions.
    list.append(3);
    assert.deepEqual(list.toJS(), [1, 2, 3]);
    assert.equal(JSON.stringify(list), '[1,2,3]');
    assert.equal(list.getAttr('__len__')(), 3);
    assert.equal(Py.toPython({ l: list }).get('l').length, 3);
    // and Py.share is the way that works
    const w2 = inWorker('const l = Py.unshare(workerData); l.append(4); post(l.length);', Py.share(list));
    assert.deepEqual((await w2.done).messages, [4]);
  `);
});

// --- cleanup of what JS still holds at shutdown ----------------------------------------------

const cleanupModule = `
    const m = PyModule.fromString('cleanup', \`
import contextlib
def gen(name):
    try:
        yield 1
        yield 2
    finally:
        print("finally", name, flush=True)
@contextlib.contextmanager
def managed(name):
    try:
        yield name
    finally:
        print("exit", name, flush=True)
def in_with(name):
    with managed(name):
        yield 1
class Noisy:
    def __init__(self, name): self.name = name
    def __del__(self): print("del", self.name, flush=True)
\`);
`;

test('shutdown() releases what JS still holds, newest first: finally, __exit__ and __del__ run', async () => {
  const r = await scenario(cleanupModule + `
    const g1 = m.gen('first'); g1.__next__();
    const w = m.in_with('ctx'); w.__next__();
    const n = m.Noisy('noisy');
    const g2 = m.gen('second'); g2.__next__();
    console.log('shutting down');
    PythonEngine.shutdown();
    console.log('down');
    for (const p of [g1, w, n, g2]) {
      assert.equal(p.isDisposed, true);
      assert.throws(() => p.__next__, /shut down/);
      p.dispose();
    }
    PythonEngine.initialize();
  `);
  const lines = r.stdout.split('\n');
  const from = lines.indexOf('shutting down');
  assert.deepEqual(lines.slice(from, from + 6), ['shutting down', 'finally second', 'del noisy', 'exit ctx', 'finally first', 'down'], explain(r));
});

test('process exit without shutdown(): what JS holds is released before Python finalizes', async () => {
  const r = await scenario(cleanupModule + `
    const g = m.gen('held'); g.__next__();
    const w = m.in_with('ctx'); w.__next__();
    // a disposed one and a collected one are released once, not twice
    const d = m.gen('disposed'); d.__next__(); d.dispose();
    (() => { const c = m.gen('collected'); c.__next__(); })();
    await collect();
  `, gc);
  const after = r.stdout.slice(r.stdout.indexOf('FINAL 45'));
  assert.match(r.stdout, /finally disposed\n[^]*finally collected\n[^]*FINAL 45\nexit ctx\nfinally held\n$/, explain(r));
  assert.equal(after.match(/finally/g)?.length, 1, explain(r));
});

test("shutdown() from main releases what a worker's JS still holds (generator in the worker)", async () => {
  const r = await scenario(cleanupModule + `
    const w = inWorker(\`
      const g = PyModule.import('cleanup').gen('in worker');
      g.__next__();
      post('holding');
      setInterval(() => {}, 1000);
    \`);
    while (w.messages.length === 0) await sleep(5);
    PythonEngine.shutdown();
    console.log('down');
    await w.worker.terminate();
    PythonEngine.initialize();
  `, short);
  assert.match(r.stdout, /finally in worker\ndown\n/, explain(r));
});

test('a finally block that calls back into JS during shutdown() gets a clear error there, no hang', async () => {
  const r = await scenario(`
    const m = PyModule.fromString('cleanup_cb', \`
def gen(cb):
    try:
        yield 1
    finally:
        print("finally got:", cb(), flush=True)
\`);
    const g = m.gen(() => { try { PythonEngine.eval('1'); return 'ran'; } catch (e) { return e.message; } });
    g.__next__();
    PythonEngine.shutdown();
    PythonEngine.initialize();
  `, short);
  assert.match(r.stdout, /finally got: Python was shut down/, explain(r));
});

// --- restarting with another interpreter ----------------------------------------------------

const systemPython = process.env.PYEMBED_PYTHON ?? 'python3';
const describePython = (python: string): { executable: string; library: string; minor: string } =>
  JSON.parse(execFileSync(python, ['-c', `
import json, os, sys, sysconfig
lib = os.path.join(sysconfig.get_config_var('LIBDIR') or '', sysconfig.get_config_var('INSTSONAME') or '')
print(json.dumps({'executable': sys.executable, 'library': os.path.realpath(lib), 'minor': '%d.%d' % sys.version_info[:2]}))
`], { encoding: 'utf8' }));

const probeScript = `
    const where = () => PythonEngine.eval(\`(lambda sys: [sys.executable, sys.prefix, [p for p in sys.path if p.endswith('site-packages')]])(__import__('sys'))\`).toJS();
`;

test('restart as a virtualenv of the same libpython: sys.executable, sys.prefix and site-packages are its own', async () => {
  const venv = fs.mkdtempSync(path.join(os.tmpdir(), 'pyembed-restart-'));
  try {
    const made = spawnSync(systemPython, ['-m', 'venv', '--without-pip', venv], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const venvPython = path.join(venv, 'bin', 'python');
    const base = describePython(systemPython);
    await scenario(probeScript + `
      const venv = ${JSON.stringify(fs.realpathSync(venv))};
      PythonEngine.initialize({ python: ${JSON.stringify(systemPython)} });
      const [baseExe, basePrefix] = where();
      assert.equal(baseExe, ${JSON.stringify(base.executable)});
      PythonEngine.shutdown();
      PythonEngine.initialize({ python: ${JSON.stringify(venvPython)} });
      const [exe, prefix, sitePackages] = where();
      assert.equal(exe, ${JSON.stringify(venvPython)});
      assert.equal(prefix, venv);
      assert.ok(sitePackages.length > 0 && sitePackages.every((p) => p.startsWith(venv + '/')), String(sitePackages));
      assert.equal(PythonEngine.python.executable, exe);
      // and back to the base installation
      PythonEngine.shutdown();
      PythonEngine.initialize({ python: ${JSON.stringify(systemPython)} });
      assert.deepEqual(where().slice(0, 2), [baseExe, basePrefix]);
      assert.ok(where()[2].every((p) => !p.startsWith(venv)));
    `);
  } finally {
    fs.rmSync(venv, { recursive: true, force: true });
  }
});

// Another CPython version with a shared libpython (pyenv's), if this machine has one.
function otherPython(): string | undefined {
  const base = describePython(systemPython);
  const root = spawnSync('pyenv', ['root'], { encoding: 'utf8' }).stdout?.trim() || path.join(os.homedir(), '.pyenv');
  const versions = fs.existsSync(path.join(root, 'versions')) ? fs.readdirSync(path.join(root, 'versions')) : [];
  for (const v of versions.sort().reverse()) {
    const python = path.join(root, 'versions', v, 'bin', 'python3');
    if (!/^3\.(9|1[0-3])\./.test(v) || !fs.existsSync(python)) continue;
    try {
      const d = describePython(python);
      if (d.minor !== base.minor && fs.existsSync(d.library)) return python;
    } catch {
      // not runnable: try the next one
    }
  }
  return undefined;
}

test('restart with a Python whose libpython is another library: a clear error, the first one still usable', async (t) => {
  const other = otherPython();
  if (!other) {
    t.skip('no second CPython version with a shared libpython here (pyenv)');
    return;
  }
  await scenario(probeScript + `
    PythonEngine.initialize({ python: ${JSON.stringify(systemPython)} });
    const first = where();
    PythonEngine.shutdown();
    assert.throws(() => PythonEngine.initialize({ python: ${JSON.stringify(other)} }),
      /a process can run only one libpython; .* needs .*libpython.*another process/);
    assert.equal(PythonEngine.isInitialized, false);
    PythonEngine.initialize({ python: ${JSON.stringify(systemPython)} });
    assert.deepEqual(where(), first);
  `);
});

// --- os.fork() ------------------------------------------------------------------------------

const forker = `
    const fork = PyModule.fromString('forker', \`
import os, sys, subprocess, multiprocessing, threading
def fork_exit(code):
    pid = os.fork()
    if pid == 0:
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) if hasattr(os, 'waitstatus_to_exitcode') else os.waitpid(pid, 0)[1] >> 8
def fork_exec():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.execv('/bin/echo', ['echo', 'exec from the child'])
    os.close(w)
    out = os.read(r, 100).decode().strip()
    os.close(r)
    os.waitpid(pid, 0)
    return out
def fork_and_return():
    return os.fork()
def wait(pid):
    _, status = os.waitpid(pid, 0)
    return [os.WIFEXITED(status) and os.WEXITSTATUS(status), os.WIFSIGNALED(status) and os.WTERMSIG(status)]
def child_calls_js(callback):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            callback()
            msg = 'no error'
        except Exception as e:
            msg = type(e).__name__ + ': ' + str(e)
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    out = b''
    while chunk := os.read(r, 4096):
        out += chunk
    os.close(r)
    return [out.decode(), wait(pid)]
def square(x):
    return x * x
def with_multiprocessing():
    ctx = multiprocessing.get_context('fork')
    with ctx.Pool(2) as pool:
        return pool.map(square, [1, 2, 3])
def with_subprocess():
    return subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True, text=True).stdout.strip()
\`);
`;

test('os.fork() followed by os._exit() or exec in the child works; so do subprocess and multiprocessing', async () => {
  await scenario(forker + `
    assert.equal(fork.fork_exit(7), 7);
    assert.equal(fork.fork_exec(), 'exec from the child');
    assert.equal(fork.with_subprocess(), '42');
    assert.deepEqual(fork.with_multiprocessing().toJS(), [1, 4, 9]);
    const w = inWorker("post(PyModule.import('forker').fork_exit(5))");
    assert.deepEqual((await w.done).messages, [5]);
  `);
});

test('a forked child that goes back into JS ends with a clear error (status 70), not SIGSEGV; the parent goes on', async () => {
  const r = await scenario(forker + `
    const pid = fork.fork_and_return();
    // Only the parent gets here: the child ends where the Python call returns into pyembed.
    assert.ok(pid > 0);
    assert.deepEqual(fork.wait(pid).toJS(), [70, false]);
    // the same from callAsync (the child is a copy of a pool thread)
    const pid2 = await fork.fork_and_return.callAsync();
    assert.ok(pid2 > 0);
    assert.deepEqual(fork.wait(pid2).toJS(), [70, false]);
  `);
  assert.equal(r.stderr.match(/pyembed: this process was forked \(os\.fork\(\) in Python code\)/g)?.length, 2, r.stderr);
});

test('Python code in a forked child that calls a JS function gets a RuntimeError naming os.fork()', async () => {
  await scenario(forker + `
    let calls = 0;
    const [message, status] = fork.child_calls_js(() => { calls++; }).toJS();
    assert.match(message, /^RuntimeError: this process was forked \\(os\\.fork\\(\\) in Python code\\).*os\\._exit\\(\\)/);
    assert.deepEqual(status, [0, false]);
    assert.equal(calls, 0);
    // the parent's callbacks still work
    assert.equal(PythonEngine.eval('f()', { f: () => 'parent ok' }), 'parent ok');
  `);
});
