// Py and PyModule: the entry points for importing and creating Python modules.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { withAsyncContext, withContext } from './context.js';
import { ref, registerDecoder, registerEncoder, registerError } from './conversions.js';
import { ensureRunning, helperModule } from './engine.js';
import { GILScope } from './gil.js';
import { KwArgs, native } from './native.js';
import { isAbortSignal } from './cancel.js';
import { asyncIterate } from './conventions.js';
import { awaitPython, handleOf, wrap, type PyObject } from './proxy.js';
import { pyFloat, pyInt } from './values.js';
import type { AbortSignalLike, URLLike } from './web-types.js';

/** A Python object in transit to another JS thread (see Py.share). Survives postMessage. */
export interface SharedPyObject {
  readonly pyembedShared: number;
}

function checkName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError(`${what} needs a module name (a non-empty string)`);
}

/** The file that PyModule.import() was given, or undefined for a module name. */
function moduleFile(name: unknown): string | undefined {
  if (name instanceof URL || (typeof name === 'string' && name.startsWith('file:'))) {
    try {
      return fileURLToPath(name as string | URL);
    } catch (error) {
      throw new TypeError(`PyModule.import(): ${String(name)} is not a file URL (${(error as Error).message})`);
    }
  }
  if (typeof name === 'string' && (name.startsWith('./') || name.startsWith('../') || path.isAbsolute(name))) {
    return path.resolve(name);
  }
  return undefined;
}

export class PyModule {
  private constructor() {}

  /**
   * `import name`; or, given a file (`./tool.py`, `../lib/tool.py`, an absolute path, a `file:`
   * URL such as `new URL('./tool.py', import.meta.url)`) or a package folder, imports that file
   * with its folder first on sys.path, so the modules beside it import too.
   */
  static import(name: string | URLLike): PyObject {
    const file = moduleFile(name);
    if (file !== undefined) {
      ensureRunning();
      return helperModule().import_file(file);
    }
    checkName(name, 'PyModule.import()');
    ensureRunning();
    return wrap(native.importModule(name));
  }

  /**
   * Creates module `name` from source; Python code can `import name` afterwards. `filename` is
   * its `__file__` and the file name its tracebacks show (default `<pyembed:name>`).
   */
  static fromString(name: string, code: string, options: { filename?: string } = {}): PyObject {
    checkName(name, 'PyModule.fromString()');
    if (typeof code !== 'string') throw new TypeError('PyModule.fromString() needs Python source code (a string)');
    const filename = options?.filename;
    if (filename !== undefined && (typeof filename !== 'string' || filename.length === 0)) {
      throw new TypeError('PyModule.fromString(): options.filename must be a non-empty string');
    }
    ensureRunning();
    if (filename !== undefined) return helperModule().module_from_string(name, code, filename);
    return wrap(native.moduleFromString(name, code));
  }

  /**
   * Registers a Python module `name` whose attributes are the given JS values and functions, so
   * Python code on any thread can `import name` and call them.
   */
  static expose(name: string, exports: Record<string, unknown>): PyObject {
    checkName(name, 'PyModule.expose()');
    if (typeof exports !== 'object' || exports === null) throw new TypeError('PyModule.expose() needs an object of exports');
    ensureRunning();
    return wrap(native.expose(name, exports));
  }
}

