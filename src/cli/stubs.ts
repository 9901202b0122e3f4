// `pyembed stubs`: TypeScript declarations for a Python module, from its signatures and type
// hints, so that `PyModule.import('mymodule') as Mymodule` is typed.
//
// How Python types become TypeScript follows pyembed's conversions (README, "Conversions"):
//   int, float -> number (an int beyond 2**53 arrives as a bigint; int parameters accept bigints)
//   str -> string, bool -> boolean, None -> undefined (parameters: null | undefined)
//   list[T], tuple, dict, set, bytes -> results are Python objects (proxies): PyObjectOf<J>, whose
//     toJS() gives J (list[int] -> number[]); parameters also accept the JS values that convert
//     to them (arrays, plain objects, Maps, Sets, Uint8Arrays)
//   Callable[[A], R] -> a typed PyFunction (results) or a JS function (parameters)
//   classes of the module -> an interface for instances and one for the class (its constructor,
//     class attributes, static methods); other classes -> PyObject (results) or any (parameters)
//   Optional, Union, Literal -> unions; coroutines -> PyAwaitable<T>; generators -> PyIterable<T>;
//     async generators -> PyAsyncIterable<T>; no hint, Any, TypeVars, unknown forms -> any
// Keyword-only parameters (and keyword use of others) go in a trailing KwArgs: f(1, Py.kw({...})).
import { PyModule, PythonEngine } from '../index.js';
import { INTROSPECT_SOURCE } from './introspect.js';

// --- the description written by introspect.ts --------------------------------------------------

export type TypeNode =
  | { k: 'any' | 'unknown' | 'never' | 'none' | 'int' | 'float' | 'str' | 'bool' | 'bytes'; py: string }
  | { k: 'list' | 'set' | 'iterable' | 'asynciterable' | 'awaitable'; py: string; of: TypeNode }
  | { k: 'tuple'; py: string; of?: TypeNode; items?: TypeNode[] }
  | { k: 'dict'; py: string; key: TypeNode; value: TypeNode }
  | { k: 'union'; py: string; of: TypeNode[] }
  | { k: 'literal'; py: string; values: (string | number | boolean | null)[] }
  | { k: 'callable'; py: string; params: TypeNode[] | null; ret: TypeNode }
  | { k: 'class'; py: string; name: string }
  | { k: 'foreign'; py: string; converts: 'int' | 'float' | 'str' | 'bool' | null };

export interface ParamDescription {
  name: string;
  kind: 'positional_only' | 'positional_or_keyword' | 'var_positional' | 'keyword_only' | 'var_keyword';
  type: TypeNode;
  optional: boolean;
  default: string | null;
}

export interface SignatureDescription {
  params: ParamDescription[];
  returns: TypeNode;
}

export interface FunctionDescription {
  name: string;
  doc: string;
  signature: SignatureDescription | null;
}

export interface AttributeDescription {
  name: string;
  type: TypeNode;
  readonly: boolean;
  classLevel: boolean;
  /** False for enum members: on the class only. */
  instance?: boolean;
  doc: string;
}

export interface ClassDescription {
  name: string;
  doc: string;
  converts: 'int' | 'float' | 'str' | 'bool' | null;
  isEnum: boolean;
  isException: boolean;
  init: SignatureDescription | null;
  call: SignatureDescription | null;
  dynamic: boolean;
  methods: FunctionDescription[];
  static: FunctionDescription[];
  attributes: AttributeDescription[];
}

export interface ModuleDescription {
  module: string;
  doc: string;
  python: string;
  functions: FunctionDescription[];
  classes: ClassDescription[];
  constants: { name: string; type: TypeNode; doc: string }[];
  skipped: { name: string; reason: string }[];
}

export interface StubOptions {
  /** The exported interface's name (default: the module's last name part in PascalCase). */
  name?: string;
  /** Folders put in front of sys.path before the import (default: the current directory). */
  paths?: string[];
  /** The python executable (default: PYEMBED_PYTHON, then python3). */
  python?: string;
}

