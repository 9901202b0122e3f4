// Interrupting the Python code of isolated workers (their own interpreter and GIL, CPython 3.12+):
// worker.terminate(), process exit, PythonEngine.interrupt(). Each scenario runs in a child
// process with PYEMBED_PYTHON pointing at pyenv's CPython 3.12 / 3.13 (skipped when not
// installed), under a watchdog: Python code that cannot be stopped shows up as a timeout.
//
// The loops are `while True: pass` where only the end matters (the case), and `for`
// loops where an `except` must run: on 3.12 an exception that lands at the back edge of a
// `while True:` loop skips that loop's own handlers (python/cpython#108214).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { explain, lastJson, pyenvPython, pyenvRoot, runScript } from './helpers.js';

// The worker's Python module; `ended` goes to stdout from the interpreter's atexit handlers, so
// each line says that an isolated interpreter ended cleanly (Py_EndInterpreter ran them).
const WORKER_MODULE = JSON.stringify(`
import atexit, itertools, os, threading, time

def say(text):
    os.write(1, (text + "\\n").encode())

def ends(label):
    atexit.register(say, "ended " + label)

def spin():
    while True:
        pass

def stubborn():
    for attempt in range(3):
        try:
            for _ in itertools.count():
                pass
        except KeyboardInterrupt:
            say("swallowed")
    while True:
        pass

def sleep_then_spin(seconds):
    time.sleep(seconds)
    while True:
        pass

def spin_until_interrupted():
    try:
        for _ in itertools.count():
            pass
    except KeyboardInterrupt:
        return "interrupted"

caught = []

def spinning_thread():
    def run():
        try:
            for _ in itertools.count():
                pass
        except KeyboardInterrupt:
            caught.append(threading.get_ident())
    t = threading.Thread(target=run)
    t.start()
    return t

def work(n):
    total = 0
    for i in range(n):
        total += i
    return total
`);

const PRELUDE = `
  import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
  import { PythonEngine, Py, PyModule } from 'pyembed';
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const isolatedModule = () => {
    PythonEngine.initialize({ interpreter: 'isolated' });
    return PyModule.fromString('iso_interrupt', ${WORKER_MODULE});
  };
  const start = (data) => {
    const w = new Worker(new URL(import.meta.url), { workerData: data });
    const messages = [];
    let notify = () => {};
    w.on('message', (m) => { messages.push(m); notify(); });
    const next = async () => {
      while (messages.length === 0) await new Promise((resolve) => (notify = resolve));
      return messages.shift();
    };
    const exited = new Promise((resolve, reject) => { w.on('exit', resolve); w.on('error', reject); });
    return { w, next, exited };
  };
`;

// terminate() of isolated workers inside a Python call: an endless loop, a loop that swallows the
// first KeyboardInterrupts (terminate repeats it), a sleep followed by a loop. Then the process
// is healthy: the main thread (shared), a new isolated worker and a shared worker all work.
const TERMINATE = PRELUDE + `
  if (isMainThread) {
    PythonEngine.initialize();
    const out = { exitCodes: [] };
    for (const call of ['spin', 'stubborn', 'sleep_then_spin']) {
      const { w, next, exited } = start({ call });
      await next();            // about to call
      await sleep(200);        // inside it
      const code = await w.terminate();
      out.exitCodes.push([call, code, await exited]);
    }
    out.main = PythonEngine.eval('sum(range(10))');
    const again = start({ call: 'work' });
    await again.next();
    out.isolatedAgain = await again.next();
    await again.exited;
    const shared = start({ call: 'shared' });
    out.sharedWorker = await shared.next();
    await shared.exited;
    console.log(JSON.stringify(out));
  } else if (workerData.call === 'shared') {
    PythonEngine.initialize();
    parentPort.postMessage(PythonEngine.eval('2 ** 10'));
  } else {
    const m = isolatedModule();
    m.ends(workerData.call);
    parentPort.postMessage('calling');
    if (workerData.call === 'sleep_then_spin') m.sleep_then_spin(0.1);
    else if (workerData.call === 'work') parentPort.postMessage(m.work(100));
    else m[workerData.call]();
  }
`;

