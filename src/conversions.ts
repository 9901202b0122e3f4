// Custom conversions (as pythonnet's encoders and decoders): how instances of a JS class become
// Python objects, how objects of a Python type become JS values, and which JS error class a
// Python exception type becomes. Nothing registered: the ordinary rules at their usual cost.
import { threadId } from 'node:worker_threads';
import { helperModule } from './engine.js';
import { errorsMapped, PythonError } from './errors.js';
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

/** The native conversion's hook for class instances it would refuse: registered encoders first, else by reference. */
export function encodeHook(value: object): unknown {
  if (value instanceof JsRef) return proxyFor(value.target);
  for (const [cls, encode] of encoders) {
    if (value instanceof cls) return encode(value);
  }
  return proxyFor(value);
}

/** `Py.ref(obj)`'s marker: the object goes to Python by reference, even plain data. */
class JsRef {
  constructor(readonly target: object) {}
}

/** Marks a JS object (or function) to go to Python by reference, as a JsProxy, instead of by value. */
export function ref<T extends object>(target: T): T {
  if ((typeof target !== 'object' && typeof target !== 'function') || target === null) {
    throw new TypeError('Py.ref() needs an object or a function');
  }
  if (isPyObject(target)) throw new TypeError('Py.ref() needs a JS object, not a PyObject');
  return new JsRef(target) as unknown as T;
}

// Per JS object: its dispatcher and the key of its JsProxy in Python's weak table (so one JS
// object gives one JsProxy while it lives; the WeakMap keeps neither alive).
const dispatchers = new WeakMap<object, { key: string; dispatch: (op: string, ...args: any[]) => unknown }>();
let proxyCount = 0;
const ownDispatchers = new WeakSet<object>();
let decoderFor: PyObject | undefined;

function typeName(target: object): string {
  if (typeof target === 'function') return 'Function';
  return Object.getPrototypeOf(target)?.constructor?.name ?? 'Object';
}

function proxyFor(target: object): unknown {
  const helpers = helperModule();
  if (decoderFor === undefined || decoderFor.isDisposed) {
    // A JsProxy that comes back to JS is its JS object again.
    decoderFor = helpers.JsProxy as PyObject;
    registerDecoder(decoderFor, (proxy) => {
      // Another JS thread's object stays a PyObject here (its dispatcher is not this thread's).
      const dispatch = (proxy as any)._js_dispatch;
      return ownDispatchers.has(dispatch) ? dispatch('target') : proxy;
    });
  }
  let entry = dispatchers.get(target);
  if (entry === undefined) {
    entry = { key: `${threadId}:${++proxyCount}`, dispatch: dispatcherFor(target) };
    ownDispatchers.add(entry.dispatch);
    dispatchers.set(target, entry);
  }
  return (helpers.js_proxy as any).callRaw(entry.key, entry.dispatch, typeName(target));
}

/** One function for every operation a JsProxy does on `target` (python/_pyembed.py JsProxy). */
function dispatcherFor(target: any): (op: string, ...args: any[]) => unknown {
  return (op: string, ...args: any[]): unknown => {
    switch (op) {
      case 'target':
        return target;
      case 'get': {
        if (!(args[0] in Object(target))) return [false, undefined];
        const value = target[args[0]];
        // A method keeps its `this`.
        return [true, typeof value === 'function' ? value.bind(target) : value];
      }
      case 'set':
        target[args[0]] = args[1];
        return undefined;
      case 'delete':
        return args[0] in target && delete target[args[0]];
      case 'keys': {
        const keys: string[] = [];
        for (const key in target) keys.push(key);
        return keys;
      }
      case 'call':
        return typeof target === 'function' ? [true, target(...args)] : [false, undefined];
      case 'len':
        if (typeof target.length === 'number') return target.length;
        if (typeof target.size === 'number') return target.size;
        return null;  // Python raises its own TypeError
      case 'bool':
        if (typeof target.length === 'number') return target.length !== 0;
        if (typeof target.size === 'number') return target.size !== 0;
        return true;
      case 'iter':
        if (typeof target[Symbol.iterator] !== 'function') return null;
        return ref(target[Symbol.iterator]());
      case 'next': {
        const step = target.next();
        return [Boolean(step.done), step.done ? undefined : step.value];
      }
      case 'getitem': {
        const key = args[0];
        if (typeof target.get === 'function' && typeof target.has === 'function') {
          return target.has(key) ? [true, target.get(key)] : [false, undefined];
        }
        if (typeof key === 'number' && typeof target.length === 'number') {
          const index = key < 0 ? key + target.length : key;
          return index >= 0 && index < target.length ? [true, target[index]] : [false, undefined];
        }
        return key in Object(target) ? [true, target[key]] : [false, undefined];
      }
      case 'setitem': {
        const [key, value] = args;
        if (typeof target.set === 'function' && typeof target.get === 'function') target.set(key, value);
        else target[typeof key === 'number' && key < 0 && typeof target.length === 'number' ? key + target.length : key] = value;
        return undefined;
      }
      case 'delitem':
        if (typeof target.delete === 'function' && typeof target.has === 'function') return target.delete(args[0]);
        return args[0] in target && delete target[args[0]];
      case 'contains':
        if (typeof target.has === 'function') return Boolean(target.has(args[0]));
        if (typeof target.includes === 'function') return Boolean(target.includes(args[0]));
        return args[0] in Object(target);
      case 'repr':
        try {
          return String(target);
        } catch {
          return typeName(target);
        }
      case 'then': {
        const [resolve, reject] = args;
        if (typeof target.then !== 'function') throw new TypeError(`JS ${typeName(target)} is not awaitable`);
        target.then(
          (value: unknown) => resolve(value),
          (error: any) => reject(String(error?.name ?? 'Error'), String(error?.message ?? error), String(error?.stack ?? '')),
        );
        return undefined;
      }
      default:
        throw new TypeError(`unknown JsProxy operation ${op}`);
    }
  };
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
  errorsMapped[0] = 1;
}
