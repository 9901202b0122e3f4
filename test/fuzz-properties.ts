// Property-based tests of pyembed's conversions, shared by the quick run in `npm test`
// (test/fuzz.test.ts) and the long run behind `npm run fuzz` (test/fuzz-long.mjs).
//
// What "exact" means here (the conversion rules of the README, applied deeply):
//
//   JS -> Python -> JS (`Py.toPython(v).toJS()`):
//     - undefined and null both become None, which comes back as undefined;
//     - booleans and strings come back identical (NUL, astral characters and lone surrogates
//       included: strings are compared code unit by code unit);
//     - every number comes back Object.is-identical: -0, NaN, ±Infinity and unsafe integers
//       travel as Python floats, safe integers as Python ints;
//     - a bigint comes back identical when it is outside the safe-integer range, and as the
//       equal number inside it (Python has one int type);
//     - every TypedArray, DataView, Buffer and ArrayBuffer arrives as a `memoryview` over the
//       bytes of the view (byteOffset and byteLength respected) and comes back as a TypedArray of
//       exactly those bytes: of the same element type for a TypedArray (Uint8ClampedArray, whose
//       format is plain bytes, comes back as a Uint8Array), a Uint8Array for a DataView, a
//       Buffer and an ArrayBuffer;
//     - arrays, plain objects (null-prototype ones too), Maps and Sets are converted deeply:
//       arrays come back as arrays (holes of sparse arrays as undefined: they become None); objects and Maps as plain objects (keys as strings), or, with
//       `toJS({ dict: 'map' })`, both as Maps; Sets as Sets.
//   Python -> JS (`toJS()` of a value made by Python source code) is compared with Python's own
//   view of the same value (a tagged description computed in Python, with `json.dumps` for the
//   exact text of strings): int -> number if safe else bigint, float -> the same double,
//   str -> the same UTF-16 text as json.dumps gives, bytes/bytearray -> Uint8Array of the same
//   bytes, list/tuple -> Array, dict -> object (or Map, in Python's iteration order),
//   set/frozenset -> Set (in Python's iteration order), anything else -> a PyObject whose repr()
//   is Python's repr.
//
//   Hostile shapes (issue 10) must give a clear error or the exact result: a sparse array longer
//   than 134 217 725 anywhere in a value is a RangeError; nesting deeper than any stack (150 000+
//   levels of mixed Arrays, objects, Maps, Sets) a TypeError, and shallow nesting converts
//   exactly; a resizable ArrayBuffer is a TypeError while Py.bytes() copies it exactly, and a
//   growable SharedArrayBuffer is shared (a write from Python is seen in JS); attribute and
//   keyword names with NULs and lone surrogates reach Python whole, a NUL in a module name is a
//   ValueError; source text with a lone surrogate is the UnicodeEncodeError compile() gives.
//
// Generators avoid only what one side cannot represent distinctly: Map keys and Set elements that
// are equal in Python (1, 1n, 1.0 and true) are generated at most once per container; Python dict
// keys in object mode are distinct as JS property names (1 and "1" are one name); a Python set or
// dict gets at most one NaN (JS Sets and Maps cannot hold two), and a -0.0 in a Python set or as a
// dict key comes back as 0 (JS Sets and Maps normalize -0).
import assert from 'node:assert/strict';

import fc from 'fast-check';
import { isPyObject, PyModule, PythonEngine, Py, type PyCallable, type PyObject } from 'pyembed';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

// --- generators: JS values ------------------------------------------------------------------

/** One UTF-16 string unit or one astral character: NUL, lone surrogates and pairs included. */
const char: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }).map((c) => String.fromCodePoint(c)) },
  { weight: 1, arbitrary: fc.constantFrom('\0', '\n', "'", '"', '\\', '\u2028', '\ufeff', '\uffff', '🐍') },
);
export const jsString: fc.Arbitrary<string> = fc.array(char, { maxLength: 16 }).map((a) => a.join(''));

const specialNumbers = [-0, 0, NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53), 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 60,
  Number.MIN_VALUE, -Number.MIN_VALUE, Number.MAX_VALUE, Number.EPSILON, 0.1, 1e21, 2 ** 31, -(2 ** 31) - 1, 2 ** 63];
export const jsNumber: fc.Arbitrary<number> = fc.oneof(
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double(),
  fc.constantFrom(...specialNumbers),
);
export const jsBigInt: fc.Arbitrary<bigint> = fc.oneof(
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
  fc.bigInt({ min: -(2n ** 2000n), max: 2n ** 2000n }),
  fc.constantFrom(0n, MAX_SAFE, -MAX_SAFE, MAX_SAFE + 1n, -MAX_SAFE - 1n, 2n ** 63n, -(2n ** 63n), 2n ** 64n - 1n, -(2n ** 64n)),
);

