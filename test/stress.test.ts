// A short run of the stress test (bench/stress.mjs; `npm run stress` is the long one): workers and
// Python threads making a few thousand mixed calls at once. It runs in a child process with a
// watchdog, so a deadlock fails the test instead of hanging the runner. No timing assertions:
// it checks that the run completes, every result is right, and Python objects do not pile up.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { explain, packageRoot, runScript } from './helpers.js';

const stressModule = pathToFileURL(path.join(packageRoot, 'bench', 'stress.mjs')).href;

test('stress: 3 000 mixed operations on the main thread, 2 workers and 2 Python threads', async () => {
  const r = await runScript(
    `import { runStress } from ${JSON.stringify(stressModule)};
     const result = await runStress({ ops: 3000, workers: 2, pyThreads: 2, seed: 7, gcEvery: 250 });
     console.log(JSON.stringify(result));`,
    { nodeArgs: ['--expose-gc'], timeoutMs: 120_000 },
  );
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.signal, null, explain(r));
  const result = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '');
  assert.equal(result.completed, true);
  assert.equal(result.ops, 3000);
  assert.deepEqual(result.errors, [], 'every result checked');
  assert.equal(result.errorCount, 0);
  assert.deepEqual(result.background.errors, [], 'the Python threads saw right results');
  assert.ok(result.background.calls > 0, 'the Python threads called into JS');
  for (const op of result.perOp) assert.ok(op.count > 0, `operation '${op.name}' ran`);
  // Everything the operations made is disposed or garbage: after gc() on the JS side and
  // gc.collect() on the Python side, nothing may have piled up.
  assert.ok(result.end.boxes - result.baseline.boxes <= 50, `Box objects left: ${result.baseline.boxes} -> ${result.end.boxes}`);
  assert.ok(result.end.gcObjects - result.baseline.gcObjects < 5000,
    `objects tracked by Python's gc: ${result.baseline.gcObjects} -> ${result.end.gcObjects}`);
  assert.ok(result.end.handles - result.baseline.handles < 500, `pyembed handles: ${result.baseline.handles} -> ${result.end.handles}`);
});
