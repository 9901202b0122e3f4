// The CommonJS entry: `require('pyembed')`.
//
// pyembed is an ES module with no top-level await, so Node.js versions that can require() ES
// modules (20.19 and later, 22.12 and later; 20.17+ and 22.0+ with --experimental-require-module)
// load it directly. This file forwards to it, so `require` and `import` share one instance (one
// interpreter, one set of classes: `instanceof PythonError` works across both). On an older Node
// it replaces ERR_REQUIRE_ESM with what to do instead.
type PyembedModule = typeof import('./index.js');

function load(): PyembedModule {
  try {
    return require('./index.js') as PyembedModule;
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code !== 'ERR_REQUIRE_ESM') throw error;
    throw new Error(
      `pyembed is an ES module, and this Node.js (${process.version}) cannot require() ES modules. ` +
        "Use Node.js 20.19 or newer (or 22.12 or newer), run Node with --experimental-require-module " +
        "(20.17+, 22.0+), or load pyembed with `await import('pyembed')`.",
      { cause: error },
    );
  }
}

module.exports = load();
