// pyembed against its peers, workload by workload, with two floors measured in the same run:
// Python doing the same thing itself (timeit), and a C program calling through the C API.
//
//   node bench/peers.mjs        prints a Markdown section (tables) on stdout, progress on stderr,
//                               and draws the chart (SVG, vega-lite) into $BENCH_OUT_DIR
//                               (default build/bench; `npm run bench` puts it beside RESULTS.md)
//
//   node bench/peers.mjs --redraw   the same from the last run's numbers (build/bench/peers-raw.json)
//
// Each peer runs in its own process (`node bench/peers.mjs --peer NAME`): in-process embeddings
// cannot share one, and a peer that is missing, crashes or hangs costs only its own column.
//
// Environment (defaults in brackets; BENCH_QUICK=1 makes them all small, for smoke runs):
//   BENCH_ROUNDS [7]  BENCH_ROUND_MS [250]  BENCH_CELL_S [8]: rounds per measurement, the length of
//     a round, and the most time one peer spends on one workload (slow peers get fewer rounds,
//     at least 3, or fewer callbacks/calls per operation; the table says so)
//   BENCH_LIST_N [100000]  BENCH_DICT_N [10000]  BENCH_BYTES_MB [10]  BENCH_CALLBACKS [100000]
//   BENCH_ASYNC_N [1000]  BENCH_NUMPY_MB [100]: the workloads' sizes
//   BENCH_PEERS, BENCH_WORKLOADS: comma-separated subsets (names as in PEERS / WORKLOADS below)
//   BENCH_PEER_TIMEOUT_S [600]: a peer process still running then is killed
//   PYEMBED_PYTHON: the Python every peer is pointed at (default: python3, as pyembed does)
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { envList, envNumber, formatRate, formatRatio, measure, quick, summary } from './lib/measure.mjs';
import { describePython, peerEnv } from './lib/python-env.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const script = path.join(here, 'peers.py');

export const WORKLOADS = [
  { id: 'noop', unit: 'calls/s', title: () => 'No-op call `noop()`' },
  { id: 'three', unit: 'calls/s', title: () => "Call with (int, str, float) returning a str `three(1, 'a', 2.5)`" },
  { id: 'attr', unit: 'reads/s', title: () => 'Attribute read `holder.attr`' },
  { id: 'list', unit: 'round trips/s', title: (c) => `List of ${c.listN.toLocaleString('en-US')} ints to a JS array and back` },
  { id: 'dict', unit: 'conversions/s', title: (c) => `Dict of ${c.dictN.toLocaleString('en-US')} string keys to a JS object` },
  { id: 'bytes', unit: 'round trips/s', title: (c) => `${mb(c.bytesN)} of bytes each way` },
  { id: 'callbacks', unit: 'callbacks/s', title: (c) => `A JS callback called ${c.callbacks.toLocaleString('en-US')} times from Python` },
  { id: 'async', unit: 'calls/s', title: (c) => `${c.asyncN.toLocaleString('en-US')} concurrent async calls` },
  { id: 'numpy', unit: 'transfers/s', title: (c) => `numpy array of ${mb(c.numpyBytes)} (float64) to a JS typed array` },
];

export const PEERS = [
  { id: 'pyembed', label: 'pyembed', kind: 'in-process (this package)' },
  { id: 'pyembed-gil', label: 'pyembed in Py.GIL()', kind: 'in-process (this package), each round inside one `Py.GIL()` scope: the thread keeps the GIL between calls, as node-calls-python and pymport always do' },
  { id: 'python', label: 'Python itself (floor)', kind: 'floor: the same work in Python (timeit)', floor: true },
  { id: 'c', label: 'C API (floor)', kind: 'floor: a C program calling through the CPython C API (bench/floor.c)', floor: true },
  { id: 'node-calls-python', label: 'node-calls-python', kind: 'in-process (N-API addon)' },
  { id: 'pymport', label: 'pymport', kind: 'in-process (N-API addon)' },
  { id: 'pythonia', label: 'pythonia', kind: 'out-of-process (JSPyBridge, pipes)' },
  { id: 'jsonl', label: 'JSON-lines child', kind: 'out-of-process: a child process and JSON lines (bench/lib/jsonl-bridge.mjs)' },
];

function mb(bytes) {
  return bytes >= 2 ** 20 ? `${+(bytes / 2 ** 20).toFixed(2)} MB` : `${+(bytes / 1024).toFixed(1)} KB`;
}

