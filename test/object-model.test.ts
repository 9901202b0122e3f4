// Object model parity (issue 15): context managers, Py.float/Py.int, raw results, partial
// conversion, exceptions across round trips, identity.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { isPyObject, Py, PyAsyncContext, PyContext, PyModule, PythonEngine, PythonError, type PyObject } from 'pyembed';

import { explain, runScript } from './helpers.js';

PythonEngine.initialize();
const m = PyModule.fromString('object_model_test', `
log = []

class Manager:
    def __init__(self, suppress=False, value=42):
        self.suppress, self.value = suppress, value
    def __enter__(self):
        log.append("enter")
        return self.value
    def __exit__(self, kind, value, tb):
        log.append(("exit", kind and kind.__name__, value and str(value), value is not None and kind is type(value)))
        return self.suppress

class FailingExit(Manager):
    def __exit__(self, kind, value, tb):
        raise OSError("exit failed")

class AsyncManager:
    def __init__(self, suppress=False):
        self.suppress = suppress
    async def __aenter__(self):
        log.append("aenter")
        return "async value"
    async def __aexit__(self, kind, value, tb):
        log.append(("aexit", kind and kind.__name__, value and str(value)))
        return self.suppress

def take_log():
    taken = list(log)
    log.clear()
    return taken

def float_types(items):
    return [type(x).__name__ for x in items]
`);

function takeLog(): unknown[] {
  return (m.take_log() as PyObject).toJS() as unknown[];
}

// --- item 6: context managers -------------------------------------------------------------

test('Py.with(cm) for using: value is what __enter__ gave, leaving calls __exit__(None, None, None)', () => {
  takeLog();
  {
    using ctx = Py.with(m.Manager());
    assert.ok(ctx instanceof PyContext);
    assert.equal(ctx.value, 42);
    assert.deepEqual(takeLog(), ['enter']);
  }
  assert.deepEqual(takeLog(), [['exit', undefined, undefined, false]]);
});

test('using: a throwing scope still exits (with None x3, as documented) and the error propagates', () => {
  takeLog();
  assert.throws(() => {
    using ctx = Py.with(m.Manager(true));
    void ctx;
    throw new RangeError('in scope');
  }, RangeError);
  assert.deepEqual(takeLog(), ['enter', ['exit', undefined, undefined, false]]);
});

test('disposing twice calls __exit__ once', () => {
  takeLog();
  const ctx = Py.with(m.Manager());
  ctx[Symbol.dispose]();
  ctx[Symbol.dispose]();
  assert.deepEqual(takeLog(), ['enter', ['exit', undefined, undefined, false]]);
});

test('Py.with(cm, fn) returns the callback result after __exit__(None, None, None)', () => {
  takeLog();
  assert.equal(Py.with(m.Manager(false, 10), (v: number) => v * 2), 20);
  assert.deepEqual(takeLog(), ['enter', ['exit', undefined, undefined, false]]);
});

test('Py.with(cm, fn): a JS error reaches __exit__ as a JSError and is rethrown unless suppressed', () => {
  takeLog();
  const thrown = new RangeError('bad range');
  assert.throws(() => Py.with(m.Manager(), () => { throw thrown; }), (e) => e === thrown);
  assert.deepEqual(takeLog(), ['enter', ['exit', 'JSError', 'RangeError: bad range', true]]);

  assert.equal(Py.with(m.Manager(true), () => { throw thrown; }), undefined);
  assert.deepEqual(takeLog(), ['enter', ['exit', 'JSError', 'RangeError: bad range', true]]);
});

test("Py.with(cm, fn): a PythonError reaches __exit__ as its own exception, and suppression honours __exit__'s result", () => {
  takeLog();
  assert.throws(
    () => Py.with(m.Manager(), () => PythonEngine.exec('raise KeyError("k")')),
    (e) => e instanceof PythonError && e.type === 'KeyError',
  );
  assert.deepEqual(takeLog(), ['enter', ['exit', 'KeyError', "'k'", true]]);
  assert.equal(Py.with(m.Manager(true), () => PythonEngine.exec('raise KeyError("k")')), undefined);
  assert.deepEqual(takeLog(), ['enter', ['exit', 'KeyError', "'k'", true]]);
});

