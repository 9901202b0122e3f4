// A Python exception caught in JS (issue 14, round four): the PythonError the addon makes in one
// piece keeps V8's fast object layout and V8's own lazy `stack`, and still shows the Python type,
// message and traceback, the JS frames as many as Error.stackTraceLimit says, and an application's
// Error.prepareStackTrace.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { explain, runScript } from './helpers.js';

const PRELUDE = `
import { PythonEngine, PyModule, PythonError } from 'pyembed';
import util from 'node:util';
PythonEngine.initialize();
const m = PyModule.fromString('errors_fixture', 'def fail(text):\\n    raise ValueError(text)\\n');
function caught(text) {
  try { m.fail(text); } catch (error) { return error; }
  throw new Error('no exception');
}
const out = {};
`;

test('a PythonError made by the addon is a native Error with fast properties, its type, message, traceback and frames', async () => {
  const r = await runScript(`${PRELUDE}
function namedCaller() { return caught('first'); }
caught('warm-up');
const error = namedCaller();
out.fast = %HasFastProperties(error);
out.native = util.types.isNativeError(error);
out.instances = [error instanceof PythonError, error instanceof Error];
out.fields = [error.name, error.type, error.message, Object.keys(error)];
out.stack = error.stack;
out.fastAfterStack = %HasFastProperties(error);
out.exception = String(error.pyException);
out.sameException = error.pyException === error.pyException;
out.traceback = error.pythonTraceback;
error.stack = 'replaced';
out.replaced = error.stack;
console.log(JSON.stringify(out));
`, { nodeArgs: ['--allow-natives-syntax'] });
  assert.equal(r.code, 0, explain(r));
  const out = JSON.parse(r.stdout);
  assert.equal(out.fast, true, 'no dictionary-mode object');
  assert.equal(out.native, true);
  assert.deepEqual(out.instances, [true, true]);
  assert.deepEqual(out.fields, ['PythonError', 'ValueError', 'first', ['type']]);
  assert.match(out.stack, /^PythonError: ValueError: first\n {4}at /);
  assert.match(out.stack, /at namedCaller /);
  assert.match(out.stack, /\n\nTraceback \(most recent call last\):\n[^]*raise ValueError\(text\)\nValueError: first$/);
  assert.doesNotMatch(out.stack, /errorFactory|realmStack/);
  assert.equal(out.fastAfterStack, true);
  assert.equal(out.exception, 'first');
  assert.equal(out.sameException, true);
  assert.match(out.traceback, /^Traceback/);
  assert.equal(out.replaced, 'replaced');
});

test("a PythonError's frames follow this context's Error.stackTraceLimit, and an application's Error.prepareStackTrace", async () => {
  const r = await runScript(`${PRELUDE}
const frameLines = (error) => error.stack.split('\\n').filter((line) => line.startsWith('    at ')).length;
Error.stackTraceLimit = 1;
out.one = frameLines(caught('one'));
Error.stackTraceLimit = 0;
const none = caught('none');
out.none = [frameLines(none), none.stack.split('\\n')[0], /ValueError: none$/.test(none.stack)];
Error.stackTraceLimit = undefined;
const unlimited = caught('no limit');
out.noNumber = [typeof unlimited.stack, /raise ValueError/.test(String(unlimited.stack))];
Error.stackTraceLimit = 10;
out.ten = frameLines(caught('ten')) > 1;
Error.prepareStackTrace = (error, sites) => \`custom header\\n    custom frames: \${sites.length}\`;
const custom = caught('custom');
out.custom = custom.stack.split('\\n').slice(0, 2);
console.log(JSON.stringify(out));
`);
  assert.equal(r.code, 0, explain(r));
  const out = JSON.parse(r.stdout);
  assert.equal(out.one, 1);
  assert.deepEqual(out.none, [0, 'PythonError: ValueError: none', true]);
  assert.deepEqual(out.noNumber, ['string', true]);
  assert.equal(out.ten, true);
  assert.equal(out.custom[0], 'PythonError: ValueError: custom');
  assert.match(out.custom[1], /^ {4}custom frames: \d+$/);
});

