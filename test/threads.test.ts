// worker_threads, callAsync, Python threads calling JS, shutdown from any thread. Each scenario
// runs in a child process with a watchdog, so a deadlock fails the test instead of hanging CI.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { explain, runScript } from './helpers.js';

// Each script gets this prelude: `inWorker(fn)` runs fn's source in a new worker and resolves with
// what the worker posts back.
const prelude = `
import { PythonEngine, Py, PyModule, PythonError } from 'pyembed';
import { Worker } from 'node:worker_threads';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const busy = (ms) => { const end = Date.now() + ms; while (Date.now() < end) {} };
function inWorker(body, workerData) {
  const source = "import { PythonEngine, Py, PyModule } from '" + import.meta.resolve('pyembed') + "';" +
    "import { parentPort, workerData } from 'node:worker_threads';" +
    "const post = (v) => parentPort.postMessage(v);" +
    "await (" + body.toString() + ")();";
  const worker = new Worker(new URL('data:text/javascript,' + encodeURIComponent(source)), { workerData });
  const messages = [];
  const done = new Promise((resolve, reject) => {
    worker.on('message', (m) => messages.push(m));
    worker.on('error', reject);
    worker.on('exit', () => resolve(messages));
  });
  return { worker, done, messages };
}
const { native } = await import(new URL('./dist/native.js', 'file://' + process.cwd() + '/').href);
`;

async function run(body: string, timeoutMs = 60_000) {
  const r = await runScript(prelude + body, { timeoutMs });
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.signal, null, explain(r));
  return r.stdout.trim();
}

test('a worker joins the one interpreter and calls Python while the main thread is busy in JS', async () => {
  const out = await run(`
    PythonEngine.initialize();
    PythonEngine.exec('import sys; sys.shared_marker = "from main"');
    const w = inWorker(async () => {
      await new Promise((r) => setTimeout(r, 50));
      PythonEngine.initialize(); // joins, does not start a second interpreter
      const started = Date.now();
      const cwd = Py.import('os').getcwd();
      post({ cwd, marker: PythonEngine.eval('__import__("sys").shared_marker'), at: Date.now(), took: Date.now() - started });
    });
    const busyUntil = Date.now() + 1500;
    busy(1500); // the seed's "second thread blocks" case: main runs host code, not Python
    const [msg] = await w.done;
    console.log(JSON.stringify({ ...msg, finishedDuringBusy: msg.at < busyUntil, cwdOk: msg.cwd === process.cwd() }));
  `);
  const msg = JSON.parse(out);
  assert.equal(msg.marker, 'from main');
  assert.equal(msg.cwdOk, true);
  assert.equal(msg.finishedDuringBusy, true, `worker call took ${msg.took} ms`);
});

test('a Python object handed to another worker is the same object', async () => {
  const out = await run(`
    const list = PythonEngine.eval('[1, 2]');
    const w = inWorker(async () => {
      const list = Py.unshare(workerData.token);
      list.append(3);
      post(list.typeName);
    }, { token: Py.share(list) });
    const [type] = await w.done;
    console.log(type, JSON.stringify(list.toJS()));
    const token = Py.share(list);
    Py.unshare(token);
    try { Py.unshare(token); } catch (e) { console.log('second claim:', e.message); }
  `);
  assert.match(out, /^list \[1,2,3\]/);
  assert.match(out, /second claim: this shared Python object was already claimed/);
});

test('a worker terminated while idle or in the middle of a long Python call leaves the interpreter healthy', async () => {
  const out = await run(`
    PythonEngine.eval('0'); // the main thread's own thread state exists before we count
    const before = native.stats();
    const idle = inWorker(async () => { Py.import('os').getpid(); post('ready'); await new Promise(() => {}); });
    while (idle.messages.length === 0) await sleep(10);
    await idle.worker.terminate();
    const long = inWorker(async () => {
      post('calling');
      PythonEngine.eval('__import__("time").sleep(1.5)');
      post('returned');
    });
    while (long.messages.length === 0) await sleep(10);
    await sleep(200);
    const t0 = Date.now();
    const terminated = long.worker.terminate();
    // The main thread goes on calling Python while that worker is still inside its call.
    let calls = 0;
    while (Date.now() - t0 < 500) { PythonEngine.eval('1 + 1'); calls++; await sleep(5); }
    await terminated;
    await long.done;
    const after = native.stats();
    console.log(JSON.stringify({
      calls, messages: long.messages,
      made: after.threadStatesMade - before.threadStatesMade,
      released: after.threadStatesReleased - before.threadStatesReleased,
      ok: PythonEngine.eval('sum(range(10))'),
    }));
  `);
  const r = JSON.parse(out);
  assert.ok(r.calls > 10, `main-thread calls during the worker's call: ${r.calls}`);
  assert.equal(r.made, 2);
  assert.equal(r.released, 2, 'each terminated worker released its thread state');
  assert.equal(r.ok, 45);
  assert.deepEqual(r.messages, ['calling']); // terminated before it could post again
});