test('Py.with: an exception raised by __exit__ replaces the body error, as in Python', () => {
  assert.throws(
    () => Py.with(m.FailingExit(), () => { throw new Error('body'); }),
    (e) => e instanceof PythonError && e.type === 'OSError' && e.message === 'exit failed',
  );
  assert.throws(() => {
    using ctx = Py.with(m.FailingExit());
    void ctx;
  }, (e) => e instanceof PythonError && e.type === 'OSError');
});

test('Py.with: objects without the protocol and bad arguments are clear TypeErrors', () => {
  assert.throws(() => Py.with(PythonEngine.eval('[1]')), (e) => e instanceof PythonError && e.type === 'TypeError' && /context manager protocol/.test(e.message));
  assert.throws(() => Py.with({} as PyObject), TypeError);
  assert.throws(() => Py.with(m.Manager(), 5 as unknown as () => void), TypeError);
});

test('Py.with works with real Python context managers (open files, locks)', () => {
  const threading = Py.import('threading');
  const lock = threading.Lock();
  Py.with(lock, () => assert.equal(lock.locked(), true));
  assert.equal(lock.locked(), false);
  {
    using held = Py.with(lock);
    void held;
    assert.equal(lock.locked(), true);
  }
  assert.equal(lock.locked(), false);
});

test('Py.withAsync: await using calls __aenter__ and __aexit__', async () => {
  takeLog();
  {
    await using ctx = await Py.withAsync(m.AsyncManager());
    assert.ok(ctx instanceof PyAsyncContext);
    assert.equal(ctx.value, 'async value');
  }
  assert.deepEqual(takeLog(), ['aenter', ['aexit', undefined, undefined]]);
});

test('Py.withAsync(cm, fn): the callback error reaches __aexit__; suppression and plain managers work', async () => {
  takeLog();
  await assert.rejects(Py.withAsync(m.AsyncManager(), async () => { throw new TypeError('async body'); }), TypeError);
  assert.deepEqual(takeLog(), ['aenter', ['aexit', 'JSError', 'TypeError: async body']]);
  assert.equal(await Py.withAsync(m.AsyncManager(true), async () => { throw new Error('x'); }), undefined);
  takeLog();
  assert.equal(await Py.withAsync(m.AsyncManager(), async (v: string) => v.toUpperCase()), 'ASYNC VALUE');
  // A plain (synchronous) context manager works with withAsync too.
  assert.equal(await Py.withAsync(m.Manager(false, 7), async (v: number) => v + 1), 8);
  assert.deepEqual(takeLog(), ['aenter', ['aexit', undefined, undefined], 'enter', ['exit', undefined, undefined, false]]);
});

// --- item 4: Py.float / Py.int ------------------------------------------------------------

test('Py.float marks integer-valued numbers as Python floats; plain numbers stay ints', () => {
  assert.deepEqual((m.float_types([Py.float(1), 2, Py.float(3.5), Py.float(2n), Py.float('1e3')]) as PyObject).toJS(),
    ['float', 'int', 'float', 'float', 'float']);
  assert.equal(Py.float(1).repr(), '1.0');
  assert.equal(Py.float('nan').repr(), 'nan');
  assert.throws(() => Py.float('abc'), (e) => e instanceof PythonError && e.type === 'ValueError');
  assert.throws(() => Py.float({} as unknown as number), TypeError);
});

test('Py.int: bigints, integer numbers and digit strings beyond 2^53', () => {
  assert.equal(Py.int('123456789012345678901234567890').repr(), '123456789012345678901234567890');
  assert.equal(Py.int(2n ** 70n).repr(), String(2n ** 70n));
  assert.equal(Py.int('0x_ff').repr(), '255');
  assert.equal(Py.int(5).typeName, 'int');
  assert.throws(() => Py.int(1.5), RangeError);
  assert.throws(() => Py.int('1.5'), (e) => e instanceof PythonError && e.type === 'ValueError');
});

test('numpy: Py.float makes float64 arrays from integer-valued JS numbers', (t) => {
  let np: PyObject;
  try {
    np = Py.import('numpy');
  } catch {
    t.skip('numpy is not installed');
    return;
  }
  assert.equal(String(np.array([1, 2]).dtype), 'int64');
  assert.equal(String(np.array([Py.float(1), Py.float(2)]).dtype), 'float64');
  // toJS of Python floats gives JS numbers: 1.0 comes back as 1 (an int if sent again).
  assert.deepEqual(PythonEngine.eval('[1.0, 2.5]').toJS(), [1, 2.5]);
});

// --- item 5: results without conversion ---------------------------------------------------

