// Threads and async: what pyembed's GIL handling buys.
//
// 1. Scaling: N worker threads each calling Python work that releases the GIL (hashlib.sha256
//    over a large bytes object), N = 1..cores, against one worker; and, for contrast, pure-Python
//    work that holds the GIL (it cannot scale).
// 2. Event-loop delay (perf_hooks.monitorEventLoopDelay) while callAsync keeps Python busy.
// 3. Round trips: callAsync against a synchronous call; a Python thread calling a main-thread JS
//    function (the main thread idle in its event loop, or blocked in a synchronous call that
//    waits for that thread) against a callback on the calling thread.
//
// 4. The fair GIL: JS calls/s and a Python thread's progress, alone and together, for a Python
//    thread spinning in pure Python, one doing file I/O, and two workers with a spinning thread;
//    the same with Python threads only (what CPython gives its own threads) beside them.
//
// Prints a Markdown section on stdout, progress on stderr. Environment (BENCH_QUICK=1: small):
//   BENCH_THREADS_MAX [cores]  BENCH_THREADS_SECONDS [2] per round  BENCH_THREADS_ROUNDS [3]
//   BENCH_HASH_MB [8]  BENCH_ELD_SECONDS [3]  BENCH_ROUNDTRIPS [20000]
//   BENCH_THREADS_SECTIONS [scaling,eld,roundtrips,fair]: the sections to run
//   PYEMBED_FAIR_GIL=0: pyembed without the fair GIL (a release after every call), to compare
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

import { PythonEngine, Py, PyModule } from '../dist/index.js';

import { envList, envNumber, formatRate, median, quick, summary } from './lib/measure.mjs';

const SOURCE = `
import hashlib, sys, threading, time

def make_data(n):
    return bytes(range(256)) * (n // 256)

def sha(data):
    return hashlib.sha256(data).hexdigest()      # releases the GIL for large inputs

def spin(n):                                      # pure Python: holds the GIL
    s = 0
    for i in range(n):
        s += i
    return s

def spin_for(seconds):
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n

def noop():
    pass

def python_threads(kind, data, n, seconds):
    """The same work on n Python threads, no JS involved: what this machine allows."""
    counts = []
    def run():
        end = time.perf_counter() + seconds
        k = 0
        while time.perf_counter() < end:
            if kind == "sha":
                sha(data)
            else:
                spin(200_000)
            k += 1
        counts.append(k)
    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads: t.start()
    for t in threads: t.join()
    return sum(counts) / seconds

def call_n(f, n):
    r = None
    for i in range(n):
        r = f(i)
    return r

# The fair GIL: a background thread (spinning, or reading a file in 64 KB chunks) counts its
# steps in steps[0]; JS reads it with an item access, which runs no Python code.
steps = [0]
running = [False]

def _spinning():
    while running[0]:
        steps[0] += 1

def _reading(path):
    with open(path, 'rb', buffering=0) as f:
        while running[0]:
            if not f.read(65536):
                f.seek(0)
            steps[0] += 1

def background(kind, path):
    steps[0] = 0
    running[0] = True
    target = _spinning if kind == 'spin' else lambda: _reading(path)
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t

def background_stop(t):
    running[0] = False
    t.join()

def small(x):
    return x

def switch_interval():
    return sys.getswitchinterval()

def calls_for(seconds):
    """What a JS loop of small calls does, on a Python thread: small(i) as often as it can."""
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for i in range(100):
            small(i)
        n += 100
    return n / seconds

def reference(kind, path, callers, seconds):
    """Python threads only: callers threads looping over small() (0: none), with or without a
    background thread (kind None: none). Returns [calls/s summed, background steps/s]."""
    rates = []
    def call():
        rates.append(calls_for(seconds))
    bg = background(kind, path) if kind else None
    start = time.perf_counter()
    if callers:
        threads = [threading.Thread(target=call) for _ in range(callers)]
        for t in threads: t.start()
        for t in threads: t.join()
    else:
        time.sleep(seconds)
    done = steps[0]
    elapsed = time.perf_counter() - start
    if bg:
        background_stop(bg)
    return [sum(rates), done / elapsed if bg else 0]

def call_n_in_thread(f, n):
    """A new Python thread calls f n times; the caller waits for it (join)."""
    out = []
    t = threading.Thread(target=lambda: out.append(call_n(f, n)))
    t.start()
    t.join()
    return out[0]
`;

