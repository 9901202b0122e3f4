// require('pyembed') from CommonJS: package.json's "require" condition leads to dist/index.cjs,
// which loads the ES module itself (Node's require(esm)), so both module systems share one
// instance. Where Node cannot require ES modules, the error says what to do.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

import { explain, runScript } from './helpers.js';

// Node 20.19+ and 22.12+ require() ES modules by default; older ones need the flag.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const requireEsmByDefault = (major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major >= 23;
const canDisableRequireEsm =
  spawnSync(process.execPath, ['--no-experimental-require-module', '-e', '0']).status === 0;

test('require("pyembed") from a .cjs script: the same API, the same instance as import()', {
  skip: requireEsmByDefault ? false : `Node ${process.version} cannot require() ES modules without a flag`,
}, async () => {
  const r = await runScript(`
    'use strict';
    const assert = require('node:assert/strict');
    const pyembed = require('pyembed');
    const { PythonEngine, Py, PyModule, PythonError, isPyObject } = pyembed;
    PythonEngine.initialize();
    const m = PyModule.fromString('cjs_test', 'def twice(f, x):\\n    return f(x) * 2\\n');
    assert.equal(m.twice((x) => x + 1, 20), 42);
    assert.equal(Py.import('math').sqrt(16), 4);
    assert.throws(() => PythonEngine.eval('1 / 0'), (e) => e instanceof PythonError && e.type === 'ZeroDivisionError');
    assert.ok(isPyObject(Py.toPython([1])));
    assert.equal(require.resolve('pyembed'), require('node:path').resolve('dist/index.cjs'));
    (async () => {
      const esm = await import('pyembed');
      // One module instance: the classes are the same and the interpreter is shared.
      assert.equal(esm.PythonEngine, PythonEngine);
      assert.equal(esm.PythonError, PythonError);
      assert.equal(esm.PythonEngine.eval('__import__("cjs_test").__name__'), 'cjs_test');
      PythonEngine.shutdown();
      console.log('ok');
    })();
  `, { extension: '.cjs' });
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.stdout.trim(), 'ok', explain(r));
});

test('where Node cannot require() ES modules, the error says what to do', {
  skip: canDisableRequireEsm ? false : 'this Node has no --no-experimental-require-module flag',
}, async () => {
  const r = await runScript(`
    try {
      require('pyembed');
      console.log('loaded');
    } catch (e) {
      console.log(e.message);
      console.log('cause: ' + (e.cause && e.cause.code));
    }
  `, { extension: '.cjs', nodeArgs: ['--no-experimental-require-module'] });
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /pyembed is an ES module, and this Node\.js \(v[\d.]+\) cannot require\(\) ES modules/);
  assert.match(r.stdout, /Node\.js 20\.19 or newer/);
  assert.match(r.stdout, /await import\('pyembed'\)/);
  assert.match(r.stdout, /cause: ERR_REQUIRE_ESM/);
});