test('callRaw and getAttrRaw give PyObjects even for numbers and strings', () => {
  const builtins = Py.import('builtins');
  const n = builtins.int.callRaw('12');
  assert.ok(isPyObject(n));
  assert.equal(n.typeName, 'int');
  assert.equal(n.bit_length(), 4);
  const s = builtins.str.callRaw(3, Py.kw({}));
  assert.equal(s.upper.callRaw().repr(), "'3'");
  const point = PythonEngine.eval('type("P", (), {"x": 1.5})()');
  assert.equal(point.x, 1.5);
  const x = point.getAttrRaw('x');
  assert.ok(isPyObject(x));
  assert.equal(x.is_integer(), false);
  assert.throws(() => point.getAttrRaw('missing'), (e) => e instanceof PythonError && e.type === 'AttributeError');
  // keyword arguments work as in a plain call
  assert.equal(builtins.int.callRaw('ff', Py.kw({ base: 16 })).repr(), '255');
});

test('numpy scalars keep .item() and .dtype with callRaw/getAttrRaw', (t) => {
  let np: PyObject;
  try {
    np = Py.import('numpy');
  } catch {
    t.skip('numpy is not installed');
    return;
  }
  assert.equal(typeof np.float64(1.5), 'number'); // the default stays a JS number
  const scalar = np.float64.callRaw(1.5);
  assert.equal(String(scalar.dtype), 'float64');
  assert.equal(scalar.item(), 1.5);
  const total = np.array([1, 2, 3]).sum.callRaw();
  assert.equal(String(total.dtype), 'int64');
  assert.equal(np.array([1.5]).getAttrRaw('size').typeName, 'int');
});

// --- item 8: partial conversion -----------------------------------------------------------

test('toJS({ depth }) converts that many levels of containers and leaves the rest as PyObjects', () => {
  const obj = PythonEngine.eval('[[1, [2, 3]], {"a": (4,)}, {5}, "s", b"xy"]');
  const one = obj.toJS({ depth: 1 }) as unknown[];
  assert.equal(one.length, 5);
  assert.ok(isPyObject(one[0]) && isPyObject(one[1]) && isPyObject(one[2]));
  assert.equal((one[0] as PyObject).repr(), '[1, [2, 3]]');
  assert.equal(one[3], 's');
  assert.ok(one[4] instanceof Uint8Array); // leaves are not containers: bytes still convert
  const two = obj.toJS({ depth: 2 }) as unknown[];
  assert.equal((two[0] as unknown[])[0], 1);
  assert.ok(isPyObject((two[0] as unknown[])[1]));
  assert.ok(isPyObject((two[1] as Record<string, unknown>).a));
  assert.ok(two[2] instanceof Set && (two[2] as Set<number>).has(5));
  assert.deepEqual(obj.toJS({ depth: Infinity }), obj.toJS());
  assert.ok(isPyObject(obj.toJS({ depth: 0 })));
  // dicts with non-string keys and Maps take the same rule
  const map = PythonEngine.eval('{1: [2]}').toJS({ dict: 'map', depth: 1 }) as Map<number, unknown>;
  assert.ok(isPyObject(map.get(1)));
  assert.throws(() => obj.toJS({ depth: -1 }), RangeError);
  assert.throws(() => obj.toJS({ depth: 1.5 }), RangeError);
});

test("toJS({ buffers: 'pyobject' }) leaves bytes, bytearray and memoryview as PyObjects", () => {
  const obj = PythonEngine.eval('{"b": b"ab", "ba": bytearray(b"c"), "mv": memoryview(b"d"), "n": [1]}');
  const kept = obj.toJS({ buffers: 'pyobject' }) as Record<string, unknown>;
  for (const key of ['b', 'ba', 'mv']) assert.ok(isPyObject(kept[key]), key);
  assert.equal((kept.b as PyObject).typeName, 'bytes');
  assert.deepEqual(kept.n, [1]);
  const converted = obj.toJS() as Record<string, unknown>;
  assert.ok(converted.b instanceof Uint8Array);
  assert.throws(() => obj.toJS({ buffers: 'copy' as 'pyobject' }), TypeError);
});

// --- item 3: exceptions keep their type across round trips --------------------------------

