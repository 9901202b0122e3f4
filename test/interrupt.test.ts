// Interrupting and cancelling Python code: PythonEngine.interrupt, an AbortSignal on callAsync and
// on awaits, worker.terminate(). Each scenario runs in its own child process under a watchdog (a
// call that cannot be stopped shows up as a timeout), checks its own expectations, and ends
// with one more Python call (the misuse harness).
//
// The Python loops are `for _ in itertools.count()`, not `while True:`: on CPython 3.11 and 3.12
// an exception that lands at the back edge of a `while True:` loop skips that loop's own
// handlers (python/cpython#108214), and these tests check that `finally` blocks run.
import { test } from 'node:test';

import { gc, scenario, short } from './misuse-harness.js';

const HELPERS = JSON.stringify(`
import asyncio, gc, itertools, threading, time

log = []
finished = 0
caught = 0

def spin(tag):
    try:
        for _ in itertools.count():
            pass
    finally:
        log.append(tag)

def spin_flagged(flag):
    """Spins; sets flag[0] once inside the try (flag: a shared Int32Array), counts its finally."""
    global finished
    try:
        flag[0] = 1
        for _ in itertools.count():
            pass
    finally:
        finished += 1

def sleep_then_spin(seconds, tag):
    try:
        time.sleep(seconds)
        for _ in itertools.count():
            pass
    finally:
        log.append(tag)

def stubborn(tag):
    """Swallows the first KeyboardInterrupts, then spins on."""
    for attempt in range(3):
        try:
            for _ in itertools.count():
                pass
        except KeyboardInterrupt:
            log.append(tag)
    for _ in itertools.count():
        pass

def spinning_thread():
    def run():
        global caught
        try:
            spin("thread")
        except KeyboardInterrupt:
            caught += 1
    t = threading.Thread(target=run)
    t.start()
    return t

def work(n):
    total = 0
    for i in range(n):
        total += i
    return total

async def wait_long(tag):
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        log.append(tag)
        raise

async def ticks():
    try:
        for i in itertools.count():
            await asyncio.sleep(0.005)
            yield i
    finally:
        log.append("ticks closed")

def object_count():
    gc.collect()
    return len(gc.get_objects())
`);

const helpers = `const m = PyModule.fromString('cancel_helpers', ${HELPERS});\n`;
const isAbort = (name: string, cause?: string) =>
  `(e) => e.name === ${JSON.stringify(name)}${cause === undefined ? '' : ` && e.cause?.type === ${JSON.stringify(cause)}`}`;

// --- PythonEngine.interrupt ------------------------------------------------------------------

test('PythonEngine.interrupt: a Python thread in a busy loop gets KeyboardInterrupt; idle or unknown threads are no target', async () => {
  await scenario(helpers + `
    const t = m.spinning_thread();
    await sleep(50);
    assert.equal(PythonEngine.interrupt(t.ident), true);
    t.join();
    assert.deepEqual(m.log.toJS(), ['thread']);
    assert.equal(m.caught, 1);
    assert.equal(PythonEngine.interrupt(t.ident), false, 'the thread has ended');

    // The calling JS thread's own id is what its Python code sees; outside a call it is no target.
    assert.equal(PythonEngine.threadId, PythonEngine.eval('__import__("threading").get_ident()'));
    assert.equal(PythonEngine.interrupt(PythonEngine.threadId), false);
    assert.equal(PythonEngine.interrupt(BigInt(PythonEngine.threadId)), false);
    // Python's main thread is pyembed's interpreter thread: never a target.
    assert.equal(PythonEngine.interrupt(PythonEngine.eval('__import__("threading").main_thread().ident')), false);
    assert.equal(PythonEngine.interrupt(987654321), false);
    for (const bad of ['1', -1, 1.5, 0, null]) assert.throws(() => PythonEngine.interrupt(bad), TypeError);

    // An idle worker is no target, and its next call runs normally (nothing left pending).
    const w = inWorker("post(PythonEngine.threadId); parentPort.on('message', () => { post(PythonEngine.eval('sum(range(10))')); process.exit(0); });");
    const id = await w.next();
    assert.notEqual(id, PythonEngine.threadId);
    assert.equal(PythonEngine.interrupt(id), false);
    w.worker.postMessage('go');
    assert.equal(await w.next(), 45);
    await w.done;
    // The calls that follow run normally.
    assert.equal(m.work(10), 45);
  `, short);
});