/** Imports `moduleName` with pyembed and describes it (see introspect.ts). */
export function describeModule(moduleName: string, options: StubOptions = {}): ModuleDescription {
  PythonEngine.initialize(options.python === undefined ? {} : { python: options.python });
  const introspect = PyModule.fromString('_pyembed_stubs', INTROSPECT_SOURCE);
  const json = introspect.describe(moduleName, options.paths ?? [process.cwd()]) as string;
  return JSON.parse(json) as ModuleDescription;
}

/** The .d.ts text for a Python module. */
export function generateStubs(moduleName: string, options: StubOptions = {}): string {
  return renderStubs(describeModule(moduleName, options), options);
}

// --- rendering -------------------------------------------------------------------------------

// What PyObject methods (and JS function members, for callables) shadow: Python attributes with
// these names are reached with getAttr(), so they are left out of the interfaces.
const PROXY_MEMBERS = new Set([
  'typeName', 'length', 'isDisposed', 'toString', 'repr', 'valueOf', 'toJSON', 'toJS', 'get', 'set',
  'has', 'delete', 'getAttr', 'setAttr', 'hasAttr', 'delAttr', 'dir', 'isInstance', 'equals',
  'dispose', 'then', 'constructor',
]);
const CALLABLE_MEMBERS = new Set(['callAsync', 'apply', 'call', 'bind']);

const RESERVED = new Set([
  'break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default', 'delete', 'do',
  'else', 'enum', 'export', 'extends', 'false', 'finally', 'for', 'function', 'if', 'import', 'in',
  'instanceof', 'new', 'null', 'return', 'super', 'switch', 'this', 'throw', 'true', 'try',
  'typeof', 'var', 'void', 'while', 'with', 'implements', 'interface', 'let', 'package', 'private',
  'protected', 'public', 'static', 'yield', 'await', 'arguments', 'eval',
]);

// Names a generated interface cannot take: TypeScript's type keywords, the globals and pyembed
// types that generated declarations refer to.
const TYPE_NAMES_TAKEN = new Set([
  ...RESERVED, 'any', 'unknown', 'never', 'number', 'string', 'boolean', 'symbol', 'bigint', 'object',
  'undefined', 'type', 'keyof', 'readonly', 'infer', 'is', 'asserts', 'as', 'satisfies', 'declare',
  'module', 'namespace', 'global', 'require', 'from', 'of', 'get', 'set', 'async', 'constructor',
  'Array', 'ReadonlyArray', 'Record', 'Readonly', 'Set', 'ReadonlySet', 'Map', 'ReadonlyMap',
  'Promise', 'PromiseLike', 'Uint8Array', 'ArrayBuffer', 'ArrayBufferView', 'Iterable',
  'Iterator', 'AsyncIterable', 'AsyncIterator', 'Date', 'Error', 'Function', 'Object', 'Symbol',
  'KwArgs', 'PyObject', 'PyObjectMethods', 'PyObjectOf', 'PyFunction', 'PyCallable', 'PyAwaitable',
  'PyIterable', 'PyAsyncIterable',
]);

function paramName(name: string): string {
  return RESERVED.has(name) ? `${name}_` : name;
}

function propertyName(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name);
}

function pascalCase(name: string): string {
  const last = name.split('.').pop() ?? name;
  const pascal = last
    .split(/[_\W]+/)
    .filter(Boolean)
    .map((part) => part[0]!.toUpperCase() + part.slice(1))
    .join('');
  return /^[A-Za-z_$]/.test(pascal) ? pascal : `Py${pascal}`;
}

function comment(text: string, indent: string): string {
  if (!text) return '';
  const lines = text.replace(/\*\//g, '*\u200b/').split('\n');
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? ' ' + l : ''}`).join('\n')}\n${indent} */\n`;
}

function unique(types: string[]): string[] {
  return [...new Set(types)];
}

function union(types: string[]): string {
  const all = unique(types);
  if (all.includes('any')) return 'any';
  if (all.length === 0) return 'never';
  return all.join(' | ');
}

