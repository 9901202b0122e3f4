"""The Python side of bench/peers.mjs, shared by every peer.

Imported as a module by the in-process peers (pyembed, node-calls-python, pymport), by pythonia's
Python process and by bench/floor.c. Run as a script it is either

    python peers.py serve                the JSON-lines bridge (bench/peers.mjs, peer `jsonl`)
    python peers.py timeit SETTINGS      the Python floor: each workload done by Python itself

The workloads' data is made once by setup() and then only read, so every peer converts the same
objects.
"""
import base64
import json
import sys
import time

# --- the workloads' objects (setup() makes them) ------------------------------------------------

big_list = None      # list of ints
big_dict = None      # dict of str keys -> int
big_bytes = None     # bytes
big_bytes_b64 = None
big_array = None     # numpy float64 array (None when numpy is missing)
numpy_error = None   # why big_array is None
settings = {}


class Holder:
    attr = 1


holder = Holder()


def setup(list_n, dict_n, bytes_n, numpy_bytes):
    """Makes the data once per process; returns where this Python is (for the results)."""
    global big_list, big_dict, big_bytes, big_bytes_b64, big_array, numpy_error
    settings.update(list_n=list_n, dict_n=dict_n, bytes_n=bytes_n, numpy_bytes=numpy_bytes)
    big_list = list(range(list_n))
    big_dict = {f"key{i}": i for i in range(dict_n)}
    big_bytes = bytes(range(256)) * (bytes_n // 256) + bytes(bytes_n % 256)
    big_bytes_b64 = None
    big_array = None
    numpy_error = None
    if numpy_bytes > 0:
        try:
            import numpy
            big_array = numpy.arange(numpy_bytes // 8, dtype=numpy.float64)
        except Exception as e:  # ImportError, or a numpy built for another Python
            numpy_error = f"{type(e).__name__}: {e}"
    return info()


def info():
    return {
        "version": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "prefix": sys.prefix,
        "numpy": None if big_array is None else __import__("numpy").__version__,
        "numpyError": numpy_error,
    }


def noop():
    pass


def three(a, b, c):
    return b


def get_list():
    return big_list


def take_list(values):
    return len(values)


def get_dict():
    return big_dict


def get_bytes():
    return big_bytes


def take_bytes(data):
    return len(data)


def get_bytes_b64():
    """Bridges with no binary path send bytes as base64 text."""
    global big_bytes_b64
    if big_bytes_b64 is None:
        big_bytes_b64 = base64.b64encode(big_bytes).decode("ascii")
    return big_bytes_b64


def take_bytes_b64(text):
    return len(base64.b64decode(text))


def call_n(f, n):
    """Calls f(i) for i in range(n); returns the last result."""
    r = None
    for i in range(n):
        r = f(i)
    return r


def ident(x):
    return x


def get_array():
    return big_array


def get_array_bytes():
    return big_array.tobytes()


def get_array_b64():
    return base64.b64encode(memoryview(big_array).cast("B")).decode("ascii")


def array_check():
    """What a correct transfer of big_array must show: (length, last value)."""
    return [len(big_array), float(big_array[-1])]


# --- the JSON-lines bridge --------------------------------------------------------------------
#
# One request per line on stdin, one answer per line on stdout:
#   {"id": 1, "fn": "three", "args": [1, "a", 2.5]}   ->  {"id": 1, "ok": "a"}
#   {"id": 2, "attr": "holder.attr"}                   ->  {"id": 2, "ok": 1}
# Bytes travel as {"$b64": "..."}; a JS function argument as {"$fn": 7}: calling it sends
#   {"cb": 7, "cid": 3, "args": [0]}   and reads   {"cid": 3, "ok": 0}   back before going on.
# Requests are served in order, so many can be in flight (pipelined) at once.

def _serve():
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    loads = json.loads
    next_cid = [0]

    def send(message):
        stdout.write(dumps(message).encode("utf-8", "surrogatepass"))
        stdout.write(b"\n")
        stdout.flush()

    def encode(value):
        if isinstance(value, (bytes, bytearray, memoryview)):
            return {"$b64": base64.b64encode(value).decode("ascii")}
        return value

    def make_callback(fn_id):
        def callback(*args):
            next_cid[0] += 1
            cid = next_cid[0]
            send({"cb": fn_id, "cid": cid, "args": [encode(a) for a in args]})
            reply = loads(stdin.readline())
            if reply.get("cid") != cid:
                raise RuntimeError(f"bridge: expected the answer to callback {cid}, got {reply!r}")
            if "err" in reply:
                raise RuntimeError(reply["err"])
            return decode(reply.get("ok"))
        return callback

    def decode(value):
        if isinstance(value, dict):
            if "$b64" in value:
                return base64.b64decode(value["$b64"])
            if "$fn" in value:
                return make_callback(value["$fn"])
        return value

    functions = globals()
    while True:
        line = stdin.readline()
        if not line:
            return
        request = loads(line)
        rid = request.get("id")
        try:
            if "fn" in request:
                result = functions[request["fn"]](*[decode(a) for a in request.get("args", ())])
            else:
                first, *rest = request["attr"].split(".")
                result = functions[first]
                for name in rest:
                    result = getattr(result, name)
            send({"id": rid, "ok": encode(result)})
        except Exception as e:
            send({"id": rid, "err": f"{type(e).__name__}: {e}"})


# --- the Python floor ---------------------------------------------------------------------------

def _py_ident(i):
    return i


def _timeit(config):
    """Each workload done by Python itself, timed like the JS peers: ops/s per round."""
    import timeit
    from concurrent.futures import ThreadPoolExecutor

    setup(config["listN"], config["dictN"], config["bytesN"], config["numpyBytes"])
    print(json.dumps({"type": "info", **info(), "executable": sys.executable}), flush=True)
    rounds = config["rounds"]
    round_s = config["roundMs"] / 1000
    pool = ThreadPoolExecutor(config.get("asyncThreads", 4))
    names = dict(globals(), pool=pool, py_ident=_py_ident,
                 cb_n=config["callbacks"], async_n=config["asyncN"])
    workloads = {
        "noop": ("noop()", 1, "a Python function called from Python"),
        "three": ("three(1, 'a', 2.5)", 1, None),
        "attr": ("holder.attr", 1, None),
        "list": ("list(list(big_list))", 1, "a copy each way: `list(list(L))`"),
        "dict": ("dict(big_dict)", 1, "a copy: `dict(D)`"),
        "bytes": ("bytes(bytearray(big_bytes))", 1, "a copy each way: `bytes(bytearray(b))`"),
        "callbacks": ("call_n(py_ident, cb_n)", config["callbacks"], "a Python function as the callback"),
        "async": ("list(pool.map(ident, range(async_n)))", config["asyncN"],
                  f"`ThreadPoolExecutor({config.get('asyncThreads', 4)}).map` of {config['asyncN']} calls"),
        "numpy": ("big_array.tobytes()", 1, "a copy: `a.tobytes()`"),
    }
    wanted = config.get("workloads")
    for name, (stmt, units, note) in workloads.items():
        if wanted and name not in wanted:
            continue
        if name == "numpy" and big_array is None:
            print(json.dumps({"type": "skip", "workload": name, "reason": f"numpy: {numpy_error}"}), flush=True)
            continue
        timer = timeit.Timer(stmt, globals=names)
        timer.timeit(1)  # warm up
        number = 1
        while True:  # as timeit.autorange, but up to the round time the JS side uses
            t = timer.timeit(number)
            if t >= round_s / 4 or number >= 1 << 30:
                break
            number *= 2
        number = max(1, int(number * (round_s / max(t, 1e-9))))
        samples = [number * units / t for t in timer.repeat(rounds, number)]
        print(json.dumps({"type": "result", "workload": name, "samples": samples, "units": units,
                          "note": note}), flush=True)
        print(f"  python  {name:<10} {sorted(samples)[len(samples) // 2]:,.0f} ops/s", file=sys.stderr, flush=True)
    pool.shutdown()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        _serve()
    elif sys.argv[1:2] == ["timeit"]:
        _timeit(json.loads(sys.argv[2]))
    else:
        sys.exit("usage: peers.py serve | timeit SETTINGS_JSON")
