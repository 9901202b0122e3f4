// JS objects by reference: class instances and Py.ref() values reach Python as JsProxy objects.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explain, runScript } from './helpers.js';

const python = `
import threading
def attr(o, name): return getattr(o, name)
def put(o, name, value): setattr(o, name, value)
def invoke(o, name, *args): return getattr(o, name)(*args)
def same(o): return o
def is_(a, b): return a is b
def kind(o): return type(o).__name__
def size(o): return len(o)
def listed(o): return list(o)
def item(o, i): return o[i]
def set_item(o, i, v): o[i] = v
def contains(o, x): return x in o
def has_attr(o, name): return hasattr(o, name)
def error_of(f):
    try:
        f()
    except Exception as e:
        return [type(e).__name__, getattr(e, 'name', ''), str(e)]
def from_thread(o):
    seen = []
    def work():
        seen.append([o.whoami(), threading.current_thread().name])
    t = threading.Thread(target=work, name='py-worker')
    t.start()
    t.join()
    return seen[0]
`;

function prelude(): string {
  return `
import { Py, PyModule, PythonEngine } from 'pyembed';
const m = PyModule.fromString('jsproxy_test', ${JSON.stringify(python)});
const out = [];
`;
}

test('attributes, methods with this, identity both ways (child process)', async () => {
  const r = await runScript(`${prelude()}
class Person {
  constructor(name) { this.name = name; }
  greet(other) { return 'hi ' + other + ' from ' + this.name; }
  friend() { return new Person(this.name + "'s friend"); }
}
const ann = new Person('ann');
out.push(m.kind(ann), m.attr(ann, 'name'));
m.put(ann, 'name', 'bob');
out.push(ann.name);                              // Python's write is seen in JS
ann.name = 'cy';
out.push(m.attr(ann, 'name'));                     // JS's write is seen in Python
out.push(m.invoke(ann, 'greet', 'dan'));            // 'this' is the object
out.push(String(m.invoke(ann, 'friend') instanceof Person));  // a class instance result goes by reference again
out.push(String(m.same(ann) === ann), String(m.is_(ann, ann)), String(m.is_(ann, new Person('x'))));
out.push(String(m.has_attr(ann, 'missing')), String(m.has_attr(ann, 'greet')));
console.log(out.join('\\n'));
`);
  assert.equal(r.code, 0, explain(r));
  assert.deepEqual(r.stdout.trim().split('\n'), [
    'JsProxy', 'ann', 'bob', 'cy', 'hi dan from cy', 'true', 'true', 'true', 'false', 'false', 'true',
  ]);
});

test('len, iteration, indexing and membership where the JS object supports them (child process)', async () => {
  const r = await runScript(`${prelude()}
class Row {
  constructor(...cells) { this.cells = cells; }
  get length() { return this.cells.length; }
  [Symbol.iterator]() { return this.cells[Symbol.iterator](); }
  includes(x) { return this.cells.includes(x); }
}
class Index { constructor() { this.map = new Map([['a', 1]]); }
  get size() { return this.map.size; } has(k) { return this.map.has(k); } get(k) { return this.map.get(k); }
  set(k, v) { this.map.set(k, v); } delete(k) { return this.map.delete(k); } }
const row = new Row(10, 20, 30);
out.push(m.size(row), JSON.stringify(m.listed(row).toJS()));
const idx = new Index();
out.push(m.size(idx), m.item(idx, 'a'), String(m.contains(idx, 'a')), String(m.contains(row, 20)));
m.set_item(idx, 'b', 2);
out.push(idx.map.get('b'));
const arr = Py.ref([1, 2, 3]);
out.push(m.size(arr), m.item(arr, -1));
const plain = { x: 1 };
m.set_item(Py.ref(plain), 'y', 2);
out.push(JSON.stringify(plain), m.kind(plain), m.kind(Py.ref(plain)), String(m.same(Py.ref(plain)) === plain));
out.push(JSON.stringify(m.error_of(() => m.item(idx, 'zz'))));
try { m.item(Py.ref([1]), 5); } catch (e) { out.push(e.type); }
try { m.size(new (class Thing {})()); } catch (e) { out.push(e.type); }
try { m.listed(new (class Thing {})()); } catch (e) { out.push(e.type + ' ' + /not iterable/.test(e.message)); }
out.push(m.error_of(Py.ref(() => PythonEngine.eval('lambda o: o()')(new (class Thing {})()))).toJS()[0]);
out.push(PythonEngine.eval('lambda f: f(20)')(Py.ref((x) => x + 1)));
console.log(out.join('\\n'));
`);
  assert.equal(r.code, 0, explain(r));
  assert.deepEqual(r.stdout.trim().split('\n'), [
    '3', '[10,20,30]', '1', '1', 'true', 'true', '2', '3', '3', '{"x":1,"y":2}', 'dict', 'JsProxy', 'true',
    '["KeyError","","\'zz\'"]', 'IndexError', 'TypeError', 'TypeError true', 'TypeError', '21',
  ]);
});