const cores = os.availableParallelism?.() ?? os.cpus().length;
const config = {
  maxThreads: envNumber('BENCH_THREADS_MAX', cores),
  seconds: envNumber('BENCH_THREADS_SECONDS', quick ? 0.3 : 2),
  rounds: envNumber('BENCH_THREADS_ROUNDS', quick ? 2 : 3),
  hashBytes: Math.round(envNumber('BENCH_HASH_MB', quick ? 1 : 8) * 2 ** 20),
  eldSeconds: envNumber('BENCH_ELD_SECONDS', quick ? 0.5 : 3),
  roundTrips: envNumber('BENCH_ROUNDTRIPS', quick ? 2000 : 20000),
};

// ---- worker: runs one kind of work for a given time whenever asked ------------------------------

if (!isMainThread && workerData.smallCalls) {
  // The fair-GIL section's workers: a loop of small calls for the given time.
  const { small } = Py.import('bench_threads');
  const seconds = workerData.smallCalls;
  let n = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) small(i);
    n += 100;
  }
  parentPort.postMessage(n / seconds);
} else if (!isMainThread) {
  const m = Py.import('bench_threads');
  const data = m.make_data(workerData.hashBytes);
  const { sha, spin } = m;
  parentPort.on('message', (msg) => {
    if (msg === 'exit') {
      data.dispose();
      parentPort.close();
      return;
    }
    const { kind, until } = msg;
    let ops = 0;
    while (Date.now() < until) {
      if (kind === 'sha') sha(data);
      else spin(200_000);
      ops++;
    }
    parentPort.postMessage(ops);
  });
  parentPort.postMessage('ready');
} else {
  await main();
}

function startWorkers(n) {
  return Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: config });
    worker.once('message', (m) => (m === 'ready' ? resolve(worker) : reject(new Error(String(m)))));
    worker.once('error', reject);
  })));
}

async function round(workers, kind) {
  const until = Date.now() + 100 + config.seconds * 1000; // 100 ms for every worker to get the message
  const counts = await Promise.all(workers.map((w) => new Promise((resolve) => {
    w.once('message', resolve);
    w.postMessage({ kind, until });
  })));
  return counts.reduce((a, b) => a + b, 0);
}

async function scaling(m) {
  const rows = [];
  const data = m.make_data(config.hashBytes);
  for (const kind of ['sha', 'spin']) {
    const reference = [];
    for (let n = 1; n <= config.maxThreads; n++) {
      const samples = [];
      for (let r = 0; r < config.rounds; r++) samples.push(m.python_threads(kind, data, n, config.seconds));
      reference.push({ ...summary(samples), n });
      process.stderr.write(`  threads: ${kind} x${n} Python threads alone: ${formatRate(summary(samples).median)} ops/s\n`);
    }
    rows.push({ kind, reference: true, perN: reference });
    const perN = [];
    for (let n = 1; n <= config.maxThreads; n++) {
      const workers = await startWorkers(n);
      await round(workers, kind); // warm up (short rounds would do, the full one is simpler)
      const samples = [];
      for (let r = 0; r < config.rounds; r++) samples.push((await round(workers, kind)) / (config.seconds + 0.1));
      for (const w of workers) w.postMessage('exit');
      await Promise.all(workers.map((w) => new Promise((resolve) => w.once('exit', resolve))));
      perN.push({ ...summary(samples), n });
      process.stderr.write(`  threads: ${kind} x${n}: ${formatRate(summary(samples).median)} ops/s\n`);
    }
    rows.push({ kind, perN });
  }
  data.dispose();
  return rows;
}

async function eventLoopDelay(m, label, start) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  let stop = false;
  let calls = 0;
  const submit = []; // how long each callAsync() call itself kept the event loop
  const timed = (call) => () => {
    const t0 = performance.now();
    const p = call();
    submit.push(performance.now() - t0);
    return p;
  };
  const loops = start ? start(() => stop, () => calls++, timed) : [];
  h.enable();
  await new Promise((resolve) => setTimeout(resolve, config.eldSeconds * 1000));
  h.disable();
  stop = true;
  await Promise.all(loops);
  // The histogram records each 1 ms timer interval; the delay is what exceeds 1 ms.
  const extra = (q) => Math.max(0, (q === 'max' ? h.max : h.percentile(q)) / 1e6 - 1);
  const sorted = submit.sort((a, b) => a - b);
  const submitP99 = sorted.length ? sorted[Math.floor((sorted.length - 1) * 0.99)] : undefined;
  const submitMax = sorted.length ? sorted[sorted.length - 1] : undefined;
  process.stderr.write(`  threads: event loop ${label}: p99 ${extra(99).toFixed(3)} ms\n`);
  return { label, p50: extra(50), p99: extra(99), max: extra('max'), calls, submitP99, submitMax, load: os.loadavg()[0] };
}