/** Parenthesizes a union or function type used inside an array or another operator. */
function group(type: string): string {
  return /^[\w$.<>[\]]+$/.test(type) || /^'[^']*'$/.test(type) || /^"[^"]*"$/.test(type) ? type : `(${type})`;
}

function literal(value: string | number | boolean | null): string {
  if (value === null) return 'undefined';
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

class Renderer {
  readonly used = new Set<string>();
  /** Python class name -> [instance interface, class interface]. */
  readonly classNames = new Map<string, [string, string]>();
  readonly classes = new Map<string, ClassDescription>();

  constructor(readonly description: ModuleDescription) {}

  use(name: string): string {
    this.used.add(name);
    return name;
  }

  // The JS value a Python result arrives as.
  out(t: TypeNode): string {
    switch (t.k) {
      case 'any': return 'any';
      case 'unknown': return 'unknown';
      case 'never': return 'never';
      case 'none': return 'undefined';
      case 'int':
      case 'float': return 'number';
      case 'str': return 'string';
      case 'bool': return 'boolean';
      case 'bytes': return `${this.use('PyObjectOf')}<Uint8Array>`;
      case 'list':
      case 'set':
      case 'tuple':
      case 'dict': {
        const items = t.k === 'dict' ? this.out(t.key)
          : t.k === 'tuple' ? union(t.items ? t.items.map((i) => this.out(i)) : [this.out(t.of!)])
          : this.out(t.of);
        return `/* ${t.py} */ ${this.use('PyObjectOf')}<${this.js(t)}> & ${this.use('PyIterable')}<${items}>`;
      }
      case 'union': return union(t.of.map((x) => this.out(x)));
      case 'literal': return union(t.values.map(literal));
      case 'callable': {
        const params = t.params === null ? '...args: any[]' : t.params.map((p, i) => `arg${i}: ${this.in(p)}`).join(', ');
        return `${this.use('PyFunction')}<(${params}) => ${this.out(t.ret)}>`;
      }
      case 'class': return this.classType(t.name);
      case 'foreign': return t.converts ? this.primitive(t.converts) : `/* ${t.py} */ ${this.use('PyObject')}`;
      case 'awaitable': return `${this.use('PyAwaitable')}<${this.out(t.of)}>`;
      case 'iterable': return `${this.use('PyIterable')}<${this.out(t.of)}>`;
      case 'asynciterable': return `${this.use('PyAsyncIterable')}<${this.out(t.of)}>`;
    }
  }

  // What toJS() gives for a Python value of this type (containers deeply, other objects as is).
  js(t: TypeNode): string {
    switch (t.k) {
      case 'bytes': return 'Uint8Array';
      case 'list': return `${group(this.js(t.of))}[]`;
      case 'set': return `Set<${this.js(t.of)}>`;
      case 'tuple': return t.items ? `[${t.items.map((i) => this.js(i)).join(', ')}]` : `${group(this.js(t.of!))}[]`;
      case 'dict': return `Record<string, ${this.js(t.value)}>`;
      case 'union': return union(t.of.map((x) => this.js(x)));
      default: return this.out(t);
    }
  }

  // The JS values a Python parameter of this type accepts.
  in(t: TypeNode): string {
    switch (t.k) {
      case 'any': return 'any';
      case 'unknown': return 'unknown';
      case 'never': return 'never';
      case 'none': return 'null | undefined';
      case 'int': return 'number | bigint';
      case 'float': return 'number';
      case 'str': return 'string';
      case 'bool': return 'boolean';
      case 'bytes': return `ArrayBufferView | ArrayBuffer | ${this.use('PyObject')}`;
      case 'list':
      case 'iterable': return `readonly ${group(this.in(t.of))}[] | ${this.use('PyObject')}`;
      case 'set': return `ReadonlySet<${this.in(t.of)}> | ${this.use('PyObject')}`;
      case 'tuple':
        return t.items
          ? `readonly [${t.items.map((i) => this.in(i)).join(', ')}] | ${this.use('PyObject')}`
          : `readonly ${group(this.in(t.of!))}[] | ${this.use('PyObject')}`;
      case 'dict': {
        const value = this.in(t.value);
        const asMap = `ReadonlyMap<${this.in(t.key)}, ${value}>`;
        return t.key.k === 'str' || t.key.k === 'any'
          ? `Readonly<Record<string, ${value}>> | ${asMap} | ${this.use('PyObject')}`
          : `${asMap} | ${this.use('PyObject')}`;
      }
      case 'union': return union(t.of.map((x) => this.in(x)));
      case 'literal': return union(t.values.flatMap((v) => (v === null ? ['null', 'undefined'] : [literal(v)])));
      case 'callable': {
        // A JS function given to Python: Python's arguments arrive converted, its result goes
        // back. (A Python callable, a PyCallable, fits this type too.)
        const params = t.params === null ? '...args: any[]' : t.params.map((p, i) => `arg${i}: ${this.out(p)}`).join(', ');
        const ret = t.ret.k === 'none' ? 'void' : this.in(t.ret);
        return `((${params}) => ${ret})`;
      }
      case 'class': {
        const cls = this.classes.get(t.name);
        const instance = this.classType(t.name);
        return cls?.converts ? `${this.primitive(cls.converts)} | ${instance}` : instance;
      }
      case 'foreign':
      case 'awaitable':
      case 'asynciterable': return 'any';
    }
  }

  primitive(converts: 'int' | 'float' | 'str' | 'bool'): string {
    return converts === 'str' ? 'string' : converts === 'bool' ? 'boolean' : 'number';
  }

  classType(name: string): string {
    const cls = this.classes.get(name);
    const names = this.classNames.get(name);
    if (!names) return 'any';
    // Instances of int/float/str subclasses (IntEnum, str enums, ...) arrive as JS primitives.
    return cls?.converts ? this.primitive(cls.converts) : names[0];
  }

  /** `(a: number, kw?: KwArgs) => R`, or a union of argument lists when needed. */
  parameters(sig: SignatureDescription): string {
    const positional = sig.params.filter((p) => p.kind === 'positional_only' || p.kind === 'positional_or_keyword');
    const rest = sig.params.find((p) => p.kind === 'var_positional');
    const keywordOnly = sig.params.filter((p) => p.kind === 'keyword_only');
    const takesKeywords = keywordOnly.length > 0 || sig.params.some((p) => p.kind === 'var_keyword' || p.kind === 'positional_or_keyword');
    const kwRequired = keywordOnly.some((p) => !p.optional);
    const firstOptional = positional.findIndex((p) => p.optional);
    const required = firstOptional < 0 ? positional : positional.slice(0, firstOptional);
    const optional = firstOptional < 0 ? [] : positional.slice(firstOptional);
    const one = (p: ParamDescription, opt = false) => `${paramName(p.name)}${opt ? '?' : ''}: ${this.in(p.type)}`;
    const restPart = rest ? `...${paramName(rest.name)}: ${group(this.in(rest.type))}[]` : undefined;
    const kw = `kw${kwRequired ? '' : '?'}: ${this.use('KwArgs')}`;
    if (!takesKeywords) {
      const parts = [...required.map((p) => one(p)), ...optional.map((p) => one(p, true))];
      if (restPart) parts.push(restPart);
      return `(${parts.join(', ')})`;
    }
    if (optional.length === 0 && !rest) return `(${[...required.map((p) => one(p)), kw].join(', ')})`;
    // Optional positional parameters before a trailing KwArgs: one argument list per length.
    const lists: string[] = [];
    for (let n = 0; n <= optional.length; n++) {
      const parts = [...required, ...optional.slice(0, n)].map((p) => one(p));
      if (n === optional.length && restPart) {
        lists.push(`[${[...parts, restPart].join(', ')}]`);
        lists.push(`[${[...parts, restPart, `kw: ${this.use('KwArgs')}`].join(', ')}]`);
      } else {
        lists.push(`[${[...parts, kw].join(', ')}]`);
      }
    }
    return `(...args: ${lists.join(' | ')})`;
  }

  functionType(sig: SignatureDescription | null, returns?: string): string {
    if (sig === null) return `(...args: any[]) => ${returns ?? 'any'}`;
    return `${this.parameters(sig)} => ${returns ?? this.out(sig.returns)}`;
  }

  pythonSignature(name: string, sig: SignatureDescription | null): string {
    if (sig === null) return `${name}(...)`;
    const parts: string[] = [];
    let slashDone = false;
    let starDone = false;
    sig.params.forEach((p, i) => {
      if (p.kind !== 'positional_only' && !slashDone && sig.params.slice(0, i).some((q) => q.kind === 'positional_only')) {
        parts.push('/');
        slashDone = true;
      }
      if (p.kind === 'keyword_only' && !starDone && !sig.params.some((q) => q.kind === 'var_positional')) {
        parts.push('*');
        starDone = true;
      }
      const prefix = p.kind === 'var_positional' ? '*' : p.kind === 'var_keyword' ? '**' : '';
      const annotation = p.type.py ? `: ${p.type.py}` : '';
      const dflt = p.default === null ? '' : annotation ? ` = ${p.default}` : `=${p.default}`;
      parts.push(`${prefix}${p.name}${annotation}${dflt}`);
    });
    if (!slashDone && sig.params.length > 0 && sig.params.every((q) => q.kind === 'positional_only')) parts.push('/');
    const ret = sig.returns.py ? ` -> ${sig.returns.py}` : '';
    return `${name}(${parts.join(', ')})${ret}`;
  }

  functionDoc(f: FunctionDescription, indent: string): string {
    const lines = [`Python: \`${this.pythonSignature(f.name, f.signature)}\``];
    if (f.doc) lines.unshift(f.doc, '');
    const keywordOnly = f.signature?.params.filter((p) => p.kind === 'keyword_only') ?? [];
    if (keywordOnly.length > 0) {
      lines.push(`Keyword-only (in the trailing Py.kw({...})): ${keywordOnly.map((p) => `${p.name}${p.optional ? '?' : ''}: ${this.in(p.type)}`).join(', ')}`);
    }
    return comment(lines.join('\n'), indent);
  }

  attributeDoc(doc: string, type: TypeNode): string {
    return comment(doc || (type.py ? `Python: ${type.py}` : ''), '  ');
  }

  /** Names declared so far in the interface being written (the first declaration wins). */
  declared = new Set<string>();

  /** A property line (after its doc comment); a comment instead when a PyObject member shadows it. */
  member(name: string, type: () => string, indent: string, skip: Set<string>, readonly = false, doc = ''): string {
    if (this.declared.has(name)) return '';
    this.declared.add(name);
    if (skip.has(name)) {
      return `${indent}// '${name}' is shadowed by the PyObject member of that name: use getAttr('${name}').\n`;
    }
    return `${doc}${indent}${readonly ? 'readonly ' : ''}${propertyName(name)}: ${type()};\n`;
  }

  renderClass(cls: ClassDescription): string {
    const [instanceName, className] = this.classNames.get(cls.name)!;
    const base = this.use('PyObjectMethods');
    let text = '';
    // Instances.
    text += comment([cls.doc, `An instance of the Python class \`${this.description.module}.${cls.name}\`.`].filter(Boolean).join('\n\n'), '');
    text += `export interface ${instanceName} extends ${base} {\n`;
    this.declared = new Set();
    if (cls.call) text += `  ${this.parameters(cls.call)}: ${this.out(cls.call.returns)};\n`;
    const skip = cls.call ? new Set([...PROXY_MEMBERS, ...CALLABLE_MEMBERS]) : PROXY_MEMBERS;
    for (const a of cls.attributes.filter((x) => x.instance !== false)) {
      text += this.member(a.name, () => this.out(a.type), '  ', skip, a.readonly, this.attributeDoc(a.doc, a.type));
    }
    for (const m of cls.methods) {
      text += this.member(m.name, () => `${this.use('PyFunction')}<${this.functionType(m.signature)}>`, '  ', skip, false, this.functionDoc(m, '  '));
    }
    if (cls.dynamic) text += '  /** The class defines __getattr__: other attributes exist too. */\n  [attribute: string]: any;\n';
    text += '}\n\n';
    // The class itself.
    const ctor = cls.init === null ? '(...args: any[])' : this.parameters(cls.init);
    const made = cls.converts ? this.primitive(cls.converts) : instanceName;
    text += comment(`The Python class \`${this.description.module}.${cls.name}\`: call it (with or without \`new\`) to make a ${instanceName}.`, '');
    text += `export interface ${className} extends ${base} {\n`;
    this.declared = new Set();
    if (!cls.isEnum) {
      text += `  new ${ctor}: ${made};\n`;
      text += `  ${ctor}: ${made};\n`;
      text += `  callAsync${ctor}: Promise<${made}>;\n`;
    } else {
      text += `  /** The member with this value: \`${cls.name}(value)\`. */\n  (value: any): ${made};\n`;
    }
    const classSkip = new Set([...PROXY_MEMBERS, ...CALLABLE_MEMBERS]);
    for (const a of cls.attributes.filter((x) => x.classLevel)) {
      text += this.member(a.name, () => this.out(a.type), '  ', classSkip, a.readonly, this.attributeDoc(a.doc, a.type));
    }
    for (const m of cls.static) {
      text += this.member(m.name, () => `${this.use('PyFunction')}<${this.functionType(m.signature)}>`, '  ', classSkip, false, this.functionDoc(m, '  '));
    }
    text += '}\n\n';
    return text;
  }

  render(options: StubOptions): string {
    const d = this.description;
    const taken = new Set<string>(TYPE_NAMES_TAKEN);
    const claim = (wanted: string): string => {
      let name = wanted;
      for (let i = 2; taken.has(name); i++) name = `${wanted}_${i}`;
      taken.add(name);
      return name;
    };
    for (const cls of d.classes) this.classes.set(cls.name, cls);
    for (const cls of d.classes) this.classNames.set(cls.name, [claim(cls.name), '']);
    for (const cls of d.classes) this.classNames.get(cls.name)![1] = claim(`${cls.name}Class`);
    let moduleName = options.name ?? pascalCase(d.module);
    if (!options.name && taken.has(moduleName)) moduleName = `${moduleName}Module`;
    moduleName = claim(moduleName);

    let body = '';
    for (const cls of d.classes) body += this.renderClass(cls);
    const moduleDoc = [d.doc, `The Python module \`${d.module}\`: \`PyModule.import('${d.module}') as ${moduleName}\`.`].filter(Boolean).join('\n\n');
    body += comment(moduleDoc, '');
    body += `export interface ${moduleName} extends ${this.use('PyObjectMethods')} {\n`;
    this.declared = new Set();
    for (const c of d.constants) {
      body += this.member(c.name, () => this.out(c.type), '  ', PROXY_MEMBERS, false, this.attributeDoc(c.doc, c.type));
    }
    for (const f of d.functions) {
      body += this.member(f.name, () => `${this.use('PyFunction')}<${this.functionType(f.signature)}>`, '  ', PROXY_MEMBERS, false, this.functionDoc(f, '  '));
    }
    for (const cls of d.classes) {
      body += this.member(cls.name, () => this.classNames.get(cls.name)![1], '  ', PROXY_MEMBERS);
    }
    body += '}\n';
    for (const s of d.skipped) body += `// Left out: ${s.name}: ${s.reason}.\n`;

    const header =
      `// Generated by \`pyembed stubs ${d.module}\` (Python ${d.python}). Do not edit; generate again.\n` +
      '// Results that are Python containers are Python objects (proxies): PyObjectOf<J> is one whose\n' +
      '// toJS() gives J. Keyword arguments go in a trailing Py.kw({...}).\n';
    const imports = [...this.used].sort();
    return `${header}import type { ${imports.join(', ')} } from 'pyembed';\n\n${body}`;
  }
}

/** The .d.ts text for a module description. */
export function renderStubs(description: ModuleDescription, options: StubOptions = {}): string {
  return new Renderer(description).render(options);
}
