// Loads the addon (one instance per JS thread) and describes its functions. Everything here is
// internal: the public API is built on it in engine.ts, gil.ts, proxy.ts and module.ts.
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { loadAddon } from './addon-loader.js';
import type { ErrorRealm } from './errors.js';

/** A native handle: owns one reference to a Python object (opaque to TypeScript). */
export interface Handle {
  readonly __pyembedHandle: unique symbol;
}

/** Keyword arguments for a call (made by Py.kw). */
export class KwArgs {
  constructor(readonly kwargs: Readonly<Record<string, unknown>>) {}
}

export type TypedArray =
  | Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array | Uint32Array
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

/** What native functions return: a JS value, or a handle for a Python object. */
export type NativeResult = Handle | string | number | bigint | boolean | undefined | ((...args: unknown[]) => unknown);

export interface NativeBinding {
  configure(options: {
    handleKey: symbol;
    done: symbol;
    /** `site`: an Error the addon made where the call entered it, for its JS frames. */
    errorFactory: (type: string, message: string, exc: Handle | undefined, hasCause: boolean, site?: Error) => Error;
    /**
     * Called once, at the first Python error: what lets the addon make PythonErrors itself
     * (errors.ts errorRealm), or undefined to leave every error to errorFactory.
     */
    errorRealm: () => ErrorRealm | undefined;
    wrapFactory: (handle: Handle) => unknown;
    /** Called for class instances the conversion refuses: a replacement value, or undefined. */
    encodeHook: (value: object) => unknown;
    kwargsPrototype: object;
    threadName: string;
    isMainThread: boolean;
    threadId: number;
  }): void;
  /** The handle of the Python exception a PythonError made by the addon keeps. */
  errorException(error: object): Handle | undefined;
  start(library: string, executable: string, helperSource: string): string;
  /** atExit: pyembed's own finalization at process exit (later uses say so). */
  stop(atExit?: boolean): void;
  /** Gives the calling worker its own interpreter and GIL (the shared one runs). */
  startIsolated(helperSource: string): void;
  isIsolated(): boolean;
  isRunning(): boolean;
  /** What a use of Python says once shutdown() (or pyembed's at exit) ended it; undefined otherwise. */
  shutDownMessage(): string | undefined;
  info(): [version: string, executable: string, library: string] | undefined;
  setAsyncThreads(n: number): void;

  gilEnter(): void;
  gilExit(): void;
  gilSuspend(): number;
  gilResume(depth: number): void;
  threadState(): [attached: boolean, scopeDepth: number, callDepth: number];

  importModule(name: string): Handle;
  run(code: string, globals: unknown, mode: 'exec' | 'eval', filename: string): NativeResult;
  moduleFromString(name: string, code: string): Handle;
  expose(name: string, exports: Record<string, unknown>): Handle;
  getattr(h: Handle, name: string, strict: boolean): NativeResult;
  setattr(h: Handle, name: string, value: unknown, remove: boolean): void;
  hasattr(h: Handle, name: string): boolean;
  item(h: Handle, key: unknown, op: 0 | 1 | 2 | 3, value?: unknown): NativeResult;
  len(h: Handle): number;
  text(h: Handle, kind: 0 | 1 | 2): string;
  handleFlags(h: Handle): number;
  dir(h: Handle): string[];
  call(h: Handle, ...args: unknown[]): NativeResult;
  callKw(h: Handle, kwargs: Readonly<Record<string, unknown>>, ...args: unknown[]): NativeResult;
  callRaw(h: Handle, kwargs: Readonly<Record<string, unknown>> | undefined, ...args: unknown[]): Handle;
  /** cancelToken: 0, or a token that cancelAsync(token) cancels the call with (src/cancel.ts). */
  callAsync(h: Handle, kwargs: Readonly<Record<string, unknown>> | undefined, cancelToken: number, ...args: unknown[]): Promise<any>;
  awaitAsync(h: Handle, cancelToken: number): Promise<any>;
  cancelAsync(cancelToken: number): boolean | undefined;
  interrupt(threadId: number | bigint): boolean;
  threadIdent(): number | bigint;
  interruptWorker(nodeThreadId: number): boolean;
  interruptWorkersAtExit(): void;
  iter(h: Handle): Handle;
  next(h: Handle): NativeResult | symbol;
  toJS(h: Handle, dictAsMap: boolean, depth?: number, keepBuffers?: boolean): unknown;
  toPython(value: unknown): Handle;
  dispose(h: Handle): void;
  isDisposed(h: Handle): boolean;
  isInstance(h: Handle, cls: Handle): boolean;
  compare(h: Handle, other: unknown, op: number): boolean;
  stats(): {
    exposure: number;
    handles: number;
    generation: number;
    threadStatesMade: number;
    threadStatesReleased: number;
  };
  share(h: Handle): number;
  buffer(h: Handle): [data: TypedArray, shape: number[], strides: number[], offset: number, format: string, itemsize: number, readonly: boolean];
  toBytes(value: unknown): Handle;
  unshare(id: number): Handle;
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** The package root (dist/.. or src/..). */
export const packageRoot = path.resolve(here, '..');

const loaded = loadAddon(packageRoot);
/** The addon file in use (a local build or a prebuild). */
export const addonFile: string = loaded.file;
export const native = loaded.binding as NativeBinding;
