// The Python half of `pyembed stubs`: imports a module inside pyembed's interpreter and describes
// it as JSON (functions and their signatures, classes, constants; type hints as small trees).
// stubs.ts turns that description into TypeScript. Kept in Python because inspect and typing do
// the work there; works on CPython 3.9 and later.
export const INTROSPECT_SOURCE = String.raw`
import ast, builtins, collections.abc, contextlib, enum, importlib, inspect, json, sys, textwrap, types, typing

_NoneType = type(None)
_EMPTY = inspect.Parameter.empty
_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "positional_only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional_or_keyword",
    inspect.Parameter.VAR_POSITIONAL: "var_positional",
    inspect.Parameter.KEYWORD_ONLY: "keyword_only",
    inspect.Parameter.VAR_KEYWORD: "var_keyword",
}
_ABC = collections.abc
_SEQUENCES = (list, _ABC.Sequence, _ABC.MutableSequence, _ABC.Collection)
_MAPPINGS = (dict, _ABC.Mapping, _ABC.MutableMapping, collections.OrderedDict, collections.defaultdict)
_SETS = (set, frozenset, _ABC.Set, _ABC.MutableSet)
_ITERABLES = (_ABC.Iterable, _ABC.Iterator, _ABC.Generator, _ABC.Reversible)
_ASYNC_ITERABLES = (_ABC.AsyncIterable, _ABC.AsyncIterator, _ABC.AsyncGenerator)
_PRIMITIVES = ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"))


def _qualname(t):
    module = getattr(t, "__module__", None)
    name = getattr(t, "__qualname__", None) or getattr(t, "__name__", None) or repr(t)
    return name if module in (None, "builtins") else module + "." + name


def _type_repr(t):
    if t is _EMPTY:
        return ""
    if isinstance(t, str):
        return t
    if t is None or t is _NoneType:
        return "None"
    if isinstance(t, type) and not typing.get_args(t):
        return _qualname(t)
    return repr(t).replace("typing.", "")


def _converts(cls):
    """The JS primitive a class's instances arrive as (pyembed converts subclasses of these)."""
    for base, name in _PRIMITIVES:
        if isinstance(cls, type) and issubclass(cls, base):
            return name
    return None


class _Context:
    def __init__(self, module):
        self.module = module
        self.classes = {}  # class object -> name in the module

    def local_class(self, t):
        try:
            return self.classes.get(t)
        except TypeError:  # unhashable
            return None


def _t(kind, py, **fields):
    fields["k"] = kind
    fields["py"] = py
    return fields


def describe_type(t, ctx, owner=None):
    """A type hint as a small tree (see stubs.ts for how each kind becomes TypeScript)."""
    py = _type_repr(t)
    if t is _EMPTY or t is typing.Any:
        return _t("any", py)
    if isinstance(t, str):  # a forward reference that could not be resolved
        return _t("any", py)
    if t is None or t is _NoneType:
        return _t("none", py)
    if t is object:
        return _t("unknown", py)
    if t is getattr(typing, "NoReturn", None) or t is getattr(typing, "Never", None):
        return _t("never", py)
    if t is getattr(typing, "Self", None):
        return _t("class", py, name=ctx.local_class(owner)) if owner is not None and ctx.local_class(owner) else _t("any", py)
    if isinstance(t, typing.TypeVar):
        return _t("any", py)
    supertype = getattr(t, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return describe_type(supertype, ctx, owner)
    for base, name in _PRIMITIVES:
        if t is base:
            return _t(name, py)
    if t in (bytes, bytearray, memoryview):
        return _t("bytes", py)
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin is typing.Union or (getattr(types, "UnionType", None) is not None and origin is types.UnionType):
        return _t("union", py, of=[describe_type(a, ctx, owner) for a in args])
    if origin is typing.Literal:
        if all(isinstance(a, (str, int, bool)) or a is None for a in args) and not any(isinstance(a, enum.Enum) for a in args):
            return _t("literal", py, values=list(args))
        return _t("any", py)
    if origin is getattr(typing, "Annotated", None):
        return describe_type(args[0], ctx, owner)
    if origin is tuple or t is tuple or t is typing.Tuple:
        if not args:
            return _t("tuple", py, of=_t("any", ""))
        if len(args) == 2 and args[1] is Ellipsis:
            return _t("tuple", py, of=describe_type(args[0], ctx, owner))
        if args == ((),):
            return _t("tuple", py, items=[])
        return _t("tuple", py, items=[describe_type(a, ctx, owner) for a in args])
    if origin is _ABC.Callable or t is _ABC.Callable or t is typing.Callable:
        if len(args) == 2 and isinstance(args[0], (list, tuple)):
            return _t("callable", py, params=[describe_type(a, ctx, owner) for a in args[0]], ret=describe_type(args[1], ctx, owner))
        return _t("callable", py, params=None, ret=describe_type(args[-1], ctx, owner) if args else _t("any", ""))
    if origin in (_ABC.Awaitable, _ABC.Coroutine):
        return _t("awaitable", py, of=describe_type(args[-1], ctx, owner) if args else _t("any", ""))
    element = describe_type(args[0], ctx, owner) if args else _t("any", "")
    for family, kind in ((_ASYNC_ITERABLES, "asynciterable"), (_MAPPINGS, "dict"), (_SETS, "set"),
                         (_SEQUENCES, "list"), (_ITERABLES, "iterable")):
        if origin in family or t in family:
            if kind == "dict":
                value = describe_type(args[1], ctx, owner) if len(args) > 1 else _t("any", "")
                return _t("dict", py, key=element, value=value)
            return _t(kind, py, of=element)
    if origin is type or t is type:
        return _t("any", py)
    if isinstance(t, type):
        name = ctx.local_class(t)
        if name:
            return _t("class", py, name=name)
        return _t("foreign", py, converts=_converts(t))
    return _t("any", py)


def infer_type(value, ctx, depth=0):
    """The type of a module constant that has no annotation, from its value."""
    py = _type_repr(type(value))
    if value is None:
        return _t("none", "None")
    name = ctx.local_class(type(value))
    if name:
        return _t("class", py, name=name)
    for base, prim in _PRIMITIVES:
        if type(value) is base:
            return _t(prim, py)
    if isinstance(value, (bytes, bytearray)):
        return _t("bytes", py)

    def union(items):
        kinds, seen = [], set()
        for item in list(items)[:64]:
            d = infer_type(item, ctx, depth + 1)
            key = json.dumps(d, sort_keys=True)
            if key not in seen:
                seen.add(key)
                kinds.append(d)
        if not kinds or len(kinds) > 4:
            return _t("any", "")
        if len(kinds) == 1:
            return kinds[0]
        return _t("union", "Union[%s]" % ", ".join(k["py"] or "Any" for k in kinds), of=kinds)

    def named(d):
        return d["py"] or "Any"

    if depth < 3:
        if type(value) is list:
            of = union(value)
            return _t("list", "list[%s]" % named(of), of=of)
        if type(value) is tuple:
            if len(value) <= 8:
                items = [infer_type(v, ctx, depth + 1) for v in value]
                return _t("tuple", "tuple[%s]" % ", ".join(named(i) for i in items), items=items)
            of = union(value)
            return _t("tuple", "tuple[%s, ...]" % named(of), of=of)
        if type(value) in (set, frozenset):
            of = union(value)
            return _t("set", "%s[%s]" % (py, named(of)), of=of)
        if type(value) is dict:
            key, val = union(value.keys()), union(value.values())
            return _t("dict", "dict[%s, %s]" % (named(key), named(val)), key=key, value=val)
    if isinstance(value, type):
        return _t("any", py)
    return _t("foreign", py, converts=_converts(type(value)))


def _hints(obj):
    try:
        return typing.get_type_hints(obj)
    except Exception:
        return dict(getattr(obj, "__annotations__", None) or {})


def _doc(obj):
    """The first paragraph of obj's own docstring (not one inherited from a base class)."""
    if obj is None:
        return ""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return ""
    if isinstance(obj, type) and doc.startswith(obj.__name__ + "("):
        return ""  # the signature dataclasses write as a docstring
    if isinstance(obj, type) and issubclass(obj, enum.Enum) and doc == "An enumeration.":
        return ""  # what Enum wrote before Python 3.11
    return inspect.cleandoc(doc).split("\n\n")[0].strip()


def describe_signature(func, ctx, owner=None, drop_first=False, hints_of=None):
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    hints = _hints(hints_of if hints_of is not None else func)
    params = []
    for i, p in enumerate(sig.parameters.values()):
        if drop_first and i == 0 and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            continue
        annotation = hints.get(p.name, p.annotation)
        default = None
        if p.default is not _EMPTY:
            default = repr(p.default)
            if len(default) > 40:
                default = default[:37] + "..."
        params.append({
            "name": p.name,
            "kind": _KINDS[p.kind],
            "type": describe_type(annotation, ctx, owner),
            "optional": p.default is not _EMPTY,
            "default": default,
        })
    returns = hints.get("return", sig.return_annotation)
    return {"params": params, "returns": describe_type(returns, ctx, owner)}


def describe_function(name, func, ctx, owner=None, kind="function"):
    target = func
    drop_first = False
    if kind == "method":
        drop_first = True
    elif kind == "classmethod":
        target = func.__func__
        drop_first = True
    elif kind == "staticmethod":
        target = func.__func__
    elif kind == "builtin_method":  # a method of a class written in C: (self, ...)
        drop_first = True
    elif kind == "builtin_classmethod":  # given bound to its class
        pass
    signature = describe_signature(target, ctx, owner, drop_first)
    is_async = inspect.iscoroutinefunction(target)
    is_async_gen = inspect.isasyncgenfunction(target)
    if signature is not None and is_async:
        r = signature["returns"]
        signature["returns"] = _t("awaitable", "Coroutine[..., " + r["py"] + "]", of=r)
    if signature is not None and is_async_gen and signature["returns"]["k"] == "any":
        signature["returns"] = _t("asynciterable", "AsyncGenerator", of=_t("any", ""))
    return {"name": name, "doc": _doc(target), "signature": signature}


def _self_assignments(cls, ctx, init_hints):
    """Attributes that methods assign to self (self.x = ..., self.x: int = ...), with types when known."""
    found = {}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except Exception:
        return found
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.args.args:
            continue
        self_name = node.args.args[0].arg
        method = cls.__dict__.get(node.name)
        method_hints = init_hints if node.name == "__init__" else (_hints(method) if inspect.isfunction(method) else {})
        for stmt in ast.walk(node):
            targets, annotation, value = [], None, None
            if isinstance(stmt, ast.Assign):
                targets, value = stmt.targets, stmt.value
            elif isinstance(stmt, ast.AnnAssign):
                targets, annotation, value = [stmt.target], stmt.annotation, stmt.value
            for target in targets:
                if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                        and target.value.id == self_name and not target.attr.startswith("_")):
                    t = None
                    if annotation is not None:
                        try:
                            t = describe_type(eval(compile(ast.Expression(annotation), "<annotation>", "eval"),
                                                   vars(ctx.module)), ctx, cls)
                        except Exception:
                            t = _t("any", ast.unparse(annotation) if hasattr(ast, "unparse") else "")
                    elif isinstance(value, ast.Name) and value.id in method_hints:
                        t = describe_type(method_hints[value.id], ctx, cls)
                    previous = found.get(target.attr)
                    if previous is None or (previous["k"] == "any" and t is not None):
                        found[target.attr] = t or _t("any", "")
    return found


def describe_class(name, cls, ctx):
    init = cls.__dict__.get("__init__")
    signature = None
    if not issubclass(cls, enum.Enum):
        # The constructor's parameters: the nearest __init__ (or __new__) written in Python.
        for klass in cls.__mro__:
            found = klass.__dict__.get("__init__")
            if inspect.isfunction(found):
                signature = describe_signature(found, ctx, cls, drop_first=True)
                break
            found = klass.__dict__.get("__new__")
            if isinstance(found, staticmethod):
                found = found.__func__
            if inspect.isfunction(found):
                signature = describe_signature(found, ctx, cls, drop_first=True)
                break
        else:
            try:
                if inspect.signature(cls).parameters:
                    signature = describe_signature(cls, ctx, cls, hints_of=_NoneType)
            except (TypeError, ValueError):
                signature = None
            if signature is None and cls.__init__ is object.__init__ and cls.__new__ is object.__new__:
                signature = {"params": [], "returns": _t("any", "")}  # object(): no arguments
    methods, static, attributes = [], [], {}
    seen = set()
    for klass in cls.__mro__:
        if klass is object or (ctx.local_class(klass) is None and klass is not cls):
            continue  # members of foreign bases (object, Exception, ...) are left out
        for attr, raw in klass.__dict__.items():
            if attr.startswith("_") or attr in seen:
                continue
            seen.add(attr)
            if isinstance(raw, staticmethod):
                static.append(describe_function(attr, raw, ctx, cls, "staticmethod"))
            elif isinstance(raw, classmethod):
                static.append(describe_function(attr, raw, ctx, cls, "classmethod"))
            elif inspect.isfunction(raw):
                methods.append(describe_function(attr, raw, ctx, cls, "method"))
            elif isinstance(raw, property):
                returns = _hints(raw.fget).get("return", _EMPTY) if raw.fget else _EMPTY
                attributes[attr] = {"name": attr, "type": describe_type(returns, ctx, cls),
                                    "readonly": raw.fset is None, "classLevel": False, "doc": _doc(raw)}
            elif isinstance(raw, (types.MethodDescriptorType, types.WrapperDescriptorType)):
                methods.append(describe_function(attr, raw, ctx, cls, "builtin_method"))
            elif isinstance(raw, types.ClassMethodDescriptorType):
                static.append(describe_function(attr, getattr(cls, attr), ctx, cls, "builtin_classmethod"))
            elif isinstance(raw, (types.GetSetDescriptorType, types.MemberDescriptorType)):
                attributes[attr] = {"name": attr, "type": _t("any", ""), "readonly": False,
                                    "classLevel": False, "doc": _doc(raw)}
            elif isinstance(raw, (types.FunctionType, types.BuiltinFunctionType, type)):
                continue
            else:
                t = infer_type(raw, ctx)
                if isinstance(raw, cls):  # enum members, class-level singletons
                    t = _t("class", _type_repr(cls), name=ctx.local_class(cls))
                member = isinstance(raw, enum.Enum)
                attributes[attr] = {"name": attr, "type": t, "readonly": member,
                                    "classLevel": True, "instance": not member, "doc": ""}
    for klass in reversed(cls.__mro__):
        if ctx.local_class(klass) is None:
            continue
        callables = {f["name"] for f in methods + static}
        for attr, hint in _hints(klass).items():
            if attr.startswith("_") or attr in callables or typing.get_origin(hint) is typing.ClassVar:
                continue
            if attr not in attributes or attributes[attr]["type"]["k"] == "any":
                class_level = attributes.get(attr, {}).get("classLevel", False)
                attributes[attr] = {"name": attr, "type": describe_type(hint, ctx, cls), "readonly": False,
                                    "classLevel": class_level, "doc": ""}
    init_hints = _hints(init) if inspect.isfunction(init) else {}
    for klass in cls.__mro__:
        if ctx.local_class(klass) is None:
            continue
        for attr, t in _self_assignments(klass, ctx, init_hints if klass is cls else {}).items():
            if attr not in attributes and attr not in seen:
                attributes[attr] = {"name": attr, "type": t, "readonly": False, "classLevel": False, "doc": ""}
    if issubclass(cls, enum.Enum):
        values = [m.value for m in cls]
        value_type = infer_type(values, ctx)["of"] if values else _t("any", "")
        attributes["name"] = {"name": "name", "type": _t("str", "str"), "readonly": True, "classLevel": False, "doc": ""}
        attributes["value"] = {"name": "value", "type": value_type, "readonly": True, "classLevel": False, "doc": ""}
    call = cls.__dict__.get("__call__")
    dynamic = any("__getattr__" in k.__dict__ for k in cls.__mro__ if k is not object)
    return {
        "name": name,
        "doc": _doc(cls),
        "converts": _converts(cls),
        "isEnum": issubclass(cls, enum.Enum),
        "isException": issubclass(cls, BaseException),
        "init": signature,
        "call": describe_signature(call, ctx, cls, drop_first=True) if inspect.isfunction(call) else None,
        "dynamic": dynamic,
        "methods": methods,
        "static": static,
        "attributes": list(attributes.values()),
    }


def describe(module_name, extra_paths):
    for p in reversed(extra_paths):
        if p not in sys.path:
            sys.path.insert(0, p)
    with contextlib.redirect_stdout(sys.stderr):
        module = importlib.import_module(module_name)
    ctx = _Context(module)
    explicit = getattr(module, "__all__", None)
    names = list(explicit) if explicit is not None else [n for n in vars(module) if not n.startswith("_")]

    def defined_here(obj):
        return getattr(obj, "__module__", None) == module.__name__

    for n in names:
        obj = getattr(module, n, None)
        if inspect.isclass(obj) and (explicit is not None or defined_here(obj)):
            ctx.classes[obj] = n
    hints = _hints(module)
    functions, classes, constants, skipped = [], [], [], []
    for n in names:
        if not hasattr(module, n):
            skipped.append({"name": n, "reason": "listed in __all__ but missing"})
            continue
        obj = getattr(module, n)
        if type(obj).__module__ == "__future__":
            continue  # from __future__ import annotations
        if inspect.ismodule(obj):
            if explicit is not None:
                constants.append({"name": n, "type": _t("foreign", "module " + obj.__name__, converts=None), "doc": ""})
            continue
        if inspect.isclass(obj):
            if obj in ctx.classes:
                classes.append(describe_class(n, obj, ctx))
            continue
        if callable(obj) and not ctx.local_class(type(obj)):
            if explicit is not None or defined_here(obj):
                functions.append(describe_function(n, obj, ctx))
            continue
        if n in hints:
            t = describe_type(hints[n], ctx)
        else:
            t = infer_type(obj, ctx)
            if t["k"] == "foreign" and explicit is None and not t["converts"]:
                skipped.append({"name": n, "reason": "a " + _qualname(type(obj)) + " (not plain data); list it in __all__ to include it"})
                continue
        constants.append({"name": n, "type": t, "doc": ""})
    return json.dumps({
        "module": module.__name__,
        "doc": _doc(module),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "functions": functions,
        "classes": classes,
        "constants": constants,
        "skipped": skipped,
    })
`;