// Text that has no UTF-8 form (lone surrogates) or that C strings cut (NUL) crosses exactly, both
// ways. Before, a Python message with a lone surrogate reached JS empty, a JS error's NUL cut its
// message there, and a lone surrogate in one turned the JSError into a UnicodeDecodeError.
test('NUL and lone surrogates cross exactly: a Python message to JS; a JS error name, message, stack and a thrown string or Symbol to Python', async () => {
  const r = await runScript(`${PRELUDE}
const text = 'lone \\ud800, lone \\udfff, pair \\u{1F600}, nul \\0 end';
const error = caught(text);
out.pythonToJs = [error.type, error.message === text, error.stack.split('\\n')[0] === 'PythonError: ValueError: ' + text];
const py = PyModule.fromString('errors_text', [
  'def catch(f):',
  '    try:',
  '        f()',
  '    except Exception as e:',
  '        return [type(e).__name__, str(e), getattr(e, "name", None), e.js_stack]',
].join('\\n'));
const thrown = new Error(text);
thrown.name = 'Odd\\ud800Name';
const [type, str, name, stack] = py.catch(() => { throw thrown; }).toJS();
out.jsErrorToPython = [type, str === 'Odd\\ud800Name: ' + text, name === 'Odd\\ud800Name', stack === thrown.stack];
const [stringType, stringText] = py.catch(() => { throw 'thrown ' + text; }).toJS();
out.thrownString = [stringType, stringText === 'Error: thrown ' + text];
const [symbolType, symbolText] = py.catch(() => { throw Symbol('a symbol \\ud800'); }).toJS();
out.thrownSymbol = [symbolType, symbolText === 'Error: Symbol(a symbol \\ud800)'];
console.log(JSON.stringify(out));
`);
  assert.equal(r.code, 0, explain(r));
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.pythonToJs, ['ValueError', true, true]);
  assert.deepEqual(out.jsErrorToPython, ['JSError', true, true, true]);
  assert.deepEqual(out.thrownString, ['JSError', true]);
  assert.deepEqual(out.thrownSymbol, ['JSError', true]);  // a Symbol has no ToString: it was ""
});

// Hardened JS (SES lockdown) freezes the intrinsics; an accessor may stand for the limit. Before,
// a frozen Error made every error that JS builds (a chained one here) a plain Error without its
// Python type or cause.
test('a frozen Error, or an Error.stackTraceLimit getter that throws: Python exceptions are still PythonErrors, with their type and cause', async () => {
  const r = await runScript(`${PRELUDE}
const chained = PyModule.fromString('errors_chained', [
  'def chained():',
  '    try:',
  '        raise ValueError("inner")',
  '    except ValueError as e:',
  '        raise KeyError("outer") from e',
].join('\\n'));
const describe = (f) => {
  try { f(); } catch (e) { return [e instanceof PythonError, e.type, e.message, e.cause?.type ?? null, typeof e.stack]; }
  return 'no exception';
};
const limit = Object.getOwnPropertyDescriptor(Error, 'stackTraceLimit');
Object.defineProperty(Error, 'stackTraceLimit', { get() { throw new Error('limit getter'); }, configurable: true });
out.getter = [describe(() => m.fail('plain')), describe(() => chained.chained())];
Object.defineProperty(Error, 'stackTraceLimit', limit);
Object.freeze(Error);
out.frozen = [describe(() => m.fail('plain')), describe(() => chained.chained())];
console.log(JSON.stringify(out));
`);
  assert.equal(r.code, 0, explain(r));
  const out = JSON.parse(r.stdout);
  const plain = [true, 'ValueError', 'plain', null];
  const withCause = [true, 'KeyError', "'outer'", 'ValueError'];
  for (const key of ['getter', 'frozen']) {
    assert.deepEqual(out[key][0].slice(0, 4), plain, key);
    assert.deepEqual(out[key][1].slice(0, 4), withCause, key);
  }
  assert.equal(out.frozen[0][4], 'string');
});