test('a Python thread calls a JS method: it runs on the JS thread (child process)', async () => {
  const r = await runScript(`${prelude()}
import { isMainThread } from 'node:worker_threads';
class Service { whoami() { return 'main=' + isMainThread; } }
const [answer, pythonThread] = (await m.from_thread.callAsync(new Service())).toJS();
console.log(answer, pythonThread);
`);
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.stdout.trim(), 'main=true py-worker');
});

test('errors in JS methods become Python exceptions (child process)', async () => {
  const r = await runScript(`${prelude()}
class Flaky { explode() { throw new RangeError('too far'); } }
const f = new Flaky();
out.push(JSON.stringify(m.error_of(Py.ref(() => m.invoke(f, 'explode')))));
try { m.invoke(f, 'explode'); } catch (e) { out.push(e instanceof RangeError ? 'RangeError back in JS' : String(e)); }
try { m.attr(f, 'nothing'); } catch (e) { out.push(e.type); }
try { Py.ref(1); } catch (e) { out.push(e.constructor.name); }
console.log(out.join('\\n'));
`);
  assert.equal(r.code, 0, explain(r));
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[1], 'RangeError back in JS');
  assert.equal(lines[2], 'AttributeError');
  assert.equal(lines[3], 'TypeError');
  assert.match(lines[0], /JSError.*RangeError.*too far/);
});

test('a coroutine awaits a JS Promise (child process)', async () => {
  const r = await runScript(`${prelude()}
const waits = PyModule.fromString('waits', \`
async def wait(p):
    return (await p) + 1
async def wait_fail(p):
    try:
        await p
    except Exception as e:
        return type(e).__name__ + ' ' + e.name + ' ' + str(e)
\`);
const later = new Promise((resolve) => setTimeout(() => resolve(41), 20));
out.push(await Py.awaitAsync(waits.wait(later)));
const failing = new Promise((_, reject) => setTimeout(() => reject(new TypeError('nope')), 20));
out.push(await Py.awaitAsync(waits.wait_fail(failing)));
console.log(out.join('\\n'));
`);
  assert.equal(r.code, 0, explain(r));
  assert.deepEqual(r.stdout.trim().split('\n'), ['42', 'JSError TypeError TypeError: nope']);
});

test('proxies survive garbage collection, disposal and shutdown (child process)', async () => {
  const r = await runScript(`${prelude()}
class Box { constructor(v) { this.v = v; } }
const kept = new Box(7);
const held = m.same.callRaw(kept);
for (let i = 0; i < 2000; i++) m.attr(new Box(i), 'v');
globalThis.gc();
await new Promise((resolve) => setImmediate(resolve));
PythonEngine.exec('import gc; gc.collect()');
out.push(m.attr(kept, 'v'), String(m.is_(held, kept)), String(m.same(kept) === kept));
held.dispose();
globalThis.gc();
out.push(m.attr(kept, 'v'));
PythonEngine.shutdown();
PythonEngine.initialize();
const again = PyModule.fromString('again', 'def value(o): return o.v\\ndef same(o): return o');
out.push(again.value(kept), String(again.same(kept) === kept));
console.log(out.join('\\n'));
`, { nodeArgs: ['--expose-gc'] });
  assert.equal(r.code, 0, explain(r));
  assert.deepEqual(r.stdout.trim().split('\n'), ['7', 'true', 'true', '7', '7', 'true']);
});

test('a worker reaches the main thread\'s object through Python: it runs on the main thread (child process)', async () => {
  const r = await runScript(`${prelude()}
import { Worker, isMainThread } from 'node:worker_threads';
PythonEngine.exec('shared = {}');
class Service { whoami() { return 'main=' + isMainThread; } }
const service = new Service();
PythonEngine.eval('shared').set('service', service);
const worker = new Worker(\`
  const { parentPort } = require('node:worker_threads');
  import('pyembed').then(({ PythonEngine }) => {
    class Own {}
    const own = new Own();
    const mine = PythonEngine.eval('lambda x: x')(own) === own;  // this thread decodes JsProxy objects too
    const got = PythonEngine.eval('shared["service"]');
    const answer = PythonEngine.eval('shared["service"].whoami()');
    parentPort.postMessage([mine, got.isDisposed, answer].join(' '));
  }).catch((e) => parentPort.postMessage('error ' + e));
\`, { eval: true });
const message = await new Promise((resolve) => worker.once('message', resolve));
await worker.terminate();
console.log(message, PythonEngine.eval('shared["service"]') === service);
`);
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.stdout.trim(), 'true false main=true true');
});