test('a synchronous call on the main thread, interrupted from a worker; the next call is unaffected', async () => {
  await scenario(helpers + `
    const w = inWorker('setTimeout(() => post(PythonEngine.interrupt(workerData)), 200);', PythonEngine.threadId);
    assert.throws(() => m.spin('main'), (e) => e.type === 'KeyboardInterrupt');
    assert.equal(await w.next(), true);
    await w.done;
    assert.deepEqual(m.log.toJS(), ['main']);
    assert.equal(m.work(10), 45);
    // A call with no bytecode left to run (time.sleep itself): the interrupt arrives during the
    // sleep, cannot land before the call returns, and is dropped then: it must not land in the
    // next call.
    // The worker waits until main is about to sleep (a slow worker start cannot miss the sleep).
    const sleepFn = Py.import('time').sleep;
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const w2 = inWorker('post("ready"); Atomics.wait(workerData.flag, 0, 0); setTimeout(() => post(PythonEngine.interrupt(workerData.id)), 100);',
      { id: PythonEngine.threadId, flag });
    assert.equal(await w2.next(), 'ready');
    Atomics.store(flag, 0, 1); Atomics.notify(flag, 0);
    assert.equal(sleepFn(1), undefined);
    assert.equal(await w2.next(), true);
    await w2.done;
    assert.equal(m.work(10), 45);
    // And from a Python thread, through a JS thread's id.
    const mainId = PythonEngine.threadId;
    PythonEngine.exec('import threading, time');
    const interrupter = PythonEngine.eval('lambda interrupt, ident: threading.Thread(target=lambda: (time.sleep(0.2), interrupt(ident))).start()');
    interrupter((id) => PythonEngine.interrupt(id), mainId);
    assert.throws(() => m.spin('main again'), (e) => e.type === 'KeyboardInterrupt');
    assert.deepEqual(m.log.toJS(), ['main', 'main again']);
  `, short);
});

// --- AbortSignal on callAsync ----------------------------------------------------------------

test('callAsync with an AbortSignal: aborted before it starts, while queued, while it runs, by AbortSignal.timeout', async () => {
  await scenario(`PythonEngine.initialize({ asyncThreads: 1 });\n` + helpers + `
    // Already aborted: rejects, and nothing runs.
    await assert.rejects(m.spin.callAsync('never', AbortSignal.abort()), ${isAbort('AbortError')});

    // Running: KeyboardInterrupt in the Python code (its finally runs), the promise rejects
    // with an AbortError whose cause is the Python exception.
    const running = new AbortController();
    const blocker = m.spin.callAsync('running', running.signal);
    // Queued behind it on the single pool thread: aborted before it starts, it never runs.
    const queuedAbort = new AbortController();
    const queued = m.spin.callAsync('queued', queuedAbort.signal);
    await sleep(100);
    queuedAbort.abort();
    await assert.rejects(queued, ${isAbort('AbortError')});
    running.abort();
    await assert.rejects(blocker, ${isAbort('AbortError', 'KeyboardInterrupt')});
    assert.deepEqual(m.log.toJS(), ['running']);

    // AbortSignal.timeout(): the signal's own reason (TimeoutError), same cause.
    await assert.rejects(m.spin.callAsync('timeout', AbortSignal.timeout(100)), ${isAbort('TimeoutError', 'KeyboardInterrupt')});
    // A reason of the caller's own is the rejection, as given.
    const custom = new AbortController();
    const reason = new Error('enough');
    setTimeout(() => custom.abort(reason), 50);
    await assert.rejects(m.spin.callAsync('custom', custom.signal), (e) => e === reason);
    assert.deepEqual(m.log.toJS(), ['running', 'timeout', 'custom']);

    // One signal for a batch of calls: all of them are cancelled (and Node does not warn about
    // a listener leak: pyembed listens once per signal).
    const warnings = [];
    process.on('warning', (w) => warnings.push(w.name));
    const batch = new AbortController();
    const calls = Array.from({ length: 20 }, (_, i) => m.spin.callAsync('batch', batch.signal));
    await sleep(100);
    batch.abort();
    const settled = await Promise.allSettled(calls);
    assert.deepEqual(settled.map((r) => r.status === 'rejected' && r.reason.name), Array(20).fill('AbortError'));
    assert.deepEqual(warnings, []);
    assert.equal(m.log.toJS().filter((t) => t === 'batch').length, 1, 'one started (one pool thread), the others never ran');

    // A signal that never fires changes nothing; keywords still come before it.
    assert.equal(await m.work.callAsync(10, new AbortController().signal), 45);
    assert.equal(await m.work.callAsync(Py.kw({ n: 10 }), new AbortController().signal), 45);
    // A signal fired after the call settled changes nothing either.
    const late = new AbortController();
    assert.equal(await m.work.callAsync(10, late.signal), 45);
    late.abort();
    assert.equal(await m.work.callAsync(100), 4950);
  `, short);
});

