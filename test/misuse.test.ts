// The misuse suite: things users get wrong, each in its own child process. Every scenario must end
// with a clear JS error or the correct result, exit code 0, no signal, and a working interpreter:
// the child checks its own expectations with node:assert, then makes one more Python call and
// prints `FINAL 45`, which the parent requires.
//
// One scenario is marked `todo`: the automatic collection of a JS <-> Python reference cycle, a
// known limitation (README, "Limits and notes") that dispose() works around; it is kept so the
// limitation stays visible. Every other scenario must pass.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

import { explain } from './helpers.js';
import { gc, scenario, short } from './misuse-harness.js';

// --- lifecycle -----------------------------------------------------------------------------

test('proxies used after shutdown() throw a clear error; initialize() starts a working interpreter', async () => {
  await scenario(`
    const list = PythonEngine.eval('[1, 2, 3]');
    const fn = PythonEngine.eval('lambda x: x');
    const gen = PythonEngine.eval('(i for i in range(3))');
    PythonEngine.shutdown();
    const gone = /shut down/;
    assert.throws(() => list.append, gone);
    assert.throws(() => list.toJS(), gone);
    assert.throws(() => list.repr(), gone);
    assert.throws(() => String(list), gone);
    assert.throws(() => list.length, gone);
    assert.throws(() => list.get(0), gone);
    assert.throws(() => list.set(0, 1), gone);
    assert.throws(() => list.equals([1, 2, 3]), gone);
    assert.throws(() => fn(1), gone);
    assert.throws(() => [...gen], gone);
    assert.throws(() => Py.share(list), gone);
    assert.throws(() => Py.toPython([list]), /initialize/);
    assert.throws(() => PythonEngine.eval('1'), /initialize/);
    assert.throws(() => Py.GIL(), /initialize/);
    await assert.rejects(fn.callAsync(1), gone);
    assert.equal(list.isDisposed, true);
    list.dispose(); // harmless
    assert.equal(inspect(fn), '[PyObject (disposed)]');
    PythonEngine.initialize();
    assert.deepEqual(PythonEngine.eval('[1, 2, 3]').toJS(), [1, 2, 3]);
  `);
});

test('proxies of a previous interpreter stay dead after re-initialize, wherever they are used', async () => {
  await scenario(`
    const old = PythonEngine.eval('[1]');
    const oldLen = PythonEngine.eval('len');
    const token = Py.share(old);
    PythonEngine.shutdown();
    PythonEngine.initialize();
    const dead = /belongs to an interpreter that was shut down/;
    assert.throws(() => old.append, dead);
    assert.throws(() => old.toJS(), dead);
    assert.throws(() => oldLen([1]), dead);
    for (const f of [() => PythonEngine.eval('len')(old), () => Py.toPython({ nested: [old] }),
                     () => PythonEngine.eval('lambda **k: k')(Py.kw({ x: old }))]) {
      assert.throws(f, { name: 'TypeError', message: dead });
    }
    await assert.rejects(oldLen.callAsync([1]), dead);
    await assert.rejects(PythonEngine.eval('len').callAsync(old), dead);
    assert.throws(() => Py.unshare(token), /already claimed, or its interpreter was shut down/);
    assert.equal(old.isDisposed, true);
    old.dispose();
    // a third interpreter: the second one's objects die the same way
    const second = PythonEngine.eval('{"a": 1}');
    PythonEngine.shutdown();
    PythonEngine.initialize();
    assert.throws(() => second.toJS(), dead);
    assert.deepEqual(PythonEngine.eval('{"a": 1}').toJS(), { a: 1 });
  `);
});

test('shutdown() with a Py.GIL() scope still open releases it; the stale scope is harmless', async () => {
  await scenario(`
    const scope = Py.GIL();
    assert.deepEqual(native.threadState(), [true, 1, 0]);
    PythonEngine.shutdown();
    assert.deepEqual(native.threadState(), [false, 0, 0]);
    scope.dispose();
    scope.dispose();
    assert.deepEqual(native.threadState(), [false, 0, 0]);
    PythonEngine.initialize();
    const again = Py.GIL();
    assert.equal(PythonEngine.eval('2 + 2'), 4);
    again.dispose();
    assert.deepEqual(native.threadState(), [false, 0, 0]);
  `);
});

test('a coroutine still pending at shutdown() is rejected, not left hanging', async () => {
  await scenario(`
    const m = PyModule.fromString('pending_coro', \`
import asyncio
async def forever():
    await asyncio.sleep(3600)
\`);
    const settled = Promise.resolve(m.forever()).then(() => 'resolved', (e) => 'rejected: ' + e.message);
    await sleep(200);
    PythonEngine.shutdown();
    const outcome = await Promise.race([settled, sleep(5000).then(() => 'never settled')]);
    assert.match(outcome, /^rejected/);
    PythonEngine.initialize();
  `, short);
});

test('initialize() misuse: another Python while one runs, bad options', async () => {
  await scenario(`
    PythonEngine.initialize();
    assert.throws(() => PythonEngine.initialize({ asyncThreads: -1 }), TypeError);
    assert.throws(() => PythonEngine.initialize({ asyncThreads: 1.5 }), TypeError);
    assert.throws(() => PythonEngine.initialize({ python: '/nonexistent/python3' }), /cannot run the Python interpreter/);
    PythonEngine.initialize({ python: PythonEngine.python.executable }); // the same one: fine
    assert.equal(PythonEngine.isInitialized, true);
  `);
});

// --- the GIL -------------------------------------------------------------------------------

test('endAllowThreads() with a foreign, forged, reused or out-of-order token is a clear error', async () => {
  await scenario(`
    assert.throws(() => PythonEngine.endAllowThreads(new ThreadState(3)), /innermost/);
    assert.throws(() => PythonEngine.endAllowThreads({ savedScopes: 1 }), TypeError);
    assert.throws(() => PythonEngine.endAllowThreads(undefined), TypeError);
    assert.throws(() => PythonEngine.endAllowThreads(Object.create(ThreadState.prototype)), TypeError);
    assert.deepEqual(native.threadState(), [false, 0, 0]);
    // a token made on another thread arrives as a plain object
    const w = inWorker('post(PythonEngine.beginAllowThreads());');
    const { messages: [foreign] } = await w.done;
    assert.throws(() => PythonEngine.endAllowThreads(foreign), TypeError);

    const scope = Py.GIL();
    const a = PythonEngine.beginAllowThreads();
    const b = PythonEngine.beginAllowThreads();
    assert.deepEqual(native.threadState(), [false, 0, 0]);
    assert.throws(() => PythonEngine.endAllowThreads(a), /innermost/);
    PythonEngine.endAllowThreads(b);
    assert.throws(() => PythonEngine.endAllowThreads(b), /already/);
    PythonEngine.endAllowThreads(a);
    assert.deepEqual(native.threadState(), [true, 1, 0]);
    assert.throws(() => PythonEngine.endAllowThreads(a), /already/);
    assert.deepEqual(native.threadState(), [true, 1, 0]); // a failed call changes nothing
    // allowThreads restores the scope even when its function throws
    assert.throws(() => PythonEngine.allowThreads(() => { throw new SyntaxError('inside'); }), SyntaxError);
    assert.deepEqual(native.threadState(), [true, 1, 0]);
    scope.dispose();
    assert.deepEqual(native.threadState(), [false, 0, 0]);
  `);
});

