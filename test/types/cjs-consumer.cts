// A CommonJS TypeScript file using pyembed (module: nodenext; TypeScript 5.8+ allows require()
// of an ES module without top-level await, as Node 20.19+ does).
import pyembed = require('pyembed');

import { expectTrue, type Equals } from './expect.js';

const { PythonEngine, Py } = pyembed;
expectTrue<Equals<ReturnType<typeof PythonEngine.eval>, any>>();
expectTrue<Equals<ReturnType<typeof Py.kw>, pyembed.KwArgs>>();
const error: pyembed.PythonError | undefined = undefined;
void error;
