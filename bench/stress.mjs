// Stress: several JS workers and Python threads making many mixed calls at once (sync, async,
// coroutines, callbacks both ways and across threads, exceptions both ways, objects shared
// between workers, GC pressure), every result checked, under a watchdog.
//
//   npm run stress [-- --ops N --workers W --py-threads P --seed S --timeout S --stall S --out FILE]
//     A supervisor runs the stress in a child process (node --expose-gc) and kills it if it stops
//     making progress for --stall seconds [60] or runs past --timeout [900]: a deadlock is a
//     failure with the last progress seen, never a hung terminal. It writes the result, with
//     the command, to --out [bench/STRESS.md] and exits non-zero unless everything passed.
//     Defaults: 100 000 operations over the main thread and 2 workers, 2 Python threads.
//     STRESS_OPS, STRESS_WORKERS, STRESS_PY_THREADS, STRESS_SEED work as well.
//
//   import { runStress } from './bench/stress.mjs'   (test/stress.test.ts: a short run)
//     runs in the calling process and returns the result object.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

const SOURCE = `
import asyncio, gc, random, sys, threading, time

class Box:
    """Counts its live instances: a leak of Python objects held by JS shows up here."""
    live = 0
    def __init__(self, v):
        self.v = v
        self.items = [v, str(v), {"v": v}]
        Box.live += 1
    def __del__(self):
        Box.live -= 1
    def value(self):
        return self.v

def echo(i, s, f):
    return f"{i}|{s}|{f}"

def rev(xs):
    return xs[::-1]

def make_dict(n, tag):
    return {f"{tag}{k}": k for k in range(n)}

def call_n(f, n):
    s = 0
    for i in range(n):
        s += f(i)
    return s

def add(a, b):
    return a + b

async def coro_double(x):
    await asyncio.sleep(0)
    return x * 2

def fail(i):
    raise ValueError(f"bad {i}")

def catch_js(f):
    try:
        f()
    except Exception as e:
        return type(e).__name__
    return "no error"

def in_thread(f, x):
    out = []
    t = threading.Thread(target=lambda: out.append(f(x)))
    t.start()
    t.join()
    return out[0]

def box(v):
    return Box(v)

def make_boxes(n):
    return [Box(i) for i in range(n)]

def byte_sum(b):
    return sum(b)

# Python threads that keep calling the JS functions registered here (main thread's and workers').
registry = {}
bg = {"stop": threading.Event(), "threads": [], "calls": 0, "errors": [], "lock": threading.Lock()}

def register(name, f):
    registry[name] = f

def unregister(name):
    registry.pop(name, None)

def start_background(n, seed):
    bg["stop"].clear()
    def run(k):
        rnd = random.Random(seed * 1000 + k)
        i = 0
        while not bg["stop"].is_set():
            names = list(registry)
            if not names:
                time.sleep(0.001)
                continue
            name = rnd.choice(names)
            f = registry.get(name)
            if f is None:
                continue
            x = rnd.randrange(1000)
            try:
                r = f(x)
                if r != x * 3:
                    with bg["lock"]:
                        bg["errors"].append(f"{name}({x}) returned {r!r}")
            except Exception as e:
                if name in registry:  # not a worker that has just unregistered and exited
                    with bg["lock"]:
                        bg["errors"].append(f"{name}({x}) raised {type(e).__name__}: {e}")
            with bg["lock"]:
                bg["calls"] += 1
            if i % 50 == 0:
                make_boxes(20)   # garbage on the Python side too
            i += 1
    for k in range(n):
        t = threading.Thread(target=run, args=(k,), name=f"stress-bg-{k}")
        t.start()
        bg["threads"].append(t)

def stop_background():
    bg["stop"].set()
    for t in bg["threads"]:
        t.join()
    bg["threads"].clear()
    return {"calls": bg["calls"], "errors": bg["errors"][:20], "errorCount": len(bg["errors"])}

def counts():
    gc.collect()
    return {"boxes": Box.live, "gcObjects": len(gc.get_objects()), "blocks": sys.getallocatedblocks()}
`;

// ---- a small seeded PRNG, so a failing run can be repeated --------------------------------------