function readConfig() {
  return {
    rounds: envNumber('BENCH_ROUNDS', quick ? 3 : 7),
    roundMs: envNumber('BENCH_ROUND_MS', quick ? 20 : 250),
    cellS: envNumber('BENCH_CELL_S', quick ? 1 : 8),
    listN: envNumber('BENCH_LIST_N', quick ? 10_000 : 100_000),
    dictN: envNumber('BENCH_DICT_N', quick ? 1_000 : 10_000),
    bytesN: Math.round(envNumber('BENCH_BYTES_MB', quick ? 1 : 10) * 2 ** 20),
    callbacks: envNumber('BENCH_CALLBACKS', quick ? 10_000 : 100_000),
    asyncN: envNumber('BENCH_ASYNC_N', quick ? 100 : 1_000),
    numpyBytes: Math.round(envNumber('BENCH_NUMPY_MB', quick ? 4 : 100) * 2 ** 20),
    peerTimeoutS: envNumber('BENCH_PEER_TIMEOUT_S', quick ? 120 : 600),
    peers: envList('BENCH_PEERS'),
    workloads: envList('BENCH_WORKLOADS'),
  };
}

// =================================================================================================
// Peer processes: each adapter returns { info, notes, workloads: { id: { run, check, units?,
// scalable?, note? } | { skip: reason } }, close? }. run(reps, n) does the operation reps times.
// check() returns undefined when one operation gives the right result, else what went wrong.
// =================================================================================================

const expectList = (c, arr) =>
  arr.length === c.listN && arr[c.listN - 1] === c.listN - 1 ? undefined : `list of ${arr.length}, last ${arr.at(-1)}`;
const expectDict = (c, obj) =>
  Object.keys(obj).length === c.dictN && obj[`key${c.dictN - 1}`] === c.dictN - 1 ? undefined : `object with ${Object.keys(obj).length} keys`;
const expectBytes = (c, u8) =>
  u8.length === c.bytesN && u8[1] === 1 && u8[c.bytesN - 1] === (c.bytesN - 1) % 256 ? undefined : `${u8.length} bytes`;
const expectArray = (c, f64) =>
  f64 instanceof Float64Array && f64.length === c.numpyBytes / 8 && f64[f64.length - 1] === f64.length - 1
    ? undefined : `${f64?.constructor?.name} of ${f64?.length}`;
const asFloat64 = (u8) =>
  u8.byteOffset % 8 === 0 ? new Float64Array(u8.buffer, u8.byteOffset, u8.byteLength / 8) : new Float64Array(u8.slice().buffer);
const sameInts = (values, n) => values.length === n && values.every((v, i) => Number(v) === i);
const buffer = (c) => Buffer.alloc(c.bytesN, 7);

