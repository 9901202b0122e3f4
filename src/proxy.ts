// The JS face of Python objects.
//
// A Python object reaches JS as a PyObject: an ordinary JS object (or, for callables, a real JS
// function) that owns one native handle. Its prototype chain is
//     object -> PyObject methods (toJS, repr, dispose, ...) -> attribute fallback (a Proxy)
// so the methods below are found at JS speed, and any other property name falls through to the
// Proxy, which reads or writes the Python attribute. Callables being real functions (not Proxies)
// is what makes `f(1, 2)` cost one native call and no trap.
// Symbol.dispose and Disposable come from this lib, which a user's project may not include
// (lib es2022 without @types/node): the emitted .d.ts names it, so such a project still compiles.
/// <reference lib="esnext.disposable" preserve="true" />
import { inspect } from 'node:util';
import { isMainThread, threadId } from 'node:worker_threads';

import { cancellable, isAbortSignal } from './cancel.js';
import { asyncIterate, datesToJS } from './conventions.js';
import { decode, decoding, encodeHook, mapError } from './conversions.js';
import { helperModule } from './engine.js';
import { errorRealm, PythonError, setJsFrames, setTracebackFormatter, withSite } from './errors.js';
import { KwArgs, native, type Handle, type NativeResult, type TypedArray } from './native.js';
import type { AbortSignalLike } from './web-types.js';

export const HANDLE: unique symbol = Symbol('pyembed.handle');
export const DONE: unique symbol = Symbol('pyembed.done');

const CALLABLE = 1;
const AWAITABLE = 2;

/** A Python buffer (numpy array, memoryview, bytes, ...) seen from JS: see PyObject.getBuffer(). */
export interface PyBuffer {
  /** The memory: shared with Python for writable buffers, a copy for read-only ones. */
  data: TypedArray;
  /** Shape of the Python array ([] for a scalar). */
  shape: number[];
  /** Step between neighbours along each axis, in elements of `data` (negative when reversed). */
  strides: number[];
  /** Index in `data` of the element at index (0, 0, ...). */
  offset: number;
  /** struct-module format of one Python element, e.g. 'd', '<i8', 'B'. */
  format: string;
  /** Bytes per Python element. */
  itemsize: number;
  /** The Python buffer is read-only, so `data` is a copy (JS cannot make memory read-only). */
  readonly: boolean;
  /** C-contiguous: `data` holds the elements in order with nothing in between. */
  contiguous: boolean;
}

export interface ToJSOptions {
  /** How Python dicts become JS values: plain objects (default) or Maps (any key type). */
  dict?: 'object' | 'map';
  /** Python dates and datetimes: left as PyObjects (default) or converted to JS Dates. */
  datetime?: 'object' | 'date';
  /**
   * Levels of containers (list, tuple, dict, set) to convert: 1 converts this object and leaves
   * the containers inside it as PyObjects. Default: all levels.
   */
  depth?: number;
  /** bytes, bytearray and memoryview: converted to Uint8Array/TypedArray (default) or left as PyObjects. */
  buffers?: 'convert' | 'pyobject';
}

