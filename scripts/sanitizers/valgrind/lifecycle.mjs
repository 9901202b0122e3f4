// valgrind: start, use, shut down and restart the interpreter; stale proxies are errors.
import assert from 'node:assert/strict';
import { PythonEngine, Py } from 'pyembed';

PythonEngine.initialize();
PythonEngine.exec('import math\nvalues = [math.sqrt(x) for x in range(100)]');
assert.equal(PythonEngine.eval('len(values)'), 100);
const math = Py.import('math');
assert.equal(math.floor(2.5), 2);
const scope = Py.GIL();
for (let i = 0; i < 100; i++) math.sqrt(i);
scope.dispose();
PythonEngine.shutdown();
assert.throws(() => math.sqrt(4), /shut down/);
PythonEngine.initialize();
assert.throws(() => math.sqrt(4), /shut down/);
assert.equal(Py.import('math').sqrt(16), 4);
assert.throws(() => PythonEngine.exec('raise ValueError("expected")'), { type: 'ValueError' });
console.log('OK');
