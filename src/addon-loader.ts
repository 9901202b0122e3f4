// Finds and loads pyembed's native addon: a local build or a prebuilt one. No side effects on
// import, so the install step (scripts/install.mjs) can ask whether a prebuild loads here.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** One place the addon may come from, and why it was not used (when it was not). */
interface AddonCandidate {
  file: string;
  skipped?: string;
}

/** The C library a Linux prebuild must match (node-gyp-build's test: Alpine is musl). */
function libc(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  return fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc';
}

/** The Node ABI a local build was made for, from node-gyp's build/config.gypi. */
function localBuildAbi(root: string): string | undefined {
  try {
    const config = fs.readFileSync(path.join(root, 'build', 'config.gypi'), 'utf8');
    return /"node_module_version":\s*(\d+)/.exec(config)?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Where the addon is looked for, in node-gyp-build's order: a local build (build/Release, made
 * by `npm install` when no prebuild matched, or by node-gyp in a clone), then the prebuild for
 * this platform and Node ABI (prebuildify's naming: prebuilds/linux-x64/node.abi115.glibc.node).
 * The addon uses V8's API, so a binary runs only on the Node ABI (major) it was built for.
 */
export function addonCandidates(root: string): AddonCandidate[] {
  const abi = process.versions.modules;
  const local = path.join(root, 'build', 'Release', 'pyembed.node');
  const localAbi = localBuildAbi(root);
  const prebuildDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  const tagged = libc();
  const names = [...(tagged ? [`node.abi${abi}.${tagged}.node`] : []), `node.abi${abi}.node`];
  return [
    {
      file: local,
      ...(!fs.existsSync(local)
        ? { skipped: 'not built' }
        : localAbi !== undefined && localAbi !== abi
          ? { skipped: `built for Node ABI ${localAbi}` }
          : {}),
    },
    ...names.map((name) => {
      const file = path.join(prebuildDir, name);
      return { file, ...(fs.existsSync(file) ? {} : { skipped: 'not shipped' }) };
    }),
  ];
}

/** The prebuilds the package has for this platform, for the error message. */
function shippedPrebuilds(root: string): string {
  const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  let files: string[] = [];
  try {
    files = fs.readdirSync(dir).filter((f) => f.endsWith('.node'));
  } catch {
    // no prebuilds for this platform
  }
  return files.length ? files.join(', ') : 'none';
}

/** Loads the first candidate that loads; throws one error that lists them all. */
export function loadAddon(root: string): { binding: unknown; file: string } {
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const candidate of addonCandidates(root)) {
    if (candidate.skipped) {
      tried.push(`${candidate.file}: ${candidate.skipped}`);
      continue;
    }
    try {
      return { binding: require(candidate.file) as unknown, file: candidate.file };
    } catch (error) {
      tried.push(`${candidate.file}: ${(error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ')}`);
    }
  }
  const platform = `${process.platform}-${process.arch}${libc() ? ` ${libc()}` : ''}`;
  throw new Error(
    `pyembed: no native addon loads on this Node.js (${process.version}, ABI ${process.versions.modules}, ${platform}).\n` +
      `Tried:\n${tried.map((t) => `  - ${t}`).join('\n')}\n` +
      `Prebuilt addons in this package for ${process.platform}-${process.arch}: ${shippedPrebuilds(root)}.\n` +
      'pyembed ships prebuilt addons for Node.js 20, 22, 24 and 26 on linux-x64 (glibc); anywhere else ' +
      '`npm install` builds one from source, which needs a C++20 compiler, make and Python (node-gyp). ' +
      'If the install skipped that (--ignore-scripts) or it failed, build it with `npm rebuild pyembed`.',
  );
}

