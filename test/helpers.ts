// Shared by the tests: run a script in a child process (crashes show up as a signal, deadlocks as
// a timeout, never as a dead or hung test runner).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
// build/test -> the package root, where `import 'pyembed'` resolves (package self-reference).
export const packageRoot = path.resolve(here, '..', '..');
const scratch = path.join(packageRoot, 'build', 'test-scripts');

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface ChildOptions {
  env?: Record<string, string | undefined>;
  nodeArgs?: string[];
  timeoutMs?: number;
  /** Send this signal `signalAfterMs` after the start, or after stdout first shows `signalWhen`. */
  signal?: NodeJS.Signals;
  signalAfterMs?: number;
  signalWhen?: string;
  stdinText?: string;
  /** The script's file extension: '.mjs' (default, an ES module) or '.cjs' (CommonJS). */
  extension?: '.mjs' | '.cjs';
  /** Write the script into this folder (inside the package, so `import 'pyembed'` resolves) and run it there. */
  dir?: string;
}

let counter = 0;

/** Runs an ES module (or CommonJS, see `extension`) with node; it can `import ... from 'pyembed'`. */
export function runScript(source: string, options: ChildOptions = {}): Promise<ChildResult> {
  const dir = options.dir ?? scratch;
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `script-${process.pid}-${counter++}${options.extension ?? '.mjs'}`);
  fs.writeFileSync(file, source);
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), file], {
      cwd: options.dir ?? packageRoot,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let signalled = false;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (options.signal && options.signalWhen && !signalled && stdout.includes(options.signalWhen)) {
        signalled = true;
        setTimeout(() => child.kill(options.signal), options.signalAfterMs ?? 500);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(options.stdinText ?? '');
    const watchdog = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    if (options.signal && !options.signalWhen) setTimeout(() => child.kill(options.signal), options.signalAfterMs ?? 500);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(watchdog);
      fs.rmSync(file, { force: true });
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Describes a child's end for assertion messages. */
export function explain(r: ChildResult): string {
  return `exit ${r.code} signal ${r.signal}${r.timedOut ? ' (timed out: deadlock?)' : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/**
 * Script code for the main thread of the "own GIL" checks (test/isolated*.test.ts): in each mode
 * ('isolated', then 'shared' as the control) it starts worker A (workerData { mode, role: 'hold' }),
 * which posts once when its long hold has begun and then the time.time() at which it ended; 50 ms
 * later worker B ({ role: 'call' }), which posts the time.time() of its call. Prints
 * { [mode]: { bCalledFirst, secondsBeforeHoldEnded } }. With one GIL, B runs at the first bytecode
 * after A's hold (microseconds before A reads the time).
 */
export const HOLD_THEN_CALL_MAIN = `
    const out = {};
    for (const mode of ['isolated', 'shared']) {
      const start = (role) => new Worker(new URL(import.meta.url), { workerData: { mode, role } });
      const a = start('hold');
      await new Promise((resolve) => a.once('message', resolve)); // A's hold has begun
      await new Promise((resolve) => setTimeout(resolve, 50));
      const holdEnded = new Promise((resolve) => a.once('message', resolve));
      const b = start('call');
      const called = await new Promise((resolve) => b.once('message', resolve));
      const secondsBeforeHoldEnded = (await holdEnded) - called;
      out[mode] = { bCalledFirst: secondsBeforeHoldEnded > 1, secondsBeforeHoldEnded };
    }
    console.log(JSON.stringify(out));`;

/** A child script's last stdout line, parsed as JSON (what the script reports). */
export function lastJson(stdout: string): any {
  return JSON.parse(stdout.trim().split('\n').pop() ?? '');
}

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Type-checks with the package's TypeScript: `tsc --noEmit <args>` (e.g. `-p dir`); never throws. */
export function typeCheck(args: string[]): { code: number | null; output: string } {
  return tsc(['--noEmit', ...args]);
}

/** Runs the package's TypeScript compiler: `tsc <args>`; never throws. */
export function tsc(args: string[]): { code: number | null; output: string } {
  const compiler = path.join(packageRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [compiler, '--pretty', 'false', ...args], {
    cwd: packageRoot,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

export const pyenvRoot = process.env.PYENV_ROOT ?? path.join(os.homedir(), '.pyenv');
const pyenvVersions = fs.existsSync(path.join(pyenvRoot, 'versions')) ? fs.readdirSync(path.join(pyenvRoot, 'versions')) : [];

/** The newest pyenv CPython X.Y.Z (not a free-threaded 't' build) for `minor` ('3.12'), if installed. */
export function pyenvPython(minor: string): string | undefined {
  const candidates = pyenvVersions
    .filter((v) => v.startsWith(minor + '.') && /^\d+\.\d+\.\d+$/.test(v))
    .sort((a, b) => Number(a.split('.')[2]) - Number(b.split('.')[2]));
  const newest = candidates.pop();
  const python = newest && path.join(pyenvRoot, 'versions', newest, 'bin', 'python3');
  return python && fs.existsSync(python) ? python : undefined;
}
