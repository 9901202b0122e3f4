// Binary data shared between JS and Python without copies.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PythonEngine, Py } from 'pyembed';

import { explain, runScript } from './helpers.js';

PythonEngine.initialize();

test('JS binary data reaches Python as a writable memoryview over the same memory', () => {
  const f64 = new Float64Array([1.5, 2.5, 3.5]);
  const mv = PythonEngine.eval('lambda x: x')(f64);
  assert.equal(mv.typeName, 'memoryview');
  assert.equal(mv.format, 'd');
  assert.equal(mv.itemsize, 8);
  assert.equal(mv.readonly, false);
  assert.deepEqual(mv.tolist().toJS(), [1.5, 2.5, 3.5]);
  PythonEngine.eval('lambda m: m.__setitem__(0, 99.0)')(f64); // Python writes...
  assert.equal(f64[0], 99); // ...JS sees it
  f64[2] = -7; // JS writes...
  assert.equal(mv.get(2), -7); // ...Python sees it
});

test('every TypedArray kind keeps its element type; Buffers and DataViews are bytes', () => {
  const format = PythonEngine.eval('lambda m: (m.format, m.itemsize, len(m))');
  const cases: Array<[ArrayBufferView | ArrayBuffer, [string, number, number]]> = [
    [new Int8Array(3), ['b', 1, 3]], [new Uint8Array(3), ['B', 1, 3]], [new Int16Array(3), ['h', 2, 3]],
    [new Uint16Array(3), ['H', 2, 3]], [new Int32Array(3), ['i', 4, 3]], [new Uint32Array(3), ['I', 4, 3]],
    [new Float32Array(3), ['f', 4, 3]], [new Float64Array(3), ['d', 8, 3]],
    [new BigInt64Array(3), ['q', 8, 3]], [new BigUint64Array(3), ['Q', 8, 3]],
    [Buffer.from('abc'), ['B', 1, 3]], [new DataView(new ArrayBuffer(5)), ['B', 1, 5]], [new ArrayBuffer(4), ['B', 1, 4]],
  ];
  for (const [value, expected] of cases) assert.deepEqual(format(value).toJS(), expected, String(value.constructor.name));
});

test('a slice of a Buffer covers just the slice', () => {
  const whole = Buffer.from('0123456789');
  const part = whole.subarray(2, 5);
  assert.equal(PythonEngine.eval('lambda m: bytes(m)')(part).toString(), "b'234'");
});

test('Python buffers reach JS as TypedArrays over their memory (writable ones shared)', () => {
  const ba = PythonEngine.eval('bytearray(b"abc")');
  const view = ba.toTypedArray();
  assert.ok(view instanceof Uint8Array);
  view[0] = 65; // 'A'
  assert.equal(ba.repr(), "bytearray(b'Abc')");
  PythonEngine.eval('lambda b: b.__setitem__(2, 90)')(ba); // 'Z'
  assert.equal(view[2], 90);
  const ints = PythonEngine.eval('__import__("array").array("i", [1, 2, 3])').toTypedArray();
  assert.ok(ints instanceof Int32Array);
  assert.deepEqual([...ints], [1, 2, 3]);
});

test('read-only buffers come as a copy and Python objects stay unchanged', () => {
  const bytes = PythonEngine.eval('b"hello"');
  const buffer = bytes.getBuffer();
  assert.equal(buffer.readonly, true);
  buffer.data[0] = 0;
  assert.equal(bytes.repr(), "b'hello'");
});

test('a TypedArray from Python keeps its object alive after every Python reference is gone', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    PythonEngine.exec(\`
import weakref
class Holder(bytearray): pass
holder = Holder(b"x" * 1000000)
ref = weakref.ref(holder)
\`);
    async function useView() {
      const view = PythonEngine.eval('holder').toTypedArray();
      PythonEngine.exec('del holder');
      for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 5)); }
      return [PythonEngine.eval('ref() is not None'), view.reduce((a, b) => a + b, 0)];
    }
    const [aliveWithView, sum] = await useView();
    let aliveAfter = true;
    for (let i = 0; i < 20 && aliveAfter; i++) { // the view is garbage now
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 10));
      aliveAfter = PythonEngine.eval('ref() is not None'); // each call drains queued releases
    }
    console.log(JSON.stringify({ aliveWithView, sum, aliveAfter }));
  `, { nodeArgs: ['--expose-gc'] });
  assert.equal(r.code, 0, explain(r));
  const result = JSON.parse(r.stdout);
  assert.equal(result.aliveWithView, true);
  assert.equal(result.sum, 120 * 1000000);
  assert.equal(result.aliveAfter, false);
});

