"""A model of the pickle machine that runs nothing: it follows the stack, the mark stack and the memo exactly
as the unpickler does, so it knows which global every import and every call names.

A pickle runs code through the globals it imports (GLOBAL, STACK_GLOBAL, INST) and the calls it makes
(REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST, BUILD). The walk refuses a file, with the reason, when an import is not
on the reviewed allow-list, when STACK_GLOBAL's operands are not strings the file itself pushed, when a call's
target is not an allowed global, when BUILD would set attributes on a class or function, when the file uses the
copyreg extension registry, an unknown protocol or opcode, or when it cannot be walked to its very end.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
import re
from dataclasses import dataclass, field
from typing import Any, cast

from mlops_gates.models.allowlist import JOBLIB_ARRAY, allowed

HIGHEST_PROTOCOL = 5
_MARK = object()
_DTYPE_CODE = re.compile(r"[<>|=]?[biufcmMOUSV?]\d*")


class Unsafe(Exception):
    """The file cannot be shown safe: the message says why. `imports`: the walk had reached an import."""

    imports = False
    walk: Walk | None = None  # what was seen before the walk broke off


@dataclass(frozen=True)
class Global:
    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass
class Made:
    """An object a call built: which global built it, with what, and the state BUILD gave it."""

    by: Global
    args: Any = None
    state: Any = None


@dataclass
class Walk:
    globals: list[str] = field(default_factory=list)  # every import, in order
    refused: list[str] = field(default_factory=list)  # imports outside the allow-list
    pickles: int = 0  # streams walked (joblib arrays of objects hold nested ones)
    arrays: int = 0  # joblib arrays skipped


_CONST = {
    "NONE": lambda a: None,
    "NEWTRUE": lambda a: True,
    "NEWFALSE": lambda a: False,
}


def walk(data: bytes, *, joblib: bool = False) -> Walk:
    """Walk every pickle stream in `data` to the end of the data. Raises Unsafe with the reason."""
    out = Walk()
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data):
            _one(stream, out, joblib, len(data))
    except Unsafe as exc:
        exc.imports = exc.imports or any(_importable(g) for g in out.globals)
        exc.walk = out
        raise
    if not out.pickles:
        raise Unsafe("empty file")
    return out


def _one(stream: io.BytesIO, out: Walk, joblib: bool, size: int) -> None:
    stack: list[Any] = []
    metastack: list[list[Any]] = []
    memo: dict[int, Any] = {}
    protocol = 0
    frame_end = 0  # the unpickler reads opcodes from a frame's buffer; joblib reads arrays from the file

    def pop_mark() -> list[Any]:
        nonlocal stack
        if not metastack:
            raise Unsafe("MARK expected on the stack")
        items, stack = stack, metastack.pop()
        return items

    def pop() -> Any:
        if not stack:
            raise Unsafe("the stack is empty")
        return stack.pop()

    def check_global(g: Global) -> Global:
        if protocol < 3:  # the unpickler maps Python 2 names (fix_imports): judge what it will import
            pair = (g.module, g.name)
            pair = _compat_pickle.NAME_MAPPING.get(pair, pair)
            g = Global(_compat_pickle.IMPORT_MAPPING.get(pair[0], pair[0]), pair[1])
        out.globals.append(str(g))
        if not allowed(g.module, g.name, joblib=joblib):
            out.refused.append(str(g))
        return g

    def call(target: Any, op: str, args: Any = None) -> Made:
        if not isinstance(target, Global):
            raise Unsafe(f"{op} calls a value that is not an imported global")
        return Made(target, args)

    try:
        ops = pickletools.genops(stream)
        for op, arg_, pos_ in ops:
            name, arg, pos = op.name, cast(Any, arg_), cast(int, pos_)
            if name == "PROTO":
                if not 0 <= arg <= HIGHEST_PROTOCOL:
                    raise Unsafe(f"unknown pickle protocol {arg} at byte {pos}")
                protocol = arg
            elif name == "FRAME":
                frame_end = pos + 9 + int(arg)
            elif name == "STOP":
                pop()
                if stack or metastack:
                    raise Unsafe(f"STOP at byte {pos} leaves values on the stack")
                out.pickles += 1
                return
            elif name == "MARK":
                metastack.append(stack)
                stack = []
            elif name == "POP":
                if stack:
                    stack.pop()
                else:
                    pop_mark()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                if not stack:
                    raise Unsafe("DUP of an empty stack")
                stack.append(stack[-1])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                if not stack:
                    raise Unsafe("PUT of an empty stack")
                memo[int(arg)] = stack[-1]
            elif name == "MEMOIZE":
                if not stack:
                    raise Unsafe("MEMOIZE of an empty stack")
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if int(arg) not in memo:
                    raise Unsafe(f"memo slot {arg} read before it was written (byte {pos})")
                stack.append(memo[int(arg)])
            elif name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                g = check_global(Global(module, attr))
                if name == "INST":
                    g = call(g, name, pop_mark())  # type: ignore[assignment]
                stack.append(g)
            elif name == "STACK_GLOBAL":
                attr, module = pop(), pop()
                if not (isinstance(module, str) and isinstance(attr, str)):
                    raise Unsafe(f"STACK_GLOBAL at byte {pos} imports a name the file computed")
                stack.append(check_global(Global(module, attr)))
            elif name in ("EXT1", "EXT2", "EXT4"):
                exc = Unsafe(f"{name} at byte {pos} imports through the copyreg extension registry")
                exc.imports = True
                raise exc
            elif name == "REDUCE" or name == "NEWOBJ":
                args = pop()
                stack.append(call(pop(), name, args))
            elif name == "NEWOBJ_EX":
                _kwargs, args = pop(), pop()
                stack.append(call(pop(), name, args))
            elif name == "OBJ":
                items = pop_mark()
                if not items:
                    raise Unsafe(f"OBJ at byte {pos} without a class")
                made = call(items[0], name, items[1:])
                stack.append(made)
            elif name == "BUILD":
                state = pop()
                if not stack or not isinstance(stack[-1], Made):
                    raise Unsafe(f"BUILD at byte {pos} sets the state of something no call made")
                stack[-1].state = state
                if joblib and stack[-1].by == Global(*JOBLIB_ARRAY):
                    if stream.tell() < frame_end:
                        raise Unsafe(f"a joblib array at byte {pos} inside a pickle frame")
                    stack[-1] = _skip_joblib_array(stack[-1], stream, out, size)
            elif name in ("PERSID", "BINPERSID"):
                if name == "BINPERSID":
                    pop()
                stack.append(Made(Global("<persistent>", "load")))
            elif name in ("NEXT_BUFFER", "READONLY_BUFFER"):
                if name == "READONLY_BUFFER":
                    pop()
                stack.append(Made(Global("<buffer>", "out-of-band")))
            elif name in _CONST:
                stack.append(_CONST[name](arg))
            elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
                stack.append({"EMPTY_LIST": [], "EMPTY_DICT": {}, "EMPTY_SET": []}[name])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                if len(stack) < n:
                    raise Unsafe(f"{name} needs {n} values")
                items = stack[-n:]
                del stack[-n:]
                stack.append(tuple(items))
            elif name in ("TUPLE", "LIST", "FROZENSET", "DICT"):
                items = pop_mark()  # rebinds `stack`: take the items before pushing
                stack.append(tuple(items) if name == "TUPLE" else _pairs(items) if name == "DICT" else items)
            elif name == "APPEND":
                value = pop()
                _extend(stack, [value])
            elif name in ("APPENDS", "ADDITEMS"):
                items = pop_mark()
                _extend(stack, items)
            elif name == "SETITEM":
                value, key = pop(), pop()
                _update(stack, [key, value])
            elif name == "SETITEMS":
                items = pop_mark()
                _update(stack, items)
            elif op.stack_before == [] and len(op.stack_after) == 1:
                stack.append(arg)  # a constant: int, float, string, bytes
            else:
                raise Unsafe(f"opcode {name} at byte {pos} is not understood")
    except Unsafe:
        raise
    except ValueError as exc:  # genops: truncated stream, unknown opcode, bad argument
        raise Unsafe(f"not a complete pickle stream ({exc})") from None
    raise Unsafe("the stream ends before STOP")


def _importable(dotted: str) -> bool:
    """Could an unpickler import this at all? Its top-level module must exist here (found, not imported)."""
    import importlib.util

    top = dotted.split(".", 1)[0]
    if not all(part.isidentifier() for part in dotted.split(".")):
        return False
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _pairs(items: list[Any]) -> dict[Any, Any]:
    if len(items) % 2:
        raise Unsafe("a dictionary with an odd number of items")
    out: dict[Any, Any] = {}
    for k, v in zip(items[::2], items[1::2], strict=True):
        out[k if _hashable(k) else id(k)] = v
    return out


def _hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _extend(stack: list[Any], items: list[Any]) -> None:
    if not stack:
        raise Unsafe("APPEND to an empty stack")
    target = stack[-1]
    if isinstance(target, list):
        target.extend(items)
    elif not isinstance(target, Made):  # appending to a made object calls its append/extend
        raise Unsafe("APPEND to a value that is not a list")


def _update(stack: list[Any], items: list[Any]) -> None:
    if not stack:
        raise Unsafe("SETITEM on an empty stack")
    target = stack[-1]
    if isinstance(target, dict):
        target.update(_pairs(items))
    elif not isinstance(target, Made):  # a made object's __setitem__
        raise Unsafe("SETITEM on a value that is not a dictionary")


def _skip_joblib_array(wrapper: Made, stream: io.BytesIO, out: Walk, size: int) -> Made:
    """joblib.load reads an array's bytes right after its wrapper's BUILD; skip exactly those, or refuse."""
    state = wrapper.state if isinstance(wrapper.state, dict) else {}
    shape, dtype = state.get("shape"), state.get("dtype")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise Unsafe("a joblib array without a readable shape")
    count = 1
    for n in shape:
        count *= n
    itemsize, has_object = _dtype(dtype)
    if has_object:
        _one(stream, out, True, size)  # an array of objects is a pickle of its own
    else:
        if state.get("numpy_array_alignment_bytes") is not None:
            pad = stream.read(1)
            if not pad:
                raise Unsafe("a joblib array is cut off")
            stream.seek(pad[0], io.SEEK_CUR)
        end = stream.tell() + count * itemsize
        if end > size:
            raise Unsafe("a joblib array is cut off")
        stream.seek(end)
    out.arrays += 1
    return Made(Global("numpy", "ndarray"))


def _dtype(value: Any) -> tuple[int, bool]:
    """The item size of a pickled numpy.dtype (a constructor call with a code, then its state), and whether it
    holds Python objects anywhere (joblib then reads a nested pickle instead of raw bytes)."""
    if not (isinstance(value, Made) and value.by == Global("numpy", "dtype")):
        raise Unsafe("a joblib array whose dtype is not a numpy.dtype")
    args = value.args if isinstance(value.args, tuple) else ()
    code = args[0] if args and isinstance(args[0], str) else ""
    if not _DTYPE_CODE.fullmatch(code):
        raise Unsafe(f"a joblib array with dtype code {code!r}")
    import numpy as np

    itemsize, has_object = np.dtype(code).itemsize, code.lstrip("<>|=").startswith("O")
    state = value.state
    if isinstance(state, tuple) and len(state) >= 8:
        # (version, byte order, subarray, names, fields, item size, alignment, flags)
        if isinstance(state[5], int) and state[5] > 0:
            itemsize = state[5]
        parts: list[Any] = []
        if isinstance(state[2], tuple) and state[2]:
            parts.append(state[2][0])
        if isinstance(state[4], dict):
            parts += [f[0] for f in state[4].values() if isinstance(f, tuple) and f]
        elif state[4] is not None:
            raise Unsafe("a joblib array whose dtype fields cannot be read")
        has_object = has_object or any(_dtype(p)[1] for p in parts)
    elif state is not None:
        raise Unsafe("a joblib array whose dtype state cannot be read")
    return itemsize, has_object