/** What every Python object proxy offers; any other property is the Python attribute. */
export interface PyObjectMethods {
  /** The Python class name, e.g. `list`. */
  readonly typeName: string;
  /** `len(obj)`, or undefined when the object has no length. */
  readonly length: number | undefined;
  /** True once dispose() ran, or after the interpreter it belongs to was shut down. */
  readonly isDisposed: boolean;
  /** `str(obj)`. */
  toString(): string;
  /** `repr(obj)`. */
  repr(): string;
  /** Deep conversion: lists/tuples to arrays, dicts to objects (or Maps), sets to Sets, ... */
  toJS(options?: ToJSOptions): unknown;
  /** `obj[key]` */
  get(key: unknown): any;
  /** `obj[key] = value` */
  set(key: unknown, value: unknown): void;
  /** `key in obj` */
  has(key: unknown): boolean;
  /** `del obj[key]` */
  delete(key: unknown): void;
  /** `getattr(obj, name)`: unlike `obj.name`, a missing attribute raises AttributeError. */
  getAttr(name: string): any;
  /** `getattr(obj, name)` as a PyObject, never converted: a numpy scalar keeps `.item()` and `.dtype`. */
  getAttrRaw(name: string): PyObject;
  setAttr(name: string, value: unknown): void;
  hasAttr(name: string): boolean;
  delAttr(name: string): void;
  /** `dir(obj)` */
  dir(): string[];
  /** `isinstance(obj, cls)` */
  isInstance(cls: PyObject): boolean;
  /** `obj == other` in Python. */
  equals(other: unknown): boolean;
  /**
   * The object's memory (buffer protocol: numpy arrays, memoryview, bytearray, bytes, array.array)
   * as a TypedArray of the matching element type, without a copy when the buffer is writable:
   * writes on either side are seen on the other, and the Python object stays alive while the
   * TypedArray does. Read-only buffers come as a copy. Needs a C-contiguous buffer; for any
   * layout use getBuffer().
   */
  toTypedArray(): TypedArray;
  /** The object's memory with its shape and strides (buffer protocol). */
  getBuffer(): PyBuffer;
  /** Drops the reference now (JS garbage collection would do it later). Idempotent. */
  dispose(): void;
  [Symbol.dispose](): void;
  [Symbol.iterator](): Iterator<any>;
  /** `for await`: Python async iterables (async generators, ...); other objects iterate synchronously. */
  [Symbol.asyncIterator](): AsyncIterator<any>;
}

/** A Python object. Property access reads and writes Python attributes. */
export type PyObject = PyObjectMethods & { [attribute: string]: any };

// --- typed views (type declarations only; `pyembed stubs` writes them for Python modules) ------

/**
 * A Python object whose `toJS()` result is known: `PyObjectOf<number[]>` for a `list[int]`.
 * Other attributes stay untyped (`any`), as on every PyObject.
 */
export interface PyObjectOf<J> extends PyObjectMethods {
  /** Deep conversion with the default options gives a `J`. */
  toJS(): J;
  toJS(options: ToJSOptions): unknown;
  [attribute: string]: any;
}

/** The argument lists of P with an AbortSignal after them (after any optional ones used). */
export type WithSignal<P extends unknown[]> = number extends P['length']
  ? [...P, AbortSignalLike]
  : P extends []
    ? [AbortSignalLike]
    : P extends [infer Head, ...infer Rest]
      ? [Head, ...WithSignal<Rest>]
      : P extends [(infer Head)?, ...infer Rest]
        ? [AbortSignalLike] | [Head, ...WithSignal<Rest>]
        : [...P, AbortSignalLike];

/**
 * A Python callable with a known signature, e.g. `PyFunction<(a: number, kw?: KwArgs) => string>`:
 * calls and `callAsync` are typed.
 */
export type PyFunction<F extends (...args: any[]) => any> = F & PyObjectMethods & {
  /** Runs the call on pyembed's thread pool; the event loop keeps running meanwhile. */
  callAsync(...args: Parameters<F>): Promise<Awaited<ReturnType<F>>>;
  /** The same, cancelled when the signal (the last argument) aborts. */
  callAsync(...args: WithSignal<Parameters<F>>): Promise<Awaited<ReturnType<F>>>;
  /** The call's result as a PyObject, never converted. */
  callRaw(...args: Parameters<F>): PyObject;
};

/** An awaitable Python object (a coroutine): `await` gives its result. */
export interface PyAwaitable<T> extends PyObjectMethods, PromiseLike<T> {
  [attribute: string]: any;
}

/** An iterable Python object (list, generator, ...) whose items are `T` in JS. */
export interface PyIterable<T> extends PyObjectMethods {
  [Symbol.iterator](): Iterator<T>;
  [attribute: string]: any;
}

/** A Python async iterable (an async generator, ...): `for await` gives `T`s. */
export interface PyAsyncIterable<T> extends PyObjectMethods {
  [Symbol.asyncIterator](): AsyncIterator<T>;
  [attribute: string]: any;
}

