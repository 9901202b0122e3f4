// valgrind: conversions both ways, deep and shallow, with the awkward values.
import assert from 'node:assert/strict';
import { PythonEngine, Py } from 'pyembed';

const echo = PythonEngine.eval('lambda x: x');
const values = ['', 'ascii', 'latin1 é', 'a\0b', '🐍 astral', 'lone \ud800 high', 'lone \udc00 low', 0, -0, 1.5, NaN,
  Infinity, 2 ** 53 - 1, 2 ** 60, 5n, 2n ** 64n, -(2n ** 200n), true, false, undefined];
for (const v of values) {
  const back = echo(v);
  assert.ok(Object.is(back, typeof v === 'bigint' && v === 5n ? 5 : v), String(v));
}
const data = { list: [1, 'two', [3.5, null, 2n ** 70n]], map: new Map([[1, 'a'], ['k', new Set([1, 2])]]),
  bytes: new Uint8Array([0, 1, 255]), view: new DataView(new ArrayBuffer(4)), nested: { deep: { deeper: ['x\ud800'] } } };
for (let i = 0; i < 50; i++) {
  const py = Py.toPython(data);
  const js = py.toJS();
  assert.equal(js.nested.deep.deeper[0], 'x\ud800');
  assert.deepEqual(Py.toPython(data.map).toJS({ dict: 'map' }).get('k'), new Set([1, 2]));
  py.dispose();
}
// binary data: a memoryview over the JS memory, written from Python, and a bytes copy
assert.equal(PythonEngine.eval('lambda m: repr(bytes(m))')(data.bytes), "b'\\x00\\x01\\xff'");
const shared = new Float64Array([1.5, 2.5]);
PythonEngine.eval('lambda m: m.__setitem__(1, 7.0)')(shared);
assert.equal(shared[1], 7);
assert.equal(Py.bytes(data.bytes).repr(), "b'\\x00\\x01\\xff'");
const typed = PythonEngine.eval('bytearray(b"abc")').toTypedArray();
assert.deepEqual([...typed], [97, 98, 99]);
assert.equal(PythonEngine.eval('7 ** 5000'), 7n ** 5000n);
const cyclic = [1];
cyclic.push(cyclic);
assert.throws(() => echo(cyclic), /cyclic/);
assert.throws(() => echo(Symbol('s')), TypeError);
const dict = PythonEngine.eval('{"a": [1, 2], "b": {"c": b"bytes"}}');
assert.deepEqual(dict.toJS().b.c, new Uint8Array([98, 121, 116, 101, 115]));
for (const x of PythonEngine.eval('(i * i for i in range(5))')) assert.ok(x >= 0);
console.log('OK');
