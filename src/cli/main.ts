#!/usr/bin/env node
// The `pyembed` command (package.json "bin"). Subcommands:
//   pyembed stubs <module> [--out file.d.ts] [--name Interface] [--path dir]... [--python exe]
import fs from 'node:fs';
import path from 'node:path';

import { PythonEngine, PythonError } from '../index.js';
import { generateStubs, type StubOptions } from './stubs.js';

const USAGE = `Usage: pyembed stubs <module> [options]

Writes TypeScript declarations for a Python module, so that
  PyModule.import('<module>') as <Interface>
is typed. The module is imported (with pyembed) to read its signatures and type hints.

Options:
  --out <file>      write the declarations to <file> (default: standard output)
  --name <name>     the interface's name (default: the module name in PascalCase)
  --path <dir>      put <dir> in front of sys.path (repeatable; default: the current directory)
  --python <exe>    the Python to use (default: PYEMBED_PYTHON, then python3)
  -h, --help        this text
`;

class UsageError extends Error {}

interface Command {
  module: string;
  out?: string;
  options: StubOptions;
}

function parse(argv: string[]): Command | 'help' {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '-h' || sub === '--help' || sub === 'help') return 'help';
  if (sub !== 'stubs') throw new UsageError(`unknown command '${sub}'`);
  let module: string | undefined;
  let out: string | undefined;
  const options: StubOptions = {};
  const paths: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const value = (): string => {
      const v = rest[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (arg === '-h' || arg === '--help') return 'help';
    else if (arg === '--out' || arg === '-o') out = value();
    else if (arg === '--name') options.name = value();
    else if (arg === '--path') paths.push(path.resolve(value()));
    else if (arg === '--python') options.python = value();
    else if (arg.startsWith('-')) throw new UsageError(`unknown option '${arg}'`);
    else if (module === undefined) module = arg;
    else throw new UsageError(`one module at a time ('${module}', then '${arg}')`);
  }
  if (module === undefined) throw new UsageError('which module? pyembed stubs <module>');
  if (options.name !== undefined && !/^[A-Za-z_$][\w$]*$/.test(options.name)) {
    throw new UsageError(`--name must be a TypeScript identifier, not '${options.name}'`);
  }
  options.paths = paths.length > 0 ? paths : [process.cwd()];
  return out === undefined ? { module, options } : { module, out, options };
}

function main(): number {
  let command: Command | 'help';
  try {
    command = parse(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`pyembed: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    const text = generateStubs(command.module, command.options);
    if (command.out === undefined) {
      process.stdout.write(text);
    } else {
      fs.mkdirSync(path.dirname(path.resolve(command.out)), { recursive: true });
      fs.writeFileSync(command.out, text);
      process.stderr.write(`pyembed: wrote ${command.out} (module ${command.module})\n`);
    }
    return 0;
  } catch (error) {
    if (error instanceof PythonError) {
      process.stderr.write(`pyembed: cannot describe '${command.module}': ${error.type}: ${error.message}\n`);
      if (process.env.PYEMBED_DEBUG) process.stderr.write(`${error.pythonTraceback}\n`);
    } else {
      process.stderr.write(`pyembed: ${error instanceof Error ? error.message : String(error)}\n`);
    }
    return 1;
  } finally {
    PythonEngine.shutdown();
  }
}

process.exitCode = main();