/** TypedArrays, DataViews, Buffers and ArrayBuffers, views with offsets included. */
export const jsBinary: fc.Arbitrary<ArrayBufferView | ArrayBuffer> = fc
  .tuple(fc.uint8Array({ maxLength: 48 }), fc.nat(), fc.nat(), fc.constantFrom(
    'Uint8Array', 'Int8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
    'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array', 'DataView', 'Buffer', 'ArrayBuffer'))
  .map(([bytes, a, b, kind]) => {
    const buffer = bytes.slice().buffer;
    if (kind === 'ArrayBuffer') return buffer;
    if (kind === 'Buffer') return Buffer.from(buffer, a % (bytes.length + 1));
    if (kind === 'DataView') {
      const offset = a % (bytes.length + 1);
      return new DataView(buffer, offset, b % (bytes.length - offset + 1));
    }
    const Ctor = (globalThis as unknown as Record<string, new (b: ArrayBuffer, o: number, n: number) => ArrayBufferView>)[kind]!;
    const size = (Ctor as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    const slots = Math.floor(bytes.length / size);
    const first = slots === 0 ? 0 : a % (slots + 1);
    return new Ctor(buffer, first * size, b % (slots - first + 1));
  });

/** A key Python considers equal for equal values (1, 1n, 1.0, true are one key; -0 is 0). */
function pythonKey(k: unknown): string {
  if (k === null || k === undefined) return 'none';
  if (typeof k === 'string') return 's:' + k;
  if (typeof k === 'boolean') return 'n:' + (k ? 1 : 0);
  if (typeof k === 'bigint') return 'n:' + k;
  if (typeof k === 'number') {
    if (Number.isNaN(k)) return 'nan';
    if (Number.isInteger(k)) return 'n:' + BigInt(k);
    return 'f:' + k;
  }
  throw new Error('not a key');
}

const hashable: fc.Arbitrary<unknown> = fc.oneof(jsString, jsNumber, jsBigInt, fc.boolean(), fc.constant(null));
/** Keys of a Map that converts to a JS object: strings and safe integers, distinct as property names. */
const objectModeKey: fc.Arbitrary<string | number> = fc.oneof(jsString, fc.integer(), fc.constantFrom('__proto__', 'constructor', 'toString', ''));
const propertyName: fc.Arbitrary<string> = fc.oneof({ weight: 5, arbitrary: jsString },
  { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'hasOwnProperty', '0', '1', '-1', '01', 'length', '') });

function plainObject(entries: [string, unknown][], nullPrototype: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = nullPrototype ? Object.create(null) : {};
  for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

/** Arbitrary JS values pyembed converts: primitives, binary data and nested containers. */
export function jsValue(mapMode: boolean): fc.Arbitrary<unknown> {
  const { value } = fc.letrec<{ value: unknown; leaf: unknown }>((tie) => ({
    leaf: fc.oneof(
      { weight: 3, arbitrary: jsString },
      { weight: 3, arbitrary: jsNumber },
      { weight: 2, arbitrary: jsBigInt },
      { weight: 1, arbitrary: fc.boolean() },
      { weight: 1, arbitrary: fc.constantFrom(null, undefined) },
      { weight: 1, arbitrary: jsBinary },
    ),
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { weight: 6, arbitrary: tie('leaf') },
      { weight: 2, arbitrary: fc.array(tie('value'), { maxLength: 5 }) },
      { weight: 1, arbitrary: fc.sparseArray(tie('value'), { maxLength: 40, maxNumElements: 4 }) },
      { weight: 2, arbitrary: fc.tuple(fc.uniqueArray(fc.tuple(propertyName, tie('value')), { maxLength: 5, selector: ([k]) => k }), fc.boolean())
        .map(([entries, nullProto]) => plainObject(entries, nullProto)) },
      { weight: 1, arbitrary: (mapMode
        ? fc.uniqueArray(fc.tuple(hashable, tie('value')), { maxLength: 5, selector: ([k]) => pythonKey(k) })
        : fc.uniqueArray(fc.tuple(objectModeKey, tie('value')), { maxLength: 5, selector: ([k]) => String(k) }))
        .map((entries) => new Map(entries as [unknown, unknown][])) },
      { weight: 1, arbitrary: fc.uniqueArray(hashable, { maxLength: 6, selector: pythonKey }).map((items) => new Set(items)) },
    ),
  }));
  return value;
}