test('callAsync aborted as it completes: never a wrong result, never a pending promise, never an interrupt in a later call', async () => {
  await scenario(`PythonEngine.initialize({ asyncThreads: 1 });\n` + helpers + `
    const expected = (n) => n * (n - 1) / 2;
    const sleepFn = Py.import('time').sleep;
    const within = (p) => Promise.race([p, sleep(10_000).then(() => { throw new Error('a promise was left pending'); })]);
    let fulfilled = 0, aborted = 0;
    const aborts = [(a) => a.abort(), (a) => queueMicrotask(() => a.abort()), (a) => setImmediate(() => a.abort()),
                    (a) => setTimeout(() => a.abort(), 0), (a) => setTimeout(() => a.abort(), 1)];
    for (let i = 0; i < 600; i++) {
      const n = (i * 37) % 3000;
      const ac = new AbortController();
      // Every other call is time.sleep itself: no bytecode after the sleep, so an interrupt
      // posted during it can only be withdrawn when the call returns.
      const raced = i % 2 === 0 ? m.work.callAsync(n, ac.signal) : sleepFn.callAsync(0.001, ac.signal).then(() => expected(n));
      // Queued right behind it on the same pool thread: an interrupt aimed at the first call
      // must never land here.
      const next = m.work.callAsync(n + 1);
      aborts[i % aborts.length](ac);
      const [first, second] = await within(Promise.allSettled([raced, next]));
      if (first.status === 'fulfilled') {
        assert.equal(first.value, expected(n));
        fulfilled++;
      } else {
        assert.equal(first.reason.name, 'AbortError', String(first.reason?.stack ?? first.reason));
        aborted++;
      }
      assert.equal(second.status, 'fulfilled', second.reason && String(second.reason.stack));
      assert.equal(second.value, expected(n + 1));
    }
    console.log('fulfilled', fulfilled, 'aborted', aborted);
    assert.ok(aborted > 0);
  `, { timeoutMs: 120_000 });
});

// --- coroutines ------------------------------------------------------------------------------

test('coroutines cancelled: callAsync of an async function, Py.awaitAsync, for await over Py.aiter', async () => {
  await scenario(helpers + `
    const ac = new AbortController();
    const call = m.wait_long.callAsync('callAsync', ac.signal);
    await sleep(50);
    ac.abort();
    await assert.rejects(call, ${isAbort('AbortError', 'CancelledError')});

    await assert.rejects(Py.awaitAsync(m.wait_long('awaitAsync'), AbortSignal.timeout(50)), ${isAbort('TimeoutError', 'CancelledError')});
    // Already aborted: the coroutine never runs (it is closed, so Python does not warn).
    const never = m.wait_long('never');
    await assert.rejects(Py.awaitAsync(never, AbortSignal.abort()), ${isAbort('AbortError')});
    assert.equal(never.cr_frame, undefined);
    // Without a signal, or with one that does not fire: the result.
    assert.equal(await Py.awaitAsync(PythonEngine.eval('__import__("asyncio").sleep(0, "done")')), 'done');
    assert.equal(await Py.awaitAsync(PythonEngine.eval('__import__("asyncio").sleep(0, "done")'), new AbortController().signal), 'done');

    // for await: aborted between steps, the generator is closed (aclose); aborted during a
    // step, CancelledError ends it. Either way its finally runs and the loop ends with the abort.
    const between = new AbortController();
    const seen = [];
    await assert.rejects((async () => {
      for await (const tick of Py.aiter(m.ticks(), between.signal)) {
        seen.push(tick);
        if (tick === 2) between.abort();
      }
    })(), ${isAbort('AbortError')});
    assert.deepEqual(seen, [0, 1, 2]);
    await assert.rejects((async () => {
      for await (const tick of Py.aiter(m.ticks(), AbortSignal.timeout(30))) void tick;
    })(), ${isAbort('TimeoutError')});
    assert.deepEqual(m.log.toJS(), ['callAsync', 'awaitAsync', 'ticks closed', 'ticks closed']);
    // The asyncio loop still serves coroutines.
    assert.equal(await m.work.callAsync(10), 45);
    assert.equal(await PythonEngine.eval('__import__("asyncio").sleep(0, 7)'), 7);
  `, short);
});

test('PythonEngine.interrupt aimed at the asyncio loop thread interrupts its coroutine; the loop lives on', async () => {
  await scenario(helpers + `
    PythonEngine.exec('import asyncio, itertools, threading');
    PythonEngine.exec(\`
async def busy_coroutine():
    for _ in itertools.count():
        pass
async def loop_ident():
    return threading.get_ident()
\`);
    const ident = await PythonEngine.eval('loop_ident()');
    const running = PythonEngine.eval('busy_coroutine()').then(() => 'returned', (e) => e.type);
    await sleep(100);
    assert.equal(PythonEngine.interrupt(ident), true);
    assert.equal(await running, 'KeyboardInterrupt');
    assert.equal(await PythonEngine.eval('asyncio.sleep(0, 5)'), 5);
  `, short);
});