// The process ends (process.exit(), or the end of the event loop with the workers unref'd) while
// an isolated worker and a shared worker spin in Python: Node stops the workers and waits for
// each. argv: exit | natural, and 'initialized' | 'loaded' (the main thread only loaded pyembed).
const EXIT = PRELUDE + `
  if (isMainThread) {
    const [how, main] = process.argv.slice(2);
    if (main === 'initialized') PythonEngine.initialize();
    const workers = [start({ mode: 'isolated' }), start({ mode: 'shared' })];
    for (const { next } of workers) await next();
    await sleep(200);
    console.log('exiting');
    if (how === 'exit') process.exit(0);
    for (const { w } of workers) w.unref();
  } else if (workerData.mode === 'shared') {
    PythonEngine.initialize();
    const m = PyModule.fromString('shared_spin', 'def spin():\\n    while True:\\n        pass\\n');
    parentPort.postMessage('calling');
    m.spin();
  } else {
    const m = isolatedModule();
    m.ends('isolated');
    parentPort.postMessage('calling');
    m.spin();
  }
`;

// PythonEngine.interrupt() and isolated interpreters:
//  - the main thread (shared interpreter) and another isolated worker interrupt an isolated
//    worker's call; an isolated worker not in a call is no target;
//  - an isolated worker interrupts a Python thread of its own interpreter, and the main thread a
//    Python thread of an isolated interpreter;
//  - an interrupt posted to a call that returns without running bytecode (time.sleep called
//    directly) is withdrawn: it does not land in the worker's next call.
const INTERRUPT = PRELUDE + `
  if (isMainThread) {
    PythonEngine.initialize();
    const out = {};
    const target = start({ role: 'target' });
    const targetId = await target.next();
    out.idle = PythonEngine.interrupt(targetId);
    // From the main thread.
    target.w.postMessage('spin');
    await target.next();
    await sleep(100);
    out.fromMain = PythonEngine.interrupt(targetId);
    out.mainResult = await target.next();
    // From another isolated worker.
    target.w.postMessage('spin');
    await target.next();
    await sleep(100);
    const other = start({ role: 'interrupter', targetId });
    out.fromIsolated = await other.next();
    await other.exited;
    out.isolatedResult = await target.next();
    // A Python thread of the target's interpreter.
    target.w.postMessage('thread');
    const threadIdent = await target.next();
    out.thread = PythonEngine.interrupt(threadIdent);
    target.w.postMessage('join');
    out.threadCaught = await target.next();
    // Its own Python thread, from inside the isolated worker.
    target.w.postMessage('own thread');
    out.ownThread = await target.next();
    // Withdrawn: posted during time.sleep (no bytecode runs after it in that call).
    target.w.postMessage('sleep');
    await target.next();
    await sleep(100);
    out.duringSleep = PythonEngine.interrupt(targetId);
    out.afterSleep = await target.next();
    target.w.postMessage('end');
    await target.exited;
    out.main = PythonEngine.eval('1 + 1');
    console.log(JSON.stringify(out));
  } else if (workerData.role === 'interrupter') {
    PythonEngine.initialize({ interpreter: 'isolated' });
    parentPort.postMessage(PythonEngine.interrupt(workerData.targetId));
  } else {
    const m = isolatedModule();
    parentPort.postMessage(PythonEngine.threadId);
    let thread;
    parentPort.on('message', (what) => {
      if (what === 'spin') {
        parentPort.postMessage('calling');
        parentPort.postMessage(m.spin_until_interrupted());
      } else if (what === 'thread') {
        thread = m.spinning_thread();
        parentPort.postMessage(thread.ident);
      } else if (what === 'join') {
        thread.join();
        parentPort.postMessage(m.caught.toJS().includes(thread.ident));
      } else if (what === 'own thread') {
        const t = m.spinning_thread();
        const interrupted = PythonEngine.interrupt(t.ident);
        t.join();
        parentPort.postMessage([interrupted, m.caught.toJS().includes(t.ident)]);
      } else if (what === 'sleep') {
        const sleep = Py.import('time').sleep;
        parentPort.postMessage('calling');
        sleep(0.4);
        let next;
        try { next = m.work(10); } catch (e) { next = e.type; }
        parentPort.postMessage(next);
      } else {
        process.exit(0);
      }
    });
  }
`;