/** A callable Python object (function, class, method, ...): call it like a JS function. */
export interface PyCallable extends PyObjectMethods {
  (...args: any[]): any;
  new (...args: any[]): any;
  /**
   * Runs the call on pyembed's thread pool; the event loop keeps running meanwhile. An
   * AbortSignal as the last argument (after any Py.kw) cancels it.
   */
  callAsync(...args: unknown[]): Promise<any>;
  /** The call's result as a PyObject, never converted (`np.float64(1).item()` stays reachable). */
  callRaw(...args: unknown[]): PyObject;
  [attribute: string]: any;
}

export function handleOf(value: unknown): Handle {
  const h = (value as { [HANDLE]?: Handle } | null | undefined)?.[HANDLE];
  if (h === undefined) throw new TypeError('expected a Python object (a pyembed PyObject)');
  return h;
}

export function isPyObject(value: unknown): value is PyObject {
  return (typeof value === 'object' || typeof value === 'function') && value !== null &&
    Object.prototype.hasOwnProperty.call(value, HANDLE);
}

/** A native result as a JS value: handles become PyObjects. */
export function fromNative(r: NativeResult | symbol): any {
  return typeof r === 'object' ? (decoding ? decode(wrap(r)) : wrap(r)) : r;
}

function splitKwargs(args: unknown[]): KwArgs | undefined {
  const last = args.length !== 0 ? args[args.length - 1] : undefined;
  if (last instanceof KwArgs) {
    args.pop();
    return last;
  }
  return undefined;
}

const builtins = new Map<string, Handle>();

/** A function of Python's builtins module, as a handle of the running interpreter. */
export function builtin(name: string): Handle {
  let h = builtins.get(name);
  if (h === undefined || native.isDisposed(h)) {
    h = native.getattr(native.importModule('builtins'), name, true) as Handle;
    builtins.set(name, h);
  }
  return h;
}

// --- attribute fallback --------------------------------------------------------------------

// Read once: a load from the addon's exports object (many properties) per read costs more than
// the rest of the trap.
const nativeGetattr = native.getattr;

const attributeFallback: object = new Proxy(Object.create(null) as object, {
  get(_target, key, receiver: Record<PropertyKey, unknown>) {
    if (typeof key === 'symbol') return undefined;
    const h = receiver?.[HANDLE] as Handle | undefined;
    if (h === undefined) return undefined;
    const r = nativeGetattr(h, key, false);
    return typeof r === 'object' ? (decoding ? decode(wrap(r)) : wrap(r)) : r;
  },
  set(_target, key, value, receiver: Record<PropertyKey, unknown>) {
    const h = typeof key === 'string' ? (receiver?.[HANDLE] as Handle | undefined) : undefined;
    if (h === undefined) {
      // Symbols (and the prototype itself) keep ordinary JS semantics.
      return Reflect.defineProperty(receiver, key, { value, writable: true, configurable: true, enumerable: true });
    }
    native.setattr(h, key as string, value, false);
    return true;
  },
});

// --- methods -------------------------------------------------------------------------------

// postMessage, workerData and structuredClone copy an object's own enumerable string-keyed
// properties, and a PyObject has none (its handle is under a symbol), so it would arrive as `{}`.
// This property makes the copy fail instead, with DataCloneError naming the way that works. Its
// name cannot be a Python attribute's, so it shadows none. (Callables are functions, which
// structured clone rejects anyway, quoting their source: see makeCallable.)
const NOT_CLONEABLE = '[PyObject]';
const cloneGuard: object = Object.freeze(
  Object.defineProperty({}, 'reason', {
    enumerable: true,
    get(): never {
      throw new DOMException(
        'a PyObject cannot be copied to another thread (postMessage, workerData, structuredClone): ' +
          'post Py.share(obj) and call Py.unshare(token) on the other side to use the same Python object there',
        'DataCloneError',
      );
    },
  }),
);

class PyObjectImpl implements PyObjectMethods {
  // A class field is defined on the instance directly (no walk up to the attribute Proxy).
  readonly [HANDLE]: Handle;
  readonly [NOT_CLONEABLE]: object = cloneGuard;

  constructor(handle: Handle) {
    this[HANDLE] = handle;
  }

