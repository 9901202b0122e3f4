import { createContext, runInContext } from 'node:vm';
import { native } from './native.js';
import type { PyObject } from './proxy.js';

// Formats a Python exception's traceback and wraps an exception handle the addon stored (both
// set by proxy.ts, which can call Python).
let formatTraceback: ((exception: PyObject) => string) | undefined;
let wrapHandle: ((handle: object) => PyObject) | undefined;

/** @internal */
export function setTracebackFormatter(format: (exception: PyObject) => string, wrap: (handle: object) => PyObject): void {
  formatTraceback = format;
  wrapHandle = wrap;
}

// A PythonError's state, under symbols so that an error the addon made (which runs no
// constructor, so it can have no private fields) and one made by `new PythonError` share the
// getters. The addon keeps the exception's handle under a private key instead (errorException).
const EXCEPTION = Symbol('pyembed.exception');        // the PyObject (made when first read, for the addon's)
const TRACEBACK = Symbol('pyembed.traceback');        // the formatted traceback, once read
const SITE = Symbol('pyembed.site');                  // an object whose `stack` holds the JS frames

interface ErrorState {
  [EXCEPTION]?: PyObject;
  [TRACEBACK]?: string;
  [SITE]?: { stack?: string };
}

function hide(error: object, key: symbol, value: unknown): void {
  Object.defineProperty(error, key, { value, writable: true, configurable: true, enumerable: false });
}

// `stack` of a PythonError made by `new PythonError`: built when first read, replaced when
// assigned, as for any error.
let STACK: PropertyDescriptor;
// The JS frames of the next PythonError made by the factory, taken by the addon (see withSite).
let givenSite: { stack?: string } | undefined;

/**
 * A Python exception, raised by Python code that JavaScript called.
 *
 * `type` is the Python class name (`ValueError`, `ModuleNotFoundError`, ...), `message` is
 * `str(exception)`, `pythonTraceback` the formatted Python traceback and `pyException` the
 * exception object itself. The JS stack is kept, with the Python traceback appended to it.
 *
 * The traceback text (and so `stack`) is made when it is first read, from `pyException`: an
 * exception that is caught and dropped costs no formatting. Read after Python stopped, the
 * traceback is its last line alone (`Type: message`).
 */
export class PythonError extends Error {
  declare readonly type: string;

  /** `pythonTraceback` undefined: formatted from `pyException` when first read. */
  constructor(type: string, message: string, pythonTraceback: string | undefined, pyException?: PyObject) {
    // The JS frames are taken once, on an object of their own (SITE): V8 builds their text
    // only if `stack` is read, which costs more than the whole call. A limit that is no number
    // makes super() take none and leave a plain `stack` slot, cheaper to redefine.
    // Only a writable limit is swapped: a frozen Error (hardened JS) or an accessor is left as it
    // is, and super() then takes frames by V8's own rules.
    const limit = Object.getOwnPropertyDescriptor(Error, 'stackTraceLimit');
    const swap = limit !== undefined && limit.writable === true;
    if (swap) (Error as { stackTraceLimit: unknown }).stackTraceLimit = undefined;
    super(message);
    if (swap) Error.stackTraceLimit = limit.value;
    let site = givenSite;
    givenSite = undefined;
    if (site === undefined) {
      site = {};
      Error.captureStackTrace(site, new.target);
    }
    (this as { type: string }).type = type;
    hide(this, EXCEPTION, pyException);
    if (pythonTraceback !== undefined) hide(this, TRACEBACK, pythonTraceback);
    hide(this, SITE, site);
    Object.defineProperty(this, 'stack', STACK);
  }

  /** The Python exception object. */
  get pyException(): PyObject | undefined {
    const state = this as ErrorState;
    if (Object.prototype.hasOwnProperty.call(state, EXCEPTION)) return state[EXCEPTION];
    // An error the addon made keeps the handle: its PyObject is made when first asked for.
    const handle = native.errorException(this);
    const exception = handle === undefined ? undefined : wrapHandle!(handle);
    hide(this, EXCEPTION, exception);
    return exception;
  }

  /** The formatted Python traceback (`Traceback (most recent call last): ...`). */
  get pythonTraceback(): string {
    const state = this as ErrorState;
    let traceback = state[TRACEBACK];
    if (traceback === undefined) {
      try {
        const exception = this.pyException;
        traceback = exception !== undefined && formatTraceback !== undefined ? formatTraceback(exception) : '';
      } catch {
        traceback = `${this.type}: ${this.message}\n`;  // Python stopped: the last line is known
      }
      hide(this, TRACEBACK, traceback);
    }
    return traceback;
  }