function timePerOp(fn, n) {
  const t0 = process.hrtime.bigint();
  fn(n);
  return Number(process.hrtime.bigint() - t0) / n;
}

async function timePerOpAsync(fn, n) {
  const t0 = process.hrtime.bigint();
  await fn(n);
  return Number(process.hrtime.bigint() - t0) / n;
}

// ---- 4. the fair GIL -----------------------------------------------------------------------

function jsSmallCalls(small, seconds) {
  let n = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) small(i);
    n += 100;
  }
  return n / seconds;
}

function workerSmallCalls(n, seconds) {
  return Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { smallCalls: seconds } });
    worker.once('message', resolve);
    worker.once('error', reject);
  }))).then((rates) => rates.reduce((a, b) => a + b, 0));
}

// One measurement: `callers` ('main', a number of workers, or none) make small calls while a
// background thread of `kind` (or none) runs. Returns [calls/s, background steps/s].
async function together(m, callers, kind, path, seconds) {
  const steps = m.steps;
  const bg = kind ? m.background(kind, path) : null;
  const t0 = performance.now();
  const s0 = kind ? steps.get(0) : 0;
  let calls = 0;
  if (callers === 'main') calls = jsSmallCalls(m.small, seconds);
  else if (callers > 0) calls = await workerSmallCalls(callers, seconds);
  else await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const s1 = kind ? steps.get(0) : 0;
  const elapsed = (performance.now() - t0) / 1000;
  if (bg) m.background_stop(bg);
  return [calls, (s1 - s0) / elapsed];
}

async function fairness(m) {
  const seconds = config.seconds;
  const path = join(os.tmpdir(), `pyembed-bench-fair-${process.pid}`);
  writeFileSync(path, Buffer.alloc(16 * 2 ** 20, 7));
  const med = async (fn) => {
    const a = [];
    const b = [];
    for (let r = 0; r < config.rounds; r++) {
      const [x, y] = await fn();
      a.push(x);
      b.push(y);
    }
    return [median(a), median(b)];
  };
  const scenarios = [
    ['a Python thread spinning (pure Python)', 'main', 'spin', 1],
    ['a Python thread reading a file (64 KB reads)', 'main', 'io', 1],
    ['two workers, a Python thread spinning', 2, 'spin', 2],
  ];
  jsSmallCalls(m.small, 0.3); // warm up: the first loop would measure V8 compiling it
  m.calls_for(0.3);
  const rows = [];
  for (const [label, callers, kind, nCallers] of scenarios) {
    const [callsAlone] = await med(() => together(m, callers, null, path, seconds));
    const [, bgAlone] = await med(() => together(m, 0, kind, path, seconds));
    const [calls, bg] = await med(() => together(m, callers, kind, path, seconds));
    const [refCallsAlone] = await med(() => m.reference(null, path, nCallers, seconds).toJS());
    const [, refBgAlone] = await med(() => m.reference(kind, path, 0, seconds).toJS());
    const [refCalls, refBg] = await med(() => m.reference(kind, path, nCallers, seconds).toJS());
    rows.push({ label, who: typeof callers === 'number' ? `${callers} JS workers` : 'JS main thread',
      callsAlone, bgAlone, calls, bg, refWho: `${nCallers} Python thread${nCallers > 1 ? 's' : ''}`,
      refCallsAlone, refBgAlone, refCalls, refBg });
    process.stderr.write(`  threads: fair GIL, ${label}: JS ${(100 * calls / callsAlone).toFixed(1)} %, ` +
      `background ${(100 * bg / bgAlone).toFixed(1)} %\n`);
  }
  rmSync(path, { force: true });
  return rows;
}

