// PythonEngine: the interpreter's lifetime, as in pythonnet, made safe by default.
import fs from 'node:fs';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

import './cancel.js'; // worker.terminate() interrupts the worker's Python code
import { allowThreads, beginAllowThreads, endAllowThreads, type ThreadState } from './gil.js';
import { locatePython } from './locate.js';
import { native, packageRoot } from './native.js';
import { fromNative, isPyObject, wrap, type PyObject } from './proxy.js';

export interface InitializeOptions {
  /** The python executable to embed (a virtualenv's bin/python works). Default: PYEMBED_PYTHON, then python3. */
  python?: string;
  /** Most threads that run callAsync calls at once (default 4). */
  asyncThreads?: number;
  /**
   * Put the working directory first on sys.path, as `python -c` does, so `import mymodule` finds
   * ./mymodule.py (default true; false, or PYTHONSAFEPATH in the environment, leaves it out).
   */
  cwdOnPath?: boolean;
  /** More folders for sys.path, in front of the standard ones (relative ones resolved against the working directory). */
  path?: string[];
  /** sys.argv[0] as Python code sees it (argparse's program name, ...). Default ''. */
  programName?: string;
  /** The arguments after the program name: sys.argv = [programName, ...argv]. Default []. */
  argv?: string[];
  /**
   * 'shared' (default): one interpreter and one GIL for the whole process. 'isolated' (in a
   * worker, CPython 3.12+): this worker gets its own interpreter with its own GIL, so Python code
   * in several workers runs in parallel; objects never cross to other interpreters.
   */
  interpreter?: 'shared' | 'isolated';
}

/** The start-time options (applied once, when Python starts), as the helper module records them. */
function startOptions(options: InitializeOptions): string {
  const strings = (value: unknown, name: string): string[] => {
    if (value === undefined) return [];
    if (!Array.isArray(value) || !value.every((s) => typeof s === 'string')) {
      throw new TypeError(`options.${name} must be an array of strings`);
    }
    return value;
  };
  if (options.cwdOnPath !== undefined && typeof options.cwdOnPath !== 'boolean') {
    throw new TypeError('options.cwdOnPath must be a boolean');
  }
  if (options.programName !== undefined && typeof options.programName !== 'string') {
    throw new TypeError('options.programName must be a string');
  }
  // A Python literal: JSON strings and arrays of strings are valid Python as they are.
  return [
    options.cwdOnPath === false ? 'False' : 'True',
    JSON.stringify(strings(options.path, 'path').map((p) => path.resolve(p))),
    JSON.stringify([options.programName ?? '', ...strings(options.argv, 'argv')]),
  ].join(', ');
}

let exitHookInstalled = false;

// Finalizes Python at process exit if the user never called shutdown(), so that atexit handlers
// run and buffered output is flushed, as when Python itself exits. Kept the last 'exit' listener
// (moved behind any added later, once the code that added it has run), so the application's own
// 'exit' listeners can still use Python.
function finalizeAtExit(): void {
  if (!native.isRunning()) return;
  try {
    native.stop(true);
  } catch {
    // process.exit() called from inside a Python call: Python cannot finalize under itself.
  }
}

function keepFinalizerLast(): void {
  const listeners = process.listeners('exit');
  if (listeners[listeners.length - 1] === finalizeAtExit) return;
  process.removeListener('exit', finalizeAtExit);
  process.on('exit', finalizeAtExit);
}

function helperSource(): string {
  return fs.readFileSync(path.join(packageRoot, 'python', '_pyembed.py'), 'utf8');
}

/**
 * Every entry point but a proxy's calls this: the first use starts Python with defaults. After
 * an explicit shutdown() it does not restart it behind the user's back: initialize() does.
 */
export function ensureRunning(): void {
  if (native.isRunning()) return;
  // The addon's words (native/engine.h), which say whether pyembed's 'exit' listener did it.
  const shutDown = native.shutDownMessage();
  if (shutDown !== undefined) throw new Error(shutDown);
  PythonEngine.initialize();
}

export class PythonEngine {
  private constructor() {}

  /**
   * Starts the interpreter (idempotent; the process has one, shared by all worker threads) and
   * returns with the GIL released, so Python threads run while JS does.
   */
  static initialize(options: InitializeOptions = {}): void {
    const { interpreter = 'shared' } = options;
    if (interpreter !== 'shared' && interpreter !== 'isolated') {
      throw new TypeError("options.interpreter must be 'shared' or 'isolated'");
    }
    if (interpreter === 'isolated') {
      if (isMainThread) {
        throw new Error(
          "interpreter: 'isolated' is for worker threads (worker_threads): each worker gets its own " +
            'interpreter; the main thread uses the shared one',
        );
      }
      if (native.isIsolated()) return;
      // Its own interpreter is made from the shared (main) one, which must run first.
      startShared(options);
      native.startIsolated(helperSource() + startSetup(startOptions(options)));
      return;
    }
    startShared(options);
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

  /**
   * Runs Python statements, in `globals` (a dict PyObject or a plain object) or __main__'s. With a
   * plain object, the names the code assigns (or deletes) are written back into it afterwards.
   */
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
  const filename = `<pyembed ${mode}>`;
  const proto = globals === undefined || globals === null || isPyObject(globals) ? undefined : Object.getPrototypeOf(globals);
  if (proto !== Object.prototype && proto !== null) {
    return fromNative(native.run(code, globals ?? undefined, mode, filename));
  }
  // A plain object becomes a new dict: write back what the code bound or deleted in it.
  const [result, changed, removed] = helperModule().run_in_object(code, globals, mode, filename);
  try {
    const target = globals as Record<string, unknown>;
    for (const name of changed) target[name] = changed.get(name);
    for (const name of removed) delete target[name];
    return result;
  } finally {
    changed.dispose();
    removed.dispose();
  }
}

let helpers: PyObject | undefined;

/** python/_pyembed.py's module, for what TypeScript asks of it directly. */
export function helperModule(): PyObject {
  ensureRunning();
  if (helpers === undefined || helpers.isDisposed) helpers = wrap(native.importModule('_pyembed')) as PyObject;
  return helpers as PyObject;
}

/** The helper module's first lines: configure() before any other Python code. */
function startSetup(configuration: string): string {
  return `\nconfigure(${configuration})\nstarted_with = ${JSON.stringify(configuration)}\n`;
}

/** Starts the shared interpreter (idempotent), as initialize() always did. */
function startShared(options: InitializeOptions): void {
  const configuration = startOptions(options);
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
    const startOnly = (['cwdOnPath', 'path', 'programName', 'argv'] as const).filter((k) => options[k] !== undefined);
    if (startOnly.length > 0 && helperModule().started_with !== configuration) {
      throw new Error(
        `Python is already running, and the options ${startOnly.join(', ')} only take effect when it starts: ` +
          'pass them to the first PythonEngine.initialize(), before any other use of Python (or shutdown() first)',
      );
    }
    return;
  }
  if (options.python !== undefined && typeof options.python !== 'string') {
    throw new TypeError('options.python must be the path of a python executable');
  }
  const chosen = locatePython(options.python);
  // Runs as the helper module loads, before any other Python code.
  native.start(chosen.library, chosen.executable, helperSource() + startSetup(configuration));
  if (isMainThread && !exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', finalizeAtExit);
    process.on('newListener', (event: string | symbol, listener: unknown) => {
      if (event === 'exit' && listener !== finalizeAtExit) queueMicrotask(keepFinalizerLast);
    });
  }
}
