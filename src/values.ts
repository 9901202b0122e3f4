// Py.float / Py.int: JS numbers whose Python type is chosen by the caller, not by their value.
import { ensureRunning } from './engine.js';
import { native } from './native.js';
import { builtin, wrap, type PyObject } from './proxy.js';

/**
 * A Python float: JS numbers with integer values otherwise become Python ints, so
 * `np.array([Py.float(1), Py.float(2)])` is float64 where `np.array([1, 2])` is int64.
 * Takes a number, a bigint or a numeric string ('1e300', 'nan', 'inf').
 */
export function pyFloat(x: number | bigint | string): PyObject {
  if (typeof x !== 'number' && typeof x !== 'bigint' && typeof x !== 'string') {
    throw new TypeError(`Py.float() needs a number, a bigint or a numeric string, not ${typeof x}`);
  }
  ensureRunning();
  return wrap(native.callRaw(builtin('float'), undefined, x));
}

/**
 * A Python int: from a bigint (any size), an integer number, or a string of digits (any size;
 * '0x..', '0o..', '0b..' and underscores accepted, as in Python source).
 */
export function pyInt(x: number | bigint | string): PyObject {
  if (typeof x === 'number' && !Number.isInteger(x)) {
    throw new RangeError(`Py.int() needs an integer, not ${x} (use Math.trunc or Math.round first)`);
  }
  if (typeof x !== 'number' && typeof x !== 'bigint' && typeof x !== 'string') {
    throw new TypeError(`Py.int() needs an integer number, a bigint or a string of digits, not ${typeof x}`);
  }
  ensureRunning();
  // int(s, 0) reads a string as Python source does (base prefixes, underscores).
  return wrap(typeof x === 'string' ? native.callRaw(builtin('int'), undefined, x.trim(), 0) : native.callRaw(builtin('int'), undefined, x));
}
