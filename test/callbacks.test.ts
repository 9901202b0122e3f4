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
