// The misuse suite, inputs and conversions: hostile names, source text, containers and binary data,
// each in its own child process (see misuse-harness.ts). Every scenario must end with a clear
// error or the correct result and a healthy process; a crash, an abort or a hang fails it.
// Inside the scenarios' template literals a backslash is doubled: '\\ud800' reaches the child as
// '\ud800', a lone surrogate.
import { test } from 'node:test';

import { gc, scenario, short } from './misuse-harness.js';

// Helpers every scenario below may use (prepended to its body).
const tools = `
  const nest = (n, wrap) => { let x = 1; for (let i = 0; i < n; i++) x = wrap(x); return x; };
  const pyNest = (n, open, close) =>
    PythonEngine.eval('(lambda: (x := None, [x := ' + open + 'x' + close + ' for _ in range(' + n + ')], x)[2])()');
  const errorOf = (f) => { try { f(); return 'no error'; } catch (e) { return (e.type ?? e.name) + ': ' + String(e.message).split('\\n')[0]; } };
  PythonEngine.exec([
    'def compile_error(src, mode="exec"):',
    '    try:',
    '        compile(src, "<s>", mode)',
    '    except Exception as e:',
    '        return type(e).__name__',
    '    return None',
    'def call_and_catch(f, *args):',
    '    try:',
    '        return ["ok", f(*args)]',
    '    except Exception as e:',
    '        return [type(e).__name__, str(e)]',
  ].join('\\n'));
  const compileError = PythonEngine.eval('compile_error');
  const callAndCatch = PythonEngine.eval('call_and_catch');
  const identity = PythonEngine.eval('lambda x: x');
  const pyLen = PythonEngine.eval('len');
`;
const inputs = (body: string, options = {}) => scenario(tools + body, options);

// --- source text and names -------------------------------------------------------------------

test('a lone surrogate in source text is the error compile() gives for it, in eval, exec and fromString', async () => {
  await inputs(`
    for (const [api, source, mode] of [
      [(s) => PythonEngine.eval(s), '"\\ud800"', 'eval'],
      [(s) => PythonEngine.exec(s), '# \\ud800', 'exec'],
      [(s) => PythonEngine.exec(s), 'x = "\\udfff"', 'exec'],
      [(s) => PyModule.fromString('lone_surrogate_mod', s), 's = "\\ud800"', 'exec'],
      [(s) => PythonEngine.eval(s), '"\\ud83d" + "\\ude00"', 'eval'],
    ]) {
      const expected = compileError(source, mode);
      assert.equal(expected, 'UnicodeEncodeError');
      assert.throws(() => api(source), (e) => e instanceof PythonError && e.type === expected && /surrogates not allowed/.test(e.message));
    }
    // a pair written as two escapes in JS is one code point: valid source
    assert.equal(PythonEngine.eval('"\\ud83d\\ude00"'), '\\u{1F600}');
    assert.equal(PyModule.fromString('lone_surrogate_mod', 's = 1').s, 1);
  `);
});

test('a NUL in a module name is a ValueError for import, fromString and expose; nothing is cut or registered', async () => {
  await inputs(`
    const nul = (e) => e instanceof PythonError && e.type === 'ValueError' && /null character/.test(e.message);
    assert.throws(() => Py.import('os\\0'), nul);
    assert.throws(() => PyModule.import('os\\0.path'), nul);
    assert.throws(() => Py.import('\\0'), nul);
    assert.throws(() => PyModule.fromString('made\\0here', 'x = 1'), nul);
    assert.throws(() => PyModule.expose('exposed\\0here', { a: 1 }), nul);
    const modules = PythonEngine.eval('lambda: [k for k in __import__("sys").modules if "made" in k or "exposed" in k or "\\\\x00" in k]');
    assert.deepEqual(modules().toJS(), []);
    // the names without the NUL still work
    assert.equal(Py.import('os').__name__, 'os');
    assert.equal(PyModule.fromString('made', 'x = 2').x, 2);
  `);
});