const adapters = {
  async pyembed(c) {
    const { PythonEngine, Py } = await import('../dist/index.js');
    PythonEngine.initialize();
    Py.import('sys').path.insert(0, here);
    const m = Py.import('peers');
    const info = m.setup(c.listN, c.dictN, c.bytesN, c.numpyBytes).toJS();
    const { noop, three, holder, get_list, take_list, get_dict, get_bytes, take_bytes, call_n, ident, get_array } = m;
    const buf = buffer(c);
    const listOp = () => {
      const list = get_list();
      const arr = list.toJS();
      list.dispose();
      return [arr, take_list(arr)];
    };
    const dictOp = () => {
      const dict = get_dict();
      const obj = dict.toJS();
      dict.dispose();
      return obj;
    };
    const bytesOp = () => {
      const sent = take_bytes(buf);
      const bytes = get_bytes();
      const u8 = bytes.toJS();
      bytes.dispose();
      return [sent, u8];
    };
    const cb = (i) => i;
    const concurrent = (n) => Promise.all(Array.from({ length: n }, (_, i) => ident.callAsync(i)));
    const workloads = {
      noop: { run: (reps) => { for (let i = 0; i < reps; i++) noop(); }, check: () => (noop() === undefined ? undefined : 'not undefined') },
      three: { run: (reps) => { for (let i = 0; i < reps; i++) three(1, 'a', 2.5); }, check: () => (three(1, 'a', 2.5) === 'a' ? undefined : 'wrong') },
      attr: { run: (reps) => { let x; for (let i = 0; i < reps; i++) x = holder.attr; return x; }, check: () => (holder.attr === 1 ? undefined : 'wrong') },
      list: {
        run: (reps) => { for (let i = 0; i < reps; i++) listOp(); },
        check: () => { const [arr, back] = listOp(); return expectList(c, arr) ?? (back === c.listN ? undefined : `sent back ${back}`); },
      },
      dict: { run: (reps) => { for (let i = 0; i < reps; i++) dictOp(); }, check: () => expectDict(c, dictOp()) },
      bytes: {
        run: (reps) => { for (let i = 0; i < reps; i++) bytesOp(); },
        check: () => { const [sent, u8] = bytesOp(); return sent === c.bytesN ? expectBytes(c, u8) : `sent ${sent}`; },
      },
      callbacks: {
        scalable: { full: c.callbacks, probe: 1000 },
        run: (reps, n) => { for (let i = 0; i < reps; i++) call_n(cb, n); },
        check: () => (call_n(cb, 10) === 9 ? undefined : 'wrong'),
      },
      async: {
        scalable: { full: c.asyncN, probe: 100 },
        run: async (reps, n) => { for (let i = 0; i < reps; i++) await concurrent(n); },
        check: async () => (sameInts(await concurrent(c.asyncN), c.asyncN) ? undefined : 'wrong results'),
        note: '`f.callAsync()` (pyembed\'s thread pool, 4 threads)',
      },
    };
    if (info.numpyError || c.numpyBytes === 0) {
      workloads.numpy = { skip: `numpy: ${info.numpyError ?? 'BENCH_NUMPY_MB=0'}` };
    } else {
      const array = get_array();
      const arrayOp = () => array.toTypedArray(); // a Float64Array over numpy's own memory
      workloads.numpy = {
        run: (reps) => { for (let i = 0; i < reps; i++) arrayOp(); },
        check: () => expectArray(c, arrayOp()),
        note: '`a.toTypedArray()` (zero-copy)',
      };
    }
    return { info, workloads };
  },

  async 'node-calls-python'(c) {
    const { interpreter: py } = await import('node-calls-python');
    const m = py.importSync(script, false);
    const info = py.callSync(m, 'setup', c.listN, c.dictN, c.bytesN, c.numpyBytes);
    const call = (name, ...args) => py.callSync(m, name, ...args);
    const buf = buffer(c);
    const listOp = () => { const arr = call('get_list'); return [arr, call('take_list', arr)]; };
    const bytesOp = () => [call('take_bytes', buf), new Uint8Array(call('get_bytes'))];
    const arrayOp = () => asFloat64(new Uint8Array(call('get_array_bytes')));
    const cb = (i) => i;
    const concurrent = (n) => Promise.all(Array.from({ length: n }, (_, i) => py.call(m, 'ident', i)));
    const workloads = {
      noop: { run: (reps) => { for (let i = 0; i < reps; i++) py.callSync(m, 'noop'); }, check: () => (call('noop') == null ? undefined : 'wrong') },
      three: { run: (reps) => { for (let i = 0; i < reps; i++) py.callSync(m, 'three', 1, 'a', 2.5); }, check: () => (call('three', 1, 'a', 2.5) === 'a' ? undefined : 'wrong') },
      attr: {
        run: (reps) => { for (let i = 0; i < reps; i++) py.evalSync(m, 'holder.attr'); },
        check: () => (py.evalSync(m, 'holder.attr') === 1 ? undefined : 'wrong'),
        note: 'no attribute API: `evalSync(module, "holder.attr")`',
      },
      list: {
        run: (reps) => { for (let i = 0; i < reps; i++) listOp(); },
        check: () => { const [arr, back] = listOp(); return expectList(c, arr) ?? (back === c.listN ? undefined : `sent back ${back}`); },
      },
      dict: { run: (reps) => { for (let i = 0; i < reps; i++) call('get_dict'); }, check: () => expectDict(c, call('get_dict')) },
      bytes: {
        run: (reps) => { for (let i = 0; i < reps; i++) bytesOp(); },
        check: () => { const [sent, u8] = bytesOp(); return sent === c.bytesN ? expectBytes(c, u8) : `sent ${sent}`; },
      },
      callbacks: {
        scalable: { full: c.callbacks, probe: 1000 },
        run: (reps, n) => { for (let i = 0; i < reps; i++) call('call_n', cb, n); },
        check: () => (call('call_n', cb, 10) === 9 ? undefined : 'wrong'),
      },
      async: {
        scalable: { full: c.asyncN, probe: 100 },
        run: async (reps, n) => { for (let i = 0; i < reps; i++) await concurrent(n); },
        check: async () => (sameInts(await concurrent(c.asyncN), c.asyncN) ? undefined : 'wrong results'),
        note: '`interpreter.call()` (libuv thread pool)',
      },
      numpy: info.numpyError || c.numpyBytes === 0
        ? { skip: `numpy: ${info.numpyError ?? 'BENCH_NUMPY_MB=0'}` }
        : {
          run: (reps) => { for (let i = 0; i < reps; i++) arrayOp(); },
          check: () => expectArray(c, arrayOp()),
          note: '`a.tobytes()` → ArrayBuffer (its ndarray conversion builds a JS array of numbers)',
        },
    };
    return { info, workloads };
  },

  async pymport(c) {
    const { pymport } = await import('pymport');
    pymport('sys').get('path').get('insert').call(0, here);
    const m = pymport('peers');
    const info = m.get('setup').call(c.listN, c.dictN, c.bytesN, c.numpyBytes).toJS();
    const f = (name) => m.get(name);
    const [noop, three, holder, getList, takeList, getDict, getBytes, takeBytes, callN, ident, getArray] =
      ['noop', 'three', 'holder', 'get_list', 'take_list', 'get_dict', 'get_bytes', 'take_bytes', 'call_n', 'ident', 'get_array'].map(f);
    const buf = buffer(c);
    const listOp = () => { const arr = getList.call().toJS(); return [arr, takeList.call(arr).toJS()]; };
    const bytesOp = () => [takeBytes.call(buf).toJS(), getBytes.call().toJS()];
    const cb = (i) => i;
    const concurrent = async (n) => (await Promise.all(Array.from({ length: n }, (_, i) => ident.callAsync(i)))).map((r) => r.toJS());
    const workloads = {
      noop: { run: (reps) => { for (let i = 0; i < reps; i++) noop.call(); }, check: () => (noop.call().toJS() == null ? undefined : 'wrong') },
      three: {
        run: (reps) => { for (let i = 0; i < reps; i++) three.call(1, 'a', 2.5).toJS(); },
        check: () => (three.call(1, 'a', 2.5).toJS() === 'a' ? undefined : 'wrong'),
        note: '`f.call(...).toJS()`',
      },
      attr: {
        run: (reps) => { let x; for (let i = 0; i < reps; i++) x = holder.get('attr').toJS(); return x; },
        check: () => (holder.get('attr').toJS() === 1 ? undefined : 'wrong'),
        note: '`obj.get("attr").toJS()`',
      },
      list: {
        run: (reps) => { for (let i = 0; i < reps; i++) listOp(); },
        check: () => { const [arr, back] = listOp(); return expectList(c, arr) ?? (back === c.listN ? undefined : `sent back ${back}`); },
      },
      dict: { run: (reps) => { for (let i = 0; i < reps; i++) getDict.call().toJS(); }, check: () => expectDict(c, getDict.call().toJS()) },
      bytes: {
        run: (reps) => { for (let i = 0; i < reps; i++) bytesOp(); },
        check: () => { const [sent, u8] = bytesOp(); return sent === c.bytesN ? expectBytes(c, u8) : `sent ${sent}`; },
        note: 'a Buffer argument becomes a bytearray',
      },
      callbacks: {
        scalable: { full: c.callbacks, probe: 1000 },
        run: (reps, n) => { for (let i = 0; i < reps; i++) callN.call(cb, n); },
        check: () => (callN.call(cb, 10).toJS() === 9 ? undefined : 'wrong'),
      },
      async: {
        scalable: { full: c.asyncN, probe: 100 },
        run: async (reps, n) => { for (let i = 0; i < reps; i++) await concurrent(n); },
        check: async () => (sameInts(await concurrent(c.asyncN), c.asyncN) ? undefined : 'wrong results'),
        note: '`f.callAsync()` (libuv thread pool)',
      },
    };
    if (info.numpyError || c.numpyBytes === 0) {
      workloads.numpy = { skip: `numpy: ${info.numpyError ?? 'BENCH_NUMPY_MB=0'}` };
    } else {
      const array = getArray.call();
      const arrayOp = () => asFloat64(array.toJS());
      workloads.numpy = {
        run: (reps) => { for (let i = 0; i < reps; i++) arrayOp(); },
        check: () => expectArray(c, arrayOp()),
        note: '`a.toJS()`: the buffer protocol, one copy',
      };
    }
    return { info, workloads };
  },

  async pythonia(c) {
    const { python } = await import('pythonia');
    const m = await python(script);
    const info = await (await m.setup(c.listN, c.dictN, c.bytesN, c.numpyBytes)).valueOf();
    const buf = buffer(c);
    const b64 = buf.toString('base64');
    const listOp = async () => { const list = await m.get_list(); const arr = await list.valueOf(); return [arr, await m.take_list(arr)]; };
    const dictOp = async () => (await m.get_dict()).valueOf();
    const bytesOp = async () => [await m.take_bytes_b64(b64), Buffer.from(await m.get_bytes_b64(), 'base64')];
    const arrayOp = async () => asFloat64(Buffer.from(await m.get_array_b64(), 'base64'));
    const cb = (i) => i;
    const concurrent = (n) => Promise.all(Array.from({ length: n }, (_, i) => m.ident(i)));
    const loop = (op) => async (reps) => { for (let i = 0; i < reps; i++) await op(); };
    const workloads = {
      noop: { run: loop(() => m.noop()), check: async () => ((await m.noop()) == null ? undefined : 'wrong') },
      three: { run: loop(() => m.three(1, 'a', 2.5)), check: async () => ((await m.three(1, 'a', 2.5)) === 'a' ? undefined : 'wrong') },
      attr: { run: loop(() => m.holder.attr), check: async () => ((await m.holder.attr) === 1 ? undefined : 'wrong') },
      list: {
        run: loop(listOp),
        check: async () => { const [arr, back] = await listOp(); return expectList(c, arr) ?? (back === c.listN ? undefined : `sent back ${back}`); },
        note: 'lists come back as references: `await (await f()).valueOf()`',
      },
      dict: { run: loop(dictOp), check: async () => expectDict(c, await dictOp()) },
      bytes: {
        run: loop(bytesOp),
        check: async () => { const [sent, u8] = await bytesOp(); return sent === c.bytesN ? expectBytes(c, u8) : `sent ${sent}`; },
        note: 'as base64 text: a Buffer argument arrives as a dict, and `valueOf()` of bytes never answers',
      },
      callbacks: {
        scalable: { full: c.callbacks, probe: 1000 },
        run: async (reps, n) => { for (let i = 0; i < reps; i++) await m.call_n(cb, n); },
        check: async () => ((await m.call_n(cb, 10)) === 9 ? undefined : 'wrong'),
      },
      async: {
        scalable: { full: c.asyncN, probe: 100 },
        run: async (reps, n) => { for (let i = 0; i < reps; i++) await concurrent(n); },
        check: async () => (sameInts(await concurrent(c.asyncN), c.asyncN) ? undefined : 'wrong results'),
        note: 'every call is async: concurrent requests over the pipe',
      },
      numpy: info.numpyError || c.numpyBytes === 0
        ? { skip: `numpy: ${info.numpyError ?? 'BENCH_NUMPY_MB=0'}` }
        : { run: loop(arrayOp), check: async () => expectArray(c, await arrayOp()), note: 'as base64 text' },
    };
    return { info, workloads, close: () => python.exit() };
  },

  async jsonl(c) {
    const { JsonLinesBridge } = await import('./lib/jsonl-bridge.mjs');
    const bridge = new JsonLinesBridge(c.python, script);
    const info = await bridge.call('setup', c.listN, c.dictN, c.bytesN, c.numpyBytes);
    const buf = buffer(c);
    const listOp = async () => { const arr = await bridge.call('get_list'); return [arr, await bridge.call('take_list', arr)]; };
    const bytesOp = async () => [await bridge.call('take_bytes', buf), await bridge.call('get_bytes')];
    const arrayOp = async () => asFloat64(await bridge.call('get_array_bytes'));
    const cb = (i) => i;
    const concurrent = (n) => Promise.all(Array.from({ length: n }, (_, i) => bridge.call('ident', i)));
    const loop = (op) => async (reps) => { for (let i = 0; i < reps; i++) await op(); };
    const workloads = {
      noop: { run: loop(() => bridge.call('noop')), check: async () => ((await bridge.call('noop')) == null ? undefined : 'wrong') },
      three: { run: loop(() => bridge.call('three', 1, 'a', 2.5)), check: async () => ((await bridge.call('three', 1, 'a', 2.5)) === 'a' ? undefined : 'wrong') },
      attr: { run: loop(() => bridge.attr('holder.attr')), check: async () => ((await bridge.attr('holder.attr')) === 1 ? undefined : 'wrong') },
      list: {
        run: loop(listOp),
        check: async () => { const [arr, back] = await listOp(); return expectList(c, arr) ?? (back === c.listN ? undefined : `sent back ${back}`); },
      },
      dict: { run: loop(() => bridge.call('get_dict')), check: async () => expectDict(c, await bridge.call('get_dict')) },
      bytes: {
        run: loop(bytesOp),
        check: async () => { const [sent, u8] = await bytesOp(); return sent === c.bytesN ? expectBytes(c, u8) : `sent ${sent}`; },
        note: 'as base64 text',
      },
      callbacks: {
        scalable: { full: c.callbacks, probe: 1000 },
        run: async (reps, n) => { for (let i = 0; i < reps; i++) await bridge.call('call_n', cb, n); },
        check: async () => ((await bridge.call('call_n', cb, 10)) === 9 ? undefined : 'wrong'),
      },
      async: {
        scalable: { full: c.asyncN, probe: 100 },
        run: async (reps, n) => { for (let i = 0; i < reps; i++) await concurrent(n); },
        check: async () => (sameInts(await concurrent(c.asyncN), c.asyncN) ? undefined : 'wrong results'),
        note: 'pipelined requests, served in order by one Python thread',
      },
      numpy: info.numpyError || c.numpyBytes === 0
        ? { skip: `numpy: ${info.numpyError ?? 'BENCH_NUMPY_MB=0'}` }
        : { run: loop(arrayOp), check: async () => expectArray(c, await arrayOp()), note: '`a.tobytes()` as base64 text' },
    };
    return { info, workloads, close: () => bridge.close() };
  },
};