  static {
    Object.defineProperty(PythonError.prototype, 'name', { value: 'PythonError', writable: true, configurable: true, enumerable: false });
    STACK = {
      get(this: PythonError) {
        const site = (this as ErrorState)[SITE];
        const text = stackText(this, framesOf(site?.stack));
        Object.defineProperty(this, 'stack', { value: text, writable: true, configurable: true, enumerable: false });
        return text;
      },
      set(this: PythonError, value: unknown) {
        Object.defineProperty(this, 'stack', { value, writable: true, configurable: true, enumerable: false });
      },
      configurable: true,
      enumerable: false,
    };
  }
}

// The frame lines of a stack text (all but its first line), each starting with '\n'.
function framesOf(stack: unknown): string {
  if (typeof stack !== 'string') return '';
  const firstLineEnd = stack.indexOf('\n');
  return firstLineEnd >= 0 ? stack.slice(firstLineEnd) : '';
}

function stackText(error: PythonError, frames: string): string {
  const traceback = error.pythonTraceback;
  return `PythonError: ${error.type}: ${error.message}${frames}` + (traceback ? `\n\n${traceback.trimEnd()}` : '');
}

/**
 * The `stack` text of a PythonError the addon made in the error realm (below): V8 asks for it
 * when `stack` is first read, with the frames it took when the error was made.
 */
function realmStack(error: unknown, trace: unknown[]): string {
  let frames: string;
  const site = (error as ErrorState)[SITE];
  if (site !== undefined) {
    frames = framesOf(site.stack);  // an asynchronous call's caller (setJsFrames)
  } else if (typeof Error.prepareStackTrace === 'function') {
    // The application formats its own errors' frames (source-map-support, ...): these too.
    frames = framesOf(Error.prepareStackTrace(error as Error, trace as NodeJS.CallSite[]));
  } else {
    frames = trace.map((site) => `\n    at ${String(site)}`).join('');
  }
  if (!(error instanceof PythonError)) return `${String(error)}${frames}`;
  return stackText(error, frames);
}

/** @internal What the addon needs to make PythonErrors itself. */
export interface ErrorRealm {
  error: ErrorConstructor;      // the realm's Error: the addon makes errors with it
  mainError: ErrorConstructor;  // this context's: its stackTraceLimit is followed
  prototype: object;            // PythonError.prototype
  mapped: Int32Array;           // [0] != 0: errors are mapped to registered classes (JS does it)
}

/**
 * [0] != 0 once a JS error class is registered for a Python type: the addon then leaves the
 * errors to the factory, which maps them.
 * @internal
 */
export const errorsMapped = new Int32Array(1);

/**
 * The error realm: a context of its own (node:vm) whose `Error` the addon makes PythonErrors
 * with. Node asks a context's own `Error.prepareStackTrace` to format the `stack` of the errors
 * made there, so a PythonError keeps V8's own `stack` (taken once, formatted when first read)
 * and still shows its Python type and traceback. Redefining `stack` on each error instead, as
 * `new PythonError` does, turns it into a slow dictionary-mode object; making a second error
 * for the frames costs another construction. Made when the first Python exception reaches JS;
 * none (the factory makes every error) where Node maps frames through source maps itself,
 * since frames formatted here would not be mapped.
 * @internal
 */
export function errorRealm(): ErrorRealm | undefined {
  if ((process as { sourceMapsEnabled?: boolean }).sourceMapsEnabled === true) return undefined;
  const realm = createContext({}, { name: 'pyembed errors' });
  const realmError = runInContext('Error', realm) as ErrorConstructor;
  realmError.prepareStackTrace = realmStack;
  return { error: realmError, mainError: Error, prototype: PythonError.prototype, mapped: errorsMapped };
}

/**
 * Gives `error` the JS frames of `site.stack` (those of an asynchronous call's caller); its
 * `stack` text is still made when first read.
 * @internal
 */
export function setJsFrames(error: PythonError, site: { stack?: string }): void {
  // An error of `new PythonError` always has a SITE and its own `stack` accessor (redefined in
  // case the text was read already); one of the realm keeps V8's `stack`, which asks
  // realmStack, which reads SITE.
  const constructed = Object.prototype.hasOwnProperty.call(error, SITE);
  hide(error, SITE, site);
  if (constructed) Object.defineProperty(error, 'stack', STACK);
}

/**
 * Makes `make()`'s PythonError with the JS frames of `site` (an error the addon made where the
 * call entered it: capturing there walks fewer frames than a capture in JS would, and names no
 * frame of pyembed's own error factory), instead of taking them itself.
 * @internal
 */
export function withSite<T>(site: { stack?: string } | undefined, make: () => T): T {
  givenSite = site;
  try {
    return make();
  } finally {
    givenSite = undefined;
  }
}
