// Py.with / Py.withAsync: Python context managers (`with cm as value:`) from JavaScript.
import { helperModule } from './engine.js';
import { PythonError } from './errors.js';
import { isPyObject, type PyObject } from './proxy.js';

/**
 * An entered context manager, for `using`: `value` is what `__enter__` returned, and leaving the
 * scope calls `__exit__(None, None, None)`. `using` does not tell a disposer whether the scope
 * threw, so `__exit__` never sees the exception and cannot suppress it: for that, pass a
 * callback (`Py.with(cm, (value) => ...)`).
 */
export class PyContext<T = any> implements Disposable {
  readonly value: T;
  #context: PyObject | undefined;

  /** @internal */
  constructor(context: PyObject) {
    this.#context = context;
    this.value = context.value as T;
  }

  /** Calls `__exit__(None, None, None)` (once; later calls do nothing). */
  [Symbol.dispose](): void {
    const context = this.#context;
    if (context === undefined) return;
    this.#context = undefined;
    try {
      context.exit();
    } finally {
      context.dispose();
    }
  }
}

/** An entered async context manager, for `await using`: leaving awaits `__aexit__(None, None, None)`. */
export class PyAsyncContext<T = any> implements AsyncDisposable {
  readonly value: T;
  #context: PyObject | undefined;

  /** @internal */
  constructor(context: PyObject) {
    this.#context = context;
    this.value = context.value as T;
  }

  /** Awaits `__aexit__(None, None, None)` (or calls `__exit__` for a plain context manager), once. */
  async [Symbol.asyncDispose](): Promise<void> {
    const context = this.#context;
    if (context === undefined) return;
    this.#context = undefined;
    try {
      await exitWith(context, undefined);
    } finally {
      context.dispose();
    }
  }
}

function checkManager(cm: unknown, what: string): asserts cm is PyObject {
  if (!isPyObject(cm)) throw new TypeError(`${what} needs a Python context manager (a PyObject)`);
}

/**
 * The Python exception for an error thrown in a `with` body: a PythonError's own exception, or
 * for anything else the JSError that a Python callback throwing it would raise.
 */
function pythonExceptionOf(error: unknown): PyObject {
  if (error instanceof PythonError && error.pyException !== undefined && !error.pyException.isDisposed) {
    return error.pyException;
  }
  let message: string;
  let name = '';
  let stack = '';
  if (error instanceof Error) {
    message = error.message;
    name = error.name;
    stack = typeof error.stack === 'string' ? error.stack : '';
  } else {
    try {
      message = String(error);
    } catch {
      message = Object.prototype.toString.call(error);
    }
  }
  return helperModule().js_error(message, name, stack) as PyObject;
}

async function exitWith(context: PyObject, exception: PyObject | undefined): Promise<boolean> {
  const args = exception === undefined ? [] : [exception];
  return context.asynchronous === true
    ? Boolean(await context.aexit(...args))
    : Boolean(context.exit(...args));
}

/**
 * `with cm as value:` for `using`: `using ctx = Py.with(cm); ctx.value` (see PyContext), or with
 * a callback, `Py.with(cm, (value) => ...)`: `__exit__` receives the exception the callback threw
 * (a PythonError's own exception, any other error as a JSError) and, by returning true, can
 * suppress it; then the result is undefined. The callback runs synchronously: for async work
 * use Py.withAsync.
 */
export function withContext<T = any>(cm: PyObject): PyContext<T>;
export function withContext<R, T = any>(cm: PyObject, fn: (value: T) => R): R | undefined;
export function withContext(cm: PyObject, fn?: (value: any) => unknown): unknown {
  checkManager(cm, 'Py.with()');
  if (fn !== undefined && typeof fn !== 'function') throw new TypeError('Py.with(): the second argument must be a function');
  const context = helperModule().enter_context(cm) as PyObject;
  if (fn === undefined) return new PyContext(context);
  try {
    let result: unknown;
    try {
      result = fn(context.value);
    } catch (error) {
      if (context.exit(pythonExceptionOf(error)) === true) return undefined;
      throw error;
    }
    context.exit();
    return result;
  } finally {
    context.dispose();
  }
}

/**
 * `async with cm as value:` (a context manager with `__aenter__`/`__aexit__`; a plain one works
 * too): `await using ctx = await Py.withAsync(cm)`, or `await Py.withAsync(cm, async (value) => ...)`,
 * which passes the callback's exception to `__aexit__` as Py.with does.
 */
export function withAsyncContext<T = any>(cm: PyObject): Promise<PyAsyncContext<T>>;
export function withAsyncContext<R, T = any>(cm: PyObject, fn: (value: T) => R | PromiseLike<R>): Promise<R | undefined>;
export async function withAsyncContext(cm: PyObject, fn?: (value: any) => unknown): Promise<unknown> {
  checkManager(cm, 'Py.withAsync()');
  if (fn !== undefined && typeof fn !== 'function') {
    throw new TypeError('Py.withAsync(): the second argument must be a function');
  }
  const context = (await helperModule().enter_async_context(cm)) as PyObject;
  if (fn === undefined) return new PyAsyncContext(context);
  try {
    let result: unknown;
    try {
      result = await fn(context.value);
    } catch (error) {
      if (await exitWith(context, pythonExceptionOf(error))) return undefined;
      throw error;
    }
    await exitWith(context, undefined);
    return result;
  } finally {
    context.dispose();
  }
}
