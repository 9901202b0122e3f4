export { PythonEngine, type InitializeOptions } from './engine.js';
export { GILScope, ThreadState } from './gil.js';
export { Py, PyModule, type SharedPyObject } from './module.js';
export { PythonError } from './errors.js';
export { PyContext, PyAsyncContext } from './context.js';
export {
  isPyObject,
  type PyBuffer,
  type PyObject,
  type PyCallable,
  type PyObjectMethods,
  type ToJSOptions,
  type PyObjectOf,
  type PyFunction,
  type PyAwaitable,
  type PyIterable,
  type PyAsyncIterable,
} from './proxy.js';
export { type TypedArray } from './native.js';
export { type PythonInstallation } from './locate.js';
export { KwArgs } from './native.js';
export { toPyDatetime, toJSDate } from './conventions.js';
export { type AbortSignalLike, type URLLike } from './web-types.js';
