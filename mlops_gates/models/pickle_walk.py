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
    """Walk one pickle stream, from where `stream` stands to its STOP."""
    machine = _Machine(stream, out, joblib, size)
    try:
        for op, arg, pos in pickletools.genops(stream):
            if machine.step(op, cast(Any, arg), cast(int, pos)):
                return
    except Unsafe:
        raise
    except ValueError as exc:  # genops: truncated stream, unknown opcode, bad argument
        raise Unsafe(f"not a complete pickle stream ({exc})") from None
    raise Unsafe("the stream ends before STOP")


class _Machine:
    """The unpickler's state (stack, mark stack, memo, protocol, frame) with values that are never built:
    imports become Global, calls become Made. Each opcode family is one method; anything else is refused."""

    def __init__(self, stream: io.BytesIO, out: Walk, joblib: bool, size: int) -> None:
        self.stream, self.out, self.joblib, self.size = stream, out, joblib, size
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.protocol = 0
        self.frame_end = (
            0  # the unpickler reads opcodes from a frame's buffer; joblib reads arrays from the file
        )

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise Unsafe("MARK expected on the stack")
        items, self.stack = self.stack, self.metastack.pop()
        return items

    def pop(self) -> Any:
        if not self.stack:
            raise Unsafe("the stack is empty")
        return self.stack.pop()

    def check_global(self, g: Global) -> Global:
        if self.protocol < 3:  # the unpickler maps Python 2 names (fix_imports): judge what it will import
            pair = (g.module, g.name)
            pair = _compat_pickle.NAME_MAPPING.get(pair, pair)
            g = Global(_compat_pickle.IMPORT_MAPPING.get(pair[0], pair[0]), pair[1])
        self.out.globals.append(str(g))
        if not allowed(g.module, g.name, joblib=self.joblib):
            self.out.refused.append(str(g))
        return g

    @staticmethod
    def call(target: Any, op: str, args: Any = None) -> Made:
        if not isinstance(target, Global):
            raise Unsafe(f"{op} calls a value that is not an imported global")
        return Made(target, args)

    def step(self, op: pickletools.OpcodeInfo, arg: Any, pos: int) -> bool:
        """Apply one opcode; True at the stream's STOP."""
        name = op.name
        if name == "STOP":
            self.pop()
            if self.stack or self.metastack:
                raise Unsafe(f"STOP at byte {pos} leaves values on the stack")
            self.out.pickles += 1
            return True
        for family in (self._control, self._memo, self._imports, self._calls, self._containers):
            if family(name, arg, pos):
                return False
        if op.stack_before == [] and len(op.stack_after) == 1:
            self.stack.append(arg)  # a constant: int, float, string, bytes
            return False
        raise Unsafe(f"opcode {name} at byte {pos} is not understood")

    def _control(self, name: str, arg: Any, pos: int) -> bool:
        stack = self.stack
        if name == "PROTO":
            if not 0 <= arg <= HIGHEST_PROTOCOL:
                raise Unsafe(f"unknown pickle protocol {arg} at byte {pos}")
            self.protocol = arg
        elif name == "FRAME":
            self.frame_end = pos + 9 + int(arg)
        elif name == "MARK":
            self.metastack.append(stack)
            self.stack = []
        elif name == "POP":
            if stack:
                stack.pop()
            else:
                self.pop_mark()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            if not stack:
                raise Unsafe("DUP of an empty stack")
            stack.append(stack[-1])
        else:
            return False
        return True

    def _memo(self, name: str, arg: Any, pos: int) -> bool:
        stack, memo = self.stack, self.memo
        if name in ("PUT", "BINPUT", "LONG_BINPUT"):
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
        else:
            return False
        return True

    def _imports(self, name: str, arg: Any, pos: int) -> bool:
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            g: Global | Made = self.check_global(Global(module, attr))
            if name == "INST":
                g = self.call(g, name, self.pop_mark())
            self.stack.append(g)
        elif name == "STACK_GLOBAL":
            attr, module = self.pop(), self.pop()
            if not (isinstance(module, str) and isinstance(attr, str)):
                raise Unsafe(f"STACK_GLOBAL at byte {pos} imports a name the file computed")
            self.stack.append(self.check_global(Global(module, attr)))
        elif name in ("EXT1", "EXT2", "EXT4"):
            exc = Unsafe(f"{name} at byte {pos} imports through the copyreg extension registry")
            exc.imports = True
            raise exc
        else:
            return False
        return True

    def _calls(self, name: str, arg: Any, pos: int) -> bool:
        pop = self.pop
        if name == "REDUCE" or name == "NEWOBJ":
            args = pop()
            self.stack.append(self.call(pop(), name, args))
        elif name == "NEWOBJ_EX":
            _kwargs, args = pop(), pop()
            self.stack.append(self.call(pop(), name, args))
        elif name == "OBJ":
            items = self.pop_mark()
            if not items:
                raise Unsafe(f"OBJ at byte {pos} without a class")
            self.stack.append(self.call(items[0], name, items[1:]))
        elif name == "BUILD":
            self._build(pos)
        elif name in ("PERSID", "BINPERSID"):
            if name == "BINPERSID":
                pop()
            self.stack.append(Made(Global("<persistent>", "load")))
        elif name in ("NEXT_BUFFER", "READONLY_BUFFER"):
            if name == "READONLY_BUFFER":
                pop()
            self.stack.append(Made(Global("<buffer>", "out-of-band")))
        else:
            return False
        return True

    def _build(self, pos: int) -> None:
        state = self.pop()
        stack = self.stack
        if not stack or not isinstance(stack[-1], Made):
            raise Unsafe(f"BUILD at byte {pos} sets the state of something no call made")
        stack[-1].state = state
        if self.joblib and stack[-1].by == Global(*JOBLIB_ARRAY):
            if self.stream.tell() < self.frame_end:
                raise Unsafe(f"a joblib array at byte {pos} inside a pickle frame")
            stack[-1] = _skip_joblib_array(stack[-1], self.stream, self.out, self.size)

    def _containers(self, name: str, arg: Any, pos: int) -> bool:
        if name in _CONST:
            self.stack.append(_CONST[name](arg))
        elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
            self.stack.append({"EMPTY_LIST": [], "EMPTY_DICT": {}, "EMPTY_SET": []}[name])
        elif name == "EMPTY_TUPLE":
            self.stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(self.stack) < n:
                raise Unsafe(f"{name} needs {n} values")
            items = self.stack[-n:]
            del self.stack[-n:]
            self.stack.append(tuple(items))
        elif name in ("TUPLE", "LIST", "FROZENSET", "DICT"):
            items = self.pop_mark()  # rebinds the stack: take the items before pushing
            self.stack.append(tuple(items) if name == "TUPLE" else _pairs(items) if name == "DICT" else items)
        elif name == "APPEND":
            _extend(self.stack, [self.pop()])
        elif name in ("APPENDS", "ADDITEMS"):
            items = self.pop_mark()  # rebinds the stack: take the items first
            _extend(self.stack, items)
        elif name == "SETITEM":
            value, key = self.pop(), self.pop()
            _update(self.stack, [key, value])
        elif name == "SETITEMS":
            items = self.pop_mark()
            _update(self.stack, items)
        else:
            return False
        return True


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
