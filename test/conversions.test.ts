import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PythonEngine, Py, isPyObject, type PyObject } from 'pyembed';

PythonEngine.initialize();
const echo = PythonEngine.eval('lambda x: x');
const pyType = PythonEngine.eval('lambda x: type(x).__name__');
const pyRepr = PythonEngine.eval('repr');

test('JS -> Python primitive rules', () => {
  assert.equal(pyType(undefined), 'NoneType');
  assert.equal(pyType(null), 'NoneType');
  assert.equal(pyType(true), 'bool');
  assert.equal(pyType(7), 'int');
  assert.equal(pyType(7.5), 'float');
  assert.equal(pyType(2 ** 53 - 1), 'int');
  assert.equal(pyType(2 ** 60), 'float'); // not a safe integer: stays a float, so it round-trips
  assert.equal(pyType(-0), 'float');
  assert.equal(pyType(NaN), 'float');
  assert.equal(pyType(Infinity), 'float');
  assert.equal(pyType(5n), 'int');
  assert.equal(pyType(2n ** 100n), 'int');
  assert.equal(pyType('s'), 'str');
  assert.equal(pyType(Buffer.from('ab')), 'memoryview'); // shares the JS memory (buffers.test.ts)
  assert.equal(pyType(new Uint8Array([1])), 'memoryview');
  assert.equal(pyType([1]), 'list');
  assert.equal(pyType({ a: 1 }), 'dict');
  assert.equal(pyType(Object.create(null)), 'dict');
  assert.equal(pyType(new Map([[1, 2]])), 'dict');
  assert.equal(pyType(new Set([1])), 'set');
  assert.equal(pyType(() => 1), 'builtin_function_or_method');
});

test('Python -> JS primitive rules', () => {
  assert.equal(PythonEngine.eval('None'), undefined);
  assert.equal(PythonEngine.eval('True'), true);
  assert.equal(PythonEngine.eval('2**53 - 1'), Number.MAX_SAFE_INTEGER);
  assert.equal(PythonEngine.eval('2**53'), 2n ** 53n);
  assert.equal(PythonEngine.eval('-(2**80)'), -(2n ** 80n));
  assert.equal(PythonEngine.eval('1.5'), 1.5);
  assert.ok(Object.is(PythonEngine.eval('-0.0'), -0));
  assert.ok(Number.isNaN(PythonEngine.eval('float("nan")')));
  assert.equal(PythonEngine.eval('"héllo 🐍"'), 'héllo 🐍');
  assert.ok(isPyObject(PythonEngine.eval('b"x"')));
  assert.ok(isPyObject(PythonEngine.eval('[1]')));
  // int and str subclasses convert as their base type
  assert.equal(PythonEngine.eval('__import__("enum").IntEnum("E", "A B").B'), 2);
});

test('round trips are exact for numbers, bigints, strings', () => {
  const values: unknown[] = [0, 1, -1, 0.1, -0, 1e300, -1e-300, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER,
    2 ** 60, Infinity, -Infinity, 'plain', '', 'ünïcødé', '🐍🐍', 'a\u0000b', true, false, undefined];
  for (const v of values) assert.ok(Object.is(echo(v), v), `round trip of ${String(v)}`);
  assert.ok(Number.isNaN(echo(NaN)));
  for (const big of [2n ** 64n, -(2n ** 64n) - 1n, 2n ** 200n + 12345n]) assert.equal(echo(big), big);
  assert.equal(echo(12n), 12); // Python has one int type: small ints come back as numbers
  assert.equal(echo(null), undefined); // and one None
});

test('lone surrogates survive both ways (UTF-16 is kept, not replaced)', () => {
  const lone = 'a\ud800b';
  assert.equal(echo(lone), lone);
  assert.equal(pyRepr(lone), "'a\\ud800b'");
  assert.equal(PythonEngine.eval('"x\\udc00"'), 'x\udc00');
  assert.equal(PythonEngine.eval('len(s)', { s: '🐍' }), 1); // a pair is one code point
});

test('containers convert deeply both ways', () => {
  const data = { list: [1, 'two', [3.5, null]], nested: { deep: { deeper: [true] } }, big: 2n ** 70n };
  assert.equal(pyRepr(data), "{'list': [1, 'two', [3.5, None]], 'nested': {'deep': {'deeper': [True]}}, 'big': 1180591620717411303424}");
  assert.deepEqual(Py.toPython(data).toJS(), { ...data, list: [1, 'two', [3.5, undefined]] });
  assert.deepEqual(Py.toPython(new Map<unknown, unknown>([['k', 1], [2, 'v']])).toJS({ dict: 'map' }),
    new Map<unknown, unknown>([['k', 1], [2, 'v']]));
  assert.deepEqual(PythonEngine.eval('(1, [2, {"a": (3,)}])').toJS(), [1, [2, { a: [3] }]]);
  assert.deepEqual(Py.toPython(new Set([1, 'a'])).toJS(), new Set([1, 'a']));
});

test('bytes both ways', () => {
  const bytes = Py.bytes(Buffer.from([0, 255, 10]));
  assert.equal(bytes.repr(), "b'\\x00\\xff\\n'");
  assert.deepEqual(bytes.toJS(), new Uint8Array([0, 255, 10]));
  assert.deepEqual(PythonEngine.eval('bytearray(b"ab")').toJS(), new Uint8Array([97, 98]));
  assert.deepEqual(Py.toPython(new Uint8Array([5, 6])).toJS(), new Uint8Array([5, 6])); // memoryview
});