// pyembed with the GIL kept across each round by a Py.GIL() scope (JS callbacks still run with
// it released); the workloads that are not synchronous calls from JS are the same as above.
adapters['pyembed-gil'] = async (c) => {
  const { Py } = await import('../dist/index.js');
  const peer = await adapters.pyembed(c);
  const scoped = ['noop', 'three', 'attr', 'list', 'dict', 'bytes', 'callbacks'];
  for (const [id, w] of Object.entries(peer.workloads)) {
    if (w.skip) continue;
    if (!scoped.includes(id)) {
      peer.workloads[id] = { skip: 'as pyembed: not a synchronous call from JS' };
      continue;
    }
    const run = w.run;
    peer.workloads[id] = {
      ...w,
      run: (reps, n) => {
        const scope = Py.GIL();
        try {
          return run(reps, n);
        } finally {
          scope.dispose();
        }
      },
    };
  }
  return peer;
};

async function runPeer(name, c) {
  const emit = (message) => process.stdout.write(JSON.stringify(message) + '\n');
  const adapter = adapters[name];
  if (adapter === undefined) throw new Error(`no adapter for peer '${name}'`);
  let peer;
  try {
    peer = await adapter(c);
  } catch (error) {
    emit({ type: 'fail', reason: oneLine(error) });
    process.exitCode = 1;
    return;
  }
  emit({ type: 'info', ...peer.info });
  for (const w of WORKLOADS) {
    if (c.workloads && !c.workloads.includes(w.id)) continue;
    const impl = peer.workloads[w.id];
    if (impl === undefined || impl.skip) {
      emit({ type: 'skip', workload: w.id, reason: impl?.skip ?? 'not offered by this peer' });
      continue;
    }
    try {
      globalThis.gc?.();
      const problem = await impl.check();
      if (problem !== undefined) {
        emit({ type: 'skip', workload: w.id, reason: `wrong result: ${problem}` });
        continue;
      }
      const r = await measure(impl, c);
      emit({ type: 'result', workload: w.id, ...r, note: impl.note });
      process.stderr.write(`  ${name.padEnd(18)} ${w.id.padEnd(10)} ${formatRate(summary(r.samples).median).padStart(14)} ${w.unit}\n`);
    } catch (error) {
      emit({ type: 'skip', workload: w.id, reason: `failed: ${oneLine(error)}` });
    }
  }
  await peer.close?.();
}

