// valgrind: proxies released by garbage collection and by dispose(), __del__ running JS.
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { PythonEngine } from 'pyembed';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
PythonEngine.exec(`
class Tracked:
    alive = 0
    def __init__(self, f=None):
        self.f = f
        Tracked.alive += 1
    def __del__(self):
        Tracked.alive -= 1
        if self.f: self.f()
`);
const Tracked = PythonEngine.eval('Tracked');
let called = 0;
(() => { for (let i = 0; i < 2000; i++) Tracked(i % 10 === 0 ? () => called++ : undefined); })();
for (let i = 0; i < 5; i++) { gc(); await new Promise((r) => setTimeout(r, 10)); }
PythonEngine.eval('0');
assert.equal(PythonEngine.eval('Tracked.alive'), 0);
assert.equal(called, 200);
for (let i = 0; i < 500; i++) Tracked().dispose();
assert.equal(PythonEngine.eval('Tracked.alive'), 0);
console.log('OK');