test('Py.GIL() scopes disposed twice, out of order, inside callbacks and across awaits', async () => {
  await scenario(`
    const a = Py.GIL(), b = Py.GIL(), c = Py.GIL();
    b.dispose(); b.dispose(); a[Symbol.dispose]();
    assert.deepEqual(native.threadState(), [true, 1, 0]);
    c.dispose(); c.dispose(); a.dispose();
    assert.deepEqual(native.threadState(), [false, 0, 0]);
    assert.equal(a.isOpen, false);

    // opened inside a callback and left open when it returns; disposed later
    const call = PythonEngine.eval('lambda f: f()');
    let leftOpen;
    call(() => { leftOpen = Py.GIL(); });
    assert.equal(PythonEngine.eval('3'), 3);
    leftOpen.dispose();
    assert.deepEqual(native.threadState(), [false, 0, 0]);

    // a scope kept across an await does not block a worker's Python calls
    const scope = Py.GIL();
    const w = inWorker('post(PythonEngine.eval("6 * 7"));');
    const { messages } = await w.done;
    assert.deepEqual(messages, [42]);
    scope.dispose();
    assert.deepEqual(native.threadState(), [false, 0, 0]);
  `);
});

// A scope's depth is saved away while a JS callback runs and between begin/endAllowThreads(); a
// scope disposed meanwhile must not come back when the depth is restored.
const workerMustGetTheGil = `
    const sab = new Int32Array(new SharedArrayBuffer(4));
    const w = inWorker('PythonEngine.eval("1"); Atomics.store(workerData, 0, 1); Atomics.notify(workerData, 0);', sab);
    const waited = Atomics.wait(sab, 0, 0, 5000);
    await w.done;
    assert.notEqual(waited, 'timed-out', 'the worker could not get the GIL: this thread kept it');
`;

test('a Py.GIL() scope disposed inside a JS callback stays closed when the callback returns', async () => {
  await scenario(`
    const call = PythonEngine.eval('lambda f: f()');
    const outer = Py.GIL();
    call(() => outer.dispose());
    assert.deepEqual(native.threadState(), [false, 0, 0]);
  ` + workerMustGetTheGil, short);
});

test('a Py.GIL() scope disposed while beginAllowThreads() is active stays closed after endAllowThreads()', async () => {
  await scenario(`
    const scope = Py.GIL();
    const state = PythonEngine.beginAllowThreads();
    scope.dispose();
    PythonEngine.endAllowThreads(state);
    assert.deepEqual(native.threadState(), [false, 0, 0]);
  ` + workerMustGetTheGil, short);
});

// --- workers -------------------------------------------------------------------------------

test('workers terminated in the middle of Python calls that return objects or raise', async () => {
  await scenario(`
    PythonEngine.eval('0');
    const before = native.stats();
    const exprs = ['__import__("time").sleep(0.5)', '[__import__("time").sleep(0.5), "list"]',
                   '(__import__("time").sleep(0.5), 1 / 0)', '2 ** 100 + (__import__("time").sleep(0.5) or 0)'];
    for (const expr of exprs) {
      const w = inWorker('post("calling"); PythonEngine.eval(' + JSON.stringify(expr) + '); post("returned");');
      await w.next();
      await sleep(100);
      await w.worker.terminate();
      const { messages } = await w.done;
      assert.deepEqual(messages, ['calling']);
      assert.equal(PythonEngine.eval('1 + 1'), 2);
    }
    const after = native.stats();
    assert.equal(after.threadStatesMade - before.threadStatesMade, exprs.length);
    assert.equal(after.threadStatesReleased - before.threadStatesReleased, exprs.length);
  `);
});

test('a worker terminated while Python runs its JS callback', async () => {
  await scenario(`
    PythonEngine.exec(\`
log = []
def propagate(f):
    return f()
\`);
    const w = inWorker("PythonEngine.eval('propagate')(() => { post('in callback'); for (;;) {} });");
    await w.next();
    await sleep(100);
    await w.worker.terminate();
    await w.done;
    assert.equal(PythonEngine.eval('len(log)'), 0);
  `);
});

test('a worker terminated while its Python call sleeps, before Python calls back into JS', async () => {
  await scenario(`
    PythonEngine.eval('0');
    const w = inWorker("const f = PythonEngine.eval('lambda f: (__import__(\\"time\\").sleep(0.5), f())'); post('start'); f(() => 1);");
    await w.next();
    await sleep(150);
    await w.worker.terminate();
    await w.done;
  `);
});

test("a worker's JS function called after the worker exited: RuntimeError from any thread", async () => {
  await scenario(`
    PythonEngine.exec(\`
import threading
holder = {}
def call_in_thread():
    out = []
    def run():
        try:
            out.append(holder["f"](1))
        except Exception as e:
            out.append(type(e).__name__ + ": " + str(e))
    t = threading.Thread(target=run)
    t.start(); t.join()
    return out[0]
\`);
    const w = inWorker("PythonEngine.eval('holder').set('f', (x) => x + 1); post(PythonEngine.eval('holder[\\"f\\"](1)'));");
    assert.deepEqual((await w.done).messages, [2]);
    const exited = /cannot call a JS function whose JS thread \\(worker\\) has exited/;
    assert.throws(() => PythonEngine.eval('holder["f"](1)'), { type: 'RuntimeError', message: exited });
    assert.match(PythonEngine.eval('call_in_thread()'), exited);
    await assert.rejects(PythonEngine.eval('lambda: holder["f"](1)').callAsync(), { type: 'RuntimeError', message: exited });
  `);
});