test('callAsync runs on pyembed threads: timers keep firing during a second of pure-Python compute', async () => {
  const out = await run(`
    const spin = PythonEngine.eval(\`lambda seconds: (lambda t0: [None for _ in iter(lambda: __import__("time").monotonic() - t0 < seconds, False)] and None)(__import__("time").monotonic())\`);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const t0 = Date.now();
    await spin.callAsync(1.0);
    clearInterval(timer);
    console.log(JSON.stringify({ ticks, elapsed: Date.now() - t0 }));
  `);
  const r = JSON.parse(out);
  assert.ok(r.elapsed >= 900, `elapsed ${r.elapsed}`);
  assert.ok(r.ticks >= 40, `timer ticks during the call: ${r.ticks}`);
});

test('callAsync pool threads do not preempt the event loop when woken (SCHED_BATCH on Linux)', { skip: process.platform !== 'linux' }, async () => {
  const out = await run(`
    const policy = PythonEngine.eval('lambda: __import__("os").sched_getscheduler(0) == __import__("os").SCHED_BATCH');
    console.log(JSON.stringify({ pool: await policy.callAsync(), js: policy() }));
  `);
  assert.deepEqual(JSON.parse(out), { pool: true, js: false }, 'pool threads run under SCHED_BATCH; the JS thread keeps its own policy');
});

test('callAsync results completing while their worker exits are cancelled safely, never touched after free', async () => {
  // Pool threads post completions while each worker ends (process.exit in the worker, or
  // terminate() from main) with hundreds of calls in flight: every completion either settles
  // on its live thread or is cancelled, never run on a dead isolate; the main thread's own
  // calls keep settling in between.
  const out = await run(`
    PythonEngine.initialize();
    PythonEngine.exec('import time\\ndef nap(x):\\n    time.sleep(0.0005)\\n    return x');
    let mainOk = 0;
    for (let round = 0; round < 10; round++) {
      const workers = [0, 1].map((k) => inWorker(async () => {
        const nap = Py.import('__main__').nap;
        const calls = Array.from({ length: 300 }, (_, i) => nap.callAsync(i));
        await calls[5];
        post('started');
        if (workerData.exitItself) process.exit(0);
        await Promise.all(calls);
      }, { exitItself: k === 0 }));
      while (workers[1].messages.length === 0) await sleep(1);
      const terminated = workers[1].worker.terminate();
      const nap = Py.import('__main__').nap;
      const mine = await Promise.all(Array.from({ length: 50 }, (_, i) => nap.callAsync(i)));
      if (mine.every((v, i) => v === i)) mainOk++;
      await terminated;
      await Promise.all(workers.map((w) => w.done));
    }
    console.log(JSON.stringify({ mainOk, after: await Py.import('__main__').nap.callAsync(7) }));
  `);
  assert.deepEqual(JSON.parse(out), { mainOk: 10, after: 7 });
});

