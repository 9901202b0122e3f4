// The GIL from JS. pyembed releases the GIL whenever JS runs; a Py.GIL() scope keeps it between
// operations (several calls for the price of one acquire), and beginAllowThreads/allowThreads
// release it again inside such a scope. All of this is per JS thread.
import { native } from './native.js';

/** A Py.GIL() scope: holds the GIL between operations until disposed. Nestable. */
export class GILScope implements Disposable {
  #open = true;

  /** @internal use Py.GIL() */
  constructor() {
    native.gilEnter();
  }

  get isOpen(): boolean {
    return this.#open;
  }

  /** Ends the scope; the last open scope releases the GIL. Disposing twice does nothing. */
  dispose(): void {
    if (!this.#open) return;
    this.#open = false;
    native.gilExit();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** The token of beginAllowThreads(), to give back to endAllowThreads(). */
export class ThreadState {
  #used = false;
  /** @internal */
  constructor(readonly savedScopes: number) {}
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
  const state = new ThreadState(native.gilSuspend());
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
  native.gilResume(state.savedScopes);
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
