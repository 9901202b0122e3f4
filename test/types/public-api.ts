// The public API's types, as a user's TypeScript sees them. Checked with `tsc --noEmit`
// (test/types.test.ts); never run. Each `@ts-expect-error` line must be an error.
import {
  GILScope,
  KwArgs,
  Py,
  PyModule,
  PythonEngine,
  PythonError,
  isPyObject,
  toJSDate,
  toPyDatetime,
  type InitializeOptions,
  type PyAsyncIterable,
  type PyAwaitable,
  type PyCallable,
  type PyFunction,
  type PyIterable,
  type PyObject,
  type PyObjectMethods,
  type PyObjectOf,
  type SharedPyObject,
  type ToJSOptions,
} from 'pyembed';

import { expectTrue, expectType, type Equals } from './expect.js';

declare const obj: PyObject;
declare const fn: PyCallable;

// --- PythonEngine -----------------------------------------------------------------------------
expectTrue<Equals<ReturnType<typeof PythonEngine.eval>, any>>();
expectTrue<Equals<ReturnType<typeof PythonEngine.exec>, void>>();
expectTrue<Equals<ReturnType<typeof PythonEngine.initialize>, void>>();
expectTrue<Equals<Parameters<typeof PythonEngine.initialize>, [options?: InitializeOptions]>>();
expectTrue<Equals<typeof PythonEngine.python, { executable: string; library: string }>>();
expectTrue<Equals<typeof PythonEngine.version, string>>();
expectTrue<Equals<typeof PythonEngine.isInitialized, boolean>>();
expectTrue<Equals<ReturnType<typeof PythonEngine.allowThreads<number>>, number>>();
expectTrue<Equals<typeof PythonEngine.threadId, number | bigint>>();
expectTrue<Equals<ReturnType<typeof PythonEngine.interrupt>, boolean>>();
PythonEngine.interrupt(1n);
// @ts-expect-error a thread id is a number or a bigint
PythonEngine.interrupt('1');
PythonEngine.initialize({ python: '/usr/bin/python3', asyncThreads: 2 });
PythonEngine.exec('x = 1', { x: 1 });
PythonEngine.exec('x = 1', obj);
// @ts-expect-error the python option is a path
PythonEngine.initialize({ python: 3 });
// @ts-expect-error no such option
PythonEngine.initialize({ pyhton: 'python3' });
// @ts-expect-error code is a string
PythonEngine.eval(42);

// --- Py and PyModule ----------------------------------------------------------------------------
expectTrue<Equals<ReturnType<typeof Py.kw>, KwArgs>>();
expectTrue<Equals<ReturnType<typeof Py.import>, PyObject>>();
expectTrue<Equals<ReturnType<typeof PyModule.import>, PyObject>>();
expectTrue<Equals<ReturnType<typeof PyModule.fromString>, PyObject>>();
expectTrue<Equals<ReturnType<typeof Py.toPython>, PyObject>>();
expectTrue<Equals<ReturnType<typeof Py.GIL>, GILScope>>();
expectTrue<Equals<ReturnType<typeof Py.share>, SharedPyObject>>();
expectTrue<Equals<ReturnType<typeof Py.unshare>, PyObject>>();
{
  using gil = Py.GIL();
  expectTrue<Equals<typeof gil.isOpen, boolean>>();
}
// @ts-expect-error keyword arguments are an object
Py.kw(5);
// @ts-expect-error a module name is a string
Py.import(['os']);

// --- PyObject -----------------------------------------------------------------------------------
expectTrue<Equals<ReturnType<typeof obj.toJS>, unknown>>();
expectTrue<Equals<typeof obj.anyAttribute, any>>();
expectTrue<Equals<typeof obj.typeName, string>>();
expectTrue<Equals<typeof obj.length, number | undefined>>();
expectTrue<Equals<ReturnType<typeof obj.get>, any>>();
expectTrue<Equals<ReturnType<typeof obj.repr>, string>>();
expectTrue<Equals<ReturnType<typeof obj.dir>, string[]>>();
expectTrue<Equals<ReturnType<typeof obj.equals>, boolean>>();
for (const item of obj) expectTrue<Equals<typeof item, any>>();
async function iterateAsync(): Promise<void> {
  for await (const item of obj) expectTrue<Equals<typeof item, any>>();
}
void iterateAsync;
obj.toJS({ dict: 'map' });
obj.toJS({ datetime: 'date' });
// @ts-expect-error no such dict option
obj.toJS({ dict: 'array' });
// @ts-expect-error typeName is read-only
obj.typeName = 'x';
// PyObject is a Disposable.
{
  using scoped = obj;
  expectTrue<Equals<typeof scoped, PyObject>>();
}
const methods: PyObjectMethods = obj;
void methods;