test('lone surrogates in module names: the import system says the module is missing; fromString and expose keep the name', async () => {
  await inputs(`
    assert.throws(() => Py.import('\\ud800'), (e) => e.type === 'ModuleNotFoundError');
    assert.throws(() => Py.import('os.\\udc00'), (e) => e.type === 'ModuleNotFoundError');
    assert.equal(PyModule.fromString('m\\ud800', 'x = 1').x, 1);
    assert.equal(PyModule.expose('e\\udfff', { a: 7 }).a, 7);
    const names = PythonEngine.eval('lambda: sorted(k for k in __import__("sys").modules if k in ("m\\\\ud800", "e\\\\udfff"))')().toJS();
    assert.deepEqual(names, ['e\\udfff', 'm\\ud800']);
  `);
});

test('attribute names with NUL and lone surrogates reach Python whole (never cut at the NUL)', async () => {
  await inputs(`
    const o = PythonEngine.eval('type("O", (), {"a": 1})()');
    // 'a\\0b' is not 'a': a cut name would find the attribute a
    assert.throws(() => o.getAttr('a\\0b'), (e) => e.type === 'AttributeError');
    assert.equal(o['a\\0b'], undefined);
    assert.equal(o.hasAttr('a\\0b'), false);
    o.setAttr('x\\0y', 5);
    o.setAttr('s\\ud800', 6);
    o['t\\udc00'] = 7;
    const seen = PythonEngine.eval('lambda o: [getattr(o, "x\\\\x00y"), hasattr(o, "x"), getattr(o, "s\\\\ud800"), getattr(o, "t\\\\udc00")]')(o).toJS();
    assert.deepEqual(seen, [5, false, 6, 7]);
    assert.equal(o.getAttr('s\\ud800'), 6);
    assert.equal(o['x\\0y'], 5);
    o.delAttr('x\\0y');
    assert.equal(o.hasAttr('x\\0y'), false);
    assert.throws(() => o.delAttr('x\\0y'), (e) => e.type === 'AttributeError');
    // the name cache must not confuse names that differ only after a NUL
    for (let i = 0; i < 300; i++) assert.equal(o.hasAttr('a\\0' + i), false);
    assert.equal(o.a, 1);
  `);
});

test('keyword names with NUL and lone surrogates arrive whole, in call and callAsync', async () => {
  await inputs(`
    const names = PythonEngine.eval('lambda **kw: sorted(kw)');
    assert.deepEqual(names(Py.kw({ 'a\\0': 1, 'b\\ud800': 2 })).toJS(), ['a\\0', 'b\\ud800']);
    assert.deepEqual((await names.callAsync(Py.kw({ 'c\\0d': 1 }))).toJS(), ['c\\0d']);
    const strict = PythonEngine.eval('lambda *, a: a');
    assert.throws(() => strict(Py.kw({ 'a\\0': 1 })), (e) => e.type === 'TypeError');
  `);
});

test('100 MB source text and names: the right result or the error Python gives, never a crash', async () => {
  await inputs(`
    const big = 100 * 1024 * 1024;
    PythonEngine.exec('#' + 'x'.repeat(big));
    assert.equal(PythonEngine.eval('1 + ' + ' '.repeat(big) + '1'), 2);
    const o = PythonEngine.eval('type("O", (), {})()');
    const name = 'y'.repeat(big);
    assert.throws(() => o.getAttr(name), (e) => e.type === 'AttributeError');
    o.setAttr(name, 3);
    assert.equal(o.getAttr(name), 3);
    assert.equal(PyModule.fromString('big_source', 'x = 1\\n#' + 'z'.repeat(big)).x, 1);
    // with a lone surrogate at the very end: still Python's error for the whole text
    assert.throws(() => PythonEngine.exec('#' + 'x'.repeat(big) + '\\ud800'), (e) => e.type === 'UnicodeEncodeError');
    // Python's import system takes ~15 s over a 100 MB name (its own path searching): 10 MB shows the same
    assert.throws(() => Py.import('m'.repeat(10 * 1024 * 1024)), (e) => e.type === 'ModuleNotFoundError');
  `);
});