const errors = PyModule.fromString('object_model_errors', `
seen = []

def fail_with_key_error():
    try:
        raise KeyError("inner")
    except KeyError as e:
        seen.append(e)
        raise

def call_and_catch(cb):
    try:
        cb()
    except KeyError as e:
        return ["KeyError", str(e), e is seen[-1]]
    except Exception as e:
        return [type(e).__name__, str(e), False]
    return ["no error", "", False]

def chained():
    try:
        {}["missing"]
    except KeyError as e:
        raise ValueError("outer") from e

def triple():
    try:
        try:
            raise OSError("root")
        except OSError as e:
            raise KeyError("middle") from e
    except KeyError as e:
        raise ValueError("top") from e
`, { filename: '/virtual/object_model_errors.py' });

test('a PythonError a JS callback lets through reaches the outer Python code as the original exception', () => {
  // Python -> JS callback -> Python raises KeyError -> not caught in JS -> Python catches KeyError.
  assert.deepEqual((errors.call_and_catch(() => errors.fail_with_key_error()) as PyObject).toJS(), ['KeyError', "'inner'", true]);
  // Other JS errors still arrive as JSError.
  assert.deepEqual((errors.call_and_catch(() => { throw new TypeError('plain'); }) as PyObject).toJS(),
    ['JSError', 'TypeError: plain', false]);
  // A PythonError rethrown after JS looked at it is still the original.
  assert.deepEqual((errors.call_and_catch(() => {
    try {
      errors.fail_with_key_error();
    } catch (e) {
      assert.ok(e instanceof PythonError && e.type === 'KeyError');
      throw e;
    }
  }) as PyObject).toJS(), ['KeyError', "'inner'", true]);
});

test('raise X from Y gives the PythonError a cause: a PythonError for Y', () => {
  assert.throws(() => errors.chained(), (e) => {
    assert.ok(e instanceof PythonError);
    assert.equal(e.type, 'ValueError');
    assert.ok(e.cause instanceof PythonError);
    assert.equal(e.cause.type, 'KeyError');
    assert.equal(e.cause.message, "'missing'");
    assert.equal(e.cause.pyException?.typeName, 'KeyError');
    return true;
  });
  assert.throws(() => errors.triple(), (e) => {
    const chain: string[] = [];
    for (let c: unknown = e; c instanceof PythonError; c = c.cause) chain.push(c.type);
    assert.deepEqual(chain, ['ValueError', 'KeyError', 'OSError']);
    return true;
  });
  assert.throws(() => PythonEngine.exec('raise KeyError(1)'), (e) => e instanceof PythonError && !('cause' in e));
});

test('the traceback and the cause are made when first read, not when the exception is caught', () => {
  // Counts the calls of the helper that formats tracebacks (issue 14: formatting was ~100x a call).
  const formatted = () => (PythonEngine.eval('_formatted') as PyObject).toJS();
  PythonEngine.exec(`
import _pyembed
_formatted = []
_original_format = _pyembed.format_exception
def _counting_format(exc):
    _formatted.append(type(exc).__name__)
    return _original_format(exc)
_pyembed.format_exception = _counting_format
`);
  try {
    let caught: unknown;
    try {
      errors.chained();
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof PythonError);
    assert.deepEqual(formatted(), [], 'formatted before anything was read');
    assert.match(caught.pythonTraceback, /raise ValueError/);
    assert.match(String(caught.stack), /raise ValueError/);
    assert.deepEqual(formatted(), ['ValueError'], 'formatted once, for both');
    assert.ok(caught.cause instanceof PythonError);
    assert.deepEqual(formatted(), ['ValueError'], 'the cause formatted before its traceback was read');
    assert.match(caught.cause.pythonTraceback, /KeyError/);
    assert.deepEqual(formatted(), ['ValueError', 'KeyError']);
  } finally {
    PythonEngine.exec('_pyembed.format_exception = _original_format');
  }
});

