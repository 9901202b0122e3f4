// What pyembed's threading model means for a Node.js program, scenario by scenario. Each prints
// what it shows, what was measured, and PASS or FAIL against what should happen; the process
// exits with status 1 if any scenario fails. Thresholds are generous on purpose: the machine may
// be busy with other work, and a scenario should fail only when the behaviour is really missing.
import { Worker } from 'node:worker_threads';

import { PythonEngine, Py, PyModule } from 'pyembed';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** Keeps this JS thread busy (no Python calls, no event loop) for `ms`. */
const busy = (ms) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};
const failures = [];
let number = 0;

function scenario(title, shows) {
  console.log(`\n${++number}. ${title}\n   ${shows}`);
}
function verdict(ok, measured, expected) {
  console.log(`   measured: ${measured}\n   expected: ${expected}\n   ${ok ? 'PASS' : 'FAIL'}`);
  if (!ok) failures.push(number);
}
/** A worker running `body` (an ES module body that can use PythonEngine, Py and parentPort). */
function startWorker(body, workerData) {
  const source = `
    import { PythonEngine, Py } from ${JSON.stringify(import.meta.resolve('pyembed'))};
    import { parentPort, workerData } from 'node:worker_threads';
    ${body}`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(source)}`), { workerData });
}
/** The worker's first message; its error (or an exit without a message) rejects. */
function firstMessage(worker) {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the worker exited (${code}) without answering`)));
  });
}

PythonEngine.initialize();
console.log(`Python ${PythonEngine.version.split(' ')[0]} (${PythonEngine.python.executable})`);

const helpers = PyModule.fromString('demo_helpers', `
import threading, time

ticks = []
_stop = threading.Event()

def _tick():
    while not _stop.is_set():
        ticks.append(time.monotonic())
        time.sleep(0.1)

def start_ticker():
    threading.Thread(target=_tick, name="ticker").start()

def stop_ticker():
    _stop.set()

def compute(n):
    """Pure Python work that holds the GIL the whole time."""
    return sum(i * i for i in range(n))

def call_from_a_python_thread(callback):
    out = []
    t = threading.Thread(target=lambda: out.append(callback("from a Python thread")))
    t.start()
    t.join()   # the JS thread that called us is blocked here, inside a synchronous call
    return out[0]
`);
const tickCount = () => helpers.ticks.length;

// ---------------------------------------------------------------------------------------------
scenario(
  'A Python thread keeps running while JavaScript is busy, and while the event loop is idle',
  'A Python background thread ticks every 100 ms; the main thread first spins for 1 s, then awaits for 1 s.',
);
{
  helpers.start_ticker();
  const start = tickCount();
  busy(1000);
  const duringBusy = tickCount() - start;
  await sleep(1000);
  const duringIdle = tickCount() - start - duringBusy;
  verdict(
    duringBusy >= 5 && duringIdle >= 5,
    `${duringBusy} ticks while JS was busy, ${duringIdle} while the event loop was idle`,
    'about 10 each (at least 5): the Python thread never waits for JavaScript',
  );
}

// ---------------------------------------------------------------------------------------------
scenario(
  'A worker thread calls Python while the main thread is busy with JavaScript',
  'The worker runs 10 ms Python computations in a loop and counts them in shared memory; the main thread spins for 1 s meanwhile.',
);
{
  // How many computations fit in 10 ms here, so that the scenario means the same on any machine.
  let n = 10_000;
  for (let took = 0; took < 10; n *= 2) {
    const t = performance.now();
    helpers.compute(n);
    took = performance.now() - t;
  }
  n /= 2;
  const counter = new Int32Array(new SharedArrayBuffer(8)); // [calls done, stop]
  const worker = startWorker(`
    const compute = Py.import('demo_helpers').compute;
    const [counter, n] = workerData;
    parentPort.postMessage('ready');
    while (Atomics.load(counter, 1) === 0) {
      compute(n);
      Atomics.add(counter, 0, 1);
    }
  `, [counter, n]);
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  await firstMessage(worker);
  await sleep(200); // let it settle into its loop
  const before = Atomics.load(counter, 0);
  const t = performance.now();
  busy(1000);
  const window = performance.now() - t;
  const duringBusy = Atomics.load(counter, 0) - before;
  Atomics.store(counter, 1, 1);
  await exited;
  const possible = Math.round(window / 10);
  verdict(
    duringBusy >= Math.max(2, possible / 5),
    `the worker finished ${duringBusy} Python computations during the main thread's ${Math.round(window)} ms of JS`,
    `up to about ${possible}, and at least ${Math.max(2, Math.round(possible / 5))}: the two threads run at the same time (0 would mean the worker waited for the main thread)`,
  );
}

