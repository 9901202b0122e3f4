// Types of the object-model additions (issue 15): checked with tsc, never run.
import { Py, PyAsyncContext, PyContext, PyModule, PythonError, type PyCallable, type PyFunction, type PyObject, type ToJSOptions } from 'pyembed';

import { expectTrue, expectType, type Equals } from './expect.js';

declare const cm: PyObject;
declare const fn: PyCallable;
declare const typed: PyFunction<(x: number) => number>;

// Context managers
{
  using ctx = Py.with(cm);
  expectTrue<Equals<typeof ctx, PyContext<any>>>();
  expectTrue<Equals<typeof ctx.value, any>>();
}
{
  using typedCtx = Py.with<number>(cm);
  expectType<number>()(typedCtx.value);
}
expectType<string | undefined>()(Py.with(cm, (value: number) => String(value)));
async function asyncContexts(): Promise<void> {
  await using ctx = await Py.withAsync(cm);
  expectTrue<Equals<typeof ctx, PyAsyncContext<any>>>();
  expectType<Promise<number | undefined>>()(Py.withAsync(cm, async () => 1));
}
void asyncContexts;
// @ts-expect-error the callback is a function
Py.with(cm, 5);

// Py.float / Py.int
expectTrue<Equals<ReturnType<typeof Py.float>, PyObject>>();
expectTrue<Equals<ReturnType<typeof Py.int>, PyObject>>();
Py.int(2n ** 64n);
Py.int('12345678901234567890');
// @ts-expect-error a number, bigint or string
Py.float([1]);

// Results without conversion
expectTrue<Equals<ReturnType<typeof fn.callRaw>, PyObject>>();
expectTrue<Equals<ReturnType<typeof typed.callRaw>, PyObject>>();
expectTrue<Equals<ReturnType<typeof cm.getAttrRaw>, PyObject>>();
// @ts-expect-error callRaw keeps the typed signature
typed.callRaw('x');

// Partial conversion
const partial: ToJSOptions = { depth: 1, buffers: 'pyobject' };
cm.toJS(partial);
// @ts-expect-error no such buffers option
cm.toJS({ buffers: 'copy' });

// Exceptions: Error.cause, and fromString's filename
declare const pyError: PythonError;
expectTrue<Equals<typeof pyError.cause, unknown>>();
expectTrue<Equals<ReturnType<typeof PyModule.fromString>, PyObject>>();
PyModule.fromString('m', 'x = 1', { filename: '/src/m.py' });
// @ts-expect-error filename is a string
PyModule.fromString('m', 'x = 1', { filename: 1 });

// Custom conversions
class Money {
  constructor(readonly text: string) {}
}
Py.registerEncoder(Money, (m) => expectType<Money>()(m));
// By reference: Py.ref keeps the argument's type.
expectType<{ a: number }>()(Py.ref({ a: 1 }));
// @ts-expect-error Py.ref takes an object
Py.ref(1);
Py.registerDecoder(cm, (obj) => expectType<PyObject>()(obj));
class AppError extends PythonError {}
Py.registerError(cm, AppError);
// @ts-expect-error an error class must take PythonError's constructor arguments
Py.registerError(cm, 5);
