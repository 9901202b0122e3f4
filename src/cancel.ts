// Cancelling Python code from JS: an AbortSignal on callAsync and awaits, and worker.terminate().
// The native side (native/interrupt.*, AsyncJob::RequestCancel) raises the exception in Python;
// this file decides how the JS promise settles.
import { Worker, isMainThread } from 'node:worker_threads';

import { PythonError } from './errors.js';
import { native } from './native.js';
import type { AbortSignalLike } from './web-types.js';

/**
 * How long a promise waits, after abort(), for the Python call to stop so that its exception can
 * be the rejection's `cause`. Pure-Python code stops within about the GIL switch interval (5 ms);
 * code blocked in a C call (a sleep, a socket read) stops only when that returns, and the
 * promise does not wait for it.
 */
const ABORT_GRACE_MS = 100;

let nextToken = 1;

// One 'abort' listener per signal, whatever the number of calls it cancels: a signal shared by
// many calls (a batch under one AbortSignal.timeout) would otherwise pass Node's listener limit.
const waiting = new WeakMap<AbortSignalLike, Set<() => void>>();

function onAbort(signal: AbortSignalLike, callback: () => void): () => void {
  let callbacks = waiting.get(signal);
  if (callbacks === undefined) {
    const set = new Set<() => void>();
    callbacks = set;
    waiting.set(signal, set);
    signal.addEventListener('abort', () => {
      waiting.delete(signal);
      // Newest first: calls still queued are withdrawn before the running ones are interrupted,
      // so a pool thread freed by an interrupt cannot start one of them in between.
      for (const f of [...set].reverse()) f();
    }, { once: true });
  }
  callbacks.add(callback);
  const registered = callbacks;
  return () => registered.delete(callback);
}

/** The error an aborted call rejects with: the signal's reason, or for the standard reasons (an
 *  AbortError or TimeoutError DOMException) a fresh one whose `cause` is the Python exception. */
export function abortError(signal: AbortSignalLike, pythonError?: unknown): unknown {
  const reason: unknown = signal.reason;
  const standard = reason instanceof DOMException && (reason.name === 'AbortError' || reason.name === 'TimeoutError');
  if (!standard) return reason ?? new DOMException('This operation was aborted', 'AbortError');
  const error = new DOMException(reason.message, reason.name);
  if (pythonError instanceof PythonError) {
    Object.defineProperty(error, 'cause', { value: pythonError, writable: true, configurable: true });
  }
  return error;
}

export function isAbortSignal(value: unknown): value is AbortSignalLike {
  return typeof AbortSignal !== 'undefined' && value instanceof AbortSignal;
}

/**
 * Runs `start(token)` (a native call registered under `token`) so that `signal` cancels it. An
 * abort before the call settles always rejects: never a value computed after the abort, never
 * a pending promise.
 */
export function cancellable<T>(signal: AbortSignalLike, start: (token: number) => Promise<T>): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal));
  const token = nextToken++;
  const pending = start(token);
  return new Promise<T>((resolve, reject) => {
    let grace: ReturnType<typeof setTimeout> | undefined;
    const forget = onAbort(signal, () => {
      native.cancelAsync(token);
      grace = setTimeout(() => reject(abortError(signal)), ABORT_GRACE_MS);
    });
    const finish = (): void => {
      forget();
      if (grace !== undefined) clearTimeout(grace);
    };
    pending.then(
      (value) => {
        finish();
        if (!signal.aborted) {
          resolve(value);
          return;
        }
        // Finished as the abort came: the caller asked not to have it (a PyObject is released now).
        const disposable = value as { dispose?: unknown } | null | undefined;
        if (typeof disposable === 'object' || typeof disposable === 'function') {
          if (typeof disposable?.dispose === 'function') (disposable as { dispose(): void }).dispose();
        }
        reject(abortError(signal));
      },
      (error: unknown) => {
        finish();
        reject(signal.aborted ? abortError(signal, error) : error);
      },
    );
  });
}

// --- worker.terminate() ----------------------------------------------------------------------

const HOOKED = Symbol.for('pyembed.terminateInterruptsPython');

/**
 * A worker inside a synchronous Python call cannot be stopped by V8 (it is not running JS), so
 * terminate() also tells pyembed, which raises KeyboardInterrupt in that worker's Python code
 * (again every 100 ms until the worker leaves Python). Covers workers terminated from threads
 * that loaded pyembed.
 */
function interruptPythonOnTerminate(): void {
  const prototype = Worker.prototype as unknown as Record<PropertyKey, unknown>;
  if (prototype[HOOKED] !== undefined) return;
  const terminate = prototype.terminate as (this: Worker, ...args: unknown[]) => Promise<number>;
  Object.defineProperty(prototype, HOOKED, { value: true });
  Object.defineProperty(prototype, 'terminate', {
    configurable: true,
    writable: true,
    value: function (this: Worker, ...args: unknown[]): Promise<number> {
      const id = this.threadId;
      if (typeof id === 'number' && id > 0) {
        try {
          native.interruptWorker(id);
        } catch {
          // Never stands in the way of terminate() itself.
        }
      }
      return terminate.apply(this, args);
    },
  });
}

interruptPythonOnTerminate();

/**
 * At process exit (process.exit() or the end of the event loop) Node stops every worker and waits
 * for each, and a worker inside a synchronous Python call never stops by itself: so each worker's
 * Python code is interrupted as by terminate(). Registered as pyembed loads on the main thread,
 * so it runs before PythonEngine's own 'exit' listener, which finalizes Python once the shared
 * workers have left their calls.
 */
if (isMainThread) {
  process.on('exit', () => {
    try {
      native.interruptWorkersAtExit();
    } catch {
      // Never stands in the way of the exit.
    }
  });
}