/** What `Py.toPython(v).toJS(options)` must give back for a JS value (see the rules above). */
export function expectedRoundTrip(v: unknown, mapMode: boolean): unknown {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'bigint') return v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : v;
  if (typeof v !== 'object') return v;
  if (ArrayBuffer.isView(v)) {
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice();
    if (v instanceof DataView || Buffer.isBuffer(v) || v instanceof Uint8ClampedArray) return bytes;
    const Ctor = v.constructor as new (b: ArrayBuffer) => ArrayBufferView;
    return new Ctor(bytes.buffer);
  }
  if (v instanceof ArrayBuffer) return new Uint8Array(v.slice(0));
  if (Array.isArray(v)) return Array.from(v, (x) => expectedRoundTrip(x, mapMode));  // holes: None
  if (v instanceof Set) return new Set([...v].map((x) => expectedRoundTrip(x, mapMode)));
  const entries: [unknown, unknown][] = v instanceof Map
    ? [...v].map(([k, x]) => [expectedRoundTrip(k, mapMode), expectedRoundTrip(x, mapMode)])
    : Object.keys(v).map((k) => [k, expectedRoundTrip((v as Record<string, unknown>)[k], mapMode)]);
  if (mapMode) return new Map(entries);
  return plainObject(entries.map(([k, x]) => [String(k), x]), false);
}

// --- generators: Python values, as Python source ---------------------------------------------

export type PyDesc =
  | { t: 'none' } | { t: 'bool'; v: boolean } | { t: 'int'; v: bigint } | { t: 'float'; v: number }
  | { t: 'str'; cps: number[] } | { t: 'bytes' | 'bytearray'; v: Uint8Array } | { t: 'complex'; re: number; im: number }
  | { t: 'list' | 'tuple'; items: PyDesc[] } | { t: 'set' | 'frozenset'; items: PyDesc[] }
  | { t: 'dict'; entries: [PyDesc, PyDesc][] };

const codePoint = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0x10ffff }) },
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }) },  // lone surrogates, or pairs by chance
  { weight: 1, arbitrary: fc.constantFrom(0, 0x27, 0x22, 0x5c, 0x0a, 0xfeff, 0xffff, 0x1f40d) },
);
const pyStr: fc.Arbitrary<PyDesc> = fc.array(codePoint, { maxLength: 12 }).map((cps) => ({ t: 'str', cps }));
const pyInt: fc.Arbitrary<PyDesc> = jsBigInt.map((v) => ({ t: 'int', v }));
// Object mode takes int keys of any size (each becomes its decimal text).
const pyIntKey: fc.Arbitrary<PyDesc> = fc.oneof(pyInt, fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })
  .map((v): PyDesc => ({ t: 'int', v })));
const pyFloat: fc.Arbitrary<PyDesc> = fc.oneof(fc.double(), fc.constantFrom(...specialNumbers)).map((v) => ({ t: 'float', v }));
const pyHashable: fc.Arbitrary<PyDesc> = fc.oneof(
  { weight: 3, arbitrary: pyStr }, { weight: 3, arbitrary: pyInt }, { weight: 1, arbitrary: pyFloat },
  { weight: 1, arbitrary: fc.boolean().map((v): PyDesc => ({ t: 'bool', v })) }, { weight: 1, arbitrary: fc.constant<PyDesc>({ t: 'none' }) },
);

/** Python values whose dict keys suit `mode` (object mode: str and int keys only). */
export function pyValue(mapMode: boolean): fc.Arbitrary<PyDesc> {
  const { value } = fc.letrec<{ value: PyDesc; leaf: PyDesc }>((tie) => ({
    leaf: fc.oneof(
      { weight: 3, arbitrary: pyStr },
      { weight: 3, arbitrary: pyInt },
      { weight: 3, arbitrary: pyFloat },
      { weight: 1, arbitrary: fc.boolean().map((v): PyDesc => ({ t: 'bool', v })) },
      { weight: 1, arbitrary: fc.constant<PyDesc>({ t: 'none' }) },
      { weight: 1, arbitrary: fc.tuple(fc.uint8Array({ maxLength: 24 }), fc.boolean()).map(([v, ba]): PyDesc => ({ t: ba ? 'bytearray' : 'bytes', v })) },
      { weight: 1, arbitrary: fc.tuple(fc.double(), fc.double()).map(([re, im]): PyDesc => ({ t: 'complex', re, im })) },
    ),
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { weight: 6, arbitrary: tie('leaf') },
      { weight: 2, arbitrary: fc.tuple(fc.array(tie('value'), { maxLength: 5 }), fc.boolean()).map(([items, tuple]): PyDesc => ({ t: tuple ? 'tuple' : 'list', items })) },
      { weight: 2, arbitrary: fc.array(fc.tuple(mapMode ? pyHashable : fc.oneof(pyStr, pyIntKey), tie('value')), { maxLength: 5 })
        .map((entries): PyDesc => ({ t: 'dict', entries: mapMode ? oneNaN(entries, ([k]) => k) : distinctAsPropertyNames(entries) })) },
      { weight: 1, arbitrary: fc.tuple(fc.array(pyHashable, { maxLength: 5 }), fc.boolean()).map(([items, frozen]): PyDesc => ({ t: frozen ? 'frozenset' : 'set', items: oneNaN(items, (d) => d) })) },
    ),
  }));
  return value;
}

