"""Python half of pyembed: what is simpler written in Python than in C.

Loaded once per interpreter run as the module `_pyembed` (see native/python_helpers.cc).
"""

import _thread
import linecache
import sys
import threading
import traceback
import types

__all__ = ["JSError"]


class JSError(Exception):
    """An exception thrown by JavaScript code that Python called.

    `name` is the JS error's name (TypeError, RangeError, ...), `js_stack` its JS stack.
    If it propagates back to JavaScript, the original JS value is thrown there again.
    """

    _read_js_stack = None  # set by pyembed's native side
    _js_stack = None  # pyembed's native side makes a JSError without __init__

    def __init__(self, message, name="Error", js_stack=None, js_value=None):
        super().__init__(message)
        self.name = name
        self._js_stack = js_stack  # None: read from the JS value when first asked for
        self._js_value = js_value

    @property
    def js_stack(self):
        if self._js_stack is None:
            read = type(self)._read_js_stack
            self._js_stack = read(self._js_value) if read and self._js_value is not None else ""
        return self._js_stack

    @js_stack.setter
    def js_stack(self, value):
        self._js_stack = value

    def __str__(self):
        message = super().__str__()
        return f"{self.name}: {message}" if self.name else message


def _message_of(exc):
    try:
        return str(exc)
    except BaseException as e:  # a failing __str__ must not hide the original error
        return f"<str() failed: {type(e).__name__}>"


def describe_cause(exc):
    """(type name, message, whether it has a cause) of an exception's __cause__, for PythonError.cause."""
    return type(exc).__name__, _message_of(exc), exc.__cause__ is not None


def format_exception(exc):
    """The traceback text of PythonError.pythonTraceback, made when JS first reads it."""
    kind = type(exc)
    try:
        summary = traceback.TracebackException(kind, exc, exc.__traceback__)
        _hide_own_frames(summary)
        return "".join(summary.format())
    except BaseException:
        return f"{kind.__name__}: {_message_of(exc)}\n"


_OWN_FILENAME = "<pyembed:_pyembed>"


def _hide_own_frames(summary):
    """pyembed's own frames (run, module_from_string, ...) are no part of the user's traceback."""
    seen = set()
    pending = [summary]
    while pending:
        te = pending.pop()
        if te is None or id(te) in seen:
            continue
        seen.add(id(te))
        te.stack = traceback.StackSummary.from_list(
            [frame for frame in te.stack if frame.filename != _OWN_FILENAME]
        )
        pending += [te.__cause__, te.__context__, *(getattr(te, "exceptions", None) or ())]


def _remember_source(filename, code):
    # Lets tracebacks show the lines of code that came from JS strings.
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)


_main_globals = None


def run(code, globals_, mode, filename):
    """PythonEngine.exec / PythonEngine.eval."""
    global _main_globals
    if globals_ is None:
        if _main_globals is None:
            import __main__

            _main_globals = __main__.__dict__
        globals_ = _main_globals
    elif not isinstance(globals_, dict):
        raise TypeError(f"globals must be a dict, not {type(globals_).__name__}")
    _remember_source(filename, code)
    compiled = compile(code, filename, mode)
    if mode == "eval":
        return eval(compiled, globals_)
    exec(compiled, globals_)
    return None


def run_in_object(code, namespace, mode, filename):
    """exec/eval with a plain JS object's entries as globals: returns (result, changed names).

    The changed names are those the code bound or rebound (by identity), so PythonEngine can write
    them back into the JS object; `__builtins__`, which exec adds, is not one of them.
    """
    before = dict(namespace)
    result = run(code, namespace, mode, filename)
    changed = {
        k: v
        for k, v in namespace.items()
        if k != "__builtins__" and (k not in before or before[k] is not v)
    }
    removed = [k for k in before if k not in namespace]
    return result, changed, removed


def configure(cwd_on_path, path, argv):
    """At start, before any user code: what `python -c` sets up, plus initialize()'s options."""
    entries = [p for p in path if p not in sys.path]
    # Like `python -c`: the working directory ("" follows chdir) first, unless -P/PYTHONSAFEPATH.
    if cwd_on_path and not getattr(sys.flags, "safe_path", False) and "" not in sys.path:
        entries.insert(0, "")
    sys.path[0:0] = entries
    sys.argv = list(argv)


