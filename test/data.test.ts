// numpy and pandas through pyembed's proxies. These run with the system Python (Debian's
// /usr/bin/python3, where python3-numpy and python3-pandas are installed by
// scripts/install-debian-deps.sh), each test in a child process so that the test runner's own
// interpreter is not involved. Without numpy (or pandas) there, the tests are skipped.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { test } from 'node:test';

import { explain, runScript } from './helpers.js';

const SYSTEM_PYTHON = '/usr/bin/python3';

function importable(module: string): boolean {
  if (!fs.existsSync(SYSTEM_PYTHON)) return false;
  try {
    execFileSync(SYSTEM_PYTHON, ['-c', `import ${module}`], { stdio: 'ignore', timeout: 60_000 });
    return true;
  } catch {
    return false;
  }
}

const noNumpy = importable('numpy') ? false : `numpy is not importable by ${SYSTEM_PYTHON} (scripts/install-debian-deps.sh installs it)`;
const noPandas = importable('pandas') ? false : `pandas is not importable by ${SYSTEM_PYTHON} (scripts/install-debian-deps.sh installs it)`;

/**
 * Runs `body` (JS, may use `np`, `Py`, `PythonEngine`, `PythonError`, and `await`) in a child
 * process with the system Python; the value it assigns to `result` comes back as JSON.
 */
async function withNumpy(body: string, imports = "const np = Py.import('numpy');"): Promise<any> {
  const r = await runScript(`
    import { PythonEngine, Py, PyModule, PythonError, isPyObject } from 'pyembed';
    PythonEngine.initialize();
    ${imports}
    let result;
    ${body}
    console.log('RESULT ' + JSON.stringify(result));
  `, { env: { PYEMBED_PYTHON: SYSTEM_PYTHON } });
  assert.equal(r.code, 0, explain(r));
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, explain(r));
  return JSON.parse(line.slice('RESULT '.length));
}

test('numpy: the README example, shapes and reductions along an axis', { skip: noNumpy }, async () => {
  const result = await withNumpy(`
    const a = np.arange(12).reshape(3, 4);
    result = {
      python: PythonEngine.python.executable,
      sum0: a.sum(Py.kw({ axis: 0 })).tolist().toJS(),
      sum1: a.sum(Py.kw({ axis: 1 })).tolist().toJS(),
      shape: a.shape.toJS(),
      transposed: a.T.shape.toJS(),
      ndim: a.ndim,
      size: a.size,
      typeName: a.typeName,
      total: a.sum().item(),
      mean: a.mean(),
      rows: [...a].map((row) => row.tolist().toJS()),
    };
  `);
  assert.equal(result.python, SYSTEM_PYTHON);
  assert.deepEqual(result.sum0, [12, 15, 18, 21]);
  assert.deepEqual(result.sum1, [6, 22, 38]);
  assert.deepEqual(result.shape, [3, 4]);
  assert.deepEqual(result.transposed, [4, 3]);
  assert.equal(result.ndim, 2);
  assert.equal(result.size, 12);
  assert.equal(result.typeName, 'ndarray');
  assert.equal(result.total, 66);
  assert.equal(result.mean, 5.5); // numpy.float64 is a float subclass: it arrives as a number
  assert.deepEqual(result.rows, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]);
});

test('numpy: dtypes chosen from JS values and by name, scalars and their conversions', { skip: noNumpy }, async () => {
  const result = await withNumpy(`
    const f32 = np.array([[1, 2], [3, 4]], Py.kw({ dtype: 'float32' }));
    const i64 = np.int64(5);
    result = {
      ints: np.array([1, 2, 3]).dtype.name,
      floats: np.array([1.5, 2]).dtype.name,
      bools: np.array([true, false]).dtype.name,
      strings: np.array(['a', 'bc']).dtype.str,
      f32: f32.dtype.name,
      f32Item: f32.itemsize,
      f32Bytes: f32.nbytes,
      cast: f32.astype('int8').dtype.name,
      castValues: np.array([1.7, -1.7]).astype('int32').tolist().toJS(),
      // int64 is not an int subclass: it stays a proxy; .item() gives the Python int.
      i64IsProxy: isPyObject(i64),
      i64Type: i64.typeName,
      i64Item: i64.item(),
      f64: typeof np.float64(2.5),
      f64Value: np.float64(2.5),
      // A JS array and a Python list give the same array.
      listsEqual: np.array_equal(np.array(Py.toPython([1, 2, 3])), np.array([1, 2, 3])),
      big: np.array([2 ** 40]).tolist().toJS(),
      uint8: np.array([250, 5], Py.kw({ dtype: np.uint8 })).__add__(10).tolist().toJS(),
    };
  `);
  assert.equal(result.ints, 'int64');
  assert.equal(result.floats, 'float64');
  assert.equal(result.bools, 'bool');
  assert.equal(result.strings, '<U2');
  assert.equal(result.f32, 'float32');
  assert.equal(result.f32Item, 4);
  assert.equal(result.f32Bytes, 16);
  assert.equal(result.cast, 'int8');
  assert.deepEqual(result.castValues, [1, -1]);
  assert.equal(result.i64IsProxy, true);
  assert.equal(result.i64Type, 'int64');
  assert.equal(result.i64Item, 5);
  assert.equal(result.f64, 'number');
  assert.equal(result.f64Value, 2.5);
  assert.equal(result.listsEqual, true);
  assert.deepEqual(result.big, [2 ** 40]);
  assert.deepEqual(result.uint8, [4, 15]); // uint8 wraps around, as in numpy
});

