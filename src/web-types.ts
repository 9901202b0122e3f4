// The few web-platform types pyembed's public API names, declared here by their shape: the
// published .d.ts files then compile in projects with neither @types/node nor the DOM lib.
// Node's own AbortSignal and URL fit them.

/** An AbortSignal (`AbortSignal.timeout(ms)`, `new AbortController().signal`). */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: (...args: any[]) => void, options?: any): void;
  removeEventListener(type: 'abort', listener: (...args: any[]) => void, options?: any): void;
}

/** A `file:` URL object, such as `new URL('./tool.py', import.meta.url)`. */
export interface URLLike {
  readonly href: string;
  readonly protocol: string;
  readonly pathname: string;
}