test('callAsync: results, keyword arguments, PythonError rejections, many at once, from workers', async () => {
  const out = await run(`
    const m = PyModule.fromString('async_mod', \`
import time
def add(a, b=0): return a + b
def fail(): raise KeyError("nope")
def slow(x):
    time.sleep(0.01)
    return x
def make(): return [1, 2]
\`);
    const results = {};
    results.add = await m.add.callAsync(1, Py.kw({ b: 2 }));
    try { await m.fail.callAsync(); } catch (e) { results.error = [e instanceof PythonError, e.type]; }
    const many = await Promise.all(Array.from({ length: 1000 }, (_, i) => m.slow.callAsync(i)));
    results.many = many.length === 1000 && many.every((v, i) => v === i);
    results.list = (await m.make.callAsync()).toJS();
    const w = inWorker(async () => {
      const m = Py.import('async_mod');
      post(await m.add.callAsync(20, 22));
    });
    results.worker = (await w.done)[0];
    try { await m.add.callAsync(Symbol('x')); } catch (e) { results.badArg = e instanceof TypeError; }
    console.log(JSON.stringify(results));
  `);
  assert.deepEqual(JSON.parse(out), { add: 3, error: [true, 'KeyError'], many: true, list: [1, 2], worker: 42, badArg: true });
});

test("Python coroutines are awaited from JS on pyembed's asyncio loop", async () => {
  const out = await run(`
    const m = PyModule.fromString('coro_mod', \`
import asyncio
async def double_later(x):
    await asyncio.sleep(0.05)
    return x * 2
async def fails():
    await asyncio.sleep(0)
    raise ValueError("async failure")
\`);
    const viaCallAsync = await m.double_later.callAsync(21);
    const viaAwait = await m.double_later(5);
    const parallel = await Promise.all([1, 2, 3].map((x) => m.double_later.callAsync(x)));
    let error;
    try { await m.fails.callAsync(); } catch (e) { error = e.type + ': ' + e.message; }
    console.log(JSON.stringify({ viaCallAsync, viaAwait, parallel, error }));
  `);
  assert.deepEqual(JSON.parse(out), { viaCallAsync: 42, viaAwait: 10, parallel: [2, 4, 6], error: 'ValueError: async failure' });
});

test("PyModule.expose: Python threads import a JS module and call it (the seed's DotNetModule)", async () => {
  const out = await run(`
    const seen = [];
    PyModule.expose('DotNetModule', {
      VERSION: '1.0',
      LongRunningComputation: (ms) => {
        // Releases nothing explicitly: pyembed already released the GIL while JS runs.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
        seen.push(ms);
        return ms * 2;
      },
      describe: (x, kw) => ({ got: x, kw }),
    });
    const m = PyModule.fromString('uses_dotnet', \`
import threading, time
import DotNetModule
ticks = []
def ticker():
    for _ in range(40):
        ticks.append(1)
        time.sleep(0.01)
def run():
    t = threading.Thread(target=ticker); t.start()
    result = DotNetModule.LongRunningComputation(300)
    t.join()
    return result, len(ticks), DotNetModule.VERSION
def from_thread():
    out = []
    t = threading.Thread(target=lambda: out.append(DotNetModule.describe(1, flag=True)))
    t.start(); t.join()
    return out[0]
\`);
    const [result, ticks, version] = m.run().toJS();
    const described = m.from_thread().toJS();
    console.log(JSON.stringify({ result, ticksEnough: ticks >= 20, version, described, seen }));
  `);
  assert.deepEqual(JSON.parse(out), {
    result: 600, ticksEnough: true, version: '1.0', described: { got: 1, kw: { flag: true } }, seen: [300],
  });
});

test('a Python thread calling JS waits its turn while the JS thread is busy, and reaches it when idle', async () => {
  const out = await run(`
    const order = [];
    const m = PyModule.fromString('turns', \`
import threading, time
results = []
def start(f):
    def run():
        time.sleep(0.05)   # by now the synchronous start() has returned and JS is busy
        results.append(f("from python thread"))
    threading.Thread(target=run).start()
\`);
    m.start((s) => { order.push('callback'); return s.toUpperCase(); });
    busy(300);
    order.push('busy done');
    for (let i = 0; i < 100 && m.results.length === 0; i++) await sleep(10);
    console.log(JSON.stringify({ order, results: m.results.toJS() }));
  `);
  assert.deepEqual(JSON.parse(out), { order: ['busy done', 'callback'], results: ['FROM PYTHON THREAD'] });
});

