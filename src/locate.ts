// Which Python, and where its shared library is. Python is chosen at run time: the executable
// named by `initialize({ python })`, else PYEMBED_PYTHON, else `python3` on PATH. We ask that
// executable itself (sysconfig) where libpython is, so a virtualenv's python leads to its base
// installation's library while the interpreter still starts as the venv (see engine.cc).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface PythonInstallation {
  /** The python executable asked (as given). */
  requested: string;
  /** sys.executable of that interpreter (a venv's own python for a venv). */
  executable: string;
  /** Absolute path of libpython. */
  library: string;
  version: string;
  versionInfo: [number, number, number];
  freeThreaded: boolean;
}

// Run as `python -I -S`: -S skips `site` (its .pth files import packages: 35 ms of a pyenv 3.11's
// 63 ms probe here) and, without json and sysconfig (the build's variables are read from the
// module sysconfig itself reads), the probe costs little more than the interpreter's start.
// Nothing asked depends on site: sys.executable and base_prefix are set before it runs.
// Fields go out NUL-separated (no path holds a NUL), as bytes, so odd file names pass unchanged.
const PROBE_TAG = 'PYEMBED-PROBE';
const PROBE_MARKER = `${PROBE_TAG}\0`;
const PROBE = String.raw`
import os, sys
try:
    name = '_sysconfigdata_%s_%s_%s' % (getattr(sys, 'abiflags', ''), sys.platform,
                                        getattr(sys.implementation, '_multiarch', ''))
    config = __import__(name).build_time_vars
except Exception:
    import sysconfig
    config = sysconfig.get_config_vars()
v = config.get
libdirs = [d for d in (v('LIBDIR'), v('LIBPL'), os.path.join(v('LIBDIR') or '', v('MULTIARCH') or ''),
                       os.path.join(sys.base_prefix, 'lib')) if d]
names = [n for n in (v('INSTSONAME'), v('LDLIBRARY')) if n]
ver = '%d.%d' % sys.version_info[:2]
abiflags = getattr(sys, 'abiflags', '')
names += ['libpython%s%s.so.1.0' % (ver, abiflags), 'libpython%s%s.so' % (ver, abiflags),
          'libpython%s%s.dylib' % (ver, abiflags)]
found = ''
for d in libdirs:
    for n in names:
        p = os.path.join(d, n)
        if n.endswith(('.so', '.dylib')) or '.so.' in n:
            if os.path.isfile(p):
                found = os.path.realpath(p)
                break
    if found:
        break
fields = [sys.executable, sys.version.split()[0], '%d.%d.%d' % sys.version_info[:3],
          '1' if v('Py_ENABLE_SHARED') or v('PYTHONFRAMEWORK') else '0', found,
          '1' if v('Py_GIL_DISABLED') else '0']
sys.stdout.buffer.write(b'${PROBE_TAG}\0' + b'\0'.join(os.fsencode(f) for f in fields))
`;

const cache = new Map<string, PythonInstallation>();

const WHAT_TO_DO =
  'Install Python 3.9 or newer, or point PYEMBED_PYTHON (or initialize({ python })) at a ' +
  "python executable, e.g. /usr/bin/python3 or a virtualenv's bin/python.";

function isSupported([major, minor]: readonly number[]): boolean {
  return major === 3 && minor! >= 9;
}

function tooOld(requested: string, version: string): Error {
  return new Error(`pyembed: '${requested}' is Python ${version}; pyembed needs CPython 3.9 or newer (this one is too old).\n${WHAT_TO_DO}`);
}

/** What `python -V` says (Python 2 says it on stderr), as [major, minor, ...], if it runs at all. */
function reportedVersion(requested: string): number[] | undefined {
  if (requested.includes('\0')) return undefined;  // spawnSync would throw: the caller explains
  const r = spawnSync(requested, ['-V'], { encoding: 'utf8', timeout: 10_000 });
  const m = /^Python (\d+)\.(\d+)(?:\.(\d+))?/m.exec(`${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim());
  return m ? m.slice(1).filter((x) => x !== undefined).map(Number) : undefined;
}

interface ProbeAnswer {
  executable: string;
  version: string;
  versionInfo: [number, number, number];
  shared: boolean;
  library: string;
  freeThreaded: boolean;
}

/** The probe's fields, after its marker (a wrapper script may print before it). */
function parseProbe(output: string): ProbeAnswer | undefined {
  const at = output.lastIndexOf(PROBE_MARKER);
  if (at < 0) return undefined;
  const fields = output.slice(at + PROBE_MARKER.length).split('\0');
  if (fields.length !== 6) return undefined;
  const [executable, version, numbers, shared, library, freeThreaded] = fields as [string, string, string, string, string, string];
  const versionInfo = numbers.split('.').map(Number);
  if (versionInfo.length !== 3 || versionInfo.some((n) => !Number.isInteger(n))) return undefined;
  return {
    executable,
    version,
    versionInfo: versionInfo as [number, number, number],
    shared: shared === '1',
    library,
    freeThreaded: freeThreaded === '1',
  };
}

export function defaultPython(): string {
  return process.env.PYEMBED_PYTHON || 'python3';
}

export function locatePython(requested: string = defaultPython()): PythonInstallation {
  const cached = cache.get(requested);
  if (cached) return cached;
  let output: string;
  try {
    output = execFileSync(requested, ['-I', '-S', '-c', PROBE], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
  } catch (error) {
    // Python 2 has no -I (and other old ones may fail the probe): say "too old" when it is.
    const old = reportedVersion(requested);
    if (old !== undefined && !isSupported(old)) throw tooOld(requested, old.join('.'));
    const detail = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new Error(
      `pyembed: cannot run the Python interpreter '${requested}' (${detail}).\n${WHAT_TO_DO}`,
    );
  }
  const probe = parseProbe(output);
  if (probe === undefined) {
    const printed = output.trim() === '' ? 'it printed nothing' : `it printed: ${JSON.stringify(output.trim().slice(0, 200))}`;
    throw new Error(
      `pyembed: '${requested}' did not answer like a Python interpreter (asked to print its ` +
        `configuration, ${printed}).\n${WHAT_TO_DO}`,
    );
  }
  const [, minor] = probe.versionInfo;
  if (!isSupported(probe.versionInfo)) throw tooOld(requested, probe.version);
  if (probe.freeThreaded) {
    // pyembed's bookkeeping relies on the GIL's mutual exclusion (native/gil.h says where).
    throw new Error(
      `pyembed: '${requested}' is a free-threaded (no-GIL) build of Python ${probe.version}, which pyembed ` +
        'does not support yet; choose a default (GIL) build with PYEMBED_PYTHON.',
    );
  }
  if (!probe.library || !fs.existsSync(probe.library)) {
    throw new Error(
      `pyembed: Python ${probe.version} at '${probe.executable}' has no shared libpython ` +
        (probe.shared ? '(it should, but the library file was not found)' : '(it was built without --enable-shared)') +
        '.\nInstall the shared library (Debian/Ubuntu: apt-get install libpython3.' + minor + '), ' +
        'or use an interpreter built with --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared), ' +
        'and select it with PYEMBED_PYTHON.',
    );
  }
  const installation: PythonInstallation = {
    requested,
    executable: probe.executable || path.resolve(requested),
    library: probe.library,
    version: probe.version,
    versionInfo: probe.versionInfo,
    freeThreaded: probe.freeThreaded,
  };
  cache.set(requested, installation);
  return installation;
}