function oneLine(error) {
  const text = error instanceof Error ? `${error.constructor.name}: ${error.message}` : String(error);
  const line = text.split('\n').find((l) => l.trim() !== '') ?? text;
  return line.length > 300 ? line.slice(0, 297) + '...' : line;
}

// =================================================================================================
// The orchestrator
// =================================================================================================

function compileFloor(py) {
  const outDir = path.join(root, 'build', 'bench');
  fs.mkdirSync(outDir, { recursive: true });
  const exe = path.join(outDir, 'floor');
  const sibling = `${py.executable}-config`;
  const config = fs.existsSync(sibling) ? sibling : 'python3-config';
  const flags = (...args) => execFileSync(config, args, { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean);
  const args = ['-O2', '-o', exe, path.join(here, 'floor.c'), ...flags('--includes'), ...flags('--ldflags', '--embed')];
  execFileSync(process.env.CC || 'cc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return exe;
}

function runChild(command, args, env, timeoutS) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (out += d));
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutS * 1000);
    child.on('error', (error) => { clearTimeout(timer); resolve({ messages: [], error }); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const messages = [];
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue;
        try { messages.push(JSON.parse(line)); } catch { /* a peer's own output */ }
      }
      resolve({ messages, code, signal, timedOut });
    });
  });
}