// Object mode turns int keys into property names: keep only the first of keys that would collide
// (1 and "1"), so that the comparison is not about that (see the todo test in fuzz.test.ts).
function distinctAsPropertyNames(entries: [PyDesc, PyDesc][]): [PyDesc, PyDesc][] {
  const seen = new Set<string>();
  return entries.filter(([k]) => {
    const name = k.t === 'int' ? k.v.toString() : pythonStrAsJs((k as { cps: number[] }).cps);
    if (seen.has(name)) return false;
    seen.add(name);
    return true;
  });
}

// JS Sets and Map keys cannot hold two NaNs (Python sets and dicts can: each float('nan') is a
// distinct object), so a container gets at most one.
function oneNaN<T>(items: T[], descOf: (item: T) => PyDesc): T[] {
  let nan = false;
  return items.filter((item) => {
    const d = descOf(item);
    if (d.t !== 'float' || !Number.isNaN(d.v)) return true;
    if (nan) return false;
    nan = true;
    return true;
  });
}

/** The JS string a Python str of these code points becomes (surrogate code points as units). */
function pythonStrAsJs(cps: number[]): string {
  return cps.map((c) => (c >= 0xd800 && c <= 0xdfff ? String.fromCharCode(c) : String.fromCodePoint(c))).join('');
}

function floatSource(v: number): string {
  if (Number.isNaN(v)) return "float('nan')";
  if (v === Infinity) return "float('inf')";
  if (v === -Infinity) return "float('-inf')";
  if (Object.is(v, -0)) return '-0.0';
  return `float('${String(v)}')`;
}

/** Python source text that evaluates to the described value. */
export function pySource(d: PyDesc): string {
  switch (d.t) {
    case 'none': return 'None';
    case 'bool': return d.v ? 'True' : 'False';
    case 'int': return d.v < 0n ? `(-0x${(-d.v).toString(16)})` : `0x${d.v.toString(16)}`;
    case 'float': return floatSource(d.v);
    case 'complex': return `complex(${floatSource(d.re)}, ${floatSource(d.im)})`;
    case 'str': return "'" + d.cps.map((c) => '\\U' + c.toString(16).padStart(8, '0')).join('') + "'";
    case 'bytes': return `bytes.fromhex('${Buffer.from(d.v).toString('hex')}')`;
    case 'bytearray': return `bytearray.fromhex('${Buffer.from(d.v).toString('hex')}')`;
    case 'list': return '[' + d.items.map(pySource).join(', ') + ']';
    case 'tuple': return '(' + d.items.map(pySource).join(', ') + (d.items.length === 1 ? ',)' : ')');
    case 'set': return 'set([' + d.items.map(pySource).join(', ') + '])';
    case 'frozenset': return 'frozenset([' + d.items.map(pySource).join(', ') + '])';
    case 'dict': return '{' + d.entries.map(([k, v]) => `${pySource(k)}: ${pySource(v)}`).join(', ') + '}';
  }
}

// --- Python's own view ------------------------------------------------------------------------

const VIEW_SOURCE = `
import json

def view(v):
    t = type(v)
    if v is None:
        return ["none"]
    if t is bool:
        return ["bool", v]
    if t is int:
        return ["int", hex(v)]
    if t is float:
        return ["float", repr(v)]
    if t is str:
        return ["str", json.dumps(v)]
    if t in (bytes, bytearray):
        return ["bytes", v.hex()]
    if t in (list, tuple):
        return ["list", [view(x) for x in v]]
    if t is dict:
        return ["dict", [[view(k), view(x)] for k, x in v.items()]]
    if t in (set, frozenset):
        return ["set", [view(x) for x in v]]
    return ["object", repr(v)]

def evaluate(source):
    value = eval(source, {})
    return value, json.dumps(view(value))
`;

type View = [string, ...unknown[]];

function hexToBigInt(h: string): bigint {
  return h.startsWith('-') ? -BigInt(h.slice(1)) : BigInt(h);
}