test('numpy: arithmetic through proxies (operators as dunder methods and ufuncs)', { skip: noNumpy }, async () => {
  const result = await withNumpy(`
    const a = np.array([[1, 2], [3, 4]]);
    const tuple = Py.import('builtins').tuple;
    result = {
      add: a.__add__(a).tolist().toJS(),
      addScalar: np.add(a, 10).tolist().toJS(),
      mul: a.__mul__(a).tolist().toJS(),
      matmul: a.__matmul__(a).tolist().toJS(),
      dot: np.dot(a, a).tolist().toJS(),
      neg: a.__neg__().tolist().toJS(),
      compare: a.__gt__(2).tolist().toJS(),
      masked: a.get(a.__gt__(2)).tolist().toJS(),
      sqrt: np.sqrt(np.array([4, 9])).tolist().toJS(),
      linspace: np.linspace(0, 1, 5).tolist().toJS(),
      inv: np.linalg.inv(np.array([[2, 0], [0, 4]])).tolist().toJS(),
      // a[1, 0]: the key is a tuple (a JS array would be a list: fancy indexing).
      item: a.get(tuple([1, 0])).item(),
      rows: a.get(Py.toPython([1, 0])).tolist().toJS(),
    };
    // In-place update through the item protocol, visible to Python.
    a.set(tuple([0, 0]), 100);
    result.updated = a.tolist().toJS();
    // Python evaluates expressions on proxies passed as globals.
    result.evaluated = PythonEngine.eval('(x * 2 + 1).tolist()', { x: a }).toJS();
  `);
  assert.deepEqual(result.add, [[2, 4], [6, 8]]);
  assert.deepEqual(result.addScalar, [[11, 12], [13, 14]]);
  assert.deepEqual(result.mul, [[1, 4], [9, 16]]);
  assert.deepEqual(result.matmul, [[7, 10], [15, 22]]);
  assert.deepEqual(result.dot, [[7, 10], [15, 22]]);
  assert.deepEqual(result.neg, [[-1, -2], [-3, -4]]);
  assert.deepEqual(result.compare, [[false, false], [true, true]]);
  assert.deepEqual(result.masked, [3, 4]);
  assert.deepEqual(result.sqrt, [2, 3]);
  assert.deepEqual(result.linspace, [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(result.inv, [[0.5, 0], [0, 0.25]]);
  assert.equal(result.item, 3);
  assert.deepEqual(result.rows, [[3, 4], [1, 2]]);
  assert.deepEqual(result.updated, [[100, 2], [3, 4]]);
  assert.deepEqual(result.evaluated, [[201, 5], [7, 9]]);
});

test('numpy: exceptions arrive as PythonError with the numpy exception type', { skip: noNumpy }, async () => {
  const result = await withNumpy(`
    function capture(fn) {
      try {
        fn();
        return 'no error';
      } catch (e) {
        return {
          isPythonError: e instanceof PythonError,
          type: e.type,
          message: e.message,
          module: e.pyException?.__class__.__module__,
          // Errors raised in C have no Python frames: the traceback is then just the last line.
          traceback: e.pythonTraceback.includes(e.type + ': ' + e.message),
        };
      }
    }
    const exceptions = (np.exceptions ?? np);
    result = {
      reshape: capture(() => np.zeros(3).reshape(2, 2)),
      broadcast: capture(() => np.array([1, 2]).__add__(np.array([1, 2, 3]))),
      singular: capture(() => np.linalg.inv(np.zeros([2, 2]))),
      axis: capture(() => np.arange(3).sum(Py.kw({ axis: 2 }))),
      dtype: capture(() => np.array([1, 2]).astype('no-such-dtype')),
    };
    // The exception object is numpy's own class: isinstance works on it.
    try { np.linalg.inv(np.zeros([2, 2])); } catch (e) {
      result.singularIsLinAlgError = e.pyException.isInstance(np.linalg.LinAlgError);
    }
    try { np.arange(3).sum(Py.kw({ axis: 2 })); } catch (e) {
      result.axisIsAxisError = e.pyException.isInstance(exceptions.AxisError);
      result.axisIsIndexError = e.pyException.isInstance(PythonEngine.eval('IndexError'));
    }
    // Floating-point errors, when numpy is told to raise them.
    const old = np.seterr(Py.kw({ all: 'raise' }));
    result.divide = capture(() => np.divide(np.array([1.0]), 0));
    np.seterr(Py.kw(old.toJS()));
    result.afterReset = np.divide(np.array([1.0]), 0).tolist().toJS()[0] === Infinity;
  `);
  for (const key of ['reshape', 'broadcast', 'singular', 'axis', 'dtype', 'divide']) {
    assert.equal(result[key].isPythonError, true, key);
    assert.equal(result[key].traceback, true, key);
  }
  assert.equal(result.reshape.type, 'ValueError');
  assert.match(result.reshape.message, /cannot reshape array of size 3 into shape \(2,2\)/);
  assert.equal(result.broadcast.type, 'ValueError');
  assert.match(result.broadcast.message, /could not be broadcast/);
  assert.equal(result.singular.type, 'LinAlgError');
  assert.equal(result.singular.module, 'numpy.linalg');
  assert.equal(result.singular.message, 'Singular matrix');
  assert.equal(result.singularIsLinAlgError, true);
  assert.equal(result.axis.type, 'AxisError');
  assert.match(result.axis.message, /axis 2 is out of bounds/);
  assert.equal(result.axisIsAxisError, true);
  assert.equal(result.axisIsIndexError, true); // AxisError is also an IndexError
  assert.equal(result.dtype.type, 'TypeError');
  assert.equal(result.divide.type, 'FloatingPointError');
  assert.match(result.divide.message, /divide by zero/);
  assert.equal(result.afterReset, true); // the default again: a warning and inf
});

test('pandas: DataFrame to JS records, columns, dtypes, and back from JS data', { skip: noNumpy || noPandas }, async () => {
  const result = await withNumpy(`
    const df = pd.DataFrame({ name: ['ada', 'bob', 'cy'], age: [36, 41, 29], score: [1.5, 2.25, 3] });
    const records = df.to_dict(Py.kw({ orient: 'records' })).toJS();
    const older = df.get(df.get('age').__gt__(30));
    result = {
      records,
      shape: df.shape.toJS(),
      columns: df.columns.tolist().toJS(),
      dtypes: df.dtypes.astype('str').to_dict().toJS(),
      meanAge: df.get('age').mean(),
      olderNames: older.get('name').tolist().toJS(),
      sorted: df.sort_values('score', Py.kw({ ascending: false })).get('name').tolist().toJS(),
      grouped: pd.DataFrame({ k: ['a', 'b', 'a'], v: [1, 2, 3] }).groupby('k').get('v').sum().to_dict().toJS(),
      // The proxy's own equals() (Python ==) comes first: pandas' DataFrame.equals is getAttr('equals').
      fromRecords: pd.DataFrame.from_records(records).getAttr('equals')(df),
      json: JSON.parse(df.to_json(Py.kw({ orient: 'split' }))).data,
      series: pd.Series([1, 2, 3], Py.kw({ index: ['x', 'y', 'z'] })).to_dict().toJS(),
    };
    // A missing column is a KeyError.
    try { df.get('nope'); } catch (e) { result.missing = [e instanceof PythonError, e.type]; }
  `, "const pd = Py.import('pandas');");
  assert.deepEqual(result.records, [
    { name: 'ada', age: 36, score: 1.5 },
    { name: 'bob', age: 41, score: 2.25 },
    { name: 'cy', age: 29, score: 3 },
  ]);
  assert.deepEqual(result.shape, [3, 3]);
  assert.deepEqual(result.columns, ['name', 'age', 'score']);
  assert.deepEqual(result.dtypes, { name: 'object', age: 'int64', score: 'float64' });
  assert.equal(result.meanAge, 106 / 3);
  assert.deepEqual(result.olderNames, ['ada', 'bob']);
  assert.deepEqual(result.sorted, ['cy', 'bob', 'ada']);
  assert.deepEqual(result.grouped, { a: 4, b: 2 });
  assert.equal(result.fromRecords, true);
  assert.deepEqual(result.json, [['ada', 36, 1.5], ['bob', 41, 2.25], ['cy', 29, 3]]);
  assert.deepEqual(result.series, { x: 1, y: 2, z: 3 });
  assert.deepEqual(result.missing, [true, 'KeyError']);
});