test("dropping Python's last reference to an exited worker's JS function", async () => {
  await scenario(`
    PythonEngine.exec('holder = {}');
    const w = inWorker("PythonEngine.eval('holder').set('f', () => 1);");
    await w.done;
    PythonEngine.exec('holder.clear()');
    PythonEngine.exec('import gc; gc.collect()');
  `);
});

test('a PyObject posted to a worker is a DataCloneError naming Py.share, not a silent copy', async () => {
  await scenario(`
    const list = PythonEngine.eval('[1, 2]');
    assert.throws(() => inWorker('post(1)', { list }), { name: 'DataCloneError', message: /Py\\.share/ });
    const w = inWorker(\`
      let unshare;
      try { Py.unshare({}); } catch (e) { unshare = e.name + ': ' + e.message; }
      post(unshare);
    \`);
    const { messages: [r] } = await w.done;
    assert.equal(r, 'TypeError: Py.unshare() needs the value returned by Py.share()');
    // the right way, and share/unshare misuse
    const token = Py.share(list);
    const w2 = inWorker('const l = Py.unshare(workerData); l.append(3); post(l.length);', token);
    assert.deepEqual((await w2.done).messages, [3]);
    assert.throws(() => Py.unshare(token), /already claimed/);
    assert.throws(() => Py.unshare({ pyembedShared: 987654 }), /already claimed/);
    const disposed = PythonEngine.eval('[0]');
    disposed.dispose();
    assert.throws(() => Py.share(disposed), /disposed/);
    assert.throws(() => Py.share({}), TypeError);
    assert.deepEqual(list.toJS(), [1, 2, 3]);
  `);
});

// --- callbacks and recursion ---------------------------------------------------------------

test('a JS callback that throws: Python sees JSError, JS gets the very value thrown', async () => {
  await scenario(`
    const m = PyModule.fromString('throwing', \`
def call(f):
    return f()
def catch(f):
    try:
        f()
    except Exception as e:
        return [type(e).__name__, str(e), e.name]
def wrap(f):
    try:
        f()
    except Exception as e:
        raise ValueError("wrapped") from e
\`);
    for (const value of [new TypeError('typed'), undefined, null, 'text', 42, Symbol('s'), { plain: 1 }]) {
      assert.throws(() => m.call(() => { throw value; }), (e) => e === value);
    }
    assert.deepEqual(m.catch(() => { throw new TypeError('typed'); }).toJS(), ['JSError', 'TypeError: typed', 'TypeError']);
    assert.deepEqual(m.catch(() => { throw 'text'; }).toJS(), ['JSError', 'Error: text', 'Error']);
    assert.throws(() => m.wrap(() => { throw new RangeError('inner'); }), (e) =>
      e instanceof PythonError && e.type === 'ValueError' && /RangeError: inner/.test(e.pythonTraceback));
    assert.equal(m.call(() => 'still fine'), 'still fine');
  `);
});

test('JS -> Python -> JS re-entrance 1000 levels deep works (main thread, worker, Python thread)', async () => {
  await scenario(`
    // Each level is one Python frame plus one call of a C function (the JS callable), and
    // CPython < 3.13 counts both against sys.getrecursionlimit() (1000): exactly as a pure-Python
    // f -> g -> f recursion would. So 1000 crossings (500 levels) fit the default limit, and
    // 1000 levels need the Python limit raised, not anything of pyembed's.
    const py = PythonEngine.eval('lambda f, n: f(n)');
    const down = (k) => (k === 0 ? 0 : 1 + py(down, k - 1));
    assert.equal(down(490), 490);
    PythonEngine.exec('import sys; sys.setrecursionlimit(10000)');
    assert.equal(down(1000), 1000);
    assert.equal(down(1000), 1000); // again: nothing was left behind
    const w = inWorker(\`
      PythonEngine.exec('import sys; sys.setrecursionlimit(10000)');
      const py = PythonEngine.eval('lambda f, n: f(n)');
      const down = (k) => (k === 0 ? 0 : 1 + py(down, k - 1));
      post(down(1000));
    \`);
    assert.deepEqual((await w.done).messages, [1000]);
    const inThread = PythonEngine.eval(\`
lambda f, n: (lambda out, threading: (lambda t: (t.start(), t.join(), out[0])[2])(threading.Thread(target=lambda: out.append(f(n)))))([], __import__("threading"))
\`);
    assert.equal(inThread(down, 1000), 1000);
  `);
});

test('unbounded JS <-> Python recursion ends in a clean error, and deep re-entrance works afterwards', async () => {
  await scenario(`
    const py = PythonEngine.eval('lambda f: f()');
    const forever = () => py(forever);
    const clean = (e) => e instanceof RangeError || (e instanceof PythonError && e.type === 'RecursionError');
    assert.throws(() => forever(), clean);
    PythonEngine.exec('import sys; sys.setrecursionlimit(1000000)');
    // Now pyembed's own stack guards, not Python's limit, stop it: the one on the JS -> Python
    // side (RangeError) or the one on the Python -> JS side (RecursionError), whichever side
    // runs out first (JIT tiering changes the frames' sizes from run to run).
    const guard = (e) => (e instanceof RangeError && /nested JS <-> Python calls/.test(e.message)) ||
      (e instanceof PythonError && e.type === 'RecursionError' && /stack nearly exhausted by JS <-> Python calls/.test(e.message));
    assert.throws(() => forever(), guard);
    assert.throws(() => forever(), guard);
    const down = (k) => (k === 0 ? 0 : 1 + PythonEngine.eval('lambda f, n: f(n)')(down, k - 1));
    assert.equal(down(1000), 1000);
  `);
});

test('Python RecursionError and JS stack exhaustion crossing the boundary', async () => {
  await scenario(`
    const m = PyModule.fromString('rec', \`
def r(n):
    return r(n + 1)
def call(f):
    return f()
def catch(f):
    try:
        f()
    except Exception as e:
        return type(e).__name__ + ": " + str(e)
\`);
    assert.throws(() => m.r(0), { type: 'RecursionError' });
    // Python recursion inside a JS callback inside Python
    assert.throws(() => m.call(() => m.r(0)), { type: 'RecursionError' });
    // JS stack overflow inside a callback: JS gets the original RangeError, Python a JSError
    const jsForever = () => jsForever();
    assert.throws(() => m.call(jsForever), (e) => e instanceof RangeError && /call stack/.test(e.message));
    assert.equal(m.catch(jsForever), 'JSError: RangeError: Maximum call stack size exceeded');
    // the same on a Python thread that borrows this isolate, with a small thread stack
    PythonEngine.exec('import threading; threading.stack_size(512 * 1024)');
    const inThread = PythonEngine.eval(\`
lambda g, f: (lambda out, threading: (lambda t: (t.start(), t.join(), out[0])[2])(threading.Thread(target=lambda: out.append(g(f)))))([], __import__("threading"))
\`);
    assert.match(inThread(m.catch, jsForever), /^(JSError: RangeError: Maximum call stack size exceeded|RecursionError: .*)/);
    const py = PythonEngine.eval('lambda f: f()');
    const forever = () => py(forever);
    assert.match(inThread(m.catch, forever),
      /^(RecursionError: |JSError: (RangeError: Maximum call stack|PythonError: (stack nearly exhausted|maximum recursion)))/);
    PythonEngine.exec('threading.stack_size(0)');
    assert.equal(m.call(() => 'fine'), 'fine');
  `);
});

