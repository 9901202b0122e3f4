// Timing helpers shared by the benchmark suites: calibrated rounds, and the statistics the
// tables print (median and spread). bench/floor.c and bench/peers.py calibrate the same way.

/** Reads a numeric environment variable (undefined, empty or invalid: the fallback). */
export function envNumber(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name}=${raw}: expected a non-negative number`);
  return value;
}

/** Reads a comma-separated list from the environment (undefined when unset). */
export function envList(name) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  return raw.split(',').map((s) => s.trim()).filter(Boolean);
}

/** BENCH_QUICK=1 makes every default small: for smoke runs on a busy machine. */
export const quick = process.env.BENCH_QUICK === '1';

export function median(values) {
  return quantile(values, 0.5);
}

export function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function summary(samples) {
  return {
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    q1: quantile(samples, 0.25),
    q3: quantile(samples, 0.75),
    n: samples.length,
  };
}

const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

async function timed(run, reps, n) {
  const t0 = process.hrtime.bigint();
  const r = run(reps, n);
  if (r !== null && typeof r === 'object' && typeof r.then === 'function') await r;
  return seconds(t0);
}

/**
 * Times `run(reps, n)` (which does one operation `reps` times) in calibrated rounds and returns
 * ops/s per round, where an operation counts `units` (for example 1 000 callbacks).
 *
 * - A round lasts about `roundMs`; there are `rounds` of them, fewer (but at least `minRounds`)
 *   when that would take longer than `cellS` seconds.
 * - `scalable: { full, probe }`: the operation takes a size n (callbacks per op, concurrent
 *   calls per op). It runs with n = full unless `minRounds` operations that size would not fit
 *   in cellS; then n shrinks (not below `probe`) and the result says so. Rates stay per unit.
 */
export async function measure(workload, options) {
  const { rounds, roundMs, cellS, minRounds = 3 } = options;
  const roundS = roundMs / 1000;
  let n;
  let units = workload.units ?? 1;
  let scaledFrom;
  if (workload.scalable) {
    const { full, probe } = workload.scalable;
    n = Math.min(full, probe);
    await timed(workload.run, 1, n); // warm up
    const perUnit = (await timed(workload.run, 1, n)) / n;
    if (full * perUnit * minRounds > cellS) {
      n = Math.max(n, Math.floor(cellS / (minRounds * perUnit)));
      if (n < full) scaledFrom = full;
    } else {
      n = full;
    }
    units = n;
  }
  // Calibrate: double reps until a run lasts a quarter round. The first run also warms up (the
  // caller's check() ran the operation once already); an operation slower than a whole round
  // keeps that run as its first sample, so a slow peer costs no extra run.
  const samples = [];
  let reps = 1;
  let t = await timed(workload.run, 1, n);
  if (t >= roundS) {
    samples.push(units / t);
  } else {
    for (;;) {
      t = await timed(workload.run, reps, n);
      if (t >= roundS / 4 || reps >= 2 ** 30) break;
      reps *= 2;
    }
  }
  const perOp = t / reps;
  reps = Math.max(1, Math.round(roundS / perOp));
  let count = rounds;
  if (count * reps * perOp > cellS) count = Math.max(minRounds, Math.floor(cellS / (reps * perOp)));
  for (let r = samples.length; r < count; r++) {
    const elapsed = await timed(workload.run, reps, n);
    samples.push((reps * units) / elapsed);
  }
  return { samples, units, reps, ...(scaledFrom !== undefined ? { scaledFrom } : {}) };
}

/** 1234567.8 -> "1,234,568"; 12.345 -> "12.3"; 0.0123 -> "0.0123" */
export function formatRate(x) {
  if (!Number.isFinite(x)) return 'n/a';
  if (x >= 100) return Math.round(x).toLocaleString('en-US');
  if (x >= 1) return x.toFixed(1);
  return x.toPrecision(3);
}

export function formatRatio(x) {
  if (!Number.isFinite(x)) return 'n/a';
  if (x >= 10) return `${x.toFixed(0)}×`;
  if (x >= 0.1) return `${x.toFixed(2)}×`;
  return `${x.toPrecision(2)}×`;
}

/**
 * Nanoseconds per operation of `fn`, a loop of `n` operations: warmed up once, then timed `rounds`
 * times; the middle round (upper median), so one slow round (a GC, a context switch) does not count.
 */
export function nsPerOp(fn, rounds, n) {
  fn();
  const samples = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    samples.push(Number(process.hrtime.bigint() - t0) / n);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}
