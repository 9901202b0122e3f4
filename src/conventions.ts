// JS conventions for Python objects that need no native support: `for await` over Python async
// iterables, and datetime <-> Date. Both are built on ordinary calls into a few Python helper
// functions, made once per interpreter (and again after a restart).
import { abortError } from './cancel.js';
import { native } from './native.js';
import { awaitPython, fromNative, handleOf, isPyObject, wrap, type PyObject } from './proxy.js';
import type { AbortSignalLike } from './web-types.js';

const HELPER_SOURCE = `
import datetime as _datetime

def aiter_start(obj):
    """type(obj).__aiter__(obj), or None when obj is not an async iterable."""
    t = type(obj)
    if not hasattr(t, "__aiter__"):
        return None
    return t.__aiter__(obj)

async def aiter_step(iterator):
    """The next item; StopAsyncIteration (exactly that class) at the end."""
    try:
        return await type(iterator).__anext__(iterator)
    except StopAsyncIteration:
        raise StopAsyncIteration from None

async def aiter_close(iterator):
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except RuntimeError:
            pass  # a step still running, being cancelled: CancelledError ends the generator

_EPOCH = _datetime.datetime(1970, 1, 1, tzinfo=_datetime.timezone.utc)
_MS = _datetime.timedelta(milliseconds=1)

def date_to_ms(value):
    """Milliseconds since the epoch for a date or datetime (naive ones are local time), else None."""
    if isinstance(value, _datetime.datetime):
        aware = value if value.utcoffset() is not None else value.astimezone()
    elif isinstance(value, _datetime.date):
        aware = _datetime.datetime(value.year, value.month, value.day).astimezone()
    else:
        return None
    return (aware - _EPOCH) // _MS

def ms_to_datetime(ms):
    return _EPOCH + _datetime.timedelta(milliseconds=ms)
`;

interface Helpers {
  aiter_start(obj: PyObject): PyObject | undefined;
  aiter_step(iterator: PyObject): PyObject;
  aiter_close(iterator: PyObject): PyObject;
  date_to_ms(value: PyObject): number | undefined;
  ms_to_datetime(ms: number): PyObject;
}

let cached: { helpers: Helpers; probe: PyObject } | undefined;

/** The helper functions of the running interpreter (made on first use, again after a restart). */
function helpers(): Helpers {
  if (cached !== undefined && !cached.probe.isDisposed) return cached.helpers;
  const globals = wrap(native.toPython({})) as PyObject;
  native.run(HELPER_SOURCE, globals, 'exec', '<pyembed conventions>');
  const get = (name: keyof Helpers) => fromNative(native.item(handleOf(globals), name, 0));
  const h: Helpers = {
    aiter_start: get('aiter_start'),
    aiter_step: get('aiter_step'),
    aiter_close: get('aiter_close'),
    date_to_ms: get('date_to_ms'),
    ms_to_datetime: get('ms_to_datetime'),
  };
  cached = { helpers: h, probe: globals };
  return h;
}

function isStopAsyncIteration(error: unknown): boolean {
  return (error as { type?: unknown } | null)?.type === 'StopAsyncIteration' &&
    (error as Error).name === 'PythonError';
}

/**
 * `for await (const x of obj)`: a Python async iterable (async generator, ...) is iterated with
 * `__aiter__`/`__anext__`, each step awaited on pyembed's asyncio loop. Leaving the loop early
 * (break, return, throw) closes an async generator (`aclose()`), as JS does for its own. Objects
 * that are not async iterables are iterated synchronously, as `for await` does for JS iterables.
 */
export async function* asyncIterate(obj: PyObject, signal?: AbortSignalLike): AsyncGenerator<any, void, undefined> {
  const h = helpers();
  const iterator = h.aiter_start(obj);
  if (iterator === undefined) {
    for (const item of obj as Iterable<unknown>) yield item;
    return;
  }
  let finished = false;
  try {
    for (;;) {
      // Aborted between steps: the generator is suspended, so the finally below closes it.
      if (signal?.aborted) throw abortError(signal);
      const step = h.aiter_step(iterator);
      let value: unknown;
      try {
        // With a signal, an abort cancels the step's task: CancelledError in the generator.
        value = await (signal === undefined ? step : awaitPython(step, signal));
      } catch (error) {
        // Ended or raised: the generator is done. Aborted: the step was cancelled (CancelledError
        // ended the generator), or never started, or had just finished: aclose() below.
        finished = signal?.aborted !== true;
        if (isStopAsyncIteration(error)) return;
        throw error;
      } finally {
        step.dispose();
      }
      yield value;
    }
  } finally {
    try {
      if (!finished && !iterator.isDisposed) await h.aiter_close(iterator);
    } finally {
      if (iterator !== obj) iterator.dispose(); // an async generator is its own iterator: the caller's object
    }
  }
}

/** Replaces Python dates and datetimes inside a toJS() result by JS Dates (in place where it can). */
export function datesToJS(value: unknown): unknown {
  const h = helpers();
  const seen = new Set<object>();
  const convert = (v: unknown): unknown => {
    if (typeof v !== 'object' && typeof v !== 'function') return v;
    if (v === null) return v;
    if (isPyObject(v)) {
      const ms = h.date_to_ms(v);
      return typeof ms === 'number' ? new Date(ms) : v;
    }
    if (seen.has(v)) return v;
    seen.add(v);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) v[i] = convert(v[i]);
    } else if (v instanceof Map) {
      const entries = [...v].map(([k, x]) => [convert(k), convert(x)] as const);
      v.clear();
      for (const [k, x] of entries) v.set(k, x);
    } else if (v instanceof Set) {
      const items = [...v].map(convert);
      v.clear();
      for (const x of items) v.add(x);
    } else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
      const record = v as Record<string, unknown>;
      for (const key of Object.keys(record)) record[key] = convert(record[key]);
    }
    return v;
  };
  return convert(value);
}

/**
 * A JS Date as a Python `datetime.datetime` (timezone-aware, UTC; the same instant, to the
 * millisecond). An invalid Date is a RangeError.
 */
export function toPyDatetime(date: Date): PyObject {
  if (!(date instanceof Date)) throw new TypeError('toPyDatetime() needs a Date');
  const ms = date.getTime();
  if (Number.isNaN(ms)) throw new RangeError('toPyDatetime(): invalid Date');
  return helpers().ms_to_datetime(ms);
}

/**
 * A Python `datetime.datetime` or `datetime.date` as a JS Date (the same instant; naive values
 * are local time, a date is its local midnight; microseconds are truncated to milliseconds).
 * Anything else is a TypeError.
 */
export function toJSDate(value: PyObject): Date {
  if (!isPyObject(value)) throw new TypeError('toJSDate() needs a Python date or datetime');
  const ms = helpers().date_to_ms(value);
  if (typeof ms !== 'number') throw new TypeError(`toJSDate() needs a Python date or datetime, not ${value.typeName}`);
  return new Date(ms);
}