// --- exits and interrupts ------------------------------------------------------------------

test('sys.exit(), sys.exit("msg") and raise SystemExit(3) are PythonErrors; the process goes on and exits 0', async () => {
  await scenario(`
    const m = PyModule.fromString('exits', \`
import sys, threading
def plain(): sys.exit()
def message(): sys.exit("bye")
def three(): raise SystemExit(3)
def in_thread():
    t = threading.Thread(target=lambda: sys.exit(5))
    t.start(); t.join()
    return "thread ended quietly"
def through_js(f):
    return f()
\`);
    assert.throws(() => m.plain(), (e) => e instanceof PythonError && e.type === 'SystemExit' && e.message === '');
    assert.throws(() => m.message(), { type: 'SystemExit', message: 'bye' });
    assert.throws(() => m.three(), { type: 'SystemExit', message: '3' });
    assert.throws(() => PythonEngine.exec('raise SystemExit(3)'), { type: 'SystemExit', message: '3' });
    await assert.rejects(m.three.callAsync(), { type: 'SystemExit', message: '3' });
    assert.equal(m.in_thread(), 'thread ended quietly');
    assert.throws(() => m.through_js(() => m.three()), { type: 'SystemExit' });
    assert.equal(process.exitCode, undefined);
  `);
});

test('KeyboardInterrupt raised in Python code: sync, callAsync, during iteration, in a Python thread', async () => {
  const r = await scenario(`
    const m = PyModule.fromString('kbi', \`
import threading
def now(): raise KeyboardInterrupt("stop")
def gen():
    yield 1
    raise KeyboardInterrupt
def in_thread():
    t = threading.Thread(target=now)
    t.start(); t.join()
    return "joined"
\`);
    assert.throws(() => m.now(), { type: 'KeyboardInterrupt', message: 'stop' });
    await assert.rejects(m.now.callAsync(), { type: 'KeyboardInterrupt' });
    const seen = [];
    assert.throws(() => { for (const x of m.gen()) seen.push(x); }, { type: 'KeyboardInterrupt' });
    assert.deepEqual(seen, [1]);
    assert.equal(m.in_thread(), 'joined'); // the thread dies with a traceback, as in Python
  `);
  assert.match(r.stderr, /KeyboardInterrupt: stop/);
});

test('a coroutine that raises KeyboardInterrupt or SystemExit rejects its promise', async () => {
  await scenario(`
    const m = PyModule.fromString('coro_exit', \`
import asyncio
async def kbi():
    await asyncio.sleep(0)
    raise KeyboardInterrupt
async def ok():
    return "ok"
\`);
    const within = (p) => Promise.race([Promise.resolve(p).then((v) => 'resolved ' + v, (e) => 'rejected ' + e.type), sleep(3000).then(() => 'hung')]);
    assert.equal(await within(m.kbi()), 'rejected KeyboardInterrupt');
    assert.equal(await within(m.ok()), 'resolved ok');
    assert.equal(await within(m.kbi.callAsync()), 'rejected KeyboardInterrupt');
  `, short);
});

test('_thread.interrupt_main() in Python is ignored (Node owns signals) and shutdown stays clean', async () => {
  const r = await scenario(`
    const m = PyModule.fromString('interrupts', \`
import _thread, asyncio
def interrupt(): _thread.interrupt_main()
async def ok(): return "ok"
\`);
    assert.equal(await m.ok(), 'ok'); // pyembed's asyncio loop is running
    m.interrupt();
    assert.equal(PythonEngine.eval('1 + 1'), 2);
    PythonEngine.shutdown();
    PythonEngine.initialize();
  `);
  assert.doesNotMatch(r.stderr, /Traceback|OSError/, explain(r));
});

// --- failing special methods ---------------------------------------------------------------

const badClasses = `
    const bad = PyModule.fromString('bad', \`
class BadRepr:
    def __repr__(self): raise ValueError("repr broke")
    def __str__(self): raise TypeError("str broke")
class BadGetattr:
    x = 1
    def __getattr__(self, name): raise ValueError("getattr broke: " + name)
class AttrErrorGetattr:
    def __getattr__(self, name): raise AttributeError(name)
class BadGetattribute:
    def __getattribute__(self, name): raise RuntimeError("getattribute broke: " + name)
class BadIter:
    def __iter__(self): raise ValueError("iter broke")
class NotAnIterator:
    def __iter__(self): return 5
class BadNext:
    def __init__(self): self.n = 0
    def __iter__(self): return self
    def __next__(self):
        self.n += 1
        if self.n > 2: raise ValueError("next broke")
        return self.n
class BadLen:
    def __len__(self): raise ValueError("len broke")
class NegativeLen:
    def __len__(self): return -1
class HugeLen:
    def __len__(self): return 2 ** 70
class BadDel:
    deleted = 0
    def __del__(self):
        BadDel.deleted += 1
        raise ValueError("del broke")
class DelCallsJs:
    def __init__(self, f): self.f = f
    def __del__(self): self.f("deleted")
class BadEq:
    def __eq__(self, other): raise ValueError("eq broke")
    __hash__ = object.__hash__
class BadHash:
    def __hash__(self): raise ValueError("hash broke")
class BadContains:
    def __contains__(self, k): raise ValueError("contains broke")
    def __getitem__(self, k): raise KeyError(k)
class BadStrError(Exception):
    def __str__(self): raise ValueError("exception str broke")
def raise_bad_str(): raise BadStrError()
\`);
`;

