// JS conventions for Python objects: for await over async iterables, datetime <-> Date.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PythonEngine, PythonError, Py, PyModule, isPyObject, toJSDate, toPyDatetime } from 'pyembed';

import { explain, runScript } from './helpers.js';

PythonEngine.initialize();
const m = PyModule.fromString('conventions_test', `
import asyncio, datetime, threading
log = []

async def numbers(n):
    try:
        for i in range(n):
            await asyncio.sleep(0)
            yield i
    finally:
        log.append("finally")

async def failing():
    yield 1
    raise ValueError("failed after one")

async def slow_pair():
    # Runs on pyembed's asyncio loop thread, not on the JS thread.
    yield threading.current_thread().name
    await asyncio.sleep(0.01)
    yield "after sleep"

class Countdown:
    """An async iterator written by hand: __aiter__ and an async __anext__."""
    def __init__(self, n):
        self.n = n
    def __aiter__(self):
        return self
    async def __anext__(self):
        if self.n == 0:
            raise StopAsyncIteration
        self.n -= 1
        return self.n

utc = datetime.timezone.utc
moment = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=utc)
plus_two = datetime.datetime(2024, 5, 6, 9, 8, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
`);

test('for await over a Python async generator', async () => {
  const seen: number[] = [];
  for await (const x of m.numbers(4)) seen.push(x);
  assert.deepEqual(seen, [0, 1, 2, 3]);
  assert.deepEqual(m.log.toJS(), ['finally']);
});

test('leaving for await early closes the async generator (its finally runs)', async () => {
  m.log.clear();
  for await (const x of m.numbers(100)) {
    if (x === 2) break;
  }
  assert.deepEqual(m.log.toJS(), ['finally']);
  m.log.clear();
  await assert.rejects(async () => {
    for await (const x of m.numbers(100)) {
      if (x === 1) throw new Error('from the loop body');
    }
  }, /from the loop body/);
  assert.deepEqual(m.log.toJS(), ['finally']);
});

test('an exception in the async generator arrives as a PythonError', async () => {
  const seen: unknown[] = [];
  await assert.rejects(async () => {
    for await (const x of m.failing()) seen.push(x);
  }, (e: unknown) => e instanceof PythonError && e.type === 'ValueError' && e.message === 'failed after one');
  assert.deepEqual(seen, [1]);
});

test('async iterators written by hand, awaiting real asyncio work, and the manual protocol', async () => {
  const down: number[] = [];
  for await (const x of m.Countdown(3)) down.push(x);
  assert.deepEqual(down, [2, 1, 0]);
  const pair: unknown[] = [];
  for await (const x of m.slow_pair()) pair.push(x);
  assert.deepEqual(pair, ['pyembed-asyncio', 'after sleep']);
  // The iterator protocol by hand.
  const it = m.numbers(2)[Symbol.asyncIterator]();
  assert.deepEqual(await it.next(), { value: 0, done: false });
  assert.deepEqual(await it.next(), { value: 1, done: false });
  assert.deepEqual(await it.next(), { value: undefined, done: true });
});

test('for await over a synchronous Python iterable iterates it as for...of does', async () => {
  const seen: unknown[] = [];
  for await (const x of Py.toPython([1, 'a', 2.5])) seen.push(x);
  assert.deepEqual(seen, [1, 'a', 2.5]);
  await assert.rejects(async () => {
    for await (const x of m.Countdown(1).__anext__) void x; // a bound method: not iterable
  }, { type: 'TypeError' });
});

