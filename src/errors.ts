import type { PyObject } from './proxy.js';

// Formats a Python exception's traceback (set by proxy.ts, which can call Python).
let formatTraceback: ((exception: PyObject) => string) | undefined;

/** @internal */
export function setTracebackFormatter(format: (exception: PyObject) => string): void {
  formatTraceback = format;
}

// `stack` of a PythonError: built when first read, replaced when assigned, as for any error.
let STACK: PropertyDescriptor;
let setSite: (error: PythonError, site: { stack?: string }) => void;
// The JS frames of the next PythonError made by the addon, taken there (see withSite).
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
  readonly type: string;
  #exception: PyObject | undefined;
  #traceback: string | undefined;
  #site: { stack?: string };

  /** `pythonTraceback` undefined: formatted from `pyException` when first read. */
  constructor(type: string, message: string, pythonTraceback: string | undefined, pyException?: PyObject) {
    // The JS frames are taken once, on an object of their own (#site): V8 builds their text
    // only if `stack` is read, which costs more than the whole call. A limit that is no number
    // makes super() take none and leave a plain `stack` slot, cheaper to redefine.
    const limit = Error.stackTraceLimit;
    (Error as { stackTraceLimit: unknown }).stackTraceLimit = undefined;
    super(message);
    Error.stackTraceLimit = limit;
    if (givenSite !== undefined) {
      this.#site = givenSite;
      givenSite = undefined;
    } else {
      this.#site = {};
      Error.captureStackTrace(this.#site, new.target);
    }
    this.name = 'PythonError';
    this.type = type;
    this.#exception = pyException;
    this.#traceback = pythonTraceback;
    Object.defineProperty(this, 'stack', STACK);
  }

  /** The Python exception object. */
  get pyException(): PyObject | undefined {
    return this.#exception;
  }

  /** The formatted Python traceback (`Traceback (most recent call last): ...`). */
  get pythonTraceback(): string {
    if (this.#traceback === undefined) {
      try {
        this.#traceback = this.#exception !== undefined && formatTraceback !== undefined ? formatTraceback(this.#exception) : '';
      } catch {
        this.#traceback = `${this.type}: ${this.message}\n`;  // Python stopped: the last line is known
      }
    }
    return this.#traceback;
  }

  static {
    setSite = (error, site) => {
      error.#site = site;
      Object.defineProperty(error, 'stack', STACK);
    };
  }

  static #stackText(error: PythonError): string {
    const frames = typeof error.#site.stack === 'string' ? error.#site.stack : '';
    const firstLineEnd = frames.indexOf('\n');
    const traceback = error.pythonTraceback;
    return `PythonError: ${error.type}: ${error.message}${firstLineEnd >= 0 ? frames.slice(firstLineEnd) : ''}` +
      (traceback ? `\n\n${traceback.trimEnd()}` : '');
  }

  static {
    STACK = {
      get(this: PythonError) {
        const text = PythonError.#stackText(this);
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

/**
 * Gives `error` the JS frames of `site.stack` (those of an asynchronous call's caller); its
 * `stack` text is still made when first read.
 * @internal
 */
export function setJsFrames(error: PythonError, site: { stack?: string }): void {
  setSite(error, site);
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