async function runOne(peer, c, py) {
  const childConfig = JSON.stringify({ ...c, python: py.executable });
  let command;
  let args;
  if (peer.id === 'python') {
    command = py.executable;
    args = [script, 'timeit', childConfig];
  } else if (peer.id === 'c') {
    try {
      command = compileFloor(py);
    } catch (error) {
      const stderr = error.stderr?.toString().split('\n').find((l) => /error/i.test(l)) ?? '';
      return { fail: `cannot compile bench/floor.c with cc and python3-config: ${oneLine(error)} ${stderr}`.trim() };
    }
    args = [here, String(c.rounds), String(c.roundMs), String(c.cellS), String(c.listN), String(c.dictN),
      String(c.bytesN), String(c.callbacks), String(c.numpyBytes), (c.workloads ?? []).join(',')];
  } else {
    command = process.execPath;
    args = ['--expose-gc', fileURLToPath(import.meta.url), '--peer', peer.id, childConfig];
  }
  const env = peerEnv(peer, py);
  const r = await runChild(command, args, env, c.peerTimeoutS);
  const result = { results: {}, skips: {} };
  if (env.PYTHONHOME !== process.env.PYTHONHOME) result.redirected = true;
  for (const m of r.messages) {
    if (m.type === 'info') result.info = m;
    else if (m.type === 'result') result.results[m.workload] = m;
    else if (m.type === 'skip') result.skips[m.workload] = m.reason;
    else if (m.type === 'fail') result.fail = m.reason;
    else if (m.type === 'machine') result.machine = { freshUsPerMB: m.freshUsPerMB, memcpyUsPerMB: m.memcpyUsPerMB };
  }
  if (r.error) result.fail = `cannot start: ${oneLine(r.error)}`;
  else if (r.timedOut) result.ended = `killed after ${c.peerTimeoutS} s (BENCH_PEER_TIMEOUT_S)`;
  else if (r.signal) result.ended = `crashed (${r.signal})`;
  else if (r.code !== 0 && !result.fail) result.ended = `exited with code ${r.code}`;
  if (!result.fail && !result.info && result.ended) result.fail = result.ended;
  return result;
}