test('initialize() with a NUL, a lone surrogate or 100 MB in the python path: a clear error, then Python starts', async () => {
  await scenario(`
    for (const python of ['/usr/bin/python3\\0junk', 'python3\\ud800', 'x'.repeat(100 * 1024 * 1024)]) {
      assert.throws(() => PythonEngine.initialize({ python }), (e) => e instanceof Error && /cannot run the Python interpreter/.test(e.message));
      assert.equal(PythonEngine.isInitialized, false);
    }
  `);
});

// --- arrays: sparse, huge, holes ---------------------------------------------------------------

test('a sparse array of length 2**32 - 1 is a RangeError wherever it appears, at once', async () => {
  await inputs(`
    const a = []; a.length = 2 ** 32 - 1;
    const b = [1]; b[2 ** 32 - 2] = 2;
    const tooLong = (e) => e instanceof RangeError && /too long to convert to Python/.test(e.message);
    for (const huge of [a, b]) {
      assert.throws(() => identity(huge), tooLong);
      assert.throws(() => identity([1, huge]), tooLong);
      assert.throws(() => identity({ k: huge }), tooLong);
      assert.throws(() => identity(new Map([[1, huge]])), tooLong);
      assert.throws(() => identity(new Set([huge])), tooLong);
      assert.throws(() => Py.toPython(huge), tooLong);
      assert.throws(() => PythonEngine.eval('lambda **kw: kw')(Py.kw({ k: huge })), tooLong);
      assert.throws(() => PythonEngine.eval('x', { x: huge }), tooLong);
      assert.throws(() => PyModule.expose('sparse_mod', { huge }), tooLong);
      await assert.rejects(identity.callAsync(huge), /too long to convert to Python/);
    }
    // just over the limit too, and a length at the limit minus a lot is not refused for being long
    const over = []; over.length = 134217726;
    assert.throws(() => identity(over), tooLong);
  `, short);
});

test('a JS function returning a huge sparse array: Python gets a ValueError it can catch', async () => {
  await inputs(`
    const a = []; a.length = 2 ** 32 - 1;
    const [type, message] = callAndCatch(() => a).toJS();
    assert.equal(type, 'ValueError');
    assert.match(message, /too long to convert to Python/);
    const [type2] = callAndCatch(() => ({ nested: [a] })).toJS();
    assert.equal(type2, 'ValueError');
  `, short);
});

test('holes become None; a sparse array of a million converts exactly', async () => {
  await inputs(`
    assert.deepEqual(identity([1, , 3]).toJS(), [1, undefined, 3]);
    assert.equal(PythonEngine.eval('lambda l: l == [1, None, 3]')([1, , 3]), true);
    const sparse = []; sparse[999999] = 'last'; sparse[5] = 5;
    const summary = PythonEngine.eval('lambda l: [len(l), l[5], l[999999], l.count(None)]')(sparse).toJS();
    assert.deepEqual(summary, [1000000, 5, 'last', 999998]);
    const holey = new Array(3); holey[1] = { x: [ , 2] };
    assert.equal(PythonEngine.eval('lambda l: l == [None, {"x": [None, 2]}, None]')(holey), true);
    // an inherited element shows through a hole, as JS reads it
    const proto = [ , 'inherited']; const child = [ , , 'own']; Object.setPrototypeOf(child, proto);
    assert.equal(PythonEngine.eval('lambda l: l')(child).toJS()[1], 'inherited');
  `, short);
});

// --- deep nesting: linear, both directions --------------------------------------------------------

