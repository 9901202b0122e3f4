// PythonEngine: the interpreter's lifetime, as in pythonnet, made safe by default.
import fs from 'node:fs';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

import './cancel.js'; // worker.terminate() interrupts the worker's Python code
import { allowThreads, beginAllowThreads, endAllowThreads, type ThreadState } from './gil.js';
import { locatePython } from './locate.js';
import { native, packageRoot } from './native.js';
import { fromNative, isPyObject, type PyObject } from './proxy.js';

export interface InitializeOptions {
  /** The python executable to embed (a virtualenv's bin/python works). Default: PYEMBED_PYTHON, then python3. */
  python?: string;
  /** Most threads that run callAsync calls at once (default 4). */
  asyncThreads?: number;
}

let exitHookInstalled = false;

function helperSource(): string {
  return fs.readFileSync(path.join(packageRoot, 'python', '_pyembed.py'), 'utf8');
}

/**
 * Every entry point but a proxy's calls this: the first use starts Python with defaults. After
 * an explicit shutdown() it does not restart it behind the user's back: initialize() does.
 */
export function ensureRunning(): void {
  if (native.isRunning()) return;
  if (native.wasShutDown()) {
    throw new Error('Python was shut down (PythonEngine.shutdown()); call PythonEngine.initialize() to start it again');
  }
  PythonEngine.initialize();
}

export class PythonEngine {
  private constructor() {}

  /**
   * Starts the interpreter (idempotent; the process has one, shared by all worker threads) and
   * returns with the GIL released, so Python threads run while JS does.
   */
  static initialize(options: InitializeOptions = {}): void {
    if (options.asyncThreads !== undefined) {
      if (!Number.isInteger(options.asyncThreads) || options.asyncThreads < 1) {
        throw new TypeError('asyncThreads must be a positive integer');
      }
      native.setAsyncThreads(options.asyncThreads);
    }
    const running = native.info();
    if (running) {
      if (options.python !== undefined && locatePython(options.python).executable !== running[1]) {
        throw new Error(
          `Python is already running (${running[1]}); call PythonEngine.shutdown() before initializing '${options.python}'`,
        );
      }
      return;
    }
    if (options.python !== undefined && typeof options.python !== 'string') {
      throw new TypeError('options.python must be the path of a python executable');
    }
    const chosen = locatePython(options.python);
    native.start(chosen.library, chosen.executable, helperSource());
    if (isMainThread && !exitHookInstalled) {
      exitHookInstalled = true;
      // If the user never calls shutdown(): finalize at exit so atexit handlers run and buffered
      // output is flushed, as when Python itself exits.
      process.on('exit', () => {
        if (!native.isRunning()) return;
        try {
          native.stop();
        } catch {
          // process.exit() called from inside a Python call: Python cannot finalize under itself.
        }
      });
    }
  }

  static get isInitialized(): boolean {
    return native.isRunning();
  }

  /** sys.version of the running interpreter (starts it if needed). */
  static get version(): string {
    ensureRunning();
    return native.info()?.[0] ?? '';
  }

  /** The python executable and libpython in use (starts Python if needed). */
  static get python(): { executable: string; library: string } {
    ensureRunning();
    const [, executable = '', library = ''] = native.info() ?? [];
    return { executable, library };
  }

  /**
   * Finalizes Python (idempotent). Works from any JS thread; waits for calls in progress on
   * other threads. Afterwards every PyObject throws, and initialize() starts a fresh interpreter.
   */
  static shutdown(): void {
    native.stop();
  }

  /** Releases the GIL held by open Py.GIL() scopes; endAllowThreads(state) takes it back. */
  static beginAllowThreads(): ThreadState {
    return beginAllowThreads();
  }

  static endAllowThreads(state: ThreadState): void {
    endAllowThreads(state);
  }

  /** Runs fn with the GIL released (for long JS work inside a Py.GIL() scope). */
  static allowThreads<T>(fn: () => T): T {
    return allowThreads(fn);
  }

  /**
   * Raises KeyboardInterrupt in the Python thread whose `threading.get_ident()` is `threadId`, at
   * its next bytecode (code blocked in a C call, such as a sleep, is interrupted when that
   * returns). A JS thread (see `threadId`) is a target only while it is inside a synchronous
   * Python call. Returns whether such a thread was running Python. From any JS thread.
   */
  static interrupt(threadId: number | bigint): boolean {
    if (typeof threadId !== 'number' && typeof threadId !== 'bigint') {
      throw new TypeError('PythonEngine.interrupt() needs a thread id (threading.get_ident()): a number or a bigint');
    }
    if (!native.isRunning()) return false;
    return native.interrupt(threadId);
  }

  /**
   * The calling JS thread's Python thread id (`threading.get_ident()` in the Python code it
   * calls): what another thread passes to interrupt(). Starts Python if needed.
   */
  static get threadId(): number | bigint {
    ensureRunning();
    return native.threadIdent();
  }

  /** Runs Python statements, in `globals` (a dict PyObject or a plain object) or __main__'s. */
  static exec(code: string, globals?: PyObject | Record<string, unknown>): void {
    runCode(code, globals, 'exec');
  }

  /** Evaluates a Python expression and returns its value. */
  static eval(expression: string, globals?: PyObject | Record<string, unknown>): any {
    return runCode(expression, globals, 'eval');
  }
}

function runCode(code: string, globals: unknown, mode: 'exec' | 'eval'): any {
  if (typeof code !== 'string') throw new TypeError(`PythonEngine.${mode}() needs a string of Python code`);
  if (globals !== undefined && globals !== null && typeof globals !== 'object' && !isPyObject(globals)) {
    throw new TypeError('globals must be a dict PyObject or a plain object');
  }
  ensureRunning();
  return fromNative(native.run(code, globals ?? undefined, mode, `<pyembed ${mode}>`));
}
