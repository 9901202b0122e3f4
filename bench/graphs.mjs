// Conversions that the graph memo touches, timed per conversion (median of rounds): toJS() of a
// 10 000-int list, a nested dict, a list of 10 000 small dicts, a list sharing one dict 10 000
// times, and a 10 000-object JS array to Python. Compare two builds in one run by passing their
// package folders (the first is the baseline):
//   node bench/graphs.mjs /work/main .        (each after npm run build and a native build;
//   BENCH_PASSES alternates the builds that many times and keeps the best of each)
const roots = process.argv.length > 2 ? process.argv.slice(2) : ['.'];
const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function time(f, reps) {
  const samples = [];
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    for (let i = 0; i < reps; i++) f();
    samples.push(((performance.now() - start) / reps) * 1000);
  }
  return median(samples);
}

// Each build runs in a child process (one embedded Python per process).
if (process.env.GRAPHS_ROOT) {
  const { PythonEngine } = await import(`${process.env.GRAPHS_ROOT}/dist/index.js`);
  PythonEngine.initialize();
  const ints = PythonEngine.eval('list(range(10000))');
  const nested = PythonEngine.eval('{"a": {"b": [1, 2, {"c": "x" * 10}], "d": {"e": 1.5, "f": [True, None]}}, "g": list(range(50))}');
  const dicts = PythonEngine.eval('[{"i": i, "s": "x"} for i in range(10000)]');
  const shared = PythonEngine.eval('(d := {"v": 1}, [d] * 10000)[-1]');
  const jsArray = Array.from({ length: 10000 }, (_, i) => ({ i }));
  const len = PythonEngine.eval('len');
  const out = {
    'toJS 10 000-int list': time(() => ints.toJS(), 20),
    'toJS nested dict': time(() => nested.toJS(), 2000),
    'toJS 10 000 small dicts': time(() => dicts.toJS(), 5),
    'toJS one dict 10 000 times': time(() => shared.toJS(), 5),
    'JS 10 000 objects -> Python': time(() => len(jsArray), 5),
  };
  console.log(JSON.stringify(out));
} else {
  const { execFileSync } = await import('node:child_process');
  const { resolve } = await import('node:path');
  const results = [];
  for (let pass = 0; pass < Number(process.env.BENCH_PASSES ?? 2); pass++) {
    for (const root of roots) {
      const text = execFileSync(process.execPath, [new URL(import.meta.url).pathname],
        { env: { ...process.env, GRAPHS_ROOT: resolve(root) } }).toString();
      results.push({ root, pass, times: JSON.parse(text) });
    }
  }
  for (const name of Object.keys(results[0].times)) {
    const cells = roots.map((root) => {
      const best = Math.min(...results.filter((r) => r.root === root).map((r) => r.times[name]));
      return `${root}: ${best.toFixed(1)} µs`;
    });
    const base = Math.min(...results.filter((r) => r.root === roots[0]).map((r) => r.times[name]));
    const ratios = roots.slice(1).map((root) =>
      (Math.min(...results.filter((r) => r.root === root).map((r) => r.times[name])) / base).toFixed(2) + 'x');
    console.log(`${name.padEnd(30)} ${cells.join('  ')}  ${ratios.join(' ')}`);
  }
}