// ---------------------------------------------------------------------------------------------
scenario(
  'Python calls a JavaScript function that blocks for 1 s; other Python threads keep running',
  'Python code calls slowJs(), which blocks its thread with Atomics.wait; the ticker thread is counted meanwhile.',
);
{
  PyModule.expose('js_tools', {
    slowJs(ms) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
      return `waited ${ms} ms`;
    },
  });
  const start = tickCount();
  const result = PythonEngine.eval('__import__("js_tools").slowJs(1000)');
  const ticks = tickCount() - start;
  verdict(
    result === 'waited 1000 ms' && ticks >= 5,
    `slowJs returned '${result}'; ${ticks} ticks meanwhile`,
    "'waited 1000 ms', and about 10 ticks (at least 5): JavaScript code never holds Python's lock",
  );
}

// ---------------------------------------------------------------------------------------------
scenario(
  'A synchronous Python call waits for a Python thread that calls back into JavaScript',
  'JS calls f(callback); f starts a Python thread that calls callback, and waits for it. A naive embedding deadlocks here.',
);
{
  const t = performance.now();
  const answer = helpers.call_from_a_python_thread((text) => `callback ran ${text}`);
  verdict(
    answer === 'callback ran from a Python thread',
    `returned '${answer}' after ${Math.round(performance.now() - t)} ms`,
    "'callback ran from a Python thread' (the JS callback runs while its thread waits inside f)",
  );
}

// ---------------------------------------------------------------------------------------------
scenario(
  'callAsync runs Python off the event loop: timers keep firing during a long computation',
  'compute.callAsync(n) runs about a second of Python on a pyembed thread; a 10 ms interval timer counts its runs meanwhile.',
);
{
  let n = 100_000;
  for (let took = 0; took < 250; n *= 2) {
    const t = performance.now();
    helpers.compute(n);
    took = performance.now() - t;
  }
  n *= 2; // about 1 s
  let timerRuns = 0;
  let longestGap = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    last = now;
    timerRuns++;
  }, 10);
  const t = performance.now();
  const sum = await helpers.compute.callAsync(n);
  const took = performance.now() - t;
  clearInterval(timer);
  const possible = Math.floor(took / 10);
  verdict(
    typeof sum === 'number' || typeof sum === 'bigint' ? timerRuns >= possible / 4 : false,
    `the computation took ${Math.round(took)} ms; the timer ran ${timerRuns} times, its longest gap ${Math.round(longestGap)} ms`,
    `about ${possible} runs (at least ${Math.ceil(possible / 4)}): the event loop does not wait for Python`,
  );
}

// ---------------------------------------------------------------------------------------------
scenario(
  'No lock to manage: Python objects work anywhere, Py.withGIL() only saves time',
  'Reads 20 000 attributes of a Python object, then the same inside one Py.withGIL() scope.',
);
{
  const point = PythonEngine.eval('type("Point", (), {"x": 3})()');
  const readAll = () => {
    let total = 0;
    for (let i = 0; i < 20_000; i++) total += point.x;
    return total;
  };
  let t = performance.now();
  const plain = readAll();
  const plainMs = performance.now() - t;
  t = performance.now();
  const scoped = Py.withGIL(readAll);
  const scopedMs = performance.now() - t;
  verdict(
    plain === 60_000 && scoped === 60_000,
    `sum ${plain} without a scope (${plainMs.toFixed(1)} ms), ${scoped} inside Py.withGIL (${scopedMs.toFixed(1)} ms)`,
    '60000 both ways: every operation takes the lock itself when no scope holds it',
  );
}

// ---------------------------------------------------------------------------------------------
scenario(
  'Shut down from a worker, start again on the main thread',
  'A worker calls PythonEngine.shutdown(); the main thread then uses an old object, and initialize()s a new interpreter.',
);
{
  helpers.stop_ticker(); // a restart needs the old interpreter's threads to have ended
  const math = Py.import('math');
  const worker = startWorker(`
    PythonEngine.shutdown();
    parentPort.postMessage(PythonEngine.isInitialized);
  `);
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  const runningInWorker = await firstMessage(worker);
  await exited;
  let message = '';
  try {
    math.sqrt(2);
  } catch (error) {
    message = error.message;
  }
  PythonEngine.initialize();
  const again = Py.import('math').sqrt(16);
  verdict(
    runningInWorker === false && /shut down/.test(message) && again === 4,
    `after the worker's shutdown: running = ${runningInWorker}; the old object said "${message}"; a new interpreter computed sqrt(16) = ${again}`,
    'not running, a clear error from the old object, and 4 from the new interpreter',
  );
}

console.log(failures.length === 0 ? '\nAll scenarios passed.' : `\nFAILED: scenario ${failures.join(', ')}`);
if (failures.length > 0) process.exitCode = 1;