function rng(seed) {
  let a = seed >>> 0;
  return {
    int(n) {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (((t ^ (t >>> 14)) >>> 0) % n);
    },
  };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

// ---- the mixed operations, run by the main thread and every worker ------------------------------

export const OPS = [
  'sync call', 'list round trip', 'dict to object', 'callbacks (same thread)', 'callAsync', 'coroutine',
  'Python thread calls back (sync, joined)', 'Python thread calls back (from callAsync)', 'Python exception',
  'JS exception in a callback', 'many objects left to GC', 'Py.GIL() scope', 'attributes', 'bytes',
  'shared list (across workers)',
];

async function opLoop({ pyembed, m, shared, count, seed, tag, gcEvery, only, onProgress }) {
  const { Py, PythonError } = pyembed;
  const rnd = rng(seed);
  const errors = [];
  let errorCount = 0;
  const perOp = new Array(OPS.length).fill(0);
  let appended = 0;
  const check = (ok, what) => {
    if (ok) return;
    errorCount++;
    if (errors.length < 20) errors.push(`${tag}: ${what}`);
  };
  const triple = (x) => x * 3;
  m.register(tag, triple); // Python threads call it at any time, also while this thread calls Python
  const mine = m.box(0);
  for (let i = 0; i < count; i++) {
    const k = only ? only[rnd.int(only.length)] : rnd.int(OPS.length);
    perOp[k]++;
    try {
      switch (k) {
        case 0: {
          const r = m.echo(i, `s${i}`, i + 0.5);
          check(r === `${i}|s${i}|${i + 0.5}`, `echo(${i}) = ${r}`);
          break;
        }
        case 1: {
          const xs = Array.from({ length: 1 + rnd.int(50) }, (_, j) => j + i);
          const r = m.rev(xs);
          const back = r.toJS();
          check(back.length === xs.length && back.every((v, j) => v === xs[xs.length - 1 - j]), 'rev');
          if (i % 2) r.dispose(); // the other half is left to the garbage collector
          break;
        }
        case 2: {
          const n = 1 + rnd.int(20);
          const o = m.make_dict(n, 'k').toJS();
          check(Object.keys(o).length === n && o[`k${n - 1}`] === n - 1, 'make_dict');
          break;
        }
        case 3: {
          const n = 1 + rnd.int(20);
          check(m.call_n((x) => x + 1, n) === (n * (n + 1)) / 2, 'call_n');
          break;
        }
        case 4:
          check((await m.add.callAsync(i, 1)) === i + 1, 'add.callAsync');
          break;
        case 5:
          check((await m.coro_double(i)) === 2 * i, 'coro_double');
          break;
        case 6:
          check(m.in_thread(triple, i) === 3 * i, 'in_thread');
          break;
        case 7:
          check((await m.in_thread.callAsync(triple, i)) === 3 * i, 'in_thread.callAsync');
          break;
        case 8:
          try {
            m.fail(i);
            check(false, 'fail() did not throw');
          } catch (e) {
            check(e instanceof PythonError && e.type === 'ValueError' && e.message === `bad ${i}`, `fail: ${e}`);
          }
          break;
        case 9:
          check(m.catch_js(() => { throw new Error(`boom ${i}`); }) === 'JSError', 'catch_js');
          break;
        case 10: {
          const boxes = m.make_boxes(20);
          let sum = 0;
          for (const b of boxes) sum += b.v;
          check(sum === 190, `boxes sum ${sum}`);
          break;
        }
        case 11: {
          const gil = Py.GIL();
          try {
            mine.v = i;
            check(m.echo(1, 'a', 2.5) === '1|a|2.5' && mine.value() === i, 'in Py.GIL()');
          } finally {
            gil.dispose();
          }
          break;
        }
        case 12:
          mine.v = -i;
          check(mine.v === -i && mine.items.toJS()[0] === 0, 'attributes');
          break;
        case 13: {
          const bytes = Buffer.from([i & 255, 1, 2, 3]);
          check(m.byte_sum(bytes) === (i & 255) + 6, 'byte_sum');
          const b = Py.toPython(bytes);
          const u8 = b.toJS();
          check(u8 instanceof Uint8Array && u8[0] === (i & 255), 'bytes toJS');
          b.dispose();
          break;
        }
        case 14:
          shared.append(i);
          appended++;
          break;
      }
    } catch (error) {
      check(false, `op '${OPS[k]}' at ${i} threw ${String(error?.stack ?? error).split('\n').slice(0, 4).join(' | ')}`);
    }
    if (i % 16 === 15) await nextTurn(); // let queued callbacks from Python threads run
    if (gcEvery && i % gcEvery === gcEvery - 1) globalThis.gc?.();
    if (i % 100 === 99) onProgress(100);
  }
  onProgress(count % 100);
  m.unregister(tag);
  mine.dispose();
  return { errors, errorCount, perOp, appended };
}

// ---- worker threads -----------------------------------------------------------------------------

if (!isMainThread && workerData?.pyembedStress) {
  const pyembed = await import('../dist/index.js');
  const m = pyembed.Py.import('stress_mod');
  const shared = pyembed.Py.unshare(workerData.shared);
  const r = await opLoop({
    pyembed, m, shared, count: workerData.count, seed: workerData.seed, tag: `worker${workerData.index}`,
    gcEvery: workerData.gcEvery, only: workerData.only, onProgress: (n) => parentPort.postMessage({ progress: n }),
  });
  shared.dispose();
  parentPort.postMessage({ done: r });
}

function runWorker(index, options, count, sharedToken, onProgress) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { pyembedStress: true, index, count, seed: options.seed + index + 1, gcEvery: options.gcEvery, only: options.only, shared: sharedToken },
    });
    let result;
    worker.on('message', (msg) => {
      if (msg.progress !== undefined) onProgress(msg.progress);
      if (msg.done) result = msg.done;
    });
    worker.on('error', reject);
    worker.on('exit', (code) => (result ? resolve(result) : reject(new Error(`worker ${index} exited (${code}) without a result`))));
  });
}

