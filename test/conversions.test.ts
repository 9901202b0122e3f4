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

test('big arrays of numbers nested in objects and passed to callAsync: exact, each element read once', async () => {
  const numbers = Array.from({ length: 20_000 }, (_, i) => [i, -0, 0.25, NaN, 2 ** 53][i % 5]);
  const mixed: unknown[] = numbers.slice();
  let reads = 0;
  Object.defineProperty(mixed, 16_384, { get: () => { reads++; return 'stop'; } });
  mixed[19_000] = { k: 1 };
  const expected = numbers.slice() as unknown[];
  expected[16_384] = 'stop';
  expected[19_000] = { k: 1 };
  assert.deepEqual((echo({ data: mixed }).toJS() as { data: unknown[] }).data, expected);
  assert.equal(reads, 1);
  assert.deepEqual(((await echo.callAsync(mixed)) as PyObject).toJS(), expected);
  assert.equal(reads, 2);
  assert.deepEqual(((await echo.callAsync([numbers])) as PyObject).toJS(), [numbers]);
  const types = PythonEngine.eval('lambda d: [type(x).__name__ for x in d["v"][:5]]')({ v: numbers }).toJS();
  assert.deepEqual(types, ['int', 'float', 'float', 'float', 'float']);
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

  // Big arrays read their leading numbers in bulk (chunks of 16 384): the same rules, each
  // element read once, whatever stops the numbers (a string, an object, a getter, a hole).
  const pyTypes = PythonEngine.eval('lambda v: [type(x).__name__ for x in v]');
  const numbers = Array.from({ length: 40_000 }, (_, i) => [i, -i, 2 ** 53 - 1, 2 ** 53, 0.5, -0, NaN, Infinity, 2 ** 31][i % 9]);
  assert.deepEqual(echo(numbers).toJS(), numbers);
  assert.deepEqual(pyTypes(numbers.slice(0, 9)).toJS(), ['int', 'int', 'int', 'float', 'float', 'float', 'float', 'float', 'int']);
  assert.deepEqual(pyTypes(numbers).toJS().slice(0, 9), ['int', 'int', 'int', 'float', 'float', 'float', 'float', 'float', 'int']);
  for (const at of [0, 63, 64, 16_383, 16_384, 16_385, 39_999]) {
    for (const stop of ['s', { k: at }, null, 5n]) {
      const arr: unknown[] = numbers.slice();
      arr[at] = stop;
      const back = echo(arr).toJS() as unknown[];
      assert.equal(back.length, arr.length);
      assert.deepEqual(back[at], stop === null ? undefined : stop === 5n ? 5 : stop, `element ${at}`);
      assert.deepEqual(back.slice(at + 1, at + 4), arr.slice(at + 1, at + 4));
      assert.deepEqual(back.slice(Math.max(0, at - 3), at), arr.slice(Math.max(0, at - 3), at));
    }
    const withGetter = numbers.slice();
    let getterReads = 0;
    Object.defineProperty(withGetter, at, { get: () => { getterReads++; return 7; } });
    assert.equal((echo(withGetter).toJS() as number[])[at], 7);
    assert.equal(getterReads, 1, `the getter at ${at} runs once`);
  }
  const holey = numbers.slice();
  delete holey[20_000];
  assert.equal(PythonEngine.eval('lambda l: l[20000] is None and l[19999] == l[19999]')(holey), true);
  // A getter that shrinks the array (the rest reads as holes), and one that converts another big
  // array on the same thread while the first is being read.
  const shrinking = numbers.slice();
  Object.defineProperty(shrinking, 100, { get() { shrinking.length = 50; return -1; } });
  assert.equal(PythonEngine.eval('lambda l: len(l) == 40000 and l[100] == -1 and l[101] is None and l[39999] is None')(shrinking), true);
  const inner = Array.from({ length: 20_000 }, (_, i) => i * 3);
  const outer = numbers.slice();
  let innerLength = 0;
  Object.defineProperty(outer, 30_000, { get() { innerLength = PythonEngine.eval('len')(inner) as number; return 1; } });
  const outerBack = echo(outer).toJS() as number[];
  assert.equal(innerLength, 20_000);
  assert.deepEqual(outerBack.slice(29_990, 30_010), [...numbers.slice(29_990, 30_000), 1, ...numbers.slice(30_001, 30_010)]);
  assert.deepEqual(outerBack.slice(0, 100), numbers.slice(0, 100));
  // The same, when the getter makes a Python thread call a JS function that returns a big
  // array: that thread borrows this thread's isolate and converts while the first read waits.
  const inThread = PythonEngine.eval(
    '(lambda threading: lambda cb: (lambda out: (lambda t: (t.start(), t.join(), out[0]))(threading.Thread(target=lambda: out.append(cb()))))([])[-1])(__import__("threading"))',
  );
  const outerThreaded = numbers.slice();
  let fromThread: unknown;
  Object.defineProperty(outerThreaded, 20_000, { get() { fromThread = (inThread(() => inner) as PyObject).toJS(); return 2; } });
  const threadedBack = echo(outerThreaded).toJS() as number[];
  assert.deepEqual(fromThread, inner);
  assert.deepEqual(threadedBack.slice(16_380, 20_010), [...numbers.slice(16_380, 20_000), 2, ...numbers.slice(20_001, 20_010)]);
  const throwing = numbers.slice();
  Object.defineProperty(throwing, 17_000, { get() { throw new Error('getter broke at 17000'); } });
  assert.throws(() => echo(throwing), (e: Error) => e instanceof TypeError && /getter broke at 17000/.test(e.message));
  assert.deepEqual(echo(numbers.slice(0, 100)).toJS(), numbers.slice(0, 100));

  // Dict keys are kept by shape (size and first key) between conversions: a dict of the same
  // shape with other keys, in another order, nested in itself, or with non-ASCII and empty keys
  // still gets its own keys.
  const shapes = PythonEngine.eval(`[
    {"a": 1, "b": 2, "c": 3}, {"a": 1, "c": 2, "b": 3}, {"a": 1, "b": 2, "d": 3}, {"a": 1, "b": 2, "c": 3},
    {"a": {"a": {"a": 0, "z": 1}, "y": 2}, "x": 3}, {"": 0, "é": 1, "😀": 2}, {"": 0, "e": 1, "😀": 2},
  ]`);
  const expected = [
    { a: 1, b: 2, c: 3 }, { a: 1, c: 2, b: 3 }, { a: 1, b: 2, d: 3 }, { a: 1, b: 2, c: 3 },
    { a: { a: { a: 0, z: 1 }, y: 2 }, x: 3 }, { '': 0, é: 1, '😀': 2 }, { '': 0, e: 1, '😀': 2 },
  ];
  for (let round = 0; round < 3; round++) {
    const back = shapes.toJS() as object[];
    assert.deepEqual(back, expected);
    assert.deepEqual(back.map((o) => Object.keys(o)), expected.map((o) => Object.keys(o)));
  }
  const sameKeys = PythonEngine.eval('[{f"k{i}": i for i in range(n)} for n in (20000, 3000, 3000)]').toJS() as Record<string, number>[];
  assert.deepEqual(sameKeys.map((o) => Object.keys(o).length), [20000, 3000, 3000]);
  assert.equal(sameKeys[0]!.k19999, 19999);
  assert.equal(sameKeys[2]!.k2999, 2999);

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

test('a dict whose first non-str key comes after str keys follows the general rules for it', () => {
  // Before it: scalar values only, then a container value (the fast path checks the keys left
  // before converting one).
  const mixed = PythonEngine.eval('{"a": 1, "b": 2.5, "c": [1, {"x": None}], 3: "three", "d": True}');
  assert.deepEqual(mixed.toJS(), { a: 1, b: 2.5, c: [1, { x: undefined }], 3: 'three', d: true });
  for (const source of ['{"a": 1, "1": 2, 1: "one"}', '{"a": [1], "1": 2, 1: "one"}']) {
    assert.throws(() => PythonEngine.eval(source).toJS(), { name: 'TypeError', message: /same JS property name '1'/ }, source);
  }
});
