// pyembed problem: a Python thread that drops the last reference to a worker's JS function after
// that worker has exited kills the process (SIGSEGV).
//
//   node bench/repro/release-after-worker-exit.mjs      expected: "ok"; today: Segmentation fault
//
// Backtrace (gdb): v8::internal::GlobalHandles::Destroy <- JsThread::~JsThread <-
// ReleaseTask<JsFunctionRef::Unref()>::Cancel <- JsThread::Post <- capsule_dealloc <- Py_DECREF,
// on the Python thread. The worker's JsThread is gone, so Post() cancels the release task, and
// the cancel path runs ~JsThread there, which destroys V8 global handles of an isolate that was
// already disposed (and on a thread that does not own it). Dropping the reference should be a
// no-op once the owning worker has exited.
import { Worker, isMainThread } from 'node:worker_threads';
import { PyModule, Py } from 'pyembed';

if (isMainThread) {
  PyModule.fromString('repro_release', `
import threading, time
def keep(f):
    box = [f]
    def run():
        time.sleep(0.5)   # by now the worker has exited
        box.clear()       # the last reference to the worker's JS function goes away here
    threading.Thread(target=run).start()
`);
  const worker = new Worker(new URL(import.meta.url));
  await new Promise((resolve) => worker.on('exit', resolve));
  await new Promise((resolve) => setTimeout(resolve, 1000));
  console.log('ok');
} else {
  Py.import('repro_release').keep((x) => x);
}
