import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PythonEngine, PythonError, Py, PyModule } from 'pyembed';

PythonEngine.initialize();
const m = PyModule.fromString('callbacks_test', `
import threading

def call(f, *args, **kwargs):
    return f(*args, **kwargs)

def call_in_thread(f, *args):
    out = {}
    def run():
        try:
            out["value"] = f(*args)
        except BaseException as e:
            out["error"] = e
    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]

def catch(f):
    try:
        f()
    except Exception as e:
        return f"caught {type(e).__name__}: {e}"

def count_threads_calling(f, n):
    results = []
    lock = threading.Lock()
    def run(i):
        r = f(i)
        with lock:
            results.append(r)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads: t.start()
    for t in threads: t.join()
    return sorted(results)
`);

test('Python calls a JS function on the same thread', () => {
  assert.equal(m.call((a: number, b: number) => a + b, 2, 3), 5);
  assert.equal(m.call(() => 'text'), 'text');
  // a JS array result is a Python list, which comes back as a proxy
  assert.deepEqual(m.call((...args: unknown[]) => args, 1, 'a').toJS(), [1, 'a']);
  // keyword arguments arrive as one trailing object
  assert.deepEqual(m.call((a: number, kw: { x: number }) => [a, kw.x], 1, Py.kw({ x: 2 })).toJS(), [1, 2]);
});

test('a JS function can be passed around and comes back as itself', () => {
  const f = (x: number) => x + 1;
  assert.equal(PythonEngine.eval('lambda f: f')(f), f);
  assert.equal(PythonEngine.eval('lambda f: f.__name__')(function namedOne() {}), 'namedOne');
});

test('the deadlock case: a sync call joins a Python thread that calls back into JS', () => {
  // JS -> f() synchronously; f starts a thread that calls a JS callback, then joins it.
  assert.equal(m.call_in_thread((x: number) => x * 2, 21), 42);
  assert.deepEqual(m.count_threads_calling((i: number) => i * 10, 8).toJS(), [0, 10, 20, 30, 40, 50, 60, 70]);
});

test('a JS exception becomes a Python exception Python can catch', () => {
  assert.equal(m.catch(() => { throw new TypeError('bad type from JS'); }), 'caught JSError: TypeError: bad type from JS');
});

test('an uncaught JS exception reaches JS again as the original error', () => {
  const original = new RangeError('out of range');
  assert.throws(() => m.call(() => { throw original; }), (e: unknown) => e === original);
  assert.throws(() => m.call_in_thread(() => { throw original; }), (e: unknown) => e === original);
  const thrown = { not: 'an Error' };
  assert.throws(() => m.call(() => { throw thrown; }), (e: unknown) => e === thrown);
});

test('Python exceptions pass through JS callbacks with their type', () => {
  const inner = PythonEngine.eval('lambda: 1 / 0');
  assert.throws(() => m.call(() => inner()), (e: unknown) => e instanceof PythonError && e.type === 'ZeroDivisionError');
});

test('a callback returning a value Python cannot take raises TypeError in Python', () => {
  assert.throws(() => m.call(() => Symbol('x')), { type: 'TypeError' });
});

test('deep re-entrance: JS -> Python -> JS ... 200 levels', () => {
  const py = PythonEngine.eval('lambda f, n: f(n)');
  const down = (n: number): number => (n === 0 ? 0 : 1 + py(down, n - 1));
  assert.equal(down(200), 200);
});

test('unbounded JS <-> Python recursion ends in an error, not a crash', () => {
  const py = PythonEngine.eval('lambda f: f()');
  const forever = (): unknown => py(forever);
  assert.throws(() => forever(), (e: unknown) =>
    e instanceof RangeError || (e instanceof PythonError && e.type === 'RecursionError'));
  assert.equal(py(() => 'still fine'), 'still fine');
});

test('arguments and results of every kind cross a callback on the calling thread', () => {
  const echo = PythonEngine.eval('lambda f, *a: f(*a)');
  const long = 'x'.repeat(300);
  const wide = 'ünïcödé ✓ 🙂';
  // primitives, directly: the result comes back through Python unchanged
  assert.deepEqual(echo((...a: unknown[]) => a.length, 1, 2.5, 'a', true, null), 5);
  for (const v of [0, -1, 2 ** 53 - 1, 1.5, -0, NaN, Infinity, '', 'abc', long, wide, true, false]) {
    assert.ok(Object.is(echo((x: unknown) => x, v), v), String(v));
  }
  assert.equal(echo((x: unknown) => x, undefined), undefined);
  assert.equal(echo(() => null), undefined); // null -> None -> undefined
  assert.equal(echo((x: bigint) => x, 2n ** 70n), 2n ** 70n);
  assert.equal(PythonEngine.eval('lambda f: f(2 ** 60)')((x: unknown) => typeof x), 'bigint'); // past 2**53
  // objects both ways
  const list = PythonEngine.eval('[1, 2, 3]');
  assert.deepEqual(echo((x: { toJS(): unknown }) => x.toJS(), list).toJS(), [1, 2, 3]);
  assert.deepEqual(echo(() => ({ a: [1, 'b'] })).toJS(), { a: [1, 'b'] });
  assert.deepEqual(echo(() => [wide, long]).toJS(), [wide, long]);
  const fn = (): number => 1;
  assert.equal(echo(() => fn), fn);
  // more arguments than the fast path takes, and keywords: the general path
  assert.deepEqual(echo((...a: number[]) => a.reduce((s, x) => s + x, 0), 1, 2, 3, 4, 5, 6, 7, 8), 36);
  // a result whose getter throws, and one Python cannot take
  const bad = { get x() { throw new Error('getter broke'); } };
  assert.throws(() => echo(() => bad), /getter broke/);
  assert.throws(() => echo(() => Symbol('s')), { type: 'TypeError' });
});

test('JSError.js_stack is the JS stack, read when Python first asks for it, from any thread', () => {
  const s = PyModule.fromString('js_stack_test', `
import threading
def catch(f):
    try:
        f()
    except Exception as e:
        return e
def stack_in_thread(f):
    out = []
    t = threading.Thread(target=lambda: out.append(catch(f).js_stack))
    t.start()
    t.join()
    return out[0]
def stack_of(e):
    return e.js_stack
def made_in_python():
    from _pyembed import JSError
    return [JSError("m", "RangeError", "given").js_stack, JSError("m").js_stack]
`);
  function namedThrower(): never {
    throw new TypeError('with a stack');
  }
  const e = s.catch(namedThrower);
  assert.equal(e.name, 'TypeError');
  const stack = s.stack_of(e) as string;
  assert.match(stack, /^TypeError: with a stack\n\s+at namedThrower /);
  assert.equal(s.stack_of(e), stack); // read once, then kept
  assert.match(s.stack_in_thread(namedThrower) as string, /at namedThrower /);
  // a stack that cannot be formatted is empty, not an error
  const saved = Error.prepareStackTrace;
  Error.prepareStackTrace = () => { throw new Error('no stack'); };
  try {
    assert.equal(s.stack_of(s.catch(namedThrower)), '');
  } finally {
    Error.prepareStackTrace = saved;
  }
  assert.equal(s.stack_of(s.catch(() => { throw 'a string'; })), '');
  assert.deepEqual(s.made_in_python().toJS(), ['given', '']);
});