  get typeName(): string {
    return native.text(handleOf(this), 2);
  }

  get length(): number | undefined {
    const h = handleOf(this);
    return native.hasattr(h, '__len__') ? native.len(h) : undefined;
  }

  get isDisposed(): boolean {
    return native.isDisposed(handleOf(this));
  }

  toString(): string {
    return native.text(handleOf(this), 0);
  }

  repr(): string {
    return native.text(handleOf(this), 1);
  }

  valueOf(): this {
    return this; // no Python lookup for JS's ToPrimitive; toString gives str()
  }

  toJSON(): unknown {
    return this.toJS();
  }

  toJS(options: ToJSOptions = {}): unknown {
    const { depth, buffers } = options;
    if (depth !== undefined && !(depth === Infinity || (Number.isInteger(depth) && depth >= 0))) {
      throw new RangeError(`toJS(): depth must be a non-negative integer or Infinity, not ${String(depth)}`);
    }
    if (buffers !== undefined && buffers !== 'convert' && buffers !== 'pyobject') {
      throw new TypeError(`toJS(): buffers must be 'convert' or 'pyobject', not ${String(buffers)}`);
    }
    const value = native.toJS(handleOf(this), options.dict === 'map',
      depth === undefined || depth === Infinity ? undefined : Math.min(depth, 0x7fffffff), buffers === 'pyobject');
    return options.datetime === 'date' ? datesToJS(value) : value;
  }

  get(key: unknown): any {
    return fromNative(native.item(handleOf(this), key, 0));
  }

  set(key: unknown, value: unknown): void {
    native.item(handleOf(this), key, 1, value);
  }

  has(key: unknown): boolean {
    return native.item(handleOf(this), key, 3) as boolean;
  }

  delete(key: unknown): void {
    native.item(handleOf(this), key, 2);
  }

  getAttr(name: string): any {
    return fromNative(native.getattr(handleOf(this), name, true));
  }

  getAttrRaw(name: string): PyObject {
    if (typeof name !== 'string') throw new TypeError('getAttrRaw() needs an attribute name (a string)');
    return wrap(native.callRaw(builtin('getattr'), undefined, this, name));
  }

  setAttr(name: string, value: unknown): void {
    native.setattr(handleOf(this), name, value, false);
  }

  hasAttr(name: string): boolean {
    return native.hasattr(handleOf(this), name);
  }

  delAttr(name: string): void {
    native.setattr(handleOf(this), name, undefined, true);
  }

  dir(): string[] {
    return native.dir(handleOf(this));
  }

  isInstance(cls: PyObject): boolean {
    return native.isInstance(handleOf(this), handleOf(cls));
  }

  equals(other: unknown): boolean {
    return native.compare(handleOf(this), other, 2);
  }

  toTypedArray(): TypedArray {
    const buffer = this.getBuffer();
    if (!buffer.contiguous) {
      throw new TypeError(
        `this ${this.typeName} is not C-contiguous (strides ${JSON.stringify(buffer.strides)}); ` +
          'use getBuffer(), or numpy.ascontiguousarray() in Python',
      );
    }
    if (buffer.data.BYTES_PER_ELEMENT !== buffer.itemsize) {
      // A Uint8Array of the raw bytes: complex, float16, non-native byte order, records, ...
      throw new TypeError(
        `this ${this.typeName}'s elements (format '${buffer.format}', ${buffer.itemsize} bytes each) have ` +
          'no JS TypedArray type: getBuffer().data holds their bytes',
      );
    }
    return buffer.data;
  }