test('objects whose __repr__ and __str__ fail', async () => {
  const r = await scenario(badClasses + `
    const o = bad.BadRepr();
    assert.throws(() => o.repr(), { type: 'ValueError', message: 'repr broke' });
    assert.throws(() => o.toString(), { type: 'TypeError', message: 'str broke' });
    assert.throws(() => String(o), { type: 'TypeError' });
    assert.throws(() => \`\${o}\`, { type: 'TypeError' });
    // inspection never throws
    assert.equal(inspect(o), '[PyObject (repr failed: repr broke)]');
    console.log('logged:', o);
    // an exception whose __str__ fails still reaches JS, with its type
    assert.throws(() => bad.raise_bad_str(), { type: 'BadStrError', message: '<str() failed: ValueError>' });
    // inside a container converted with toJS: stays a proxy
    assert.equal(PythonEngine.eval('lambda c: [c()]')(bad.BadRepr).toJS()[0].typeName, 'BadRepr');
  `);
  assert.match(r.stdout, /logged: \[PyObject \(repr failed: repr broke\)\]/);
});

test('objects whose __getattr__ and __getattribute__ fail', async () => {
  await scenario(badClasses + `
    const g = bad.BadGetattr();
    assert.equal(g.x, 1);
    assert.throws(() => g.missing, { type: 'ValueError', message: 'getattr broke: missing' });
    assert.throws(() => g.getAttr('missing'), { type: 'ValueError' });
    assert.throws(() => g.hasAttr('missing'), { type: 'ValueError' });
    assert.throws(() => { g.other = 1; g.getAttr('nothing'); }, { type: 'ValueError' });
    assert.equal(g.other, 1);
    // AttributeError is "missing": undefined for property reads, false for hasAttr
    const a = bad.AttrErrorGetattr();
    assert.equal(a.missing, undefined);
    assert.equal(a.hasAttr('missing'), false);
    assert.throws(() => a.getAttr('missing'), { type: 'AttributeError' });
    const ga = bad.BadGetattribute();
    assert.throws(() => ga.anything, { type: 'RuntimeError', message: 'getattribute broke: anything' });
    assert.throws(() => ga.length, { type: 'RuntimeError' });
    assert.equal(ga.typeName, 'BadGetattribute'); // type(o).__name__ does not ask the instance
    assert.equal(ga.isInstance(bad.BadGetattribute), true);
    assert.match(inspect(ga), /BadGetattribute object/);
  `);
});

test('objects whose __iter__, __next__ and __len__ fail', async () => {
  await scenario(badClasses + `
    assert.throws(() => [...bad.BadIter()], { type: 'ValueError', message: 'iter broke' });
    assert.throws(() => [...bad.NotAnIterator()], { type: 'TypeError', message: /non-iterator/ });
    const seen = [];
    assert.throws(() => { for (const x of bad.BadNext()) seen.push(x); }, { type: 'ValueError', message: 'next broke' });
    assert.deepEqual(seen, [1, 2]);
    assert.equal(typeof bad.BadIter().toJS, 'function'); // only iteration fails
    assert.throws(() => bad.BadLen().length, { type: 'ValueError', message: 'len broke' });
    assert.throws(() => bad.NegativeLen().length, { type: 'ValueError', message: /__len__\\(\\) should return >= 0/ });
    assert.throws(() => bad.HugeLen().length, { type: 'OverflowError' });
    assert.throws(() => PythonEngine.eval('len')(bad.BadLen()), { type: 'ValueError' });
  `);
});

test('objects whose __del__ fails or calls back into JS (dispose and garbage collection)', async () => {
  const r = await scenario(badClasses + `
    bad.BadDel().dispose();
    assert.equal(bad.BadDel.deleted, 1);
    (() => { for (let i = 0; i < 50; i++) bad.BadDel(); })();
    await collect();
    assert.equal(bad.BadDel.deleted, 51);
    const seen = [];
    bad.DelCallsJs((s) => seen.push('disposed ' + s)).dispose();
    (() => { for (let i = 0; i < 20; i++) bad.DelCallsJs((s) => seen.push(s)); })();
    await collect();
    assert.equal(seen.length, 21);
    assert.equal(seen[0], 'disposed deleted');
    // __del__ calling JS that calls Python, inside a Py.GIL() scope; and JS that throws
    const scope = Py.GIL();
    bad.DelCallsJs(() => seen.push(PythonEngine.eval('6 * 7'))).dispose();
    scope.dispose();
    assert.equal(seen.at(-1), 42);
    bad.DelCallsJs(() => { throw new Error('thrown in __del__ callback'); }).dispose();
    assert.deepEqual(native.threadState(), [false, 0, 0]);
  `, gc);
  assert.match(r.stderr, /Exception ignored in.*__del__/);
  assert.match(r.stderr, /ValueError: del broke/);
  assert.match(r.stderr, /JSError: Error: thrown in __del__ callback/);
});

test('failing __eq__, __hash__ and __contains__ are PythonErrors', async () => {
  await scenario(badClasses + `
    assert.throws(() => bad.BadEq().equals(1), { type: 'ValueError', message: 'eq broke' });
    const d = PythonEngine.eval('{}');
    assert.throws(() => d.set(bad.BadHash(), 1), { type: 'ValueError', message: 'hash broke' });
    assert.throws(() => Py.toPython(new Set([bad.BadHash()])), { type: 'ValueError' });
    assert.throws(() => bad.BadContains().has(1), { type: 'ValueError', message: 'contains broke' });
    assert.throws(() => bad.BadContains().get(1), { type: 'KeyError' });
    assert.equal(d.length, 0);
  `);
});

// --- memory --------------------------------------------------------------------------------

const tracked = `
    PythonEngine.exec(\`
class Holder:
    alive = 0
    def __init__(self): Holder.alive += 1
    def __del__(self): Holder.alive -= 1
\`);
    const Holder = PythonEngine.eval('Holder');
    const alive = () => PythonEngine.eval('Holder.alive');
`;

// A known limitation (README, "Limits and notes"): a JS function held by Python is a strong V8
// root (a v8::Global), so a cycle through both heaps is invisible to both collectors. What holds:
// dispose() on the proxy breaks such a cycle, and then everything in it is freed.
test('a JS <-> Python reference cycle (closure captured by a Python object JS holds) is freed by dispose()', async () => {
  await scenario(tracked + `
    const exposureBefore = native.stats().exposure;
    let functionsCollected = 0;
    const registry = new FinalizationRegistry(() => functionsCollected++);
    const proxies = [];
    (() => {
      for (let i = 0; i < 1000; i++) {
        const h = Holder();
        const f = () => h.alive; // h -> callback -> closure -> h
        registry.register(f, i);
        h.callback = f;
        proxies.push(h);
      }
    })();
    assert.equal(alive(), 1000);
    assert.equal(native.stats().exposure - exposureBefore, 1000);
    await collect();
    assert.equal(alive(), 1000); // still held by JS (the array): nothing may be freed yet
    for (const h of proxies) h.dispose();
    proxies.length = 0;
    await collect();
    await collect();
    assert.equal(alive(), 0, 'disposed proxies still keep their cycles alive');
    assert.equal(native.stats().exposure, exposureBefore); // Python holds none of the functions
    assert.ok(functionsCollected >= 900, 'JS closures of broken cycles were collected: ' + functionsCollected);
  `, gc);
});