function whyMissing(peer) {
  // A peer that is not installed: say why in one line (bench/package.json lists the peers).
  const pkg = path.join(here, 'node_modules', peer.id, 'package.json');
  if (['node-calls-python', 'pymport', 'pythonia'].includes(peer.id) && !fs.existsSync(pkg)) {
    return `not installed (\`npm run bench\` installs it with bench/package.json; that install did not)`;
  }
  return undefined;
}

async function orchestrate() {
  const c = readConfig();
  const py = describePython();
  const peers = PEERS.filter((p) => !c.peers || c.peers.includes(p.id));
  const outcomes = {};
  for (const peer of peers) {
    const started = Date.now();
    process.stderr.write(`peers: ${peer.id} ...\n`);
    const missing = whyMissing(peer);
    outcomes[peer.id] = missing ? { fail: missing, results: {}, skips: {} } : await runOne(peer, c, py);
    const o = outcomes[peer.id];
    process.stderr.write(`peers: ${peer.id} done in ${((Date.now() - started) / 1000).toFixed(1)} s${o.fail ? ` (${o.fail})` : ''}\n`);
  }
  const raw = { config: c, python: py, outcomes };
  fs.mkdirSync(path.join(root, 'build', 'bench'), { recursive: true });
  fs.writeFileSync(rawPath, JSON.stringify(raw, null, 1));
  await report(raw);
}

const rawPath = path.join(root, 'build', 'bench', 'peers-raw.json');

