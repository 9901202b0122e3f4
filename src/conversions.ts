// Custom conversions (as pythonnet's encoders and decoders): how instances of a JS class become
// Python objects, how objects of a Python type become JS values, and which JS error class a
// Python exception type becomes. Nothing registered: the ordinary rules at their usual cost.
import { PythonError } from './errors.js';
import { native, type Handle } from './native.js';
import { builtin, handleOf, isPyObject, wrap, type PyObject } from './proxy.js';

type AnyClass = abstract new (...args: any[]) => unknown;
type Decoder = (obj: PyObject) => unknown;
type ErrorClass = new (type: string, message: string, pythonTraceback: string, pyException?: PyObject) => PythonError;

const encoders = new Map<AnyClass, (value: any) => unknown>();
const decoders = new Map<PyObject, Decoder>();
const errorClasses = new Map<PyObject, ErrorClass>();
// Per Python type: what its MRO resolves to (null: nothing registered for it or its bases).
const resolvedDecoders = new Map<PyObject, Decoder | null>();
const resolvedErrors = new Map<PyObject, ErrorClass | null>();

/** True once a decoder is registered: the call path checks only this. */
export let decoding = false;

// Builtin types are converted by the addon (or deliberately left as PyObjects that pyembed
// itself relies on): a decoder for them is refused.
const RESERVED = new Set(['int', 'float', 'str', 'bool', 'NoneType', 'list', 'tuple', 'dict', 'set', 'frozenset',
  'bytes', 'bytearray', 'memoryview', 'type', 'object', 'module', 'function', 'builtin_function_or_method']);

function checkType(type: unknown, what: string): asserts type is PyObject {
  if (!isPyObject(type) || !(native.isInstance(handleOf(type), builtin('type')))) {
    throw new TypeError(`${what} needs a Python class (a PyObject such as Py.import('decimal').Decimal)`);
  }
}

/** The registered entry for `type` or its nearest base (its MRO), cached per type. */
function resolve<T>(type: PyObject, table: Map<PyObject, T>, cache: Map<PyObject, T | null>): T | null {
  let found = cache.get(type);
  if (found !== undefined) return found;
  found = null;
  const mro = native.iter(native.getattr(handleOf(type), '__mro__', true) as Handle);
  try {
    for (let r = native.next(mro); typeof r === 'object'; r = native.next(mro)) {
      const entry = table.get(wrap(r as Handle));
      if (entry !== undefined) {
        found = entry;
        break;
      }
    }
  } finally {
    native.dispose(mro);
  }
  cache.set(type, found);
  return found;
}

function typeOf(obj: PyObject): PyObject {
  return wrap(native.callRaw(builtin('type'), undefined, obj)) as PyObject;
}

/** A PyObject on its way to JS, decoded when a decoder applies to its type. */
export function decode(obj: PyObject): unknown {
  const decoder = resolve(typeOf(obj), decoders, resolvedDecoders);
  return decoder === null ? obj : decoder(obj);
}

/** The native conversion's hook for class instances it would refuse. */
export function encodeHook(value: object): unknown {
  for (const [cls, encode] of encoders) {
    if (value instanceof cls) return encode(value);
  }
  return undefined;
}

/** A PythonError, as the registered JS error class for its Python type if there is one. */
export function mapError(error: PythonError): PythonError {
  if (errorClasses.size === 0 || error.pyException === undefined) return error;
  try {
    const cls = resolve(typeOf(error.pyException), errorClasses, resolvedErrors);
    if (cls !== null) {
      Object.setPrototypeOf(error, cls.prototype);
      error.name = cls.name;
    }
  } catch {
    // Python is stopping: the plain PythonError stands.
  }
  return error;
}

/**
 * Instances of `cls` (and its subclasses) given to Python become what `encode` returns: a
 * PyObject, or any value pyembed converts (plain data, another registered class). Only for
 * values the ordinary rules refuse (class instances): plain objects, arrays, Maps, ... keep them.
 */
export function registerEncoder<T>(cls: abstract new (...args: any[]) => T, encode: (value: T) => unknown): void {
  if (typeof cls !== 'function' || typeof encode !== 'function') {
    throw new TypeError('Py.registerEncoder() needs a class and a function');
  }
  if (([Object, Array, Map, Set, Date, Function] as unknown[]).includes(cls)) {
    throw new TypeError(`Py.registerEncoder(): ${cls.name} has its own conversion rule`);
  }
  encoders.set(cls, encode);
}

/**
 * Objects of the Python class `type` (and its subclasses) reaching JS (call results, attributes,
 * items, toJS(), callback arguments) become what `decode` returns. callRaw and getAttrRaw still
 * give the PyObject. Registrations belong to the running interpreter.
 */
export function registerDecoder(type: PyObject, decode: Decoder): void {
  checkType(type, 'Py.registerDecoder()');
  if (typeof decode !== 'function') throw new TypeError('Py.registerDecoder() needs a function');
  if (RESERVED.has(type.__name__ as string) && type.__module__ === 'builtins') {
    throw new TypeError(`Py.registerDecoder(): ${String(type.__name__)} has its own conversion rule`);
  }
  decoders.set(type, decode);
  resolvedDecoders.clear();
  decoding = true;
}

/**
 * Python exceptions of `type` (and its subclasses) reach JS as instances of `errorClass`, a
 * subclass of PythonError (so `instanceof PythonError` and its fields stay).
 */
export function registerError(type: PyObject, errorClass: ErrorClass): void {
  checkType(type, 'Py.registerError()');
  if (typeof errorClass !== 'function' || !(errorClass.prototype instanceof PythonError)) {
    throw new TypeError('Py.registerError() needs a subclass of PythonError');
  }
  errorClasses.set(type, errorClass);
  resolvedErrors.clear();
}
