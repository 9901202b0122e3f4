// The GIL from JS. pyembed releases the GIL whenever JS runs; a Py.GIL() scope keeps it between
// operations (several calls for the price of one acquire), and beginAllowThreads/allowThreads
// release it again inside such a scope. All of this is per JS thread.
// Symbol.dispose and Disposable come from this lib, which a user's project may not include
// (lib es2022 without @types/node): the emitted .d.ts names it, so such a project still compiles.
/// <reference lib="esnext.disposable" preserve="true" />
import { native } from './native.js';

/** Py.GIL() scopes of this JS thread still open (module state is per worker). */
const openScopes = new Set<GILScope>();

/** A Py.GIL() scope: holds the GIL between operations until disposed. Nestable. */
export class GILScope implements Disposable {
  #open = true;

  /** @internal use Py.GIL() */
  constructor() {
    native.gilEnter();
    openScopes.add(this);
  }

  get isOpen(): boolean {
    return this.#open;
  }

  /** Ends the scope; the last open scope releases the GIL. Disposing twice does nothing. */
  dispose(): void {
    if (!this.#open) return;
    this.#open = false;
    openScopes.delete(this);
    native.gilExit();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** The token of beginAllowThreads(), to give back to endAllowThreads(). */
export class ThreadState {
  #used = false;
  /** @internal `held`: scopes holding the GIL here (inside a callback the caller's do not). */
  constructor(readonly held: number, readonly scopes: readonly GILScope[]) {}
  /** @internal */
  consume(): void {
    this.#used = true;
  }
  get used(): boolean {
    return this.#used;
  }
}

const open: ThreadState[] = [];

export function beginAllowThreads(): ThreadState {
  const state = new ThreadState(native.gilSuspend(), [...openScopes]);
  open.push(state);
  return state;
}

export function endAllowThreads(state: ThreadState): void {
  if (!(state instanceof ThreadState)) {
    throw new TypeError('endAllowThreads() needs the value returned by beginAllowThreads()');
  }
  if (state.used) throw new Error('this beginAllowThreads() state was already given to endAllowThreads()');
  if (open[open.length - 1] !== state) {
    throw new Error('endAllowThreads() must be given the innermost beginAllowThreads() state first');
  }
  open.pop();
  state.consume();
  // Scopes disposed in between stay closed: only those still open hold the GIL again.
  const closed = state.scopes.filter((scope) => !scope.isOpen).length;
  native.gilResume(Math.max(0, state.held - closed));
}

export function allowThreads<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError('allowThreads() needs a function');
  const state = beginAllowThreads();
  try {
    return fn();
  } finally {
    endAllowThreads(state);
  }
}
