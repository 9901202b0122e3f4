// The public API's types: test/types/*.ts are type-checked with tsc as a user's project would
// be ('pyembed' resolving to this package's dist/*.d.ts). They assert exact types (e.g.
// PythonEngine.eval returns any, PyObject.toJS() unknown, Py.kw KwArgs) and, with expect-error
// directives, that misuse does not compile.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { typeCheck } from './helpers.js';

test('the public API has the declared types (tsc --noEmit -p test/types)', () => {
  const r = typeCheck(['-p', 'test/types']);
  assert.equal(r.code, 0, r.output);
});