export const Py = {
  /** Holds the GIL until disposed: `using gil = Py.GIL();` (cheaper for many operations in a row). */
  GIL(): GILScope {
    ensureRunning();
    return new GILScope();
  },
  /**
   * Runs fn in a Py.GIL() scope and returns its result: the form of `using gil = Py.GIL()` for
   * JavaScript without `using` (Node 20 and 22). Nestable. For synchronous work: the scope ends
   * when fn returns, so an async fn holds the GIL only until its first `await`.
   */
  withGIL<T>(fn: () => T): T {
    if (typeof fn !== 'function') throw new TypeError('Py.withGIL() needs a function');
    const scope = Py.GIL();
    try {
      return fn();
    } finally {
      scope[Symbol.dispose]();
    }
  },
  /** `import name`, or a .py file: see PyModule.import(). */
  import(name: string | URLLike): PyObject {
    return PyModule.import(name);
  },
  /** Keyword arguments, as the last argument of a call: `f(1, Py.kw({ sep: ',' }))`. */
  kw(kwargs: Record<string, unknown>): KwArgs {
    if (typeof kwargs !== 'object' || kwargs === null) throw new TypeError('Py.kw() needs an object of keyword arguments');
    return new KwArgs(kwargs);
  },
  /**
   * Prepares a Python object for another worker: send the result with postMessage and call
   * Py.unshare() there to get the same object (not a copy). Each token can be claimed once.
   */
  share(obj: PyObject): SharedPyObject {
    return { pyembedShared: native.share(handleOf(obj)) };
  },
  /** The Python object behind a Py.share() token, on this JS thread. */
  unshare(token: SharedPyObject): PyObject {
    if (typeof token !== 'object' || token === null || typeof token.pyembedShared !== 'number') {
      throw new TypeError('Py.unshare() needs the value returned by Py.share()');
    }
    ensureRunning();
    return wrap(native.unshare(token.pyembedShared));
  },
  /** A Python bytes copy of JS binary data (ArrayBuffer, TypedArray, Buffer): binary data
   *  otherwise reaches Python as a memoryview sharing the JS memory. */
  bytes(data: ArrayBuffer | SharedArrayBuffer | ArrayBufferView): PyObject {
    if (!(data instanceof ArrayBuffer) && !ArrayBuffer.isView(data) &&
        !(typeof SharedArrayBuffer !== 'undefined' && data instanceof SharedArrayBuffer)) {
      throw new TypeError('Py.bytes() needs an ArrayBuffer, a TypedArray, a DataView or a Buffer');
    }
    ensureRunning();
    return wrap(native.toBytes(data));
  },
  /**
   * `await awaitable` (a Python coroutine) on pyembed's asyncio loop, cancellable: an abort of
   * `signal` cancels the coroutine's task (asyncio.CancelledError in it) and rejects the promise
   * (see callAsync).
   */
  awaitAsync(awaitable: PyObject, signal?: AbortSignalLike): Promise<any> {
    return awaitPython(awaitable, signal);
  },
  /**
   * `for await (const x of Py.aiter(asyncIterable, signal))`: as `for await` over the object
   * itself, and an abort of `signal` cancels the step in progress (CancelledError in the
   * generator) and ends the loop with the abort's error.
   */
  aiter(iterable: PyObject, signal?: AbortSignalLike): AsyncIterable<any> {
    if (signal !== undefined && !isAbortSignal(signal)) throw new TypeError('signal must be an AbortSignal');
    handleOf(iterable);
    return { [Symbol.asyncIterator]: () => asyncIterate(iterable, signal) };
  },
  /** `with cm as value:`: `using ctx = Py.with(cm)`, or `Py.with(cm, (value) => ...)` (see withContext). */
  with: withContext,
  /** `async with cm as value:`: `await using ctx = await Py.withAsync(cm)`, or with a callback. */
  withAsync: withAsyncContext,
  /** A Python float (JS numbers with integer values otherwise become ints): `Py.float(1)` is 1.0. */
  float: pyFloat,
  /** A Python int from a bigint, an integer number or a string of digits (any size). */
  int: pyInt,
  /** How instances of a JS class become Python objects: `Py.registerEncoder(Money, (m) => Decimal(m.text))`. */
  registerEncoder,
  /** Sends a JS object to Python by reference (a JsProxy), even plain data: `m.f(Py.ref(obj))`. */
  ref,
  /** How objects of a Python class become JS values: `Py.registerDecoder(Decimal, (d) => String(d))`. */
  registerDecoder,
  /** Which PythonError subclass a Python exception class becomes in JS. */
  registerError,
  /** Converts a JS value to a Python object (a list for an array, a dict for an object, ...). */
  toPython(value: unknown): PyObject {
    ensureRunning();
    return wrap(native.toPython(value));
  },
};