test('toJS({ datetime: "date" }) turns dates and datetimes into Dates, deeply', () => {
  const value = PythonEngine.eval(`{
    "aware": __import__("conventions_test").moment,
    "offset": __import__("conventions_test").plus_two,
    "nested": [{"at": __import__("datetime").datetime(1970, 1, 1, tzinfo=__import__("datetime").timezone.utc)}],
    "other": __import__("decimal").Decimal("1.5"),
  }`);
  const js = value.toJS({ datetime: 'date' }) as Record<string, any>;
  assert.ok(js.aware instanceof Date);
  assert.equal(js.aware.toISOString(), '2024-05-06T07:08:09.123Z'); // microseconds truncated to ms
  assert.equal(js.offset.toISOString(), '2024-05-06T07:08:09.000Z');
  assert.equal(js.nested[0].at.getTime(), 0);
  assert.ok(isPyObject(js.other)); // not a date: left alone
  // The default is unchanged: dates stay Python objects.
  const plain = value.toJS() as Record<string, any>;
  assert.ok(isPyObject(plain.aware));
  assert.equal(plain.aware.typeName, 'datetime');
  // A Map result, and a datetime itself.
  const map = PythonEngine.eval('{1: __import__("conventions_test").moment}').toJS({ dict: 'map', datetime: 'date' }) as Map<number, Date>;
  assert.equal(map.get(1)?.toISOString(), '2024-05-06T07:08:09.123Z');
  assert.equal((m.moment.toJS({ datetime: 'date' }) as Date).toISOString(), '2024-05-06T07:08:09.123Z');
});

test('toPyDatetime and toJSDate: the same instant both ways', () => {
  const date = new Date(Date.UTC(2021, 11, 31, 23, 59, 58, 765));
  const dt = toPyDatetime(date);
  assert.equal(dt.typeName, 'datetime');
  assert.equal(dt.isoformat(), '2021-12-31T23:59:58.765000+00:00');
  assert.equal(toJSDate(dt).getTime(), date.getTime());
  assert.equal(toJSDate(m.moment).toISOString(), '2024-05-06T07:08:09.123Z');
  assert.equal(toPyDatetime(new Date(-1)).isoformat(), '1969-12-31T23:59:59.999000+00:00');
  // Python compares it with its own datetimes.
  assert.equal(PythonEngine.eval('d == m.moment.replace(microsecond=123000)', { d: toPyDatetime(new Date('2024-05-06T07:08:09.123Z')), m }), true);
  assert.throws(() => toPyDatetime(new Date(NaN)), RangeError);
  assert.throws(() => toJSDate(Py.toPython([1])), /not list/);
  assert.throws(() => toPyDatetime('2020-01-01' as never), TypeError);
});

test('naive datetimes and dates are local time, as in Python and in JS', async () => {
  const r = await runScript(`
    import { PythonEngine, toJSDate } from 'pyembed';
    const naive = PythonEngine.eval('__import__("datetime").datetime(2024, 7, 1, 12, 30, 15)');
    const day = PythonEngine.eval('__import__("datetime").date(2024, 1, 2)');
    console.log(JSON.stringify([
      toJSDate(naive).getTime() === new Date(2024, 6, 1, 12, 30, 15).getTime(),
      toJSDate(day).getTime() === new Date(2024, 0, 2).getTime(),
      toJSDate(naive).toISOString(),
    ]));
  `, { env: { TZ: 'America/New_York' } });
  assert.equal(r.code, 0, explain(r));
  assert.deepEqual(JSON.parse(r.stdout), [true, true, '2024-07-01T16:30:15.000Z']);
});

test('async iteration and date helpers work again after a restart', async () => {
  const r = await runScript(`
    import { PythonEngine, PyModule, toPyDatetime } from 'pyembed';
    const out = [];
    for await (const x of PyModule.fromString('a1', 'async def g():\\n    yield 1\\n').g()) out.push(x);
    out.push(toPyDatetime(new Date(0)).year);
    PythonEngine.shutdown();
    PythonEngine.initialize();
    for await (const x of PyModule.fromString('a2', 'async def g():\\n    yield 2\\n').g()) out.push(x);
    out.push(toPyDatetime(new Date(0)).year);
    console.log(JSON.stringify(out));
  `);
  assert.equal(r.code, 0, explain(r));
  assert.deepEqual(JSON.parse(r.stdout), [1, 1970, 2, 1970]);
});