// ---- the run ------------------------------------------------------------------------------------

const mb = (bytes) => Math.round((bytes / 2 ** 20) * 10) / 10;

/**
 * Runs the stress in this process and returns what happened. Options: ops (total, split between
 * the main thread and the workers), workers, pyThreads, seed, gcEvery, progress(done, total, rss).
 */
export async function runStress(options = {}) {
  const o = {
    ops: options.ops ?? 100_000,
    workers: options.workers ?? 2,
    pyThreads: options.pyThreads ?? 2,
    seed: options.seed ?? 1,
    gcEvery: options.gcEvery ?? 500,
    only: options.only, // indices into OPS: run only these operations (for narrowing a failure down)
    progress: options.progress ?? (() => {}),
  };
  const pyembed = await import('../dist/index.js');
  const { PythonEngine, Py, PyModule } = pyembed;
  const { native } = await import(new URL('../dist/native.js', import.meta.url).href);
  const started = Date.now();
  PythonEngine.initialize();
  const m = PyModule.fromString('stress_mod', SOURCE);
  const shared = PythonEngine.eval('[]');
  const total = o.ops;
  let done = 0;
  const rssSamples = [];
  const onProgress = (n) => {
    done += n;
    o.progress(done, total, process.memoryUsage().rss);
  };
  const settle = () => {
    globalThis.gc?.();
    globalThis.gc?.();
    return m.counts().toJS(); // a call: pending decrefs are dropped first, then gc.collect()
  };

  // Warm-up on the main thread alone, then the baseline the end is compared with.
  const warmup = Math.min(2000, Math.ceil(total / 10));
  const first = await opLoop({ pyembed, m, shared, count: warmup, seed: o.seed, tag: 'warmup', gcEvery: o.gcEvery, only: o.only, onProgress });
  const baseline = { ...settle(), rss: process.memoryUsage().rss, handles: native.stats().handles };
  rssSamples.push(baseline.rss);
  const rssTimer = setInterval(() => rssSamples.push(process.memoryUsage().rss), 500);

  m.start_background(o.pyThreads, o.seed);
  const rest = total - warmup;
  const share = Math.floor(rest / (o.workers + 1));
  const workerRuns = Array.from({ length: o.workers }, (_, w) =>
    runWorker(w, o, share, Py.share(shared), onProgress));
  const mainRun = opLoop({ pyembed, m, shared, count: rest - share * o.workers, seed: o.seed + 1000, tag: 'main', gcEvery: o.gcEvery, only: o.only, onProgress });
  const results = [first, ...(await Promise.all([mainRun, ...workerRuns]))];
  const background = (await m.stop_background.callAsync()).toJS();
  clearInterval(rssTimer);

  const appended = results.reduce((a, r) => a + r.appended, 0);
  const sharedLength = shared.length;
  shared.dispose();
  const end = { ...settle(), rss: process.memoryUsage().rss, handles: native.stats().handles };
  rssSamples.push(end.rss);
  const errors = results.flatMap((r) => r.errors);
  const errorCount = results.reduce((a, r) => a + r.errorCount, 0);
  if (sharedLength !== appended) {
    errors.push(`shared list has ${sharedLength} items, ${appended} were appended`);
  }
  const perOp = OPS.map((name, k) => ({ name, count: results.reduce((a, r) => a + r.perOp[k], 0) }));
  return {
    completed: true,
    ops: results.reduce((a, r) => a + r.perOp.reduce((x, y) => x + y, 0), 0),
    options: { ops: o.ops, workers: o.workers, pyThreads: o.pyThreads, seed: o.seed, gcEvery: o.gcEvery, exposeGc: typeof globalThis.gc === 'function' },
    seconds: (Date.now() - started) / 1000,
    errors: errors.slice(0, 40),
    errorCount: errorCount + (sharedLength !== appended ? 1 : 0),
    background,
    perOp,
    baseline,
    end,
    rssMB: { start: mb(baseline.rss), end: mb(end.rss), min: mb(Math.min(...rssSamples)), max: mb(Math.max(...rssSamples)) },
  };
}