async function main() {
  PythonEngine.initialize();
  const m = PyModule.fromString('bench_threads', SOURCE);
  const out = [];
  out.push(`${cores} cores (os.availableParallelism()); workers up to ${config.maxThreads}. ` +
    `Rounds of ${config.seconds} s, ${config.rounds} per point; the median, and min–max.`);
  out.push('');

  const sections = new Set(envList('BENCH_THREADS_SECTIONS') ?? ['scaling', 'eld', 'roundtrips', 'fair']);

  // 1. scaling
  if (sections.has('scaling')) {
  process.stderr.write('threads: scaling ...\n');
  const scale = await scaling(m);
  out.push('### Workers calling Python at once');
  out.push('');
  out.push(`\`sha\`: \`hashlib.sha256\` over ${config.hashBytes / 2 ** 20} MB (releases the GIL); ` +
    '`spin`: a pure-Python loop (holds the GIL). Scaling: throughput with N workers divided by ' +
    'throughput with one; work that releases the GIL should reach at least 0.9 × N while N ≤ cores. ' +
    'The "Python threads" rows do the same work on Python threads started by Python, with no JS involved: ' +
    'what this machine allows.');
  out.push('');
  out.push('| work | threads | ops/s (median) | min–max | MB/s | scaling | expected |');
  out.push('|---|---:|---:|---:|---:|---:|---|');
  for (const { kind, perN, reference } of scale) {
    const one = perN[0].median;
    for (const p of perN) {
      const ratio = p.median / one;
      const mbs = kind === 'sha' ? formatRate((p.median * config.hashBytes) / 2 ** 20) : '';
      const expected = kind === 'sha'
        ? (p.n <= cores ? `≥ ${(0.9 * p.n).toFixed(1)}: ${ratio >= 0.9 * p.n ? 'met' : '**not met**'}` : 'more workers than cores')
        : '≈ 1 (the GIL)';
      const who = reference ? `${p.n} Python thread${p.n > 1 ? 's' : ''} (reference)` : `${p.n} JS worker${p.n > 1 ? 's' : ''}`;
      out.push(`| ${kind} | ${who} | ${formatRate(p.median)} | ${formatRate(p.min)}–${formatRate(p.max)} | ${mbs} | ${ratio.toFixed(2)}× | ${expected} |`);
    }
  }
  out.push('');

  }

  const data = m.make_data(config.hashBytes);
  // 2. event-loop delay
  if (sections.has('eld')) {
  process.stderr.write('threads: event-loop delay ...\n');
  const { spin_for, sha, noop: noopFn } = m; // read once: an attribute read needs the GIL
  const shaLoops = Math.max(1, cores - 1);
  const keepBusy = (call, loops = 4) => (stopped, count, timed) => Array.from({ length: loops }, async () => {
    const submit = timed(call);
    while (!stopped()) {
      await submit();
      count();
    }
  });
  const eld = [
    await eventLoopDelay(m, 'idle (nothing running)'),
    await eventLoopDelay(m, '4 callAsync loops of pure Python (5 ms each, holding the GIL)',
      keepBusy(() => spin_for.callAsync(0.005))),
    // Work that releases the GIL really runs in parallel: leave one core to the event loop, or
    // this would measure the cores being oversubscribed rather than pyembed.
    await eventLoopDelay(m, `${shaLoops} callAsync loop${shaLoops > 1 ? 's' : ''} of sha256 over ${config.hashBytes / 2 ** 20} MB (GIL released)`,
      keepBusy(() => sha.callAsync(data), shaLoops)),
    await eventLoopDelay(m, '4 callAsync loops of no-op calls (as fast as they come back)',
      keepBusy(() => noopFn.callAsync())),
  ];
  out.push('### Event-loop delay while callAsync keeps Python busy');
  out.push('');
  out.push(`\`monitorEventLoopDelay({ resolution: 1 })\` over ${config.eldSeconds} s; the delay past the 1 ms timer ` +
    'interval. The goal is a p99 under 1 ms: the event loop does not wait for Python. "callAsync() itself": how long ' +
    'the call kept the event loop before returning its promise (p99 / max): pyembed\'s own share of the delay. ' +
    '"load": the 1-minute load average after the scenario (other processes compete for the cores too).');
  out.push('');
  out.push('| while | calls done | p50 | p99 | max | callAsync() itself | load |');
  out.push('|---|---:|---:|---:|---:|---:|---:|');
  const ms = (x) => (x === undefined ? '–' : `${x.toFixed(3)} ms`);
  for (const r of eld) {
    out.push(`| ${r.label} | ${r.calls.toLocaleString('en-US')} | ${r.p50.toFixed(3)} ms | ${r.p99.toFixed(3)} ms${r.p99 < 1 ? '' : ' (**≥ 1 ms**)'} | ` +
      `${r.max.toFixed(2)} ms | ${r.submitP99 === undefined ? '–' : `${ms(r.submitP99)} / ${ms(r.submitMax)}`} | ${r.load.toFixed(2)} |`);
  }
  out.push('');

  }

  // 3. round trips
  if (sections.has('roundtrips')) {
  process.stderr.write('threads: round trips ...\n');
  const n = config.roundTrips;
  const { noop, call_n, call_n_in_thread } = m;
  const f = (i) => i;
  const reps = Math.max(3, config.rounds + 2);
  // sample(perOp, count): perOp(k) does k round trips and returns ns per round trip.
  const sample = async (perOp, count) => {
    await perOp(Math.min(count, 1000)); // warm up
    const values = [];
    for (let r = 0; r < reps; r++) values.push(await perOp(count));
    return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
  };
  const quarter = Math.ceil(n / 4);
  const rt = [
    ['synchronous call `noop()`', await sample((k) => timePerOp((c) => { for (let i = 0; i < c; i++) noop(); }, k), n)],
    ['`await noop.callAsync()`, one at a time', await sample((k) => timePerOpAsync(async (c) => { for (let i = 0; i < c; i++) await noop.callAsync(); }, k), quarter)],
    ['callback on the calling thread: `call_n(f, n)` from JS', await sample((k) => timePerOp((c) => call_n(f, c), k), n)],
    ['a Python thread calls a main-thread function; main is blocked in a sync call that joins it (`call_n_in_thread(f, n)`)',
      await sample((k) => timePerOp((c) => call_n_in_thread(f, c), k), n)],
    ['a Python thread calls a main-thread function; main is idle in its event loop (`await call_n.callAsync(f, n)`)',
      await sample((k) => timePerOpAsync((c) => call_n.callAsync(f, c), k), quarter)],
  ];
  out.push('### Round trips');
  out.push('');
  out.push('Per call or callback, the median over the rounds (min–max). Each callback returns at once, so this is the cost of crossing.');
  out.push('');
  out.push('| round trip | time | min–max | vs same-thread callback |');
  out.push('|---|---:|---:|---:|');
  const sameThread = rt[2][1].median;
  for (const [label, s] of rt) {
    const fmt = (ns) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`);
    const vs = label.includes('callback') || label.includes('Python thread') ? `${(s.median / sameThread).toFixed(1)}×` : '';
    out.push(`| ${label} | ${fmt(s.median)} | ${fmt(s.min)}–${fmt(s.max)} | ${vs} |`);
    process.stderr.write(`  threads: ${label.slice(0, 60)}: ${fmt(s.median)}\n`);
  }
  out.push('');
  }
  data.dispose();

  // 4. the fair GIL
  if (sections.has('fair')) {
    process.stderr.write('threads: fair GIL ...\n');
    const fair = await fairness(m);
    const fairOn = process.env.PYEMBED_FAIR_GIL !== '0';
    out.push('### The fair GIL: JS calls and a busy Python thread');
    out.push('');
    out.push(`A loop of small calls (\`small(i)\`, a Python function returning its argument) for ${config.seconds} s, ` +
      'alone and while a background Python thread runs; the background thread\'s steps/s (a pure-Python ' +
      'increment, or one 64 KB read of a 16 MB file), alone and together. "%": of the same thing alone. ' +
      'The goal: both ≥ 25 % together. The reference rows do the same with Python threads only (a Python ' +
      'thread calls `small(i)` in a loop): what CPython gives its own threads. ' +
      `Fair GIL: ${fairOn ? 'on' : '**off** (PYEMBED_FAIR_GIL=0: released after every call)'}; ` +
      `switch interval ${(m.switch_interval() * 1000).toFixed(1)} ms. Median of ${config.rounds} rounds.`);
    out.push('');
    out.push('| background thread | callers | calls/s alone | together | % | background steps/s alone | together | % |');
    out.push('|---|---|---:|---:|---:|---:|---:|---:|');
    const pct = (a, b) => `${(100 * a / b).toFixed(1)} %`;
    for (const r of fair) {
      out.push(`| ${r.label} | ${r.who} | ${formatRate(r.callsAlone)} | ${formatRate(r.calls)} | ${pct(r.calls, r.callsAlone)} | ` +
        `${formatRate(r.bgAlone)} | ${formatRate(r.bg)} | ${pct(r.bg, r.bgAlone)} |`);
      out.push(`| ${r.label} | ${r.refWho} (reference) | ${formatRate(r.refCallsAlone)} | ${formatRate(r.refCalls)} | ` +
        `${pct(r.refCalls, r.refCallsAlone)} | ${formatRate(r.refBgAlone)} | ${formatRate(r.refBg)} | ${pct(r.refBg, r.refBgAlone)} |`);
    }
    out.push('');
  }
  console.log(out.join('\n'));
}