test("pyembed's own frames do not appear in tracebacks", () => {
  for (const run of [
    () => PythonEngine.exec('1/0'),
    () => PythonEngine.eval('1/0'),
    () => PythonEngine.exec('x = 1/0', {}),
    () => PyModule.fromString('object_model_broken', 'def f():\n    return 1/0\nf()\n'),
  ]) {
    assert.throws(run, (e) => {
      assert.ok(e instanceof PythonError && e.type === 'ZeroDivisionError');
      assert.doesNotMatch(e.pythonTraceback, /_pyembed/);
      assert.doesNotMatch(String(e.stack), /<pyembed:_pyembed>/);
      assert.match(e.pythonTraceback, /^Traceback \(most recent call last\):\n {2}File "<pyembed/);
      return true;
    });
  }
});

test('PyModule.fromString(name, code, { filename }) sets __file__ and the traceback file name', () => {
  assert.equal(errors.__file__, '/virtual/object_model_errors.py');
  assert.throws(() => errors.chained(), (e) => e instanceof PythonError &&
    /File "\/virtual\/object_model_errors\.py", line \d+, in chained\n\s+raise ValueError/.test(e.pythonTraceback));
  assert.equal(PyModule.fromString('object_model_default', 'x = 1').__file__, '<pyembed:object_model_default>');
  assert.throws(() => PyModule.fromString('object_model_bad', 'x = 1', { filename: 3 as unknown as string }), TypeError);
});

// --- item 2: identity ---------------------------------------------------------------------

test('the same Python object gives the same PyObject while one is alive', () => {
  const math = Py.import('math');
  assert.equal(Py.import('math'), math);
  assert.equal(math.sqrt, math.sqrt);
  const holder = PythonEngine.eval('type("H", (), {})()');
  PythonEngine.exec('held = None');
  const main = Py.import('__main__');
  main.held = holder;
  assert.equal(main.held, holder);
  assert.equal(main.held, main.getAttr('held'));
  const keys = new Map<PyObject, string>([[math.sqrt, 'sqrt']]);
  assert.equal(keys.get(Py.import('math').sqrt), 'sqrt');
  const weak = new WeakMap<PyObject, number>([[holder, 1]]);
  assert.equal(weak.get(main.held), 1);
  // Items inside converted structures too.
  const pair = (PythonEngine.eval('lambda x: [x, x]')(holder) as PyObject).toJS() as PyObject[];
  assert.equal(pair[0], holder);
  assert.equal(pair[1], holder);
  // Different objects stay different.
  assert.notEqual(PythonEngine.eval('object()'), PythonEngine.eval('object()'));
});

test('after dispose() the object gets a new, live PyObject', () => {
  const main = Py.import('__main__');
  PythonEngine.exec('kept = [1, 2]');
  const first = main.kept;
  first.dispose();
  const second = main.kept;
  assert.notEqual(second, first);
  assert.equal(second.isDisposed, false);
  assert.equal(second.length, 2);
});

test('iterating does not dispose the iterated object, even when it is its own iterator', async () => {
  const gens = PyModule.fromString('object_model_gens', `
def gen():
    yield 1
    yield 2
async def agen():
    yield 1
`);
  const g = gens.gen();
  assert.deepEqual([...g], [1, 2]);
  assert.equal(g.isDisposed, false);
  assert.equal(g.gi_running, false);
  const ag = gens.agen();
  for await (const x of ag) assert.equal(x, 1);
  assert.equal(ag.isDisposed, false);
});

test('identity is safe across garbage collection and restarts (child process)', async () => {
  const r = await runScript(`
import { Py, PythonEngine } from 'pyembed';
PythonEngine.initialize();
const objects = PythonEngine.eval('[object() for _ in range(200)]');
let sameAfterGc = 0;
for (let round = 0; round < 20; round++) {
  for (let i = 0; i < 200; i++) objects.get(i);
  globalThis.gc();
  await new Promise((resolve) => setImmediate(resolve));
  const a = objects.get(round), b = objects.get(round);
  if (a === b && !a.isDisposed) sameAfterGc++;
}
const old = Py.import('math');
PythonEngine.shutdown();
PythonEngine.initialize();
const fresh = Py.import('math');
console.log(sameAfterGc, old.isDisposed, fresh !== old, fresh.isDisposed, fresh.sqrt(4));
`, { nodeArgs: ['--expose-gc'] });
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.stdout.trim(), '20 true true false 2');
});

test('the same JS function passed twice is the same Python object (is, ==, list.remove)', () => {
  const fns = PyModule.fromString('object_model_functions', `
registered = []
def same(a, b):
    return a is b and a == b
def add(cb):
    registered.append(cb)
def remove(cb):
    registered.remove(cb)
    return len(registered)
`);
  const cb = (): number => 1;
  assert.equal(fns.same(cb, cb), true);
  assert.equal(fns.same(cb, () => 1), false);
  fns.add(cb);
  fns.add(cb);
  assert.equal(fns.remove(cb), 1);
  assert.equal(fns.remove(cb), 0);
  // Inside converted structures too.
  assert.equal(PythonEngine.eval('lambda pair: pair[0] is pair[1]')([cb, cb]), true);
});