test('100 000-deep Array, object, Map and Set are rejected quickly (no quadratic cycle check)', async () => {
  await inputs(`
    const deep = /structure nested too deeply to convert/;
    const times = {};
    for (const [kind, wrap] of [
      ['array', (x) => [x]], ['object', (x) => ({ x })], ['map', (x) => new Map([['k', x]])],
      ['set', (x) => new Set([x])], ['map key', (x) => new Map([[x, 1]])],
      ['mixed', (x) => [{ m: new Map([[1, new Set([x])]]) }]],
    ]) {
      const value = nest(100000, wrap);
      const start = performance.now();
      assert.throws(() => identity(value), (e) => e instanceof TypeError && deep.test(e.message));
      assert.throws(() => Py.toPython(value), deep);
      times[kind] = Math.round(performance.now() - start);
    }
    console.error('reject 100 000 deep (ms, two conversions each):', JSON.stringify(times));
    // depth the stack allows still converts
    assert.equal(PythonEngine.eval('lambda x: x is not None')(nest(1000, (x) => new Map([['k', x]]))), true);
  `, short);
});

test('100 000-deep nesting in a worker and in a Python callback: clean errors', async () => {
  await inputs(`
    const w = inWorker(\`
      const nest = (n, wrap) => { let x = 1; for (let i = 0; i < n; i++) x = wrap(x); return x; };
      const out = [];
      for (const wrap of [(x) => [x], (x) => ({ x }), (x) => new Map([[1, x]]), (x) => new Set([x])]) {
        try { PythonEngine.eval('lambda x: 1')(nest(100000, wrap)); out.push('ok'); } catch (e) { out.push(e.name + ': ' + e.message); }
      }
      out.push(PythonEngine.eval('2 + 2'));
      post(out);
    \`);
    const { code, messages } = await w.done;
    assert.equal(code, 0);
    assert.equal(messages[0].length, 5);
    for (const m of messages[0].slice(0, 4)) assert.match(m, /^TypeError: structure nested too deeply to convert$/);
    assert.equal(messages[0][4], 4);
    const [type, message] = callAndCatch(() => nest(100000, (x) => new Map([[1, x]]))).toJS();
    assert.equal(type, 'TypeError');
    assert.match(message, /nested too deeply/);
  `, short);
});

test('100 000-deep Python list, dict, tuple and set: toJS() rejects them quickly, every option', async () => {
  await inputs(`
    const deep = (e) => e instanceof PythonError && e.type === 'RecursionError' && /nested too deeply to convert to JS/.test(e.message);
    const times = {};
    for (const [kind, open, close] of [['list', '[', ']'], ['dict', '{"k": ', '}'], ['tuple', '(', ',)'], ['frozenset', 'frozenset([', '])']]) {
      const value = pyNest(100000, open, close);
      const start = performance.now();
      assert.throws(() => value.toJS(), deep);
      assert.throws(() => value.toJS({ dict: 'map' }), deep);
      assert.throws(() => identity([value]).toJS(), deep);
      times[kind] = Math.round(performance.now() - start);
    }
    console.error('toJS() of 100 000 deep (ms, three each):', JSON.stringify(times));
    assert.equal(pyNest(500, '[', ']').toJS().length, 1);
  `, short);
});