function floatFromRepr(r: string): number {
  if (r === 'nan') return NaN;
  if (r === 'inf') return Infinity;
  if (r === '-inf') return -Infinity;
  return Number(r);
}

/** The JS property name a Python dict key (str or int) becomes in object mode. */
function propertyNameOf(key: View): string {
  if (key[0] === 'str') return JSON.parse(key[1] as string) as string;
  if (key[0] === 'int') return hexToBigInt(key[1] as string).toString();
  throw new Error('object mode: only str and int keys are generated');
}

/** Asserts that `actual` (a toJS() result) is what the rules make of Python's `view`. */
export function assertMatchesView(view: View, actual: unknown, mapMode: boolean, path = '$', inJsKeyedCollection = false): void {
  const where = `at ${path}`;
  switch (view[0]) {
    case 'none':
      assert.equal(actual, undefined, where);
      return;
    case 'bool':
      assert.equal(actual, view[1], where);
      return;
    case 'int': {
      const n = hexToBigInt(view[1] as string);
      const expected = n >= -MAX_SAFE && n <= MAX_SAFE ? Number(n) : n;
      assert.ok(Object.is(actual, expected), `${where}: int ${n} came back as ${String(actual)} (${typeof actual})`);
      return;
    }
    case 'float': {
      const expected = floatFromRepr(view[1] as string);
      // A JS Set or Map key cannot be -0 (SameValueZero): -0.0 there becomes 0.
      const same = Object.is(actual, expected) || (inJsKeyedCollection && expected === 0 && actual === 0);
      assert.ok(same, `${where}: float ${view[1]} came back as ${String(actual)}`);
      return;
    }
    case 'str':
      assert.equal(actual, JSON.parse(view[1] as string), where);
      return;
    case 'bytes':
      assert.ok(actual instanceof Uint8Array && Object.getPrototypeOf(actual) === Uint8Array.prototype, `${where}: not a Uint8Array`);
      assert.equal(Buffer.from(actual).toString('hex'), view[1], where);
      return;
    case 'list': {
      const items = view[1] as View[];
      assert.ok(Array.isArray(actual), `${where}: not an array`);
      assert.equal(actual.length, items.length, where);
      items.forEach((item, i) => assertMatchesView(item, actual[i], mapMode, `${path}[${i}]`));
      return;
    }
    case 'set': {
      const items = view[1] as View[];
      assert.ok(actual instanceof Set, `${where}: not a Set`);
      assert.equal(actual.size, items.length, where);
      [...actual].forEach((x, i) => assertMatchesView(items[i]!, x, mapMode, `${path}{${i}}`, true));
      return;
    }
    case 'dict': {
      const entries = view[1] as [View, View][];
      if (mapMode) {
        assert.ok(actual instanceof Map, `${where}: not a Map`);
        assert.equal(actual.size, entries.length, where);
        [...actual].forEach(([k, x], i) => {
          assertMatchesView(entries[i]![0], k, mapMode, `${path}<key ${i}>`, true);
          assertMatchesView(entries[i]![1], x, mapMode, `${path}<value ${i}>`);
        });
      } else {
        assert.ok(typeof actual === 'object' && actual !== null && Object.getPrototypeOf(actual) === Object.prototype, `${where}: not a plain object`);
        assert.equal(Object.keys(actual).length, entries.length, where);
        for (const [k, x] of entries) {
          const name = propertyNameOf(k);
          const own = Object.getOwnPropertyDescriptor(actual, name);
          assert.ok(own, `${where}: missing key ${JSON.stringify(name)}`);
          assertMatchesView(x, own.value, mapMode, `${path}.${name}`);
        }
      }
      return;
    }
    case 'object':
      assert.ok(isPyObject(actual), `${where}: expected a PyObject`);
      assert.equal((actual as PyObject).repr(), view[1], where);
      return;
    default:
      throw new Error(`unknown view ${String(view[0])}`);
  }
}

// --- generators: hostile shapes -------------------------------------------------------------
// Values that must give a clear error (or the exact result), never a crash, an abort or a hang:
// sparse arrays of huge length, nesting far deeper than any stack, resizable and growable
// buffers, names and source text with NULs and lone surrogates.

type Wrapper = 'array' | 'object' | 'map' | 'set' | 'mapKey';
const convertibleWrapper = fc.constantFrom<Wrapper>('array', 'object', 'map');
const anyWrapper = fc.constantFrom<Wrapper>('array', 'object', 'map', 'set', 'mapKey');
function wrapIn(x: unknown, kinds: Wrapper[]): unknown {
  for (const kind of kinds) {
    if (kind === 'array') x = [x];
    else if (kind === 'object') x = { x };
    else if (kind === 'map') x = new Map([['k', x]]);
    else if (kind === 'set') x = new Set([x]);
    else x = new Map([[x, 1]]);
  }
  return x;
}