/** The Markdown section (stdout) and the chart, from the measurements. */
async function report({ config: c, python: py, outcomes }) {
  const peers = PEERS.filter((p) => outcomes[p.id]);
  const workloads = WORKLOADS.filter((w) => !c.workloads || c.workloads.includes(w.id));
  const outDir = path.resolve(process.env.BENCH_OUT_DIR || path.join(root, 'build', 'bench'));
  fs.mkdirSync(outDir, { recursive: true });

  const lines = [];
  lines.push(`Sizes: list ${c.listN}, dict ${c.dictN}, bytes ${mb(c.bytesN)}, callbacks ${c.callbacks}, ` +
    `async ${c.asyncN}, numpy ${mb(c.numpyBytes)}. Rounds: ${c.rounds} of ~${c.roundMs} ms ` +
    `(at most ${c.cellS} s per peer and workload, then fewer rounds, at least 3). ` +
    `Each cell: median ops/s, and min–max over the rounds; "vs pyembed" is ops/s divided by pyembed's ` +
    `(above 1: faster than pyembed). Every peer's result is checked once before it is timed.`);
  lines.push('');
  lines.push(`Python for every peer: ${py.executable} (${py.version}).`);
  const machine = outcomes.c?.machine;
  if (machine) {
    lines.push('');
    lines.push(`Memory on this machine (measured by bench/floor.c): touching fresh memory costs ${Math.round(machine.freshUsPerMB)} µs/MB ` +
      `(page faults), copying into memory in use ${Math.round(machine.memcpyUsPerMB)} µs/MB. Large transfers that allocate new ` +
      `buffers pay the first${machine.freshUsPerMB > 5 * machine.memcpyUsPerMB ? ', which dominates here' : ''}.`);
  }
  lines.push('');
  lines.push('| peer | kind | ran with |');
  lines.push('|---|---|---|');
  for (const peer of peers) {
    const o = outcomes[peer.id];
    let ran;
    if (o.fail) ran = `**not measured**: ${o.fail}`;
    else {
      const i = o.info ?? {};
      ran = `Python ${i.version ?? '?'} (${i.prefix ?? '?'})${i.numpy ? `, numpy ${i.numpy}` : ''}`;
      if (i.version && i.version !== py.version) ran += ' — not the same Python as pyembed';
      if (o.redirected) ran += ' (its addon links a libpython of the same soname: pointed at this one with LD_LIBRARY_PATH and PYTHONHOME)';
      if (o.ended) ran += `; ${o.ended} (later workloads missing)`;
    }
    lines.push(`| ${peer.label} | ${peer.kind} | ${ran} |`);
  }
  lines.push('');

  const chartRows = [];
  for (const w of workloads) {
    lines.push(`### ${w.title(c)}`);
    lines.push('');
    lines.push(`| peer | ${w.unit} (median) | min–max | vs pyembed | notes |`);
    lines.push('|---|---:|---:|---:|---|');
    const base = outcomes.pyembed?.results[w.id];
    const baseMedian = base ? summary(base.samples).median : NaN;
    for (const peer of peers) {
      const o = outcomes[peer.id];
      const r = o.results[w.id];
      if (!r) {
        const why = o.fail ? 'not measured (see above)' : o.skips[w.id] ?? (o.ended ? `not reached: ${o.ended}` : 'n/a');
        lines.push(`| ${peer.label} | – | – | – | ${why} |`);
        continue;
      }
      const s = summary(r.samples);
      const notes = [r.note, r.scaledFrom ? `${r.units.toLocaleString('en-US')} per operation instead of ${r.scaledFrom.toLocaleString('en-US')} (too slow for BENCH_CELL_S)` : undefined,
        r.samples.length < c.rounds ? `${r.samples.length} rounds` : undefined].filter(Boolean).join('; ');
      const ratio = s.median / baseMedian;
      lines.push(`| ${peer.label} | ${formatRate(s.median)} | ${formatRate(s.min)}–${formatRate(s.max)} | ${peer.id === 'pyembed' ? '1' : formatRatio(ratio)} | ${notes} |`);
      if (Number.isFinite(ratio)) {
        chartRows.push({ title: w.title(c).replace(/`/g, ''), peer: peer.label,
          ratio, lo: s.min / baseMedian, hi: s.max / baseMedian, label: `${formatRate(s.median)} ${w.unit}` });
      }
    }
    lines.push('');
  }

  try {
    const { drawPeersChart } = await import('./lib/chart.mjs');
    const svg = await drawPeersChart(chartRows, { peers: peers.map((p) => p.label), workloads: workloads.map((w) => w.title(c).replace(/`/g, '')) });
    const svgPath = path.join(outDir, 'results.svg');
    fs.writeFileSync(svgPath, svg);
    lines.splice(0, 0, '![ops/s relative to pyembed, per workload (dot: median, line: min–max)](results.svg)', '');
    process.stderr.write(`peers: chart written to ${path.relative(process.cwd(), svgPath)}\n`);
  } catch (error) {
    lines.splice(0, 0, `(No chart: ${oneLine(error)})`, '');
  }
  console.log(lines.join('\n').trim());
}

if (process.argv[2] === '--peer') {
  await runPeer(process.argv[3], JSON.parse(process.argv[4]));
  // Some peers keep handles (child processes, interpreter threads) that would hold the process.
  process.exit(process.exitCode ?? 0);
} else if (process.argv[2] === '--redraw') {
  // The tables and the chart again from the last measurements (build/bench/peers-raw.json).
  await report(JSON.parse(fs.readFileSync(rawPath, 'utf8')));
} else {
  await orchestrate();
}
