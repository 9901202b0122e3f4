// npm's install step for pyembed, in node-gyp-build's manner: nothing to compile when a prebuilt
// addon (prebuilds/) loads on this Node.js; otherwise build one from source with node-gyp. A clone
// (src/ present) always builds: its tests and `npm run build:native` work on build/.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const loaderFile = path.join(root, 'dist', 'addon-loader.js');

if (!fs.existsSync(path.join(root, 'src')) && fs.existsSync(loaderFile)) {
  const { addonCandidates } = await import(pathToFileURL(loaderFile).href);
  const require = createRequire(import.meta.url);
  const prebuilds = addonCandidates(root).filter((c) => c.file.includes(`${path.sep}prebuilds${path.sep}`) && !c.skipped);
  for (const { file } of prebuilds) {
    try {
      require(file);
      console.log(`pyembed: using the prebuilt addon ${path.relative(root, file)} (nothing to compile)`);
      process.exit(0);
    } catch (error) {
      console.warn(`pyembed: the prebuilt addon ${file} does not load here (${error.message}); building from source`);
    }
  }
}

// npm puts its own node-gyp on PATH for install scripts; npm_config_node_gyp names it too.
const gyp = process.env.npm_config_node_gyp;
const r = gyp
  ? spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: root, stdio: 'inherit' })
  : spawnSync('node-gyp', ['rebuild'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
if (r.error) {
  console.error(`pyembed: cannot run node-gyp to build the native addon: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