// 20 isolated workers, each terminated at a random moment: half of them counted from their
// creation (before or while the interpreter starts, or in its first calls), half from the moment
// they run their loop (inside calls: endless pure Python, many short calls, callbacks into JS,
// new modules; between calls). (Not decimal: on CPython 3.12, _decimal in a second interpreter
// crashes by itself, terminated or not.) Then no isolated interpreter is left (the shared one can shut down).
const RANDOM = PRELUDE + `
  if (isMainThread) {
    PythonEngine.initialize();
    const seed = Number(process.argv[2]);
    let state = seed;
    const random = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
    const runs = [];
    for (let i = 0; i < 20; i++) {
      const { w, next, exited } = start({ kind: Math.floor(i / 2) % 4 });
      const delay = Math.floor(random() * 300);
      const fromLoop = i % 2 === 0;
      runs.push((async () => {
        if (fromLoop) await next();
        await sleep(delay);
        await w.terminate();
        return exited;
      })());
      if (i % 4 === 3) await Promise.all(runs.splice(0));   // 4 at once (2 cores)
    }
    await Promise.all(runs);
    const out = { main: PythonEngine.eval('sum(range(5))') };
    PythonEngine.shutdown();   // refused while an isolated interpreter lives
    out.shutdown = !PythonEngine.isInitialized;
    console.log(JSON.stringify(out));
  } else {
    const m = isolatedModule();
    const kind = workerData.kind;
    const callback = PyModule.fromString('cb', 'def call_many(f, n):\\n    return sum(f(i) for i in range(n))\\n');
    parentPort.postMessage('looping');
    let n = 0;
    for (;;) {
      if (kind === 0) m.spin();
      else if (kind === 1) m.work(200_000);
      else if (kind === 2) callback.call_many((i) => i, 10_000);
      else PyModule.fromString('fresh' + n++, 'import json\\nout = json.dumps([1, 2, 3])\\n');
    }
  }
`;

for (const minor of ['3.12', '3.13']) {
  const python = pyenvPython(minor);
  const skip = python ? false : `no CPython ${minor} under ${pyenvRoot}/versions`;
  const env = { PYEMBED_PYTHON: python };

  test(`CPython ${minor}: terminate() interrupts an isolated worker in while True: pass (also one that swallows KeyboardInterrupt, and after a sleep); the process stays healthy`, { skip }, async () => {
    const r = await runScript(TERMINATE, { env, timeoutMs: 60_000 });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.deepEqual(out.exitCodes, [['spin', 1, 1], ['stubborn', 1, 1], ['sleep_then_spin', 1, 1]]);
    assert.equal(out.main, 45);
    assert.equal(out.isolatedAgain, 4950);
    assert.equal(out.sharedWorker, 1024);
    const lines = r.stdout.split('\n');
    assert.equal(lines.filter((l) => l === 'swallowed').length, 3, 'terminate() repeats the interrupt');
    for (const call of ['spin', 'stubborn', 'sleep_then_spin', 'work']) {
      assert.ok(lines.includes('ended ' + call), `the interpreter of ${call} ended cleanly\n` + explain(r));
    }
    assert.doesNotMatch(r.stderr, /Fatal|Traceback|Exception ignored/, r.stderr);
  });

  for (const how of ['exit', 'natural']) {
    for (const main of ['initialized', 'loaded']) {
      test(`CPython ${minor}: the process ends (${how === 'exit' ? 'process.exit()' : 'end of the event loop'}, main thread ${main}) with an isolated and a shared worker in while True: pass`, { skip }, async () => {
        const r = await runScript(EXIT.replace('process.argv.slice(2)', JSON.stringify([how, main])), { env, timeoutMs: 30_000 });
        assert.equal(r.timedOut, false, explain(r));
        assert.equal(r.code, 0, explain(r));
        const lines = r.stdout.split('\n');
        assert.ok(lines.includes('exiting'), explain(r));
        assert.ok(lines.includes('ended isolated'), 'the isolated interpreter ended cleanly\n' + explain(r));
        assert.doesNotMatch(r.stderr, /Fatal|Traceback|Exception ignored/, r.stderr);
      });
    }
  }

  test(`CPython ${minor}: PythonEngine.interrupt() reaches an isolated worker's call and its Python threads, from the main thread, another isolated worker and itself; a withdrawn interrupt does not land later`, { skip }, async () => {
    const r = await runScript(INTERRUPT, { env, timeoutMs: 60_000 });
    assert.equal(r.code, 0, explain(r));
    const out = lastJson(r.stdout);
    assert.deepEqual(out, {
      idle: false,
      fromMain: true,
      mainResult: 'interrupted',
      fromIsolated: true,
      isolatedResult: 'interrupted',
      thread: true,
      threadCaught: true,
      ownThread: [true, true],
      duringSleep: true,
      afterSleep: 45,
      main: 2,
    });
  });

  test(`CPython ${minor}: 20 isolated workers terminated at random moments; no crash, no interpreter left`, { skip }, async () => {
    const seed = Math.floor(Math.random() * 1_000_000);
    const r = await runScript(RANDOM.replace('Number(process.argv[2])', String(seed)), { env, timeoutMs: 120_000 });
    assert.equal(r.code, 0, `seed ${seed}\n` + explain(r));
    assert.deepEqual(lastJson(r.stdout), { main: 10, shutdown: true }, `seed ${seed}`);
    assert.doesNotMatch(r.stderr, /Fatal|Traceback/, `seed ${seed}\n` + r.stderr);
  });
}