/** A sparse array longer than pyembed converts (its holes would be billions of Nones), inside a value. */
export const tooLongArray: fc.Arbitrary<unknown> = fc
  .tuple(fc.oneof(fc.constantFrom(134217726, 2 ** 32 - 1), fc.integer({ min: 134217726, max: 2 ** 32 - 1 })),
    fc.array(fc.tuple(fc.nat({ max: 2 ** 32 - 2 }), jsNumber), { maxLength: 3 }), fc.array(anyWrapper, { maxLength: 4 }))
  .map(([length, elements, path]) => {
    const a: unknown[] = [];
    a.length = length;
    for (const [i, v] of elements) if (i < length) a[i] = v;
    return wrapIn(a, path);
  });

/** Nesting of mixed containers: shallow enough to convert exactly, or deeper than any stack allows. */
export const nesting: fc.Arbitrary<{ deep: boolean; value: unknown }> = fc.oneof(
  fc.tuple(fc.integer({ min: 1, max: 300 }), fc.array(convertibleWrapper, { minLength: 1, maxLength: 4 }), jsString)
    .map(([depth, cycle, leaf]) => ({ deep: false, value: wrapIn(leaf, Array.from({ length: depth }, (_, i) => cycle[i % cycle.length]!)) })),
  fc.tuple(fc.integer({ min: 150000, max: 200000 }), fc.array(anyWrapper, { minLength: 1, maxLength: 4 }))
    .map(([depth, cycle]) => ({ deep: true, value: wrapIn(1, Array.from({ length: depth }, (_, i) => cycle[i % cycle.length]!)) })),
);