test('cycles and shared objects convert as graphs with the hashed memo; a cycle through a set is an error', async () => {
  await inputs(`
    const a = [1]; a.push(a);
    const o = { }; o.self = o;
    const m = new Map(); m.set('m', m);
    let long = {}; const head = long; for (let i = 0; i < 500; i++) long = (long.next = {}); long.next = head;
    assert.equal(PythonEngine.eval('lambda x: x[1] is x')(a), true);
    assert.equal(PythonEngine.eval('lambda x: x["self"] is x')(o), true);
    assert.equal(PythonEngine.eval('lambda x: x["m"] is x')(m), true);
    assert.equal(PythonEngine.eval('lambda x: x[0][0][0]["self"] is x[0][0][0]')([[[o]]]), true);
    assert.equal(PythonEngine.eval('lambda h: (lambda n: ([n := n["next"] for _ in range(501)], n is h)[1])(h)')(head), true);
    // a set cannot hold a set, a list or a dict, so a cycle through one stays a clear error
    const mk = new Map(); mk.set(mk, 1);
    const s = new Set(); s.add(s);
    for (const c of [mk, s, { x: new Map([[1, new Set([a])]]) }]) {
      assert.throws(() => identity(c), /unhashable/);
    }
    const shared = { v: 1 };
    const dag = [shared, shared, { a: shared, b: [shared, shared] }, new Map([[1, shared], [2, shared]])];
    assert.equal(PythonEngine.eval('lambda l: l[0] is l[1] is l[2]["a"] is l[3][2] and l[0] == {"v": 1}')(dag), true);
    // many distinct siblings at one level (hash collisions are compared, not assumed equal)
    const wide = Array.from({ length: 200000 }, (_, i) => ({ i }));
    assert.equal(pyLen(identity(wide)), 200000);
    assert.equal(PythonEngine.eval('lambda l: len(set(map(id, l)))')(wide), 200000);
    const py = PythonEngine.eval('(lambda l: (l.append(l), l)[1])([1])').toJS();
    assert.equal(py[1], py);
    const pyShared = PythonEngine.eval('(lambda d: [d, d, {"x": d}])({"v": 1})').toJS();
    assert.deepEqual(pyShared, [{ v: 1 }, { v: 1 }, { x: { v: 1 } }]);
    assert.ok(pyShared[0] === pyShared[1] && pyShared[1] === pyShared[2].x);
  `, short);
});

// --- getters ----------------------------------------------------------------------------------------

test('getters that throw: a clear TypeError, every container, and the process stays healthy', async () => {
  await inputs(`
    const thrower = () => { throw new Error('getter broke'); };
    const obj = {}; Object.defineProperty(obj, 'x', { get: thrower, enumerable: true });
    const arr = [1, 2]; Object.defineProperty(arr, 1, { get: thrower });
    for (const v of [obj, arr, [obj], { deep: { deeper: arr } }, new Map([[1, obj]]), new Set([arr])]) {
      assert.throws(() => identity(v), (e) => e instanceof TypeError && /getter broke/.test(e.message));
      // rejected, not thrown synchronously
      await assert.rejects(identity.callAsync(v), /getter broke/);
    }
    const [type] = callAndCatch(() => obj).toJS();
    assert.equal(type, 'TypeError');
    assert.equal(identity({ fine: 1 }).toJS().fine, 1);
  `);
});

test('getters that mutate the object being converted: defined results, no stale reads', async () => {
  await inputs(`
    // deletes a later key: it is read as undefined (None), never as freed memory
    const a = { get first() { delete a.second; return 1; }, second: 2 };
    assert.deepEqual(PythonEngine.eval('lambda d: sorted(d.items())')(a).toJS(), [['first', 1], ['second', undefined]]);
    // adds keys: the keys are those listed when conversion began
    const b = { get first() { for (let i = 0; i < 1000; i++) b['k' + i] = i; return 1; } };
    assert.equal(pyLen(identity(b)), 1);
    // truncates the array being converted: the rest reads as holes (None)
    const c = [0, 1, 2, 3]; Object.defineProperty(c, 0, { get() { c.length = 1; return 'first'; } });
    assert.equal(PythonEngine.eval('lambda l: l == ["first", None, None, None]')(c), true);
    // grows the array being converted past the limit of a sparse array: its length was read first
    const d = [1, 2]; Object.defineProperty(d, 0, { get() { d.length = 2 ** 32 - 1; return 0; } });
    assert.equal(pyLen(identity(d)), 2);
    // makes a cycle under a later key: the memo sees it, and the dict holds itself
    const e = { get first() { e.second = e; return 1; }, second: 0 };
    assert.equal(PythonEngine.eval('lambda d: d["second"] is d')(e), true);
    // nests the object 100 000 deep under a later key: still a clean error
    const f = { get first() { f.second = nest(100000, (x) => ({ x })); return 1; }, second: 0 };
    assert.throws(() => identity(f), /nested too deeply/);
    // a Map cleared while its entries convert: its entries were taken at the start
    const m = new Map([[1, { get v() { m.clear(); return 'v'; } }], [2, 'two']]);
    assert.equal(pyLen(identity(m)), 2);
    // detaches an ArrayBuffer that an earlier element shares with Python
    const buffer = new ArrayBuffer(16); new Uint8Array(buffer).fill(7);
    const g = [new Uint8Array(buffer), { get later() { structuredClone(buffer, { transfer: [buffer] }); return 1; } }];
    assert.deepEqual(PythonEngine.eval('lambda l: [bytes(l[0]), l[1]["later"]]')(g).toJS(), [new Uint8Array(16).fill(7), 1]);
  `);
});