// --- worker.terminate() ----------------------------------------------------------------------

test('worker.terminate() interrupts the Python code of a worker: a busy loop, a sleep, code that swallows KeyboardInterrupt', async () => {
  await scenario(helpers + `
    const before = native.stats();
    // Another thread keeps working meanwhile.
    const alongside = m.work.callAsync(2000);
    const cases = [
      ["m.spin('busy')", 'busy'],
      ["m.sleep_then_spin(0.5, 'sleep')", 'sleep'],
      ["m.stubborn('swallowed')", 'swallowed'],
    ];
    for (const [call, tag] of cases) {
      const w = inWorker("const m = Py.import('cancel_helpers'); post('calling'); " + call + "; post('returned');");
      await w.next();
      await sleep(150);
      const started = Date.now();
      await w.worker.terminate();
      const { messages } = await w.done;
      console.log(tag, 'terminated in', Date.now() - started, 'ms');
      assert.deepEqual(messages, ['calling']);
      assert.ok(m.log.toJS().includes(tag), tag + ': its Python code was interrupted (finally, except)');
      assert.equal(PythonEngine.eval('1 + 1'), 2);
    }
    assert.equal(await alongside, 1999000);
    const after = native.stats();
    assert.equal(after.threadStatesReleased - before.threadStatesReleased, cases.length);
    // A worker terminated when it is not in Python, and one that never used Python.
    const idle = inWorker("PythonEngine.eval('0'); post('ready'); setInterval(() => {}, 1000);");
    await idle.next();
    await idle.worker.terminate();
    const plain = new Worker('setInterval(() => {}, 1000)', { eval: true });
    await plain.terminate();
    assert.equal(m.work(10), 45);
  `);
});

// --- leaks -----------------------------------------------------------------------------------

test('1000 aborted calls leak nothing, and every finally block ran', async () => {
  await scenario(`PythonEngine.initialize({ asyncThreads: 2 });\n` + helpers + `
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const abortRunning = async () => {
      flag[0] = 0;
      const ac = new AbortController();
      const call = m.spin_flagged.callAsync(flag, ac.signal);
      while (Atomics.load(flag, 0) === 0) await new Promise((r) => setImmediate(r));
      ac.abort();
      // The cause is there unless the code took more than 100 ms to stop (a loaded machine).
      await assert.rejects(call, (e) => e.name === 'AbortError' && (e.cause === undefined || e.cause.type === 'KeyboardInterrupt'));
    };
    const abortCoroutine = async () => {
      const ac = new AbortController();
      const call = m.wait_long.callAsync('c', ac.signal);
      await new Promise((r) => setImmediate(r));
      ac.abort();
      await assert.rejects(call, ${isAbort('AbortError')});
    };
    const round = async (n) => {
      for (let i = 0; i < n; i++) {
        await abortRunning();
        if (i % 5 === 0) await abortCoroutine();
        await assert.rejects(m.spin.callAsync('x', AbortSignal.abort()), ${isAbort('AbortError')});
      }
    };
    let t0 = Date.now();
    await round(100);  // warm up: pool threads, the asyncio loop, caches
    console.log('warm-up', Date.now() - t0, 'ms');
    await collect();
    const objectsBefore = m.object_count();
    const handlesBefore = native.stats().handles;
    const rssBefore = process.memoryUsage().rss;
    t0 = Date.now();
    await round(1000);
    console.log('1000 rounds', Date.now() - t0, 'ms');
    await collect();
    const objectsAfter = m.object_count();
    const handlesAfter = native.stats().handles;
    const rssAfter = process.memoryUsage().rss;
    // Calls whose promise rejected before their code stopped finish on their own.
    while (m.finished < 1100) await sleep(10);
    console.log('objects', objectsBefore, objectsAfter, 'handles', handlesBefore, handlesAfter, 'rss MB', (rssBefore / 2**20).toFixed(1), (rssAfter / 2**20).toFixed(1));
    assert.equal(m.finished, 1100, 'the finally block of every interrupted call ran');
    assert.ok(objectsAfter - objectsBefore < 200, 'Python objects: ' + objectsBefore + ' -> ' + objectsAfter);
    assert.ok(handlesAfter - handlesBefore < 50, 'native handles: ' + handlesBefore + ' -> ' + handlesAfter);
    assert.ok(rssAfter - rssBefore < 64 * 2**20, 'RSS grew by ' + ((rssAfter - rssBefore) / 2**20).toFixed(1) + ' MB');
    assert.equal(await m.work.callAsync(10), 45);
  `, { ...gc, timeoutMs: 180_000 });
});
