// The README's examples are tests, so the documentation cannot go stale.
//
// A code block preceded by `<!-- runnable -->` (or `<!-- runnable: tag tag -->`) is extracted and
// run in a child process. TypeScript blocks are first type-checked and compiled together in a
// project set up as a user's would be (its own tsconfig, not pyembed's). `console.log(...)  // text` lines state the output: stdout must show
// each such text as a line, in order. Tags: `numpy` runs the block with the system Python
// (/usr/bin/python3) and skips it when numpy is not importable there; `cjs` runs a JS block as
// CommonJS. A code block preceded by `<!-- file: name.py -->` is a file of the user's project: it
// is written into the folder where the examples run (their working directory, beside the script).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';

import { explain, packageRoot, runScript, tsc } from './helpers.js';

interface Block {
  index: number;
  line: number;
  lang: string;
  tags: string[];
  code: string;
}

function runnableBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const re = /<!--\s*runnable(?::\s*([\w\s-]*))?\s*-->\s*\n```(\w+)\n([\s\S]*?)\n```/g;
  for (const m of markdown.matchAll(re)) {
    const line = markdown.slice(0, m.index).split('\n').length;
    blocks.push({ index: blocks.length, line, lang: m[2]!, tags: (m[1] ?? '').split(/\s+/).filter(Boolean), code: m[3]! });
  }
  return blocks;
}

/** The texts that `console.log(...); // text` lines promise, in order. */
function expectedOutput(code: string): string[] {
  return code.split('\n').flatMap((l) => {
    const m = /^\s*console\.log\(.*\);?\s*\/\/\s*(.+?)\s*$/.exec(l);
    return m ? [m[1]!] : [];
  });
}

/** The project files that `<!-- file: name -->` blocks show. */
function projectFiles(markdown: string): Map<string, string> {
  const files = new Map<string, string>();
  const re = /<!--\s*file:\s*([\w./-]+)\s*-->\s*\n```\w*\n([\s\S]*?)\n```/g;
  for (const m of markdown.matchAll(re)) files.set(m[1]!, `${m[2]!}\n`);
  return files;
}

const readme = fs.readFileSync(path.join(packageRoot, 'README.md'), 'utf8');
const blocks = runnableBlocks(readme);
const files = projectFiles(readme);
const SYSTEM_PYTHON = '/usr/bin/python3';
const numpyMissing = spawnSync(SYSTEM_PYTHON, ['-c', 'import numpy']).status !== 0;

test('the README has runnable examples', () => {
  assert.ok(blocks.length >= 4, `found ${blocks.length} runnable blocks`);
  for (const b of blocks) assert.ok(['ts', 'js'].includes(b.lang), `README.md:${b.line}: a runnable block must be ts or js`);
});

// Type-check and compile the TypeScript blocks once, together.
const project = path.join(packageRoot, 'build', 'test-readme', String(process.pid));
// Where the examples run, as in a user's project folder (inside the package, so 'pyembed' resolves).
const runDir = path.join(project, 'run');
let compiled: { code: number | null; output: string } | undefined;
after(() => fs.rmSync(project, { recursive: true, force: true }));
function compileAll(): { code: number | null; output: string } {
  if (compiled) return compiled;
  fs.rmSync(project, { recursive: true, force: true });
  fs.mkdirSync(project, { recursive: true });
  for (const b of blocks.filter((x) => x.lang === 'ts')) {
    fs.writeFileSync(path.join(project, `block${b.index}.ts`), b.code);
  }
  // A user's project, not pyembed's own tsconfig: the options `tsc --init` and Node's TypeScript
  // guide give (no lib for `using`: what pyembed's types bring must be enough).
  fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true,
      esModuleInterop: true, rootDir: '.', outDir: 'out',
    },
    include: ['./*.ts'],
  }));
  compiled = tsc(['-p', project]);
  return compiled;
}

for (const b of blocks) {
  const needsNumpy = b.tags.includes('numpy');
  test(`README.md:${b.line}: the ${b.lang} example runs as documented`, {
    skip: needsNumpy && numpyMissing ? `numpy is not importable by ${SYSTEM_PYTHON}` : false,
  }, async () => {
    let source = b.code;
    if (b.lang === 'ts') {
      const c = compileAll();
      assert.equal(c.code, 0, `the README's TypeScript examples do not compile:\n${c.output}`);
      source = fs.readFileSync(path.join(project, 'out', `block${b.index}.js`), 'utf8');
    }
    for (const [name, text] of files) {
      fs.mkdirSync(path.dirname(path.join(runDir, name)), { recursive: true });
      fs.writeFileSync(path.join(runDir, name), text);
    }
    const r = await runScript(source, {
      dir: runDir,
      extension: b.tags.includes('cjs') ? '.cjs' : '.mjs',
      env: needsNumpy ? { PYEMBED_PYTHON: SYSTEM_PYTHON } : {},
    });
    assert.equal(r.code, 0, explain(r));
    const lines = r.stdout.split('\n').map((l) => l.trimEnd());
    let at = 0;
    for (const expected of expectedOutput(b.code)) {
      const found = lines.indexOf(expected, at);
      assert.ok(found >= 0, `README.md:${b.line}: expected a line '${expected}' in the output:\n${r.stdout}`);
      at = found + 1;
    }
  });
}
