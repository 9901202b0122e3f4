import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PythonEngine } from 'pyembed';

// Shared and cyclic structures convert as graphs, both ways: one container met twice becomes one
// object referenced twice, and a container that holds itself holds itself on the other side.
PythonEngine.initialize();
const check = PythonEngine.eval('lambda f, x: f(x)');
const py = (source: string) => PythonEngine.eval(`lambda x: ${source}`);

test('JS -> Python: an array, object and Map that contain themselves', () => {
  const a: unknown[] = [1];
  a.push(a);
  assert.equal(check(py('x[1] is x and x[0] == 1'), a), true);
  const o: Record<string, unknown> = { n: 1 };
  o.self = o;
  assert.equal(check(py('x["self"] is x and x["n"] == 1'), o), true);
  const m = new Map<unknown, unknown>([['k', 1]]);
  m.set('me', m);
  assert.equal(check(py('x["me"] is x'), m), true);
  // a longer cycle: a -> {b} -> a
  const outer: Record<string, unknown> = {};
  outer.inner = { back: outer, list: [outer] };
  assert.equal(check(py('x["inner"]["back"] is x and x["inner"]["list"][0] is x'), outer), true);
});

test('JS -> Python: a substructure referenced twice becomes one Python object', () => {
  const shared = { v: [1, 2] };
  const value = { a: shared, b: shared, list: [shared.v, shared.v] };
  assert.equal(check(py('x["a"] is x["b"] and x["list"][0] is x["list"][1] is x["a"]["v"]'), value), true);
  // Arguments are converted one by one: the same array as two arguments is two lists.
  const two = PythonEngine.eval('lambda p, q: p is q');
  assert.equal(two(shared.v, shared.v), false);
  // Equal but distinct JS objects stay distinct.
  assert.equal(check(py('x[0] is not x[1]'), [[1], [1]]), true);
});

test('JS -> Python: a cycle through a Set is a clear error (a set cannot hold a set or a list)', () => {
  const s = new Set<unknown>();
  s.add(s);
  assert.throws(() => check(py('x'), s), /unhashable type: 'set'/);
  const viaArray = new Set<unknown>();
  viaArray.add([viaArray]);
  assert.throws(() => check(py('x'), viaArray), /unhashable type: 'list'/);
});

test('Python -> JS: a list and a dict that contain themselves', () => {
  const l = PythonEngine.eval('(l := [1], l.append(l), l)[-1]').toJS() as unknown[];
  assert.equal(l[0], 1);
  assert.equal(l[1], l);
  const d = PythonEngine.eval('(d := {"n": 1}, d.__setitem__("self", d), d)[-1]').toJS() as Record<string, unknown>;
  assert.equal(d.self, d);
  const nested = PythonEngine.eval('(l := [], l.append({"l": l}), l)[-1]').toJS() as Array<{ l: unknown }>;
  assert.equal(nested[0].l, nested);
  const asMap = PythonEngine.eval('(d := {}, d.__setitem__(1, d), d)[-1]').toJS({ dict: 'map' }) as Map<number, unknown>;
  assert.equal(asMap.get(1), asMap);
  // deeper than the fast path's 64 levels, the cycle closing at the bottom
  const deep = PythonEngine.eval('(r := [], [c := r] + [(c := (c.append([]) or c[-1])) for _ in range(100)], c.append(r), r)[-1]').toJS() as unknown[];
  let node = deep;
  for (let i = 0; i < 100; i++) node = node[0] as unknown[];
  assert.equal(node[0], deep);
});

test('Python -> JS: a dict referenced twice becomes one JS object', () => {
  const v = PythonEngine.eval('(d := {"k": [1]}, {"a": d, "b": d, "l": [d["k"], d["k"]]})[-1]').toJS() as
    { a: { k: unknown }, b: unknown, l: unknown[] };
  assert.equal(v.a, v.b);
  assert.equal(v.l[0], v.l[1]);
  assert.equal(v.l[0], v.a.k);
  assert.deepEqual(v.a, { k: [1] });
  // shared through a tuple (the general path) and a list
  const t = PythonEngine.eval('(d := {}, [(d,), d])[-1]').toJS() as [[object], object];
  assert.equal(t[0][0], t[1]);
  // a tuple referenced twice
  const tt = PythonEngine.eval('(t := (1, 2), [t, t])[-1]').toJS() as unknown[];
  assert.equal(tt[0], tt[1]);
  // equal but distinct Python lists stay distinct
  const distinct = PythonEngine.eval('[[1], [1]]').toJS() as unknown[];
  assert.notEqual(distinct[0], distinct[1]);
});

test('Python -> JS: toJS({ depth }) still stops at the depth, in a cyclic list', () => {
  const l = PythonEngine.eval('(l := [1], l.append(l), l)[-1]');
  const shallow = l.toJS({ depth: 1 }) as unknown[];
  assert.equal(shallow[0], 1);
  assert.notEqual(shallow[1], shallow);  // below the depth: a Python proxy, not the array
});

test('round trip: a cyclic JS structure comes back with the same shape', () => {
  const a: Record<string, unknown> = { name: 'a' };
  a.list = [a, { a }];
  const back = check(PythonEngine.eval('lambda x: x'), a);
  const js = (back as { toJS?: () => unknown }).toJS ? (back as { toJS: () => Record<string, unknown> }).toJS() : back as Record<string, unknown>;
  const list = js.list as unknown[];
  assert.equal(list[0], js);
  assert.equal((list[1] as { a: unknown }).a, js);
});