// ---- the supervisor (npm run stress) ------------------------------------------------------------

function parseArgs(argv) {
  const env = process.env;
  const opts = {
    ops: Number(env.STRESS_OPS ?? 100_000),
    workers: Number(env.STRESS_WORKERS ?? 2),
    pyThreads: Number(env.STRESS_PY_THREADS ?? 2),
    seed: Number(env.STRESS_SEED ?? 1),
    timeout: 900,
    stall: 60,
    out: path.join(here, 'STRESS.md'),
  };
  const names = { '--ops': 'ops', '--workers': 'workers', '--py-threads': 'pyThreads', '--seed': 'seed', '--timeout': 'timeout', '--stall': 'stall', '--out': 'out' };
  for (let i = 0; i < argv.length; i++) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) throw new Error(`unknown or incomplete option '${argv[i]}' (see the top of bench/stress.mjs)`);
    opts[key] = key === 'out' ? path.resolve(argv[++i]) : Number(argv[++i]);
    if (key !== 'out' && !Number.isFinite(opts[key])) throw new Error(`${argv[i - 1]} needs a number`);
  }
  return opts;
}

async function supervise(argv) {
  const opts = parseArgs(argv);
  const command = [
    ...Object.keys(process.env).filter((k) => k.startsWith('STRESS_')).sort().map((k) => `${k}=${process.env[k]}`),
    process.env.npm_lifecycle_event === 'stress' ? 'npm run stress' : 'node bench/stress.mjs',
    ...(argv.length ? [process.env.npm_lifecycle_event === 'stress' ? '--' : '', ...argv].filter(Boolean) : []),
  ].join(' ');
  const childOptions = { ops: opts.ops, workers: opts.workers, pyThreads: opts.pyThreads, seed: opts.seed };
  const started = Date.now();
  const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', JSON.stringify(childOptions)], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderrTail = '';
  let last = { done: 0, total: opts.ops, rss: 0, at: Date.now() };
  let printed = 0;
  let killedFor;
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    for (const line of d.toString().split('\n')) {
      if (line.startsWith('progress ')) {
        const p = JSON.parse(line.slice(9));
        last = { ...p, at: Date.now() };
        if (Date.now() - printed > 2000 || p.done === p.total) {
          printed = Date.now();
          process.stderr.write(`stress: ${p.done.toLocaleString('en-US')} / ${p.total.toLocaleString('en-US')} operations, ` +
            `${((Date.now() - started) / 1000).toFixed(0)} s, rss ${mb(p.rss)} MB\n`);
        }
      } else if (line.trim() !== '') {
        stderrTail = (stderrTail + line + '\n').slice(-4000);
        process.stderr.write(line + '\n');
      }
    }
  });
  const watchdog = setInterval(() => {
    const now = Date.now();
    if (now - last.at > opts.stall * 1000) killedFor = `no progress for ${opts.stall} s (deadlock?) at ${last.done} of ${last.total} operations`;
    else if (now - started > opts.timeout * 1000) killedFor = `still running after ${opts.timeout} s, at ${last.done} of ${last.total} operations`;
    if (killedFor) {
      clearInterval(watchdog);
      child.kill('SIGKILL');
    }
  }, 1000);
  const [code, signal] = await new Promise((resolve) => child.on('close', (c, s) => resolve([c, s])));
  clearInterval(watchdog);
  const seconds = (Date.now() - started) / 1000;
  let result;
  try {
    result = JSON.parse(stdout.trim().split('\n').at(-1));
  } catch {
    result = undefined;
  }
  const verdict = verdictOf(result, { code, signal, killedFor });
  const markdown = describe({ command, result, verdict, seconds, code, signal, killedFor, stderrTail });
  fs.writeFileSync(opts.out, markdown);
  process.stderr.write(`stress: ${verdict.ok ? 'passed' : 'FAILED'}: ${verdict.summary}\nstress: wrote ${path.relative(process.cwd(), opts.out)}\n`);
  process.exitCode = verdict.ok ? 0 : 1;
}