test('a JS <-> Python reference cycle nobody disposes is collected automatically', { todo: 'known limitation, not fixed: the JS function held by Python is a strong V8 root, so neither collector sees the cycle (dispose() breaks it, see above)' }, async () => {
  await scenario(tracked + `
    (() => {
      for (let i = 0; i < 1000; i++) {
        const h = Holder();
        h.callback = () => h.alive; // h -> callback -> closure -> h
      }
    })();
    assert.equal(alive(), 1000);
    await collect();
    await collect();
    assert.equal(alive(), 0, 'Python objects in JS <-> Python cycles were never freed');
  `, gc);
});

test('references between JS and Python without a cycle, or a cycle broken by dispose(), are collected', async () => {
  await scenario(tracked + `
    let functionsCollected = 0;
    const registry = new FinalizationRegistry(() => functionsCollected++);
    (() => {
      for (let i = 0; i < 500; i++) {
        const h = Holder();
        const f = () => i;          // no reference back to h
        registry.register(f, i);
        h.callback = f;
      }
      for (let i = 0; i < 500; i++) {
        const h = Holder();
        h.callback = () => h.alive; // a cycle, broken explicitly
        h.dispose();
      }
    })();
    await collect();
    await collect();
    assert.equal(alive(), 0);
    assert.ok(functionsCollected >= 450, 'JS functions released by Python were collected: ' + functionsCollected);
    assert.equal(native.stats().exposure, 0); // no JS function is reachable from Python any more
  `, gc);
});

test('10 000 proxies created and dropped: Python objects and native handles return to baseline', async () => {
  await scenario(`
    PythonEngine.exec(\`
import gc, sys
class Item:
    alive = 0
    def __init__(self, i):
        self.payload = [i] * 10
        Item.alive += 1
    def __del__(self):
        Item.alive -= 1
shared = object()
def refs(): return sys.getrefcount(shared)
def objects():
    gc.collect()
    return len(gc.get_objects())
\`);
    const getShared = PythonEngine.eval('lambda: shared');
    const Item = PythonEngine.eval('Item');
    const refs = PythonEngine.eval('refs');
    const objects = PythonEngine.eval('objects');
    await collect();
    const base = { refs: refs(), objects: objects(), handles: native.stats().handles };
    (() => { for (let i = 0; i < 10000; i++) { getShared(); Item(i).payload; } })();
    assert.ok(PythonEngine.eval('Item.alive') > 1000, 'proxies keep their objects alive until collected');
    await collect();
    assert.equal(PythonEngine.eval('Item.alive'), 0);
    assert.equal(refs(), base.refs);
    assert.ok(objects() - base.objects < 50, 'gc-tracked Python objects: ' + base.objects + ' -> ' + objects());
    assert.ok(native.stats().handles - base.handles < 50, 'native handles: ' + native.stats().handles);
    // and with dispose() instead of garbage collection
    for (let i = 0; i < 10000; i++) getShared().dispose();
    assert.equal(refs(), base.refs);
  `, gc);
});

// --- conversions ---------------------------------------------------------------------------

test('huge integers cross both ways exactly', async () => {
  await scenario(`
    const echo = PythonEngine.eval('lambda x: x');
    const big = 7n ** 50000n;                        // 140 368 bits, 42 255 decimal digits
    assert.equal(echo(big), big);
    assert.equal(echo(-big), -big);
    assert.equal(PythonEngine.eval('7 ** 50000'), big);
    assert.equal(PythonEngine.eval('lambda x: x == 7 ** 50000 and x.bit_length()')(big), 140368);
    const huge = 1n << 1000000n;
    assert.equal(echo(huge), huge);
    assert.equal(echo(-huge + 1n), -huge + 1n);
    // Python's 4300-digit limit applies to str(), not to pyembed's conversion
    assert.throws(() => PythonEngine.eval('str')(big), { type: 'ValueError', message: /4300/ });
    // the boundaries: safe integers are numbers, everything else stays a bigint
    assert.equal(echo(2n ** 53n - 1n), 2 ** 53 - 1);
    assert.equal(echo(-(2n ** 53n) + 1n), -(2 ** 53) + 1);
    for (const b of [2n ** 53n, -(2n ** 53n), 2n ** 63n - 1n, 2n ** 63n, -(2n ** 63n), -(2n ** 63n) - 1n, 2n ** 64n, 2n ** 64n - 1n]) {
      assert.equal(echo(b), b);
      assert.equal(PythonEngine.eval(b.toString()), b);
    }
    assert.deepEqual(Py.toPython([big, { k: -big }]).toJS(), [big, { k: -big }]);
  `);
});

test('strings with NUL, astral characters and lone surrogates round-trip exactly', async () => {
  await scenario(`
    // Defined result: a JS string arrives in Python as the str of the same UTF-16 code units read
    // as code points (pairs become one astral code point, lone surrogates stay lone surrogates)
    // and comes back identical. Python -> JS is exact too, except that a Python str holding a
    // high and a low surrogate as two code points becomes the same JS string as the astral one.
    const echo = PythonEngine.eval('lambda x: x');
    const pyLen = PythonEngine.eval('len');
    const cases = [['a\\0b', 3], ['\\0', 1], ['\\0'.repeat(1000), 1000], ['🐍', 1], ['x\\ud800', 2], ['\\udc00y', 2],
                   ['\\ud83d', 1], ['\\udfff\\ud800', 2], ['ab\\ud800\\udc00cd\\udfff', 6], ['\\uffff\\ufffe', 2], ['', 0]];
    for (const [s, n] of cases) {
      assert.equal(echo(s), s, JSON.stringify(s));
      assert.equal(pyLen(s), n, 'len of ' + JSON.stringify(s));
      assert.equal(Py.toPython([s]).toJS()[0], s);
    }
    const keys = Py.toPython({ 'k\\ud800': 1, 'n\\0ul': 2, '🐍': 3 }).toJS();
    assert.deepEqual(Object.keys(keys), ['k\\ud800', 'n\\0ul', '🐍']);
    assert.equal(PythonEngine.eval('"\\\\ud800" + "x" + "\\\\x00"'), '\\ud800x\\0');
    assert.equal(PythonEngine.eval('"\\\\ud800\\\\udc00"'), '\\u{10000}'); // the documented collapse
    assert.equal(pyLen(PythonEngine.eval('"\\\\ud800\\\\udc00"')), 1);
    // a NUL in source code is the error Python itself raises (SyntaxError on recent versions,
    // ValueError on 3.9 and 3.10), not a crash
    const nulSource = '"a\\0b"';
    PythonEngine.exec('def compile_error(src):\\n    try:\\n        compile(src, "<s>", "eval")\\n    except Exception as e:\\n        return type(e).__name__');
    const pythonsOwn = PythonEngine.eval('compile_error')(nulSource);
    assert.ok(['SyntaxError', 'ValueError'].includes(pythonsOwn), pythonsOwn);
    assert.throws(() => PythonEngine.eval(nulSource), { type: pythonsOwn });
    assert.throws(() => Py.import('no\\0such'), PythonError);
  `);
});

