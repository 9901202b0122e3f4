import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { test } from 'node:test';

import { isPyObject, PythonEngine, PythonError, Py, PyModule, type PyObject } from 'pyembed';

PythonEngine.initialize();
const m = PyModule.fromString('objects_test', `
class Point:
    kind = "point"
    def __init__(self, x, y=0):
        self.x, self.y = x, y
    def norm2(self):
        return self.x * self.x + self.y * self.y
    def move(self, dx=0, dy=0):
        self.x += dx; self.y += dy
        return self
    def __repr__(self):
        return f"Point({self.x}, {self.y})"
    def __str__(self):
        return f"({self.x}, {self.y})"
    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

def join(*parts, sep=" "):
    return sep.join(str(p) for p in parts)

def identity(x):
    return x

def count(n):
    for i in range(n):
        yield i * i

numbers = [1, 2, 3]
table = {"a": 1, "b": [1, 2]}
`);

test('module attributes read and write Python attributes', () => {
  assert.deepEqual(m.numbers.toJS(), [1, 2, 3]);
  m.new_attribute = 'hello';
  assert.equal(PythonEngine.eval('__import__("objects_test").new_attribute'), 'hello');
  assert.equal(m.no_such_attribute, undefined); // JS semantics for a missing property
  assert.throws(() => m.getAttr('no_such_attribute'), { type: 'AttributeError' });
  assert.equal(m.hasAttr('numbers'), true);
  assert.equal(m.hasAttr('nope'), false);
  m.delAttr('new_attribute');
  assert.equal(m.hasAttr('new_attribute'), false);
});

test('calls: positional, keywords, methods, classes (with or without new)', () => {
  const p = m.Point(3, 4);
  assert.equal(p.norm2(), 25);
  assert.equal(m.Point(1, Py.kw({ y: 2 })).y, 2);
  assert.equal(new m.Point(5).x, 5);
  assert.equal(m.join(1, 'a', 2.5), '1 a 2.5');
  assert.equal(m.join(1, 'a', 2.5, Py.kw({ sep: ',' })), '1,a,2.5');
  assert.equal(p.move(Py.kw({ dx: 1 })).x, 4);
  assert.equal(p.kind, 'point');
  assert.equal(typeof m.Point, 'function');
  assert.equal(typeof p, 'object');
  // The JS function protocol still works on callables.
  assert.equal(m.join.call(null, 'x', 'y'), 'x y');
  assert.equal(m.join.apply(null, ['x', 'z']), 'x z');
  assert.equal(m.join.bind(null, 'p')('q'), 'p q');
});

test('calling something that is not callable is a PythonError TypeError', () => {
  const notCallable = m.numbers;
  assert.equal(typeof notCallable, 'object');
  assert.throws(() => PythonEngine.eval('numbers()', PythonEngine.eval('vars(__import__("objects_test"))')), {
    type: 'TypeError',
  });
});

test('item access: get, set, has, delete, length', () => {
  const t = m.table;
  assert.equal(t.get('a'), 1);
  t.set('c', 3);
  assert.equal(t.has('c'), true);
  t.delete('c');
  assert.equal(t.has('c'), false);
  assert.throws(() => t.get('zzz'), { type: 'KeyError' });
  assert.equal(t.length, 2);
  assert.equal(m.numbers.get(-1), 3);
  assert.equal(m.Point(1).length, undefined);
});

test('iteration with for...of, generators included', () => {
  assert.deepEqual([...m.count(5)], [0, 1, 4, 9, 16]);
  const keys: unknown[] = [];
  for (const k of m.table) keys.push(k);
  assert.deepEqual(keys, ['a', 'b']);
  assert.throws(() => [...(m.Point(1) as Iterable<unknown>)], { type: 'TypeError' });
});

test('str, repr, typeName, inspect, equality, isinstance', () => {
  const p = m.Point(1, 2);
  assert.equal(String(p), '(1, 2)');
  assert.equal(`${p}`, '(1, 2)');
  assert.equal(p.repr(), 'Point(1, 2)');
  assert.equal(p.typeName, 'Point');
  assert.equal(inspect(p), '[PyObject Point(1, 2)]');
  assert.equal(p.equals(m.Point(1, 2)), true);
  assert.equal(p.equals(m.Point(2, 2)), false);
  assert.equal(p.isInstance(m.Point), true);
  assert.ok(p.dir().includes('norm2'));
});

test('a proxy passed back to Python is the same object (identity kept)', () => {
  const p = m.Point(1, 2);
  const same = m.identity(p);
  assert.equal(PythonEngine.eval('a is b', { a: p, b: same }), true);
  const list = Py.toPython([p, p]);
  assert.equal(PythonEngine.eval('l[0] is l[1] is p', { l: list, p }), true);
  assert.ok(isPyObject(p));
  assert.ok(!isPyObject({}));
});