test('a JS function of a worker that has exited raises a clear Python exception, never hangs', async () => {
  const out = await run(`
    PythonEngine.exec('holder = {}');
    const w = inWorker(async () => {
      PythonEngine.eval('holder').set('f', (x) => x + 1);
      post(PythonEngine.eval('holder["f"](1)'));
    });
    const [fromWorker] = await w.done;
    let message;
    try { PythonEngine.eval('holder["f"](1)'); } catch (e) { message = e.type + ': ' + e.message; }
    console.log(JSON.stringify({ fromWorker, message }));
  `);
  const r = JSON.parse(out);
  assert.equal(r.fromWorker, 2);
  assert.match(r.message, /^RuntimeError: .*worker.*exited/);
});

test("a main-thread function called from a worker's Python code runs on the main thread", async () => {
  const out = await run(`
    const { threadId } = await import('node:worker_threads');
    PythonEngine.exec('registry = {}');
    PythonEngine.eval('registry').set('whoami', () => threadId);
    const w = inWorker(async () => { post(PythonEngine.eval('registry["whoami"]()')); });
    console.log(JSON.stringify(await w.done));
  `);
  assert.deepEqual(JSON.parse(out), [0]);
});

test('beginAllowThreads / endAllowThreads inside callbacks, nested any way, stay correct', async () => {
  const out = await run(`
    const call = PythonEngine.eval('lambda f: f()');
    const states = [];
    const result = call(() => {
      const outer = PythonEngine.beginAllowThreads();
      const scope = Py.GIL();
      const inner = PythonEngine.beginAllowThreads();
      const value = call(() => {
        const deepest = PythonEngine.beginAllowThreads();
        PythonEngine.endAllowThreads(deepest);
        return PythonEngine.allowThreads(() => 7);
      });
      PythonEngine.endAllowThreads(inner);
      states.push(native.threadState()[0]);
      scope.dispose();
      PythonEngine.endAllowThreads(outer);
      states.push(native.threadState()[0]);
      return value;
    });
    states.push(native.threadState()[0]);
    console.log(JSON.stringify({ result, states }));
  `);
  assert.deepEqual(JSON.parse(out), { result: 7, states: [true, false, false] });
});

test('shutdown() from a worker while the main thread holds proxies', async () => {
  const out = await run(`
    const math = Py.import('math');
    const w = inWorker(async () => { PythonEngine.shutdown(); post(PythonEngine.isInitialized); });
    const [stillRunning] = await w.done;
    let error;
    try { math.sqrt(4); } catch (e) { error = e.message; }
    PythonEngine.initialize();
    console.log(JSON.stringify({ stillRunning, error, again: Py.import('math').sqrt(9) }));
  `);
  const r = JSON.parse(out);
  assert.equal(r.stillRunning, false);
  assert.match(r.error, /shut down/);
  assert.equal(r.again, 3);
});

test('shutdown() waits for another JS thread inside a Python call, then that thread gets a clear error', async () => {
  const out = await run(`
    PythonEngine.initialize();
    const w = inWorker(async () => {
      post('start');
      const slept = PythonEngine.eval('__import__("time").sleep(0.5) or "slept"');
      let after;
      try { PythonEngine.eval('1'); } catch (e) { after = e.message; }
      post({ slept, after });
    });
    while (w.messages.length === 0) await sleep(5);
    await sleep(100);
    const t0 = Date.now();
    PythonEngine.shutdown();
    const waited = Date.now() - t0;
    const [, result] = await w.done;
    console.log(JSON.stringify({ waitedEnough: waited >= 250, ...result }));
  `);
  const r = JSON.parse(out);
  assert.equal(r.waitedEnough, true);
  assert.equal(r.slept, 'slept');
  assert.match(r.after, /was shut down.*initialize/);
});

test('shutdown() while Python threads run and call back into JS', async () => {
  const out = await run(`
    const calls = [];
    const m = PyModule.fromString('busy_threads', \`
import threading, time
def start(f):
    def spin():
        while True:
            sum(range(1000))
    def caller():
        for i in range(5):
            f(i)
            time.sleep(0.01)
    threading.Thread(target=spin, daemon=True).start()
    threading.Thread(target=caller).start()   # non-daemon: finalization waits for it
\`);
    m.start((i) => calls.push(i));
    PythonEngine.shutdown();
    console.log(JSON.stringify({ calls, running: PythonEngine.isInitialized }));
  `);
  assert.deepEqual(JSON.parse(out), { calls: [0, 1, 2, 3, 4], running: false });
});