  getBuffer(): PyBuffer {
    const [data, shape, strides, offset, format, itemsize, readonly] = native.buffer(handleOf(this));
    // Strides count elements of `data`: bytes when the elements have no TypedArray type.
    let expected = itemsize / data.BYTES_PER_ELEMENT;
    let contiguous = offset === 0;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (shape[d]! > 1 && strides[d] !== expected) contiguous = false;
      expected *= shape[d]!;
    }
    return { data, shape, strides, offset, format, itemsize, readonly, contiguous };
  }

  dispose(): void {
    native.dispose(handleOf(this));
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  *[Symbol.iterator](): Iterator<any> {
    const it = native.iter(handleOf(this));
    try {
      for (;;) {
        const r = native.next(it);
        if (r === DONE) return;
        yield fromNative(r);
      }
    } finally {
      native.dispose(it);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<any> {
    return asyncIterate(this as unknown as PyObject);
  }

  [inspect.custom](): string {
    const h = this[HANDLE];
    if (native.isDisposed(h)) return '[PyObject (disposed)]';
    try {
      return `[PyObject ${native.text(h, 1)}]`;
    } catch (error) {
      return `[PyObject (repr failed: ${error instanceof Error ? error.message : String(error)})]`;
    }
  }

  /** Thenable only for awaitables (coroutines): `await coro` runs it on pyembed's asyncio loop. */
  get then(): ((onFulfilled?: (v: any) => unknown, onRejected?: (e: unknown) => unknown) => Promise<unknown>) | undefined {
    const h = this[HANDLE];
    if (h === undefined || (native.handleFlags(h) & AWAITABLE) === 0) return undefined;
    return (onFulfilled, onRejected) => native.awaitAsync(h, 0).then(onFulfilled, onRejected);
  }
}

class PyCallableImpl extends PyObjectImpl {
  /** Calls the object and returns the result as a PyObject, never converted. */
  callRaw(...args: unknown[]): PyObject {
    const kw = splitKwargs(args);
    return wrap(native.callRaw(handleOf(this), kw?.kwargs, ...args));
  }

  async callAsync(...args: unknown[]): Promise<any> {
    const signal = isAbortSignal(args[args.length - 1]) ? (args.pop() as AbortSignalLike) : undefined;
    const kw = splitKwargs(args);
    const h = handleOf(this);
    try {
      return await (signal === undefined
        ? native.callAsync(h, kw?.kwargs, 0, ...args)
        : cancellable(signal, (token) => native.callAsync(h, kw?.kwargs, token, ...args)));
    } catch (error) {
      // The error was made where the call ended, on a later tick. Here, resumed by `await`, V8's
      // async stack traces know who awaited this call: a stack taken now names them, at no cost
      // to calls that succeed.
      const site: { stack?: string } = {};
      Error.captureStackTrace(site);
      throw withCallSite(error, site);
    }
  }
}

/** Gives an error of an asynchronous call the JS frames of the call instead of its own. */
function withCallSite(error: unknown, site: { stack?: string }): unknown {
  if (error instanceof PythonError) {
    setJsFrames(error, site);  // the text is still made only when read
    return error;
  }
  if (!(error instanceof Error) || typeof site.stack !== 'string' || typeof error.stack !== 'string') return error;
  const frames = site.stack.slice(site.stack.indexOf('\n'));
  const header = error.stack.indexOf('\n    at ');
  error.stack = (header >= 0 ? error.stack.slice(0, header) : error.stack) + frames;
  return error;
}

Object.setPrototypeOf(PyObjectImpl.prototype, attributeFallback);
// Callables keep the JS function protocol too.
for (const name of ['apply', 'call', 'bind'] as const) {
  Object.defineProperty(PyCallableImpl.prototype, name, {
    value: Function.prototype[name],
    writable: true,
    configurable: true,
  });
}

function makeObject(h: Handle): PyObject {
  return new PyObjectImpl(h) as unknown as PyObject;
}

// The hot path reads these once: the addon's exports object has many properties, and a
// property load per call would cost more than the rest of the JS side of a call.
const nativeCall = native.call;
const nativeCallKw = native.callKw;
const nativeHandleFlags = native.handleFlags;

function makeCallable(h: Handle): PyCallable {
  const f = function (this: unknown, ...args: unknown[]): unknown {
    // A Python callable (PyObject): to use it in another thread, post Py.share(f) and Py.unshare(token) there.
    const n = args.length;
    const r = n !== 0 && args[n - 1] instanceof KwArgs
      ? nativeCallKw(h, (args.pop() as KwArgs).kwargs, ...args)
      : nativeCall(h, ...args);
    return typeof r === 'object' ? (decoding ? decode(wrap(r)) : wrap(r)) : r;
  };
  // Before the prototype changes, so the assignment does not reach the attribute Proxy.
  (f as unknown as { [HANDLE]: Handle })[HANDLE] = h;
  // `length` and `name` would shadow PyObject.length and the Python attribute `name`.
  delete (f as { length?: number }).length;
  delete (f as { name?: string }).name;
  Object.setPrototypeOf(f, PyCallableImpl.prototype);
  return f as unknown as PyCallable;
}

/**
 * Awaits a Python awaitable (a coroutine) on pyembed's asyncio loop, as `await obj` does; an
 * abort of `signal` cancels its task (asyncio.CancelledError in the coroutine).
 */
export function awaitPython(awaitable: PyObject, signal?: AbortSignalLike): Promise<any> {
  const h = handleOf(awaitable);
  if ((nativeHandleFlags(h) & AWAITABLE) === 0) {
    return Promise.reject(new TypeError(`a ${native.text(h, 2)} object is not awaitable`));
  }
  if (signal === undefined) return native.awaitAsync(h, 0);
  if (!isAbortSignal(signal)) return Promise.reject(new TypeError('signal must be an AbortSignal'));
  if (signal.aborted && native.text(h, 2) === 'coroutine') {
    // Never run: closed now, so Python does not warn that it was never awaited.
    (awaitable.getAttr('close') as () => void)();
  }
  return cancellable(signal, (token) => native.awaitAsync(h, token));
}

// The PyObject made for a handle. The addon gives the same handle for the same Python object
// while that handle lives, so the same object gives the same PyObject (`===`, Map keys).
const PROXY: unique symbol = Symbol('pyembed.proxy');

/** A PyObject for a native handle: the one already made for it, if any. */
export function wrap(h: Handle): any {
  const known = (h as { [PROXY]?: PyObject })[PROXY];
  if (known !== undefined) return known;
  const made = (nativeHandleFlags(h) & CALLABLE) !== 0 ? makeCallable(h) : makeObject(h);
  (h as { [PROXY]?: PyObject })[PROXY] = made as PyObject;
  return made;
}

/**
 * `raise X from Y`: the PythonError for X gets a PythonError for Y as its `cause` (and so on down
 * the chain), made when `cause` is first read.
 */
function withCause(error: PythonError, depth = 0): PythonError {
  const exception = error.pyException;
  if (depth >= 32 || exception === undefined) return error;
  Object.defineProperty(error, 'cause', {
    get() {
      let causeError: PythonError | undefined;
      try {
        const cause = exception.__cause__ as PyObject | undefined;
        if (cause !== undefined) {
          const [type, message, hasCause] = (helperModule().describe_cause(cause) as PyObject).toJS() as [string, string, boolean];
          causeError = new PythonError(type, message, undefined, cause);
          if (hasCause) withCause(causeError, depth + 1);
        }
      } catch {
        // The cause cannot be described (Python is stopping, ...): the error itself still stands.
      }
      Object.defineProperty(error, 'cause', { value: causeError, writable: true, configurable: true, enumerable: false });
      return causeError;
    },
    set(value: unknown) {
      Object.defineProperty(error, 'cause', { value, writable: true, configurable: true, enumerable: false });
    },
    configurable: true,
    enumerable: false,
  });
  return error;
}

setTracebackFormatter((exception) => helperModule().format_exception(exception) as string, (h) => wrap(h as Handle) as PyObject);

native.configure({
  handleKey: HANDLE,
  done: DONE,
  errorFactory: (type, message, exc, hasCause, site) => {
    const pyException = exc === undefined ? undefined : wrap(exc);
    const error = withSite(site, () => new PythonError(type, message, undefined, pyException));
    return mapError(hasCause ? withCause(error) : error);
  },
  errorRealm,
  wrapFactory: (h: Handle) => (decoding ? decode(wrap(h)) : wrap(h)),
  encodeHook,
  kwargsPrototype: KwArgs.prototype,
  threadName: isMainThread ? 'JS-main' : `JS-worker-${threadId}`,
  isMainThread,
  threadId,
});