test('toJS converts containers deeply; other objects stay proxies', () => {
  const value = PythonEngine.eval(`{"l": [1, (2, 3)], "s": {1}, "b": b"ab", "n": None, "p": __import__("objects_test").Point(1)}`);
  const js = value.toJS() as Record<string, unknown>;
  assert.deepEqual(js.l, [1, [2, 3]]);
  assert.deepEqual(js.s, new Set([1]));
  assert.deepEqual(js.b, new Uint8Array([97, 98]));
  assert.equal(js.n, undefined);
  assert.ok(isPyObject(js.p));
  assert.equal((js.p as PyObject).x, 1);
  const map = PythonEngine.eval('{1: "a", (1, 2): "b"}').toJS({ dict: 'map' }) as Map<unknown, unknown>;
  assert.equal(map.get(1), 'a');
  assert.throws(() => PythonEngine.eval('{(1, 2): "b"}').toJS(), { type: 'TypeError' });
  assert.deepEqual(JSON.parse(JSON.stringify(PythonEngine.eval('{"a": [1, 2]}'))), { a: [1, 2] });
});

test('dispose() and using release the reference now; later use is a clear error', () => {
  PythonEngine.exec(`
import weakref
class Tracked: pass
tracked = Tracked()
tracked_ref = weakref.ref(tracked)
`);
  const obj = PythonEngine.eval('tracked');
  PythonEngine.exec('del tracked');
  assert.equal(PythonEngine.eval('tracked_ref() is None'), false);
  obj.dispose();
  obj.dispose(); // idempotent
  assert.equal(obj.isDisposed, true);
  assert.equal(PythonEngine.eval('tracked_ref() is None'), true);
  assert.throws(() => obj.repr(), /disposed/);
  {
    using scoped = PythonEngine.eval('[1, 2, 3]');
    assert.equal(scoped.length, 3);
  }
});

test('pythonnet-style access outside a GIL scope is safe (pyembed takes the GIL itself)', () => {
  const result = m.Point(7, 0);
  // In pythonnet this line would be "unsafe": here it takes the GIL for the attribute read.
  assert.equal(result.x, 7);
});

test('a JS value that Python cannot take is a TypeError and nothing leaks', () => {
  assert.throws(() => m.identity(Symbol('s')), { name: 'TypeError', message: /Symbol/ });
  const selfSet = new Set<unknown>();
  selfSet.add(selfSet);  // a set cannot hold itself in Python
  assert.throws(() => m.identity(selfSet), { type: 'TypeError', message: /unhashable/ });
  class Custom {}
  const custom = new Custom();
  assert.equal(m.identity(custom), custom);  // by reference (test/jsproxy.test.ts)
  assert.throws(() => m.identity(Py.kw({}), 1), { name: 'TypeError', message: /last argument/ });
  assert.equal(m.identity(5), 5);
});

test('errors from Python carry type, message, traceback and the exception', () => {
  PythonEngine.exec(`
def fail_deep(n):
    if n == 0:
        raise ValueError("deep failure")
    fail_deep(n - 1)
`);
  try {
    PythonEngine.eval('fail_deep')(3);
    assert.fail('should have thrown');
  } catch (e) {
    assert.ok(e instanceof PythonError);
    assert.equal(e.type, 'ValueError');
    assert.equal(e.message, 'deep failure');
    assert.match(e.pythonTraceback, /Traceback \(most recent call last\)/);
    assert.match(e.pythonTraceback, /fail_deep\(n - 1\)/);
    assert.match(e.stack ?? '', /ValueError: deep failure/);
    assert.match(e.stack ?? '', /objects\.test/); // the JS frames are kept
    assert.equal(e.pyException?.typeName, 'ValueError');
    assert.deepEqual(e.pyException?.args.toJS(), ['deep failure']);
  }
});

test('missing modules are ModuleNotFoundError', () => {
  assert.throws(() => Py.import('no_such_module_xyz'), { type: 'ModuleNotFoundError' });
  assert.throws(() => PyModule.import(''), TypeError);
});

test('PyModule.fromString registers the module for Python imports; a failing module is not left behind', () => {
  PyModule.fromString('from_string_mod', 'VALUE = 41 + 1');
  assert.equal(PythonEngine.eval('__import__("from_string_mod").VALUE'), 42);
  assert.throws(() => PyModule.fromString('half_broken', 'A = 1\nraise RuntimeError("half way")'), {
    type: 'RuntimeError',
  });
  assert.equal(PythonEngine.eval('"half_broken" in __import__("sys").modules'), false);
});