test('deeply nested structures: clean errors past the limit, in the main thread and in a worker', async () => {
  await scenario(`
    const body = \`
      const out = [];
      const nest = (n) => { let a = []; for (let i = 0; i < n; i++) a = [a]; return a; };
      const pyNest = (n) => PythonEngine.eval('(lambda: (l := [], [l := [l] for _ in range(' + n + ')], l)[2])()');
      const attempt = (f) => { try { f(); return 'ok'; } catch (e) { return e.name + ': ' + e.message; } };
      out.push(attempt(() => PythonEngine.eval('lambda x: 1')(nest(1000))));
      out.push(attempt(() => pyNest(1000).toJS()));
      out.push(attempt(() => PythonEngine.eval('lambda x: 1')(nest(200000))));
      out.push(attempt(() => pyNest(200000).toJS()));
      out.push(PythonEngine.eval('1 + 1'));
    \`;
    const check = (out) => {
      assert.deepEqual(out.slice(0, 2), ['ok', 'ok']);
      assert.match(out[2], /^TypeError: structure nested too deeply to convert$/);
      assert.match(out[3], /^(PythonError: structure nested too deeply to convert to JS|RangeError: Maximum call stack size exceeded)$/);
      assert.equal(out[4], 2);
    };
    check(new Function('PythonEngine', body + 'return out;')(PythonEngine));
    const w = inWorker(body + 'post(out);');
    check((await w.done).messages[0]);
  `);
});

test('JS getters that throw or call Python during argument conversion', async () => {
  await scenario(`
    const echo = PythonEngine.eval('lambda x: x');
    assert.throws(() => echo({ get x() { throw new RangeError('getter broke'); } }), TypeError);
    const arr = [1];
    Object.defineProperty(arr, 0, { get() { throw new Error('index getter broke'); } });
    assert.throws(() => echo(arr), TypeError);
    assert.deepEqual(echo({ get x() { return PythonEngine.eval('6 * 7'); } }).toJS(), { x: 42 });
    assert.throws(() => echo(Symbol('no')), TypeError);
    assert.throws(() => echo({ deep: [new Proxy({}, {})] }), /Proxy/);
    const widget = new (class Widget {})();
    assert.equal(echo(widget), widget);  // by reference now (test/jsproxy.test.ts)
    // Getters run before the call begins (without the GIL), like JS code before it: one that
    // shuts Python down succeeds, and the call then fails cleanly. Proxies met before the getter
    // ran are not smuggled into a new interpreter started by it.
    assert.throws(() => echo({ get x() { PythonEngine.shutdown(); return 1; } }), /shut down/);
    assert.equal(PythonEngine.isInitialized, false);
    PythonEngine.initialize();
    const old = PythonEngine.eval('[1, 2]');
    const restart = { get x() { PythonEngine.shutdown(); PythonEngine.initialize(); return 1; } };
    assert.throws(() => Py.toPython([old, restart]), { name: 'TypeError', message: /interpreter that was shut down/ });
    assert.throws(() => PythonEngine.eval('lambda *a: a')(old, restart), { name: 'TypeError', message: /interpreter that was shut down/ });
    await assert.rejects(PythonEngine.eval('lambda *a: a').callAsync(old, restart), /shut down/);
    assert.deepEqual(PythonEngine.eval('lambda *a: a')({ get x() { return 42; } }).toJS(), [{ x: 42 }]);
  `);
});

test('plain objects with Symbol-keyed properties: the symbols are skipped, never read as strings', async () => {
  await scenario(`
    // Defined result: plain objects and keyword arguments convert their string keys only;
    // Symbol-keyed properties stay in JS.
    const keysOf = PythonEngine.eval('lambda d: sorted(d.keys())');
    const kwKeysOf = PythonEngine.eval('lambda **k: sorted(k.keys())');
    for (const symbol of [Symbol('described'), Symbol(), Symbol.iterator, Symbol.for('registered')]) {
      assert.deepEqual(keysOf({ [symbol]: 1, x: 2 }).toJS(), ['x'], String(symbol));
      assert.deepEqual(keysOf({ [symbol]: 1 }).toJS(), [], String(symbol));
      assert.deepEqual(Py.toPython({ [symbol]: 1, x: 2 }).toJS(), { x: 2 }, String(symbol));
      assert.deepEqual(kwKeysOf(Py.kw({ [symbol]: 1, x: 2 })).toJS(), ['x'], String(symbol));
    }
  `);
});

test('JS getters run without the GIL, like every other JS code', async () => {
  await scenario(`
    const sab = new Int32Array(new SharedArrayBuffer(8));
    const w = inWorker(\`
      PythonEngine.eval('0');
      Atomics.store(workerData, 1, 1); Atomics.notify(workerData, 1);
      Atomics.wait(workerData, 0, 0);
      PythonEngine.eval('1 + 1');
      Atomics.store(workerData, 0, 2); Atomics.notify(workerData, 0);
    \`, sab);
    while (Atomics.load(sab, 1) === 0) await sleep(5);
    let outcome, state;
    PythonEngine.eval('lambda x: x')({ get x() {
      state = native.threadState();
      Atomics.store(sab, 0, 1); Atomics.notify(sab, 0);
      outcome = Atomics.wait(sab, 0, 1, 5000);
      return 1;
    } });
    await w.done;
    assert.notEqual(outcome, 'timed-out', 'the worker could not call Python while a getter ran');
    assert.equal(state[0], false, 'the getter ran holding the GIL');
  `, short);
});

