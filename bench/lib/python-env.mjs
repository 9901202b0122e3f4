// Which Python the benchmarks use, and how the in-process peers are pointed at it: shared by
// bench/peers.mjs and bench/startup.mjs.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Where the Python that pyembed would pick lives (same rule: PYEMBED_PYTHON, then python3). */
export function describePython() {
  const exe = process.env.PYEMBED_PYTHON || 'python3';
  const code = `
import json, sys, sysconfig
v = sysconfig.get_config_var
print(json.dumps({"executable": sys.executable, "version": sys.version.split()[0], "prefix": sys.prefix,
  "basePrefix": sys.base_prefix, "libdir": v("LIBDIR"), "soname": v("INSTSONAME") or v("LDLIBRARY")}))`;
  return JSON.parse(execFileSync(exe, ['-c', code], { encoding: 'utf8' }));
}

/** The in-process peers' addons: point them at the same libpython when their soname matches. */
function addonFiles(id) {
  const dirs = {
    'node-calls-python': path.join(here, 'node_modules', 'node-calls-python', 'build', 'Release'),
    pymport: path.join(here, 'node_modules', 'pymport', 'lib', 'binding'),
  };
  const found = [];
  const walk = (dir) => {
    let entries = [];
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      if (e.isDirectory()) walk(path.join(dir, e.name));
      else if (e.name.endsWith('.node')) found.push(path.join(dir, e.name));
    }
  };
  if (dirs[id]) walk(dirs[id]);
  return found;
}

export function peerEnv(peer, py) {
  const env = { ...process.env };
  if (peer.id === 'pythonia') env.PYTHON_BIN = py.executable;
  const files = addonFiles(peer.id);
  // An addon linked against a libpython of the same soname loads ours through LD_LIBRARY_PATH;
  // PYTHONHOME then gives it the matching standard library and site-packages.
  if (files.some((f) => fs.readFileSync(f).includes(py.soname))) {
    env.LD_LIBRARY_PATH = [py.libdir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
    env.PYTHONHOME = py.basePrefix;
  }
  return env;
}

