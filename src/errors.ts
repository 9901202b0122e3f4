import type { PyObject } from './proxy.js';

/**
 * A Python exception, raised by Python code that JavaScript called.
 *
 * `type` is the Python class name (`ValueError`, `ModuleNotFoundError`, ...), `message` is
 * `str(exception)`, `pythonTraceback` the formatted Python traceback and `pyException` the
 * exception object itself. The JS stack is kept, with the Python traceback appended to it.
 */
export class PythonError extends Error {
  readonly type: string;
  readonly pythonTraceback: string;
  readonly pyException: PyObject | undefined;

  constructor(type: string, message: string, pythonTraceback: string, pyException?: PyObject) {
    super(message);
    this.name = 'PythonError';
    this.type = type;
    this.pythonTraceback = pythonTraceback;
    this.pyException = pyException;
    Object.defineProperty(this, 'pyException', { enumerable: false });
    if (typeof this.stack === 'string') {
      const firstLineEnd = this.stack.indexOf('\n');
      const jsFrames = firstLineEnd >= 0 ? this.stack.slice(firstLineEnd) : '';
      this.stack = `PythonError: ${type}: ${message}${jsFrames}` +
        (pythonTraceback ? `\n\n${pythonTraceback.trimEnd()}` : '');
    }
  }
}