function verdictOf(result, { code, signal, killedFor }) {
  if (killedFor) return { ok: false, summary: `killed by the watchdog: ${killedFor}` };
  if (signal) return { ok: false, summary: `the stress process crashed (${signal})` };
  if (code !== 0 || !result) return { ok: false, summary: `the stress process exited with code ${code} and no result` };
  const problems = [];
  if (result.errorCount > 0) problems.push(`${result.errorCount} wrong results or unexpected errors`);
  if (result.background.errorCount > 0) problems.push(`${result.background.errorCount} errors in Python threads`);
  // Python objects made by the operations must not pile up: every Box left to the JS garbage
  // collector must be gone after gc() (a few may still be referenced: allow a small number).
  if (result.end.boxes > result.baseline.boxes + 100) problems.push(`${result.end.boxes - result.baseline.boxes} Box objects leaked`);
  if (result.end.handles > result.baseline.handles + 1000) problems.push(`${result.end.handles - result.baseline.handles} pyembed handles leaked`);
  const ok = problems.length === 0;
  return {
    ok,
    summary: ok
      ? `${result.ops.toLocaleString('en-US')} operations in ${result.seconds.toFixed(0)} s, all results correct, ` +
        `RSS ${result.rssMB.start} MB → ${result.rssMB.end} MB`
      : problems.join('; '),
  };
}

function describe({ command, result, verdict, seconds, code, signal, killedFor, stderrTail }) {
  const lines = [
    '# Stress test: last result',
    '',
    `Produced on ${new Date().toISOString().slice(0, 10)} by:`,
    '',
    '```sh',
    command,
    '```',
    '',
    `- Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}`,
    `- Node.js ${process.version}; the run took ${seconds.toFixed(1)} s`,
    '',
    `**${verdict.ok ? 'Passed' : 'Failed'}**: ${verdict.summary}.`,
    '',
  ];
  if (!result) {
    lines.push(`The stress process ended without a result (exit code ${code}, signal ${signal}${killedFor ? `, ${killedFor}` : ''}).`, '');
    if (stderrTail) lines.push('Its last output:', '', '```', stderrTail.trim(), '```', '');
    return lines.join('\n');
  }
  const o = result.options;
  lines.push(
    `${result.ops.toLocaleString('en-US')} operations on the main thread and ${o.workers} worker threads, while ${o.pyThreads} ` +
      `Python threads called the main thread's and the workers' JS functions ${result.background.calls.toLocaleString('en-US')} times. ` +
      `Seed ${o.seed}; \`gc()\` every ${o.gcEvery} operations per thread${o.exposeGc ? '' : ' (not available: run with --expose-gc)'}.`,
    '',
    '| | after warm-up | at the end | change |',
    '|---|---:|---:|---:|',
    `| RSS | ${result.rssMB.start} MB | ${result.rssMB.end} MB | ${(result.rssMB.end - result.rssMB.start).toFixed(1)} MB |`,
    `| live \`Box\` objects (made by the operations, most left to JS's GC) | ${result.baseline.boxes} | ${result.end.boxes} | ${result.end.boxes - result.baseline.boxes} |`,
    `| objects tracked by Python's gc | ${result.baseline.gcObjects} | ${result.end.gcObjects} | ${result.end.gcObjects - result.baseline.gcObjects} |`,
    `| memory blocks allocated by Python | ${result.baseline.blocks} | ${result.end.blocks} | ${result.end.blocks - result.baseline.blocks} |`,
    `| pyembed handles alive | ${result.baseline.handles} | ${result.end.handles} | ${result.end.handles - result.baseline.handles} |`,
    '',
    `RSS during the run: ${result.rssMB.min}–${result.rssMB.max} MB.`,
    '',
    '| operation | count |',
    '|---|---:|',
    ...result.perOp.map((p) => `| ${p.name} | ${p.count.toLocaleString('en-US')} |`),
    '',
  );
  if (result.errors.length || result.background.errors.length) {
    lines.push('Errors (the first ones):', '', '```', ...result.errors, ...result.background.errors, '```', '');
  }
  return lines.join('\n');
}

if (isMainThread && process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--child') {
    const options = JSON.parse(process.argv[3]);
    let lastReport = 0;
    options.progress = (done, total, rss) => {
      if (Date.now() - lastReport > 250 || done === total) {
        lastReport = Date.now();
        process.stderr.write(`progress ${JSON.stringify({ done, total, rss })}\n`);
      }
    };
    const result = await runStress(options);
    process.stdout.write(JSON.stringify(result) + '\n');
    process.exit(0);
  } else {
    await supervise(process.argv.slice(2));
  }
}
