// pyembed problem: a Python thread that keeps calling a worker's JS function while that worker
// makes synchronous Python calls (pyembed lets the Python thread borrow the worker's parked
// isolate for the calls) makes the worker's next full GC crash (SIGSEGV): gc() here; whether the
// collector's own full GCs do it too is not verified. In variants of this run without gc() we also saw some of the
// Python thread's calls fail with a spurious `JSError: Error: illegal access` (not every run).
//
//   node --expose-gc bench/repro/worker-callback-gc.mjs     expected: "ok, 0 errors"; today: SIGSEGV
//   SYNC=0 node --expose-gc bench/repro/worker-callback-gc.mjs      no synchronous calls: runs clean
//   (NO_GC=1 leaves gc() out; YIELD_EVERY=N yields to the event loop every N turns instead of each)
//
// Backtrace of the crash (gdb), on the worker's thread: IteratePointersInStack <-
// heap::base::Stack::IteratePointersImpl <- cppgc MarkerBase::VisitRoots <- CppHeap::EnterFinalPause
// <- MarkCompactCollector::MarkLiveObjects <- Heap::CollectGarbage. V8's conservative scan of the
// worker's stack walks an invalid range: most likely the stack start V8 keeps for the isolate was
// set to the Python thread's stack by the v8::Locker taken there to borrow the isolate, and is not
// set back when the worker takes its isolate again. The same pattern on the main thread does not
// crash, but may then scan the wrong range without a crash (missed roots): worth checking too.
import { Worker, isMainThread } from 'node:worker_threads';
import { PyModule, Py } from 'pyembed';

const yieldEvery = Number(process.env.YIELD_EVERY ?? 1);
const gc = process.env.NO_GC === '1' ? () => {} : globalThis.gc;
if (!gc) throw new Error('run with node --expose-gc (or NO_GC=1)');

if (isMainThread) {
  const m = PyModule.fromString('repro_worker_gc', `
import threading
fns = []
errors = []
stop = threading.Event()
thread = None
def noop():
    pass
def start():
    global thread
    def run():
        while not stop.is_set():
            for f in list(fns):
                try:
                    f(1)
                except Exception as e:
                    errors.append(repr(e))
            f = None
    thread = threading.Thread(target=run)
    thread.start()
def finish():
    # Called by the worker before it exits: no reference to its function outlives it (that is
    # the other problem, bench/repro/release-after-worker-exit.mjs).
    fns.clear()
    stop.set()
    thread.join()
def report():
    return len(errors), errors[:3]
`);
  m.start();
  const worker = new Worker(new URL(import.meta.url));
  await new Promise((resolve) => worker.on('exit', resolve));
  const [count, first] = m.report().toJS();
  console.log(`ok, ${count} errors`, first);
} else {
  const m = Py.import('repro_worker_gc');
  m.fns.append((x) => x * 3);
  for (let i = 0; i < 20000; i++) {
    if (process.env.SYNC !== '0') m.noop(); // the Python thread may borrow the isolate here
    if (i % yieldEvery === yieldEvery - 1) await new Promise((resolve) => setImmediate(resolve)); // or run here
    if (i % 500 === 499) gc();
  }
  m.finish();
}