// --- binary data ----------------------------------------------------------------------------------------

test('a resizable ArrayBuffer (and any view of one) is a clear TypeError naming Py.bytes; Py.bytes copies it exactly', async () => {
  await inputs(`
    const rab = new ArrayBuffer(8, { maxByteLength: 64 });
    new Uint8Array(rab).set([1, 2, 3, 4, 5, 6, 7, 8]);
    const refused = (e) => e instanceof TypeError && /resizable ArrayBuffer/.test(e.message) && /Py\\.bytes/.test(e.message);
    for (const v of [rab, new Uint8Array(rab), new Uint8Array(rab, 2), new Float64Array(rab), new DataView(rab), [new Int16Array(rab)], { b: rab }]) {
      assert.throws(() => identity(v), refused);
    }
    await assert.rejects(identity.callAsync(rab), /resizable ArrayBuffer/);
    assert.deepEqual(Py.bytes(rab).toJS(), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    assert.deepEqual(Py.bytes(new Uint8Array(rab, 2)).toJS(), new Uint8Array([3, 4, 5, 6, 7, 8]));
    assert.deepEqual(Py.bytes(new Uint8Array(rab, 2, 3)).toJS(), new Uint8Array([3, 4, 5]));
    rab.resize(3);
    assert.deepEqual(Py.bytes(new Uint8Array(rab)).toJS(), new Uint8Array([1, 2, 3]));
    rab.resize(32);
    assert.equal(pyLen(Py.bytes(rab)), 32);
    // a fixed-length ArrayBuffer is still shared, writable both ways
    const fixed = new Uint8Array(4);
    PythonEngine.eval('lambda v: v.__setitem__(0, 9)')(fixed);
    assert.equal(fixed[0], 9);
  `);
});

test('a growable SharedArrayBuffer is shared at its length when passed; growing later keeps the view valid', async () => {
  await inputs(`
    const gsab = new SharedArrayBuffer(8, { maxByteLength: 4096 });
    const bytes = new Uint8Array(gsab); // length-tracking
    bytes.set([1, 2, 3, 4, 5, 6, 7, 8]);
    const view = identity(bytes);
    PythonEngine.eval('lambda v: v.__setitem__(0, 42)')(view);
    assert.equal(bytes[0], 42);
    gsab.grow(4096);
    assert.equal(bytes.length, 4096);
    // the view Python holds keeps the length it had, and reads what JS writes
    bytes[7] = 99;
    assert.deepEqual(PythonEngine.eval('lambda v: [len(v), v[0], v[7]]')(view).toJS(), [8, 42, 99]);
    // passed again, the length-tracking view has the new length
    assert.equal(pyLen(identity(bytes)), 4096);
    assert.deepEqual(PythonEngine.eval('lambda v: [v.format, v.itemsize, len(v)]')(new Float64Array(gsab, 8, 2)).toJS(), ['d', 8, 2]);
    // a fixed SharedArrayBuffer too
    const sab = new SharedArrayBuffer(4);
    PythonEngine.eval('lambda v: v.__setitem__(3, 7)')(sab);
    assert.equal(new Uint8Array(sab)[3], 7);
  `);
});

