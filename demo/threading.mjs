// The scenarios of pythonnet's threading page (../shared/seed/pythonnet-threading.txt), acted out
// with pyembed. Each one prints what happens; in pythonnet without BeginAllowThreads/Py.GIL()
// several of them would hang, starve or crash.
import { Worker } from 'node:worker_threads';

import { PythonEngine, Py, PyModule } from 'pyembed';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const busy = (ms) => {
  const end = Date.now() + ms;
  while (Date.now() < end);
};
const t0 = Date.now();
const at = () => `${String(Date.now() - t0).padStart(5)} ms`;
const heading = (text) => console.log(`\n=== ${text}`);

heading('1. Initialize: returns with the GIL released (no BeginAllowThreads needed)');
PythonEngine.initialize();
console.log(`${at()}  Python ${PythonEngine.version.split(' ')[0]} from ${PythonEngine.python.executable}`);

const mymodule = PyModule.fromString('mymodule', `
import os, threading, time

hello_times = []
printing = True
stop = threading.Event()

def say_hello():
    while not stop.is_set():
        hello_times.append(time.monotonic())
        if printing:
            print("  hello", flush=True)
        time.sleep(0.1)

hello_thread = None

def launch_hello():
    global hello_thread
    hello_thread = threading.Thread(name="Hello thread", target=say_hello)
    hello_thread.daemon = True
    hello_thread.start()

def stop_hello():
    stop.set()
    hello_thread.join()

def getcwd():
    return os.getcwd()

def join_a_thread_that_calls(callback):
    out = []
    t = threading.Thread(target=lambda: out.append(callback("called from a Python thread")))
    t.start()
    t.join()          # the JS thread is blocked right here, inside a synchronous call
    return out[0]

class Result:
    def __init__(self, name):
        self.name = name

def myfunction():
    return Result("m_result from Python")
`);

heading('2. The "Hello thread": runs at once, every 100 ms, while JS is busy and while it is idle');
mymodule.launch_hello();
console.log(`${at()}  launched; now 1 s of busy JS (no Python calls):`);
const before = mymodule.hello_times.length;
busy(1000);
const duringBusy = mymodule.hello_times.length - before;
console.log(`${at()}  now 1 s with the event loop idle:`);
await sleep(1000);
const duringIdle = mymodule.hello_times.length - before - duringBusy;
mymodule.printing = false; // it keeps running silently; scenario 4 counts it again
console.log(`${at()}  "hello" ${duringBusy} times during busy JS, ${duringIdle} times during idle JS (expected ~10 each)`);

heading('3. A second host thread (a worker) calls Python while the main thread runs host code');
{
  const source = `
    import { PythonEngine, Py } from ${JSON.stringify(import.meta.resolve('pyembed'))};
    import { parentPort } from 'node:worker_threads';
    PythonEngine.initialize();               // joins the process's one interpreter
    const started = Date.now();
    const cwd = Py.import('mymodule').getcwd();
    parentPort.postMessage({ cwd, ms: Date.now() - started });
  `;
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(source)}`));
  const reply = new Promise((resolve) => worker.once('message', resolve));
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  busy(1500); // the main thread is not executing Python
  const { cwd, ms } = await reply;
  console.log(`${at()}  worker printed "Current directory is: ${cwd}" after ${ms} ms, while the main thread was busy`);
  await exited;
}

heading('4. LongRunningComputation: Python calls host code that sleeps; Python threads keep running');
PyModule.expose('DotNetModule', {
  LongRunningComputation(ms) {
    // No BeginAllowThreads here: pyembed releases the GIL whenever JS runs.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    return `slept ${ms} ms`;
  },
});
{
  const before = mymodule.hello_times.length;
  const result = PythonEngine.eval('__import__("DotNetModule").LongRunningComputation(1000)');
  const ticks = mymodule.hello_times.length - before;
  console.log(`${at()}  ${result}; the Hello thread printed ${ticks} times meanwhile (expected ~10)`);
}

heading('5. m_result.name outside any GIL scope: "unsafe" in pythonnet, safe here');
{
  let mResult;
  {
    const gil = Py.GIL(); // optional: a scope only saves GIL round trips
    try {
      mResult = mymodule.myfunction();
    } finally {
      gil.dispose();
    }
  }
  console.log(`${at()}  Got the result ${mResult.name} (pyembed took the GIL for the attribute read)`);
}

heading('6. The classic deadlock: a synchronous call joins a Python thread that calls back into JS');
{
  const answer = mymodule.join_a_thread_that_calls((text) => `JS callback ran: ${text}`);
  console.log(`${at()}  ${answer}`);
}

heading('7. callAsync: Python computes on pyembed threads; the event loop keeps running');
{
  const spin = PythonEngine.eval('lambda n: sum(i * i for i in range(n))');
  let timerTicks = 0;
  const timer = setInterval(() => timerTicks++, 10);
  const started = Date.now();
  const total = await spin.callAsync(10_000_000);
  clearInterval(timer);
  console.log(`${at()}  sum = ${total} in ${Date.now() - started} ms; a 10 ms timer fired ${timerTicks} times meanwhile`);
}

heading('8. Initialized on one thread, shut down on another (no EndAllowThreads dance)');
{
  // CPython cannot be initialized again under its old daemon threads: stop ours first.
  mymodule.stop_hello();
  const math = Py.import('math');
  const source = `
    import { PythonEngine } from ${JSON.stringify(import.meta.resolve('pyembed'))};
    import { parentPort } from 'node:worker_threads';
    PythonEngine.shutdown();
    parentPort.postMessage(PythonEngine.isInitialized);
  `;
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(source)}`));
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  const running = await new Promise((resolve) => worker.once('message', resolve));
  await exited;
  let message = '';
  try {
    math.sqrt(2);
  } catch (error) {
    message = error.message;
  }
  console.log(`${at()}  worker shut Python down (running: ${running}); main thread's old proxy says: "${message}"`);
  PythonEngine.initialize();
  console.log(`${at()}  initialize() again: a fresh interpreter, sqrt(2) = ${Py.import('math').sqrt(2)}`);
}

heading('done');