test('JS memory stays alive while Python holds the memoryview', async () => {
  const r = await runScript(`
    import { PythonEngine } from 'pyembed';
    const keep = PythonEngine.eval('lambda m: globals().__setitem__("kept", m)');
    keep(new Float64Array(1000).fill(2.5));
    for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 5)); }
    // Allocate over whatever memory might have been freed.
    const noise = Array.from({ length: 50 }, () => new Float64Array(1000).fill(9));
    console.log(PythonEngine.eval('sum(kept)'), noise.length);
  `, { nodeArgs: ['--expose-gc'] });
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.stdout.trim(), '2500 50');
});

// A numpy array of dtype object (a pandas column of strings is one) exports the bytes of its
// PyObject pointers: a write from JS crashed the process at Python's next use of the array.
test('buffers of Python object pointers are refused; elements with no TypedArray type get a clear error, not a wrong one (numpy from Debian python3)', async () => {
  const r = await runScript(`
    import { PythonEngine, Py, PyModule, PythonError } from 'pyembed';
    PythonEngine.initialize({ python: '/usr/bin/python3' });
    try { Py.import('numpy'); } catch { console.log('SKIP'); process.exit(0); }
    const m = PyModule.fromString('buffers_exotic', [
      'import numpy as np',
      'objs = np.array([object(), "x", 3], dtype=object)',
      'record_with_object = np.zeros(2, dtype=[("ptr", "O"), ("n", "i4")])',
      'record_named_O = np.zeros(2, dtype=[("Opt", "i4"), ("n", "f8")])',
      'complex_ = np.arange(3) * (1 + 2j)',
      'big_endian = np.arange(4, dtype=">i4")',
      'half = np.arange(3, dtype="f2")',
    ].join('\\n'));
    const outcome = (f) => { try { const v = f(); return v?.constructor?.name ?? typeof v; } catch (e) { return [e instanceof PythonError ? e.type : e.constructor.name, e.message]; } };
    const out = {};
    for (const name of ['objs', 'record_with_object']) {
      out[name] = [outcome(() => m[name].getBuffer()), outcome(() => m[name].toTypedArray()),
        outcome(() => PythonEngine.eval('memoryview(a)', { a: m[name] }).toJS())];
    }
    out.objsIntact = PythonEngine.eval('repr(objs[1:])', m.__dict__);
    for (const name of ['record_named_O', 'complex_', 'big_endian', 'half']) {
      const b = m[name].getBuffer();
      out[name] = { contiguous: b.contiguous, strides: b.strides, itemsize: b.itemsize, bytes: b.data.length, typed: outcome(() => m[name].toTypedArray()) };
    }
    console.log(JSON.stringify(out));
  `, { env: { PYEMBED_PYTHON: '/usr/bin/python3' } });
  assert.equal(r.code, 0, explain(r));
  if (r.stdout.trim() === 'SKIP') return;
  const out = JSON.parse(r.stdout);
  for (const name of ['objs', 'record_with_object']) {
    for (const [type, message] of out[name]) {
      assert.equal(type, 'TypeError', name);
      assert.match(message, /Python object pointers \(format '[^']*O[^']*'/, name);
    }
  }
  assert.equal(out.objsIntact, "array(['x', 3], dtype=object)");
  // A field named O... is no object pointer; records are contiguous, counted in items.
  for (const [name, itemsize, count] of [['record_named_O', 12, 2], ['complex_', 16, 3], ['big_endian', 4, 4], ['half', 2, 3]] as const) {
    assert.equal(out[name].contiguous, true, name);
    assert.deepEqual(out[name].strides, [itemsize], name);
    assert.equal(out[name].bytes, itemsize * count, name);
    assert.equal(out[name].typed[0], 'TypeError', name);
    assert.match(out[name].typed[1], /no JS TypedArray type: getBuffer\(\)\.data holds their bytes/, name);
  }
});

test('n-d numpy arrays: dtype, shape, strides, shared writes (numpy from Debian python3)', async () => {
  const r = await runScript(`
    import { PythonEngine, Py } from 'pyembed';
    PythonEngine.initialize({ python: '/usr/bin/python3' });
    let np;
    try { np = Py.import('numpy'); } catch { console.log('SKIP'); process.exit(0); }
    const out = {};
    const a = np.arange(12, Py.kw({ dtype: 'float32' })).reshape(3, 4);
    const data = a.toTypedArray();
    out.kind = data.constructor.name;
    out.values = [...data];
    data[5] = -1;
    out.numpySees = PythonEngine.eval('float(a[1, 1])', { a });
    const t = a.T.getBuffer();
    out.transposed = { shape: t.shape, strides: t.strides, contiguous: t.contiguous };
    try { a.T.toTypedArray(); } catch (e) { out.nonContiguous = e.constructor.name; }
    const reversed = PythonEngine.eval('__import__("numpy").arange(5, dtype="int32")[::-1]').getBuffer();
    out.reversed = { data: [...reversed.data], strides: reversed.strides, offset: reversed.offset };
    // numpy.frombuffer over JS memory: no copy
    const js = new Float64Array([1, 2, 3]);
    const viewed = np.frombuffer(js);
    viewed.__setitem__(0, 10);
    out.frombuffer = [...js];
    out.dtypes = ['int8', 'uint16', 'int64', 'float64', 'bool'].map((d) => np.zeros(2, Py.kw({ dtype: d })).toTypedArray().constructor.name);
    console.log(JSON.stringify(out));
  `, { env: { PYEMBED_PYTHON: '/usr/bin/python3' } });
  assert.equal(r.code, 0, explain(r));
  if (r.stdout.trim() === 'SKIP') return;
  const out = JSON.parse(r.stdout);
  assert.equal(out.kind, 'Float32Array');
  assert.deepEqual(out.values, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.equal(out.numpySees, -1);
  assert.deepEqual(out.transposed, { shape: [4, 3], strides: [1, 4], contiguous: false });
  assert.equal(out.nonContiguous, 'TypeError');
  assert.deepEqual(out.reversed, { data: [0, 1, 2, 3, 4], strides: [-1], offset: 4 });
  assert.deepEqual(out.frombuffer, [10, 2, 3]);
  assert.deepEqual(out.dtypes, ['Int8Array', 'Uint16Array', 'BigInt64Array', 'Float64Array', 'Uint8Array']);
});

test('Py.bytes makes a bytes copy when bytes are needed', () => {
  const js = Buffer.from('abc');
  const b = Py.bytes(js);
  js[0] = 0x7a;
  assert.equal(b.repr(), "b'abc'");
  assert.equal(PythonEngine.eval('lambda b: b.decode()')(b), 'abc');
  assert.throws(() => Py.bytes('abc' as never), TypeError);
});

test('big copies to JS (bytes, read-only buffers) are exact and private however their memory is reused', async () => {
  // Copies of many sizes, made while earlier ones are freed (their memory reused): every copy
  // must show its own bytes, at its own length, and writing into one must change neither
  // Python's object nor another copy.
  const r = await runScript(`
    import { createHash } from 'node:crypto';
    import { PythonEngine } from 'pyembed';
    PythonEngine.exec('import hashlib, os');
    const make = PythonEngine.eval('lambda n: os.urandom(n)');
    const digest = PythonEngine.eval('lambda b: hashlib.sha256(b).hexdigest()');
    const sha = (u8) => createHash('sha256').update(u8).digest('hex');
    const sizes = [2 * 2 ** 20 - 1, 2 * 2 ** 20, 3 * 2 ** 20 + 17, 4 * 2 ** 20, 10 * 2 ** 20, 4 * 2 ** 20 - 5];
    const failures = [];
    let checked = 0;
    for (let round = 0; round < 6; round++) {
      const live = [];
      for (const n of sizes) {
        const py = make(n);
        const expected = digest(py);
        const fromBytes = py.toJS();
        const fromBuffer = py.getBuffer().data;  // bytes are read-only: a copy
        for (const [how, u8] of [['toJS', fromBytes], ['getBuffer', fromBuffer]]) {
          if (u8.length !== n) failures.push(how + ' length ' + u8.length + ' for ' + n);
          else if (sha(u8) !== expected) failures.push(how + ' content differs for ' + n + ' in round ' + round);
          checked++;
        }
        fromBytes.fill(0xee);
        if (digest(py) !== expected) failures.push('writing the copy changed Python bytes of ' + n);
        if (sha(fromBuffer) !== expected) failures.push('one copy shares memory with another, ' + n);
        if (round % 2 === 0) live.push(fromBuffer);  // some stay alive across the next GC
        py.dispose();
      }
      for (const u8 of live) if (u8[0] === undefined) failures.push('lost');
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    console.log(JSON.stringify({ failures, checked }));
  `, { nodeArgs: ['--expose-gc'], timeoutMs: 120_000 });
  assert.equal(r.code, 0, explain(r));
  const result = JSON.parse(r.stdout);
  assert.deepEqual(result.failures, []);
  assert.equal(result.checked, 72);
});