test('atexit.unregister(cb) works; function identity survives GC churn and a restart (child process)', async () => {
  const r = await runScript(`
import { Py, PyModule, PythonEngine } from 'pyembed';
PythonEngine.initialize();
const atexit = Py.import('atexit');
const kept = () => console.log('kept handler ran');
const removed = () => console.log('removed handler ran');
atexit.register(kept);
atexit.register(removed);
atexit.unregister(removed);
const same = PythonEngine.eval('lambda a, b: a is b');
let distinct = 0;
for (let i = 0; i < 5000; i++) if (!same(() => i, kept)) distinct++;
globalThis.gc();
await new Promise((resolve) => setImmediate(resolve));
for (let i = 0; i < 5000; i++) if (!same(() => i, kept)) distinct++;
console.log('distinct', distinct, 'same', same(kept, kept));
PythonEngine.shutdown();
PythonEngine.initialize();
const again = PythonEngine.eval('lambda a, b: a is b');
console.log('after restart', again(kept, kept), PythonEngine.eval('lambda f: f()')(() => 7));
`, { nodeArgs: ['--expose-gc'] });
  assert.equal(r.code, 0, explain(r));
  const lines = r.stdout.trim().split('\n');
  assert.deepEqual(lines, ['distinct 10000 same true', 'kept handler ran', 'after restart true 7']);
});

// --- item 7: custom conversions (in a child: registrations are process-wide) ---------------

test('registerEncoder, registerDecoder and registerError (child process)', async () => {
  const r = await runScript(`
import { Py, PyModule, PythonError } from 'pyembed';
const out = [];
const decimal = Py.import('decimal');
const m = PyModule.fromString('conversions_child', \`
import dataclasses
def add(a, b): return a + b
def kind(x): return type(x).__name__
@dataclasses.dataclass
class Point:
    x: int
    y: int
class Point3(Point):
    pass
def points(): return [Point(1, 2), {"p": Point3(3, 4)}]
def call(cb): return cb(Point(5, 6))
class AppError(Exception): pass
class SubError(AppError): pass
def fail(): raise SubError("nope")
\`);
class Money { constructor(text) { this.text = text; } }
class Other {}
// Before any registration: class instances go by reference.
out.push('before ' + m.kind(new Money('1')));
Py.registerEncoder(Money, (money) => decimal.Decimal.callRaw(money.text));
out.push(m.kind(new Money('1.10')), m.kind([new Money('2')]).toString());
out.push(m.add(new Money('1.10'), new Money('2.20')).toString());
Py.registerDecoder(decimal.Decimal, (d) => 'D' + d.toString());
out.push(m.add(new Money('1.10'), new Money('2.20')));
out.push(m.add.callRaw(new Money('1'), new Money('2')).typeName);
const dataclasses = Py.import('dataclasses');
Py.registerDecoder(m.Point, (p) => dataclasses.asdict(p).toJS());
out.push(JSON.stringify(m.points().toJS()), JSON.stringify(m.call((p) => p)));
class AppError extends PythonError {}
Py.registerError(m.AppError, AppError);
try { m.fail(); } catch (e) { out.push([e instanceof AppError, e instanceof PythonError, e.name, e.type, e.message].join(' ')); }
out.push('unregistered ' + m.kind(new Other()));
class Loop {}
Py.registerEncoder(Loop, (x) => x);
try { m.kind(new Loop()); } catch (e) { out.push('loop ' + /nested/.test(e.message)); }
class Bad {}
Py.registerEncoder(Bad, () => { throw new Error('enc broke'); });
try { m.kind(new Bad()); } catch (e) { out.push('throwing ' + /enc broke/.test(e.message)); }
try { Py.registerDecoder(Py.import('builtins').dict, (x) => x); } catch (e) { out.push('reserved ' + (e instanceof TypeError)); }
try { Py.registerError(m.AppError, Error); } catch (e) { out.push('error class ' + (e instanceof TypeError)); }
console.log(out.join('\\n'));
`);
  assert.equal(r.code, 0, explain(r));
  assert.deepEqual(r.stdout.trim().split('\n'), [
    'before JsProxy',
    'Decimal',
    'list',
    '3.30',
    'D3.30',
    'Decimal',
    '[{"x":1,"y":2},{"p":{"x":3,"y":4}}]',
    '{"x":5,"y":6}',
    'true true AppError SubError nope',
    'unregistered JsProxy',
    'loop true',
    'throwing true',
    'reserved true',
    'error class true',
  ]);
});