test('detached buffers: empty when passed detached; memory Python holds stays readable after JS detaches it', async () => {
  await inputs(`
    const ab = new ArrayBuffer(8); new Uint8Array(ab).fill(5);
    const before = new Uint8Array(ab, 2);
    const held = identity(new Uint8Array(ab));
    structuredClone(ab, { transfer: [ab] });
    assert.equal(ab.byteLength, 0);
    assert.deepEqual(PythonEngine.eval('lambda v: [len(v), bytes(v)]')(held).toJS(), [8, new Uint8Array(8).fill(5)]);
    assert.equal(pyLen(identity(ab)), 0);
    assert.equal(pyLen(identity(before)), 0);
    assert.equal(pyLen(Py.bytes(before)), 0);
    await collect();
    assert.equal(PythonEngine.eval('lambda v: sum(v)')(held), 40);
    // transferred to a worker while Python holds a view
    const ab2 = new ArrayBuffer(4); new Uint8Array(ab2).fill(1);
    const held2 = identity(ab2);
    const w = inWorker('post(new Uint8Array(workerData.b).reduce((s, x) => s + x, 0));', { b: ab2 });
    w.worker.postMessage(0);
    const sum = await w.next();
    assert.equal(sum, 4);
    await w.done;
    assert.equal(PythonEngine.eval('lambda v: sum(v)')(held2), 4);
  `, gc);
});

test('strided and n-d memoryviews: toJS() refuses them (ValueError naming getBuffer), getBuffer() describes them exactly', async () => {
  await inputs(`
    const refused = (e) => e instanceof PythonError && e.type === 'ValueError' && /getBuffer\\(\\)/.test(e.message);
    const cases = {
      step2: 'memoryview(b"123456")[::2]',
      reversed: 'memoryview(b"123456")[::-1]',
      twoD: 'memoryview(b"123456").cast("B", (2, 3))',
      writableStep: 'memoryview(bytearray(b"abcdef"))[1::2]',
      ints: '(lambda a: memoryview(a)[::2])(__import__("array").array("i", [1, 2, 3, 4]))',
    };
    for (const [name, src] of Object.entries(cases)) {
      const mv = PythonEngine.eval(src);
      assert.throws(() => mv.toJS(), refused, name);
      assert.throws(() => PythonEngine.eval('lambda x: [x]')(mv).toJS(), refused, name);
      // getBuffer(): reading data at offset + sum(index * stride) gives what tolist() gives
      const { data, shape, strides, offset } = mv.getBuffer();
      const flat = [];
      const walk = (d, at) => { if (d === shape.length) { flat.push(Number(data[at])); return; } for (let i = 0; i < shape[d]; i++) walk(d + 1, at + i * strides[d]); };
      walk(0, offset);
      const expected = PythonEngine.eval('lambda m: [x for x in __import__("itertools").chain.from_iterable(m.tolist()) ] if m.ndim > 1 else m.tolist()')(mv).toJS();
      assert.deepEqual(flat, expected, name);
      if (name !== 'twoD') assert.throws(() => mv.toTypedArray(), /not C-contiguous/, name);
    }
    // contiguous ones still convert, shared when writable
    assert.deepEqual(PythonEngine.eval('memoryview(b"123")').toJS(), new Uint8Array([49, 50, 51]));
    const ba = PythonEngine.eval('bytearray(b"xyz")');
    const shared = PythonEngine.eval('memoryview')(ba).toJS();
    shared[0] = 65;
    assert.equal(PythonEngine.eval('lambda b: bytes(b)')(ba).toJS()[0], 65);
    assert.deepEqual(PythonEngine.eval('memoryview(b"123456")[1:3]').toJS(), new Uint8Array([50, 51]));
    assert.deepEqual(PythonEngine.eval('memoryview(b"123456")[::2][:1]').toJS(), new Uint8Array([49]));
  `);
});