test('large bytes and bytes subclasses become JS copies (Python bytes stay immutable)', () => {
  // Large bytes take another allocation path (uninitialized memory, one copy).
  const big = PythonEngine.eval('bytes(range(256)) * 1024');
  const js = big.toJS() as Uint8Array;
  assert.ok(js instanceof Uint8Array);
  assert.equal(js.length, 256 * 1024);
  assert.equal(js[255], 255);
  assert.equal(js[256 * 1024 - 1], 255);
  js[0] = 99;
  assert.equal(PythonEngine.eval('lambda b: b[0]')(big), 0, 'the copy is not shared with Python');
  const sub = PythonEngine.eval('type("B", (bytes,), {})(b"xyz")');
  assert.deepEqual(sub.toJS(), new Uint8Array([120, 121, 122]));
  // Bytes inside containers convert the same way.
  assert.deepEqual(PythonEngine.eval('[b"q" * 70000]').toJS()[0].length, 70000);
  let seen: Uint8Array | undefined;
  PythonEngine.eval('lambda f: f(b"z" * 100000)')((b: PyObject) => { seen = b.toJS() as Uint8Array; });
  assert.equal(seen?.length, 100000);
  assert.equal(seen?.[99999], 122);
});

test('cycles convert as graphs in both directions (more in graphs.test.ts)', () => {
  const a: unknown[] = [1];
  a.push(a);
  const back = echo(a).toJS() as unknown[];
  assert.equal(back[1], back);
  const l = PythonEngine.eval('(lambda l: (l.append(l), l)[1])([])').toJS() as unknown[];
  assert.equal(l[0], l);
  // shared (acyclic) references stay shared
  const shared = [1];
  const pair = Py.toPython([shared, shared]).toJS() as unknown[];
  assert.deepEqual(pair, [[1], [1]]);
  assert.equal(pair[0], pair[1]);
});

test('values Python cannot take are TypeErrors', () => {
  assert.throws(() => echo(Symbol('x')), TypeError);
  assert.throws(() => echo(new Proxy({}, {})), TypeError);
  // A class instance is no longer refused: it goes by reference (test/jsproxy.test.ts).
  const widget = new (class Widget {})();
  assert.equal(echo(widget), widget);
  assert.throws(() => echo({ nested: [Symbol('deep')] }), TypeError);
});

test('arrays of primitives and nested lists/dicts convert exactly on their fast paths', () => {
  const long = 'x'.repeat(300);
  const values = [0, -1, 2 ** 53 - 1, 1.5, -0, NaN, 'a', long, 'é€😀', true, false, null, undefined];
  const types = PythonEngine.eval('lambda v: [type(x).__name__ for x in v]')(values).toJS();
  assert.deepEqual(types, ['int', 'int', 'int', 'float', 'float', 'float', 'str', 'str', 'str', 'bool', 'bool', 'NoneType', 'NoneType']);
  assert.deepEqual(echo(values).toJS(), [0, -1, 2 ** 53 - 1, 1.5, -0, NaN, 'a', long, 'é€😀', true, false, undefined, undefined]);

  // A primitive array that turns out to hold an object midway: every element is read once.
  let reads = 0;
  const mixed: unknown[] = [1, 2];
  Object.defineProperty(mixed, 1, { get: () => { reads++; return 2; }, enumerable: true });
  mixed.push({ k: [3] }, 'z');
  assert.deepEqual(echo(mixed).toJS(), [1, 2, { k: [3] }, 'z']);
  assert.equal(reads, 1);

  // Records (a list of str-keyed dicts), nested containers, and dicts the fast path leaves to
  // the general rules (non-str keys, very deep nesting).
  assert.deepEqual(PythonEngine.eval('[{"a": i, "b": str(i), "c": [i, {"d": None}]} for i in range(3)]').toJS(), [
    { a: 0, b: '0', c: [0, { d: undefined }] },
    { a: 1, b: '1', c: [1, { d: undefined }] },
    { a: 2, b: '2', c: [2, { d: undefined }] },
  ]);
  assert.deepEqual(PythonEngine.eval('[{1: "one"}, {"x": (1, 2)}]').toJS(), [{ 1: 'one' }, { x: [1, 2] }]);
  const deep = PythonEngine.eval('(lambda: (d := {"v": 0}, [d := {"v": d} for _ in range(100)], d)[-1])()').toJS();
  let depth = 0;
  for (let d = deep as { v: unknown }; typeof d.v === 'object'; d = d.v as { v: unknown }) depth++;
  assert.equal(depth, 100);
  // cyclic structures keep their cycles
  const selfDict = PythonEngine.eval('(d := {}, d.__setitem__("self", d), d)[-1]').toJS() as { self: unknown };
  assert.equal(selfDict.self, selfDict);
  const viaDict = PythonEngine.eval('(l := [], l.append({"l": l}), l)[-1]').toJS() as Array<{ l: unknown }>;
  assert.equal(viaDict[0].l, viaDict);
  const viaTuple = PythonEngine.eval('(l := [], l.append((l,)), l)[-1]').toJS() as unknown[][];
  assert.equal(viaTuple[0][0], viaTuple);
});