/** Binary data over a resizable ArrayBuffer or a growable SharedArrayBuffer, views with offsets. */
export const resizableBinary: fc.Arbitrary<{ value: ArrayBufferView | ArrayBuffer | SharedArrayBuffer; shared: boolean; bytes: Uint8Array }> = fc
  .tuple(fc.uint8Array({ maxLength: 48 }), fc.nat(), fc.nat(), fc.boolean(), fc.integer({ min: 0, max: 64 }),
    fc.constantFrom('buffer', 'Uint8Array', 'Int16Array', 'Float64Array', 'DataView', 'tracking'))
  .map(([content, a, b, shared, extra, kind]) => {
    const options = { maxByteLength: content.length + extra };
    // (the TypeScript lib in use predates the options argument)
    type Resizable = new (length: number, options: { maxByteLength: number }) => ArrayBuffer | SharedArrayBuffer;
    const buffer = new ((shared ? SharedArrayBuffer : ArrayBuffer) as unknown as Resizable)(content.length, options);
    new Uint8Array(buffer).set(content);
    let value: ArrayBufferView | ArrayBuffer | SharedArrayBuffer = buffer;
    if (kind === 'tracking') value = new Uint8Array(buffer, a % (content.length + 1));
    else if (kind === 'DataView') {
      const offset = a % (content.length + 1);
      value = new DataView(buffer, offset, b % (content.length - offset + 1));
    } else if (kind !== 'buffer') {
      const Ctor = (globalThis as unknown as Record<string, new (b: ArrayBufferLike, o: number, n: number) => ArrayBufferView>)[kind]!;
      const size = (Ctor as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
      const slots = Math.floor(content.length / size);
      const first = slots === 0 ? 0 : a % (slots + 1);
      value = new Ctor(buffer, first * size, b % (slots - first + 1));
    }
    const bytes = ArrayBuffer.isView(value)
      ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice()
      : new Uint8Array(value).slice();
    return { value, shared, bytes };
  });

/** Names with NULs and lone surrogates among ordinary characters (never empty). */
export const oddName: fc.Arbitrary<string> = fc
  .array(fc.oneof({ weight: 3, arbitrary: char }, { weight: 1, arbitrary: fc.constantFrom('\0', '\ud800', '\udfff', '\udc00x') }),
    { minLength: 1, maxLength: 12 })
  .map((a) => a.join(''));

/** Python source of a str literal holding exactly `s` (control characters escaped, the rest raw). */
function strLiteralSource(s: string): string {
  let out = '"';
  for (const unit of s) {
    const c = unit.codePointAt(0)!;
    if (unit === '\\' || unit === '"') out += '\\' + unit;
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += unit;
  }
  return out + '"';
}
const hasLoneSurrogate = (s: string): boolean => /\p{Cs}/u.test(s);

// --- the properties -------------------------------------------------------------------------

// A random graph of arrays and plain objects: node i holds, in order, each entry of edges[i]
// (another node's index, or an int leaf), so self-references, cycles and shared nodes occur.
export const jsGraph: fc.Arbitrary<unknown> = fc
  .integer({ min: 1, max: 8 })
  .chain((n) => fc.tuple(
    fc.array(fc.boolean(), { minLength: n, maxLength: n }),
    fc.array(fc.array(fc.oneof(fc.nat({ max: n - 1 }).map((i) => ({ node: i })), fc.integer()), { maxLength: 4 }),
      { minLength: n, maxLength: n }),
  ))
  .map(([isArray, edges]) => {
    const nodes: Array<unknown[] | Record<string, unknown>> = isArray.map((a) => (a ? [] : {}));
    edges.forEach((list, i) => list.forEach((e, k) => {
      const value = typeof e === 'number' ? e : nodes[e.node];
      const node = nodes[i];
      if (Array.isArray(node)) node.push(value);
      else node[`k${k}`] = value;
    }));
    return nodes[0];
  });

// Same shape as a graph: each container of `expected` corresponds to exactly one of `actual`,
// and distinct ones to distinct ones.
export function assertSameGraph(expected: unknown, actual: unknown, seen = new Map<object, object>(), back = new Map<object, object>()): void {
  if (typeof expected !== 'object' || expected === null) {
    assert.strictEqual(actual, expected);
    return;
  }
  assert.ok(typeof actual === 'object' && actual !== null);
  const known = seen.get(expected);
  if (known !== undefined) {
    assert.strictEqual(actual, known);
    return;
  }
  assert.ok(!back.has(actual), 'two JS containers became one');
  seen.set(expected, actual);
  back.set(actual, expected);
  assert.strictEqual(Array.isArray(actual), Array.isArray(expected));
  const keys = Object.keys(expected);
  assert.deepStrictEqual(Object.keys(actual), keys);
  for (const k of keys) {
    assertSameGraph((expected as Record<string, unknown>)[k], (actual as Record<string, unknown>)[k], seen, back);
  }
}

export interface FuzzProperty {
  name: string;
  /** Share of the long run's cases. */
  weight: number;
  /** At most this many cases in the long run (for properties whose cases are slow). */
  maxCases?: number;
  property: fc.IProperty<any>;
}

let helpers: { evaluate: PyCallable } | undefined;

function setup(): { evaluate: PyCallable } {
  if (!helpers) {
    PythonEngine.initialize();
    const m = PyModule.fromString('_pyembed_fuzz_view', VIEW_SOURCE);
    helpers = { evaluate: m.evaluate };
  }
  return helpers;
}

function roundTrip(v: unknown, mapMode: boolean): unknown {
  const py = Py.toPython(v);
  try {
    return py.toJS(mapMode ? { dict: 'map' } : {});
  } finally {
    py.dispose();
  }
}

function pythonToJs(d: PyDesc, mapMode: boolean): void {
  const { evaluate } = setup();
  const pair = evaluate(pySource(d));
  try {
    const value = pair.get(0);
    const view = JSON.parse(pair.get(1)) as View;
    try {
      const actual = isPyObject(value) ? value.toJS(mapMode ? { dict: 'map' } : {}) : value;
      assertMatchesView(view, actual, mapMode);
    } finally {
      if (isPyObject(value)) value.dispose();
    }
  } finally {
    pair.dispose();
  }
}

export function fuzzProperties(): FuzzProperty[] {
  setup();
  const echo = PythonEngine.eval('lambda x: x');
  return [
    {
      name: 'JSON values: JS -> Python -> JS (null comes back as undefined)',
      weight: 2,
      property: fc.property(fc.jsonValue(), (v) => {
        assert.deepStrictEqual(roundTrip(v, false), expectedRoundTrip(v, false));
      }),
    },
    {
      name: 'JS values (numbers, bigints, strings, binary, containers): JS -> Python -> JS',
      weight: 3,
      property: fc.property(jsValue(false), (v) => {
        assert.deepStrictEqual(roundTrip(v, false), expectedRoundTrip(v, false));
      }),
    },
    {
      name: 'JS values with any hashable Map keys: JS -> Python -> JS with toJS({ dict: "map" })',
      weight: 2,
      property: fc.property(jsValue(true), (v) => {
        assert.deepStrictEqual(roundTrip(v, true), expectedRoundTrip(v, true));
      }),
    },
    {
      name: 'primitives as call arguments and results: shallow conversion both ways',
      weight: 1,
      property: fc.property(fc.oneof(jsString, jsNumber, jsBigInt, fc.boolean(), fc.constantFrom(null, undefined)), (v) => {
        const back = echo(v);
        assert.ok(Object.is(back, expectedRoundTrip(v, false)), `${String(v)} came back as ${String(back)}`);
      }),
    },
    {
      name: 'sparse arrays of huge length, anywhere in a value: a RangeError, at once',
      weight: 1,
      property: fc.property(tooLongArray, (v) => {
        assert.throws(() => echo(v), (e: unknown) => e instanceof RangeError && /too long to convert to Python/.test(e.message));
      }),
    },
    {
      name: 'graphs (shared and cyclic arrays and objects): JS -> Python -> JS keeps the graph',
      weight: 1,
      property: fc.property(jsGraph, (v) => {
        assertSameGraph(v, roundTrip(v, false));
      }),
    },
    {
      name: 'mixed nesting: converts exactly when shallow; deeper than any stack is a TypeError',
      weight: 1,
      maxCases: 3000,  // a deep case builds and rejects 150 000+ levels (~0.1 s)
      property: fc.property(nesting, ({ deep, value }) => {
        if (deep) assert.throws(() => Py.toPython(value), (e: unknown) => e instanceof TypeError && /nested too deeply/.test(e.message));
        else assert.deepStrictEqual(roundTrip(value, false), expectedRoundTrip(value, false));
      }),
    },
    {
      name: 'resizable buffers: a TypeError naming Py.bytes (which copies them exactly); growable shared ones are shared',
      weight: 1,
      property: fc.property(resizableBinary, ({ value, shared, bytes }) => {
        const copy = Py.bytes(value);
        try {
          assert.deepStrictEqual(copy.toJS(), bytes);
        } finally {
          copy.dispose();
        }
        if (!shared) {
          assert.throws(() => Py.toPython(value), (e: unknown) => e instanceof TypeError && /resizable ArrayBuffer/.test(e.message));
          return;
        }
        const view = Py.toPython(value);
        try {
          const back = view.toJS() as ArrayBufferView;
          assert.deepStrictEqual(new Uint8Array(back.buffer, back.byteOffset, back.byteLength).slice(), bytes);
          if (bytes.length > 0) {
            PythonEngine.eval('lambda v: v.cast("B").__setitem__(0, 255 - v.cast("B")[0])')(view);
            const source = ArrayBuffer.isView(value) ? new Uint8Array(value.buffer, value.byteOffset, 1) : new Uint8Array(value, 0, 1);
            assert.equal(source[0], 255 - bytes[0]!);
          }
        } finally {
          view.dispose();
        }
      }),
    },
    {
      name: 'names with NULs and lone surrogates: attributes and keywords whole; a NUL in a module name is a ValueError',
      weight: 1,
      property: fc.property(oddName, fc.integer(), (name, value) => {
        const o = PythonEngine.eval('type("O", (), {})()') as PyObject;
        try {
          o.setAttr(name, value);
          assert.equal(o.getAttr(name), value);
          assert.deepStrictEqual((PythonEngine.eval('lambda o: list(vars(o))')(o) as PyObject).toJS(), [name]);
          o.delAttr(name);
          assert.equal(o.hasAttr(name), false);
        } finally {
          o.dispose();
        }
        assert.deepStrictEqual((PythonEngine.eval('lambda **kw: list(kw)')(Py.kw({ [name]: value })) as PyObject).toJS(), [name]);
        const moduleName = '_fuzz_' + name;
        if (name.includes('\0')) {
          const nul = (e: unknown) => (e as { type?: string }).type === 'ValueError';
          assert.throws(() => Py.import(moduleName), nul);
          assert.throws(() => PyModule.fromString(moduleName, 'x = 1'), nul);
        } else {
          assert.equal(PyModule.fromString(moduleName, 'x = 1').x, 1);
          PythonEngine.eval('lambda n: __import__("sys").modules.pop(n)')(moduleName);
        }
      }),
    },
    {
      name: 'source text with odd characters: the string it spells, or the error compile() gives',
      weight: 1,
      property: fc.property(jsString, (s) => {
        const source = strLiteralSource(s);
        if (hasLoneSurrogate(s)) {
          assert.throws(() => PythonEngine.eval(source), (e: unknown) => (e as { type?: string }).type === 'UnicodeEncodeError');
        } else {
          assert.equal(PythonEngine.eval(source), s);
        }
      }),
    },
    {
      name: 'Python values (from source) -> JS match Python\'s own view',
      weight: 2,
      property: fc.property(pyValue(false), (d) => pythonToJs(d, false)),
    },
    {
      name: 'Python values with any hashable dict keys -> JS Maps match Python\'s own view',
      weight: 2,
      property: fc.property(pyValue(true), (d) => pythonToJs(d, true)),
    },
  ];
}
