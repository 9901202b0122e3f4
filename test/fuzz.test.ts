// The quick fuzz run of `npm test`: every property of test/fuzz-properties.ts with a few hundred
// cases in all, from a fixed seed (so a failure here reproduces exactly; `npm run fuzz` runs the
// long, randomly seeded version).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import fc from 'fast-check';
import { PythonEngine } from 'pyembed';

import { fuzzProperties } from './fuzz-properties.js';

const seed = Number(process.env.FUZZ_SEED ?? 20240611);
const runsPerProperty = Number(process.env.FUZZ_QUICK_RUNS ?? 100);

for (const { name, property } of fuzzProperties()) {
  test(`fuzz: ${name}`, () => {
    fc.assert(property, { seed, numRuns: runsPerProperty });
  });
}

test('toJS() of a dict whose keys collide as JS property names is an error, not silent data loss', () => {
  const d = PythonEngine.eval('{1: "a", "1": "b"}');
  assert.throws(() => d.toJS(), { name: 'TypeError', message: /same JS property name '1'.*dict: 'map'/ });
  const m = d.toJS({ dict: 'map' }) as Map<unknown, unknown>;
  assert.equal(m.get(1), 'a');
  assert.equal(m.get('1'), 'b');
  assert.deepEqual(PythonEngine.eval('{1: "a", 2.5: "b", True: "c"}').toJS(), { 1: 'c', 2.5: 'b' }); // Python: True == 1
});