// Callables: JS functions with callAsync; `new` works too.
expectTrue<Equals<ReturnType<typeof fn>, any>>();
expectTrue<Equals<ReturnType<typeof fn.callAsync>, Promise<any>>>();
void new fn(1, Py.kw({ a: 1 }));
fn(1, 'a', Py.kw({ sep: ',' }));

// isPyObject narrows.
declare const something: unknown;
if (isPyObject(something)) expectTrue<Equals<typeof something, PyObject>>();

// --- PythonError ----------------------------------------------------------------------------
declare const error: PythonError;
expectTrue<Equals<typeof error.type, string>>();
expectTrue<Equals<typeof error.pythonTraceback, string>>();
expectTrue<Equals<typeof error.pyException, PyObject | undefined>>();
const asError: Error = error;
void asError;

// --- typed views ----------------------------------------------------------------------------
declare const numbers: PyObjectOf<number[]>;
expectType<number[]>()(numbers.toJS());
expectType<unknown>()(numbers.toJS({ dict: 'map' }));
expectTrue<Equals<typeof numbers.append, any>>(); // other attributes stay untyped
const plainFromTyped: PyObject = numbers;
void plainFromTyped;

declare const add: PyFunction<(a: number, b: number, kw?: KwArgs) => string>;
expectType<string>()(add(1, 2));
expectType<string>()(add(1, 2, Py.kw({ x: 1 })));
expectType<Promise<string>>()(add.callAsync(1, 2));
expectType<string>()(add.typeName);
// @ts-expect-error a string is not a number
add('1', 2);
// @ts-expect-error too few arguments
add(1);
// @ts-expect-error callAsync is typed too
void add.callAsync(1, 'x');
// An AbortSignal goes last, after any keywords.
expectType<Promise<string>>()(add.callAsync(1, 2, AbortSignal.timeout(10)));
expectType<Promise<string>>()(add.callAsync(1, 2, Py.kw({ x: 1 }), new AbortController().signal));
// @ts-expect-error the signal comes last
void add.callAsync(1, new AbortController().signal, 2);
declare const anything: PyObject;
expectType<Promise<any>>()(Py.awaitAsync(anything, AbortSignal.timeout(10)));
expectType<AsyncIterable<any>>()(Py.aiter(anything, AbortSignal.timeout(10)));

declare const coroutine: PyAwaitable<number>;
async function awaitIt(): Promise<void> {
  expectType<number>()(await coroutine);
}
void awaitIt;

declare const generator: PyIterable<string>;
for (const s of generator) expectType<string>()(s);
expectType<string[]>()([...generator]);

declare const asyncGenerator: PyAsyncIterable<number>;
async function iterateTyped(): Promise<void> {
  for await (const n of asyncGenerator) expectType<number>()(n);
}
void iterateTyped;

// A typed module interface (what `pyembed stubs` writes) is what `PyModule.import(...) as` gives.
interface MathModule extends PyObjectMethods {
  pi: number;
  sqrt: PyFunction<(x: number) => number>;
}
const math = PyModule.import('math') as MathModule;
expectType<number>()(math.sqrt(2));
expectType<number>()(math.pi);
// @ts-expect-error not in the interface
void math.tau;

// --- datetime helpers -------------------------------------------------------------------------
expectTrue<Equals<ReturnType<typeof toPyDatetime>, PyObject>>();
expectTrue<Equals<ReturnType<typeof toJSDate>, Date>>();
// @ts-expect-error a Date, not a string
toPyDatetime('2024-01-01');
const options: ToJSOptions = { dict: 'map', datetime: 'date' };
void options;