def import_file(path):
    """PyModule.import(file path): a .py file or a package folder, its folder first on sys.path so
    its siblings import too (as `python path/to/x.py` does)."""
    import importlib.util
    import os

    path = os.path.abspath(path)
    if os.path.isdir(path):
        folder, name = os.path.split(path.rstrip(os.sep))
        init = os.path.join(path, "__init__.py")
        if not os.path.isfile(init):
            raise ModuleNotFoundError(f"{path} is a folder without __init__.py, not a Python package")
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[path])
        target = init
    else:
        folder, filename = os.path.split(path)
        name, ext = os.path.splitext(filename)
        if ext != ".py":
            raise ModuleNotFoundError(f"{path} is not a .py file (PyModule.import takes a module name or a .py file)")
        if not os.path.isfile(path):
            raise ModuleNotFoundError(f"no Python file at {path}")
        spec = importlib.util.spec_from_file_location(name, path)
        target = path
    if not name.isidentifier():
        raise ModuleNotFoundError(f"{path}: '{name}' is not a valid Python module name")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    loaded = sys.modules.get(name)
    if loaded is not None:
        loaded_file = getattr(loaded, "__file__", None)
        if loaded_file and os.path.realpath(loaded_file) == os.path.realpath(target):
            return loaded
        raise ImportError(
            f"cannot import {path} as '{name}': a different module '{name}' is already imported "
            f"(from {loaded_file or 'a built-in or generated module'}); rename the file"
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def datetime_from_js(ms):
    """A JS Date (its time value, ms since the epoch) as an aware UTC datetime."""
    import datetime

    if ms != ms:
        raise ValueError("cannot convert an invalid JS Date (its time is NaN) to Python")
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    try:
        return epoch + datetime.timedelta(milliseconds=ms)
    except OverflowError:
        raise OverflowError(
            f"a JS Date {ms:.0f} ms from 1970 is outside Python datetime's years 1 to 9999"
        ) from None


def module_from_string(name, code, filename=None):
    """PyModule.fromString: a module made from source, importable by name afterwards."""
    filename = filename or f"<pyembed:{name}>"
    module = types.ModuleType(name)
    module.__file__ = filename
    _remember_source(filename, code)
    compiled = compile(code, filename, "exec")
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        exec(compiled, module.__dict__)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    return module


def expose_module(name, attributes):
    """PyModule.expose: a module whose attributes are JS values and functions."""
    if not isinstance(attributes, dict):
        raise TypeError("PyModule.expose needs an object of exports")
    module = types.ModuleType(name)
    module.__file__ = f"<pyembed:{name}>"
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


# --- context managers (Py.with / Py.withAsync) --------------------------------------------


class Context:
    """An entered context manager: `value` is what __enter__ gave; exit(exc) calls __exit__."""

    __slots__ = ("value", "asynchronous", "_exit", "_done")

    def __init__(self, value, exit_, asynchronous=False):
        self.value = value
        self.asynchronous = asynchronous  # exit with `await aexit(exc)`
        self._exit = exit_
        self._done = False

    def _arguments(self, exc):
        if self._done:
            raise RuntimeError("this context manager was already exited")
        self._done = True
        return (None, None, None) if exc is None else (type(exc), exc, exc.__traceback__)

    def exit(self, exc=None):
        """__exit__(type, value, traceback); True when it suppressed exc."""
        return bool(self._exit(*self._arguments(exc)))

    async def aexit(self, exc=None):
        return bool(await self._exit(*self._arguments(exc)))


def _protocol(cm, enter, exit_):
    # As the `with` statement does: the methods are looked up on the type.
    kind = type(cm)
    try:
        return getattr(kind, enter), getattr(kind, exit_)
    except AttributeError:
        raise TypeError(
            f"'{kind.__name__}' object does not support the "
            f"{'asynchronous ' if enter == '__aenter__' else ''}context manager protocol "
            f"(no {enter}/{exit_})"
        ) from None


def enter_context(cm):
    enter, exit_ = _protocol(cm, "__enter__", "__exit__")
    return Context(enter(cm), types.MethodType(exit_, cm))


async def enter_async_context(cm):
    """An async context manager (__aenter__), else a plain one."""
    if hasattr(type(cm), "__aenter__"):
        enter, exit_ = _protocol(cm, "__aenter__", "__aexit__")
        return Context(await enter(cm), types.MethodType(exit_, cm), True)
    return enter_context(cm)


def js_error(message, name, stack):
    """The JSError that a callback throwing this JS error would raise in Python."""
    return JSError(message, name, stack)


# --- coroutines: run on one asyncio loop thread owned by pyembed ----------------------------

_loop = None
_loop_thread = None
_loop_lock = threading.Lock()
_pending = set()


def _ensure_loop():
    global _loop, _loop_thread
    with _loop_lock:
        if _loop is None:
            import asyncio

            ready = threading.Event()

            def main():
                global _loop
                loop = asyncio.new_event_loop()
                asyncio.set_event_loop(loop)
                _loop = loop
                ready.set()
                while True:
                    try:
                        loop.run_forever()
                        break  # stop_loop()
                    except KeyboardInterrupt:
                        # PythonEngine.interrupt() aimed at this thread, landing outside any
                        # task: the loop must keep serving the other coroutines.
                        continue
                loop.close()

            # An isolated interpreter allows no daemon threads: there pyembed stops the loop
            # before the interpreter ends (StopIsolatedAsync in native/async_pool.cc).
            daemon = getattr(_thread, "daemon_threads_allowed", lambda: True)()
            _loop_thread = threading.Thread(target=main, name="pyembed-asyncio", daemon=daemon)
            _loop_thread.start()
            ready.wait()
        return _loop


def submit_coroutine(coro, done):
    """Runs `coro` on pyembed's loop; calls done(True, result) or done(False, exc) exactly once.

    Returns cancel(): callable from any thread, it cancels the coroutine's task (an AbortSignal).
    """
    import asyncio

    loop = _ensure_loop()
    task = None
    cancelled = False
    reported = False

    def report(ok, value):
        nonlocal reported
        if not reported:
            reported = True
            done(ok, value)

    async def run():
        # Everything is caught here, KeyboardInterrupt and SystemExit included: a BaseException
        # escaping a task would stop the loop, and every later await would hang.
        try:
            result = await coro
        except BaseException as exc:  # noqa: B902 - reported to JS, not swallowed
            report(False, exc)
        else:
            report(True, result)

    def finished(task):
        _pending.discard(task)
        if not reported:
            # Cancelled before its first step: run() never started, nor did the coroutine.
            coro.close()
            report(False, asyncio.CancelledError())

    def start():
        nonlocal task
        if cancelled:
            coro.close()
            report(False, asyncio.CancelledError())
            return
        task = loop.create_task(run())
        _pending.add(task)
        task.add_done_callback(finished)

    def cancel_on_loop():
        nonlocal cancelled
        if task is None:
            cancelled = True
        else:
            task.cancel()

    def cancel():
        loop.call_soon_threadsafe(cancel_on_loop)

    loop.call_soon_threadsafe(start)
    return cancel


def stop_loop(timeout=5):
    """At shutdown: cancel what is pending (each reports once) and stop the loop thread.

    Returns the loop thread if it is still running after `timeout` seconds, else None.
    """
    global _loop, _loop_thread
    with _loop_lock:
        loop, thread = _loop, _loop_thread
        _loop = _loop_thread = None
    if loop is None:
        return
    import asyncio

    async def finish():
        tasks = list(_pending)
        for task in tasks:
            task.cancel()
        # Let the cancelled tasks report (their run() catches CancelledError) before stopping.
        await asyncio.gather(*tasks, return_exceptions=True)
        loop.stop()

    loop.call_soon_threadsafe(lambda: loop.create_task(finish()))
    thread.join(timeout=timeout)
    return thread if thread.is_alive() else None


def version():
    return sys.version


def restart_hazards():
    """Just before finalization: why CPython could not be initialized again, or "".

    - Threads that outlive finalization (daemons, raw _thread threads): when they wake up they
      would use thread states of the finalized interpreter.
    - CPython 3.12 crashes when some extension modules are imported again after a
      re-initialization (python/cpython#118608, #116467; fixed in 3.13).
    """
    import _thread

    joined_at_exit = sum(
        1
        for t in threading.enumerate()
        if not t.daemon and t.is_alive() and t is not threading.main_thread()
        and not isinstance(t, threading._DummyThread)
    )
    left = max(0, _thread._count() - joined_at_exit)
    if left:
        return (
            f"{left} Python thread(s) (daemon threads) of the previous interpreter were still "
            "running when it was shut down, and CPython cannot be initialized again under them. "
            "Stop those threads before PythonEngine.shutdown(), or keep Python running."
        )
    if sys.version_info[:2] == (3, 12):
        fragile = sorted(m for m in ("_asyncio", "_datetime", "_decimal", "_ctypes") if m in sys.modules)
        if fragile:
            return (
                f"CPython 3.12 crashes when {', '.join(fragile)} is imported again after a "
                "restart (python/cpython#118608); keep Python running, or use 3.11 or 3.13+."
            )
    return ""


def _interrupt_main_ignored(signum=None):
    """Python's main thread is pyembed's interpreter thread, which runs no Python code: an
    interrupt sent to it would only surface as an error at shutdown. Node owns signals."""


def _install_overrides():
    import _thread

    _thread.interrupt_main = _interrupt_main_ignored


_install_overrides()


def adopt_thread(name, daemon):
    """Called once when a JS thread (or pyembed's own) first enters Python.

    Python sees such a thread as a "dummy" thread, and dummy threads are daemonic, so threads
    they start would be daemons too and be killed at exit. A JS thread plays the part of a main
    thread, so it becomes non-daemonic: threads it starts are joined at exit, as in Python.
    """
    thread = threading.current_thread()
    thread._daemonic = daemon
    thread.name = name


# --- JS objects by reference ------------------------------------------------------------------
# A JsProxy holds one JS function, its dispatcher (src/conversions.ts), a closure over the JS
# object. Every operation is one call of it, so the callback thread rules apply: any Python thread
# may use a proxy, and the operation runs on the JS thread that owns the object.

import weakref as _weakref

_js_proxies = _weakref.WeakValueDictionary()
_MISSING = "pyembed.missing"


class JsProxy:
    """A JavaScript object, by reference: attributes, methods, len, iteration, items, await."""

    __slots__ = ("_js_dispatch", "_js_type", "__weakref__")

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        found, value = self._js_dispatch("get", name)
        if not found:
            raise AttributeError(f"JS {self._js_type} has no property {name!r}")
        return value

    def __setattr__(self, name, value):
        self._js_dispatch("set", name, value)

    def __delattr__(self, name):
        if not self._js_dispatch("delete", name):
            raise AttributeError(name)

    def __dir__(self):
        return list(self._js_dispatch("keys"))

    def __call__(self, *args):
        called, value = self._js_dispatch("call", *args)
        if not called:
            raise TypeError(f"JS {self._js_type} is not callable")
        return value

    def __len__(self):
        length = self._js_dispatch("len")
        if length is None:
            raise TypeError(f"JS {self._js_type} has no length or size")
        return length

    def __bool__(self):
        return self._js_dispatch("bool")

    def __iter__(self):
        iterator = self._js_dispatch("iter")
        if iterator is None:
            raise TypeError(f"JS {self._js_type} is not iterable")
        return iterator

    def __next__(self):
        done, value = self._js_dispatch("next")
        if done:
            raise StopIteration
        return value

    def __getitem__(self, key):
        found, value = self._js_dispatch("getitem", key)
        if not found:
            raise (IndexError if isinstance(key, int) else KeyError)(key)
        return value

    def __setitem__(self, key, value):
        self._js_dispatch("setitem", key, value)

    def __delitem__(self, key):
        if not self._js_dispatch("delitem", key):
            raise KeyError(key)

    def __contains__(self, key):
        return self._js_dispatch("contains", key)

    def __repr__(self):
        return f"<JsProxy {self._js_type}: {self._js_dispatch('repr')}>"

    def __await__(self):
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def settle(ok, value):
            def apply():
                if future.done():
                    return
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value if isinstance(value, BaseException) else JSError(str(value)))
            loop.call_soon_threadsafe(apply)

        self._js_dispatch("then", lambda v: settle(True, v), lambda name, message, stack: settle(False, JSError(message, name, stack)))
        return future.__await__()


def js_proxy(key, dispatch, type_name):
    """The proxy for the JS object numbered `key` on its thread: the same one while it lives."""
    proxy = _js_proxies.get(key)
    if proxy is None:
        proxy = object.__new__(JsProxy)
        object.__setattr__(proxy, "_js_dispatch", dispatch)
        object.__setattr__(proxy, "_js_type", type_name)
        _js_proxies[key] = proxy
    return proxy
