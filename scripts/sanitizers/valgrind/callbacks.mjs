// valgrind: Python calling JS (same thread, Python threads borrowing the isolate), errors both
// ways, re-entrance, callAsync and coroutines.
import assert from 'node:assert/strict';
import { PythonEngine, PyModule } from 'pyembed';

const m = PyModule.fromString('vg_callbacks', `
import threading, asyncio
def call(f, *a):
    return f(*a)
def in_thread(f, *a):
    out = []
    t = threading.Thread(target=lambda: out.append(f(*a)))
    t.start(); t.join()
    return out[0]
def catch(f):
    try:
        f()
    except Exception as e:
        return type(e).__name__
async def later(x):
    await asyncio.sleep(0.01)
    return x * 2
`);
assert.equal(m.call((a, b) => a + b, 2, 3), 5);
assert.equal(m.in_thread((x) => x * 2, 21), 42);
assert.equal(m.catch(() => { throw new Error('boom'); }), 'JSError');
const original = new RangeError('kept');
assert.throws(() => m.call(() => { throw original; }), (e) => e === original);
const py = PythonEngine.eval('lambda f, n: f(n)');
const down = (k) => (k === 0 ? 0 : 1 + py(down, k - 1));
assert.equal(down(50), 50);
assert.equal(await m.call.callAsync((x) => x + 1, 1), 2);
assert.equal(await m.later(21), 42);
const results = await Promise.all([1, 2, 3].map((x) => m.later.callAsync(x)));
assert.deepEqual(results, [2, 4, 6]);
console.log('OK');