// --- modules and extensions ----------------------------------------------------------------

test('a module whose import fails half-way: clean error, not registered, importable once fixed', async () => {
  await scenario(`
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pyembed-halfway-'));
    fs.writeFileSync(path.join(dir, 'halfway.py'), 'import sys\\nsys.halfway_runs = getattr(sys, "halfway_runs", 0) + 1\\nfirst = 1\\nraise RuntimeError("failed half-way")\\nsecond = 2\\n');
    fs.writeFileSync(path.join(dir, 'uses_halfway.py'), 'import halfway\\n');
    PythonEngine.exec('import sys; sys.path.insert(0, ' + JSON.stringify(dir) + ')');
    assert.throws(() => Py.import('halfway'), (e) => e instanceof PythonError && e.type === 'RuntimeError' &&
      e.message === 'failed half-way' && /halfway\\.py", line 4/.test(e.pythonTraceback));
    assert.equal(PythonEngine.eval('"halfway" in sys.modules'), false);
    assert.throws(() => Py.import('halfway'), { type: 'RuntimeError' });
    assert.throws(() => Py.import('uses_halfway'), { type: 'RuntimeError' });
    assert.equal(PythonEngine.eval('"uses_halfway" in sys.modules'), false);
    assert.equal(PythonEngine.eval('sys.halfway_runs'), 3); // each attempt ran it again
    assert.throws(() => PyModule.fromString('from_string_halfway', 'x = 1\\nraise ValueError("nope")\\ny = 2'), { type: 'ValueError' });
    assert.equal(PythonEngine.eval('"from_string_halfway" in sys.modules'), false);
    assert.throws(() => PyModule.fromString('syntax_halfway', 'x = (\\n'), { type: 'SyntaxError' });
    fs.writeFileSync(path.join(dir, 'halfway.py'), 'first = 1\\nsecond = 2\\n');
    PythonEngine.exec('import importlib; importlib.invalidate_caches()');
    assert.equal(Py.import('halfway').second, 2);
    assert.equal(Py.import('uses_halfway').halfway.first, 1);
    fs.rmSync(dir, { recursive: true, force: true });
  `);
});

test('C extension modules: ctypes calls libc, and a C callback calls into JS', async () => {
  const r = await scenario(`
    const m = PyModule.fromString('ct', \`
import ctypes
libc = ctypes.CDLL(None)
CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
def sort_with(js_compare, values):
    arr = (ctypes.c_int * len(values))(*values)
    cb = CMP(lambda a, b: js_compare(a[0], b[0]))
    libc.qsort(arr, len(arr), ctypes.sizeof(ctypes.c_int), cb)
    return list(arr)
def strlen(b):
    return libc.strlen(b)
\`);
    // JS binary data arrives as a memoryview; Py.bytes() makes the bytes a C API wants
    assert.equal(m.strlen(Py.bytes(Buffer.from('hello\\0world'))), 5);
    let calls = 0;
    assert.deepEqual(m.sort_with((a, b) => (calls++, a - b), [5, 3, 9, 1, -2]).toJS(), [-2, 1, 3, 5, 9]);
    assert.ok(calls > 0);
    // a throwing comparator: ctypes reports and ignores it (comparisons return 0); no crash
    assert.equal(m.sort_with(() => { throw new Error('compare broke'); }, [2, 1]).length, 2);
  `);
  assert.match(r.stderr, /Exception ignored on calling ctypes callback function/);
  assert.match(r.stderr, /JSError: Error: compare broke/);
});

function systemPythonHasNumpy(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import numpy, sysconfig; assert sysconfig.get_config_var("Py_ENABLE_SHARED")'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('numpy imports and works (Debian python3 with python3-numpy)', { skip: systemPythonHasNumpy() ? false : '/usr/bin/python3 has no numpy or no shared libpython' }, async () => {
  await scenario(`
    const np = Py.import('numpy');
    assert.match(PythonEngine.python.executable, /^\\/usr\\/bin\\/python3/);
    const a = np.arange(12).reshape(3, 4);
    assert.deepEqual(a.sum(Py.kw({ axis: 0 })).tolist().toJS(), [12, 15, 18, 21]);
    assert.deepEqual(a.shape.toJS(), [3, 4]);
    assert.equal(np.float64(1.5), 1.5);            // a float subclass: a number
    assert.equal(np.int64(5).typeName, 'int64');  // not an int subclass: a PyObject
    assert.deepEqual(np.frombuffer(new Float64Array([1.5, -2]), Py.kw({ dtype: 'float64' })).tolist().toJS(), [1.5, -2]);
    assert.deepEqual(np.array([1.5]).tobytes().toJS(), new Uint8Array(new Float64Array([1.5]).buffer));
    assert.deepEqual(np.vectorize((x) => x * 2)(np.arange(4)).tolist().toJS(), [0, 2, 4, 6]);
    assert.throws(() => np.arange(2).reshape(5), { type: 'ValueError', message: /cannot reshape/ });
  `, { env: { PYEMBED_PYTHON: '/usr/bin/python3' } });
});

// --- async misuse --------------------------------------------------------------------------

test('callAsync misuse: bad arguments, disposed callables, disposing while in flight', async () => {
  await scenario(`
    const slow = PythonEngine.eval('lambda x: (__import__("time").sleep(0.2), x)[1]');
    await assert.rejects(slow.callAsync(Symbol('x')), TypeError);
    await assert.rejects(slow.callAsync(Py.kw({ x: Symbol('y') })), TypeError);
    const inFlight = slow.callAsync([1, 2]);
    slow.dispose(); // the call keeps its own reference
    assert.deepEqual((await inFlight).toJS(), [1, 2]);
    await assert.rejects(slow.callAsync(1), /disposed/);
    const arg = PythonEngine.eval('[3]');
    const p = PythonEngine.eval('lambda l: (__import__("time").sleep(0.1), l)[1]').callAsync(arg);
    arg.dispose();
    assert.deepEqual((await p).toJS(), [3]);
    await assert.rejects(PythonEngine.eval('len').callAsync(arg), /disposed/);
    const results = await Promise.allSettled(Array.from({ length: 200 }, (_, i) =>
      PythonEngine.eval('lambda i: 1 / (i % 2)').callAsync(i)));
    assert.equal(results.filter((r) => r.status === 'rejected' && r.reason.type === 'ZeroDivisionError').length, 100);
  `);
});