test('toJS() dict keys: int keys of any size become their decimal text; collisions still refused', async () => {
  await inputs(`
    const keys = PythonEngine.eval('{10**20: "a", -10**30: "b", 2**64: "c", 7: "d"}').toJS();
    assert.deepEqual(Object.keys(keys).sort(), ['-1000000000000000000000000000000', '100000000000000000000', '18446744073709551616', '7'].sort());
    assert.equal(keys[String(10n ** 20n)], 'a');
    assert.equal(keys[String(-(10n ** 30n))], 'b');
    assert.throws(() => PythonEngine.eval('{10**20: 1, "100000000000000000000": 2}').toJS(), /same JS property name/);
    assert.deepEqual([...PythonEngine.eval('{10**20: 1}').toJS({ dict: 'map' }).keys()], [10n ** 20n]);
    assert.throws(() => PythonEngine.eval('{(1, 2): 1}').toJS(), /cannot become a JS object key/);
  `);
});

test('odd strings as values: NUL, lone surrogates and 100 MB strings round-trip both ways', async () => {
  await inputs(`
    for (const s of ['\\0', 'a\\0b', '\\ud800', '\\udc00x', 'x\\ud83d', '\\udfff\\ud800', '\\0\\ud800\\0']) {
      assert.equal(identity(s), s);
      assert.equal(identity([s]).toJS()[0], s);
      assert.deepEqual(Object.keys(identity({ [s]: 1 }).toJS()), [s]);
    }
    const big = 'ab'.repeat(50 * 1024 * 1024) + '\\ud800';
    assert.equal(pyLen(big), big.length);
    assert.equal(identity(big) === big, true);
  `);
});

test('a JS function returning 100 000-deep or cyclic values to Python: errors Python can catch', async () => {
  await inputs(`
    const cyc = new Set(); cyc.add(cyc);
    for (const make of [() => nest(100000, (x) => [x]), () => nest(100000, (x) => new Set([x])), () => cyc]) {
      const [type, message] = callAndCatch(make).toJS();
      assert.equal(type, 'TypeError');
      assert.match(message, /nested too deeply|unhashable/);
    }
    const deepPy = pyNest(100000, '[', ']');
    // the PythonError that toJS() threw reaches Python as its own exception (not a JSError)
    const [type] = callAndCatch((x) => x.toJS(), deepPy).toJS();
    assert.equal(type, 'RecursionError');
  `, short);
});

test('callAsync with hostile arguments rejects cleanly and the pool keeps working', async () => {
  await inputs(`
    const sparse = []; sparse.length = 2 ** 32 - 1;
    const rab = new ArrayBuffer(1, { maxByteLength: 2 });
    const cyc = new Set(); cyc.add(cyc);  // a set cannot hold itself in Python
    for (const bad of [sparse, nest(100000, (x) => ({ x })), rab, cyc, { k: sparse }]) {
      await assert.rejects(identity.callAsync(bad));
      await assert.rejects(PythonEngine.eval('lambda **k: k').callAsync(Py.kw({ v: bad })));
    }
    // a cyclic array is a graph, converted on the pool's thread too
    const selfArray = []; selfArray.push(selfArray);
    assert.equal(await PythonEngine.eval('lambda x: x[0] is x').callAsync(selfArray), true);
    assert.equal(await PythonEngine.eval('lambda **k: k["v"][0] is k["v"]').callAsync(Py.kw({ v: selfArray })), true);
    assert.equal(await PythonEngine.eval('lambda x: x * 2').callAsync(21), 42);
  `, short);
});
