"""Threat: a model file that runs code, or hides what it runs, is called safe by the scanner.

Each case is our own, written after a class of bypass that picklescan's, modelscan's and fickling's test suites
record (facts, not their code). Every hostile file must be reported unsafe; every real model must stay safe.
"""

from __future__ import annotations

import io
import pickle
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest

from mlops_gates.models.scan import scan_bytes

# --- hand-assembled pickles (opcodes spelled out, so each case says exactly what it does) ---------------------


def u(s: str) -> bytes:  # SHORT_BINUNICODE
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def proto(n: int = 4) -> bytes:
    return b"\x80" + bytes([n])


CALL_SYSTEM = u("echo pwned") + b"\x85R"  # TUPLE1, REDUCE: calls whatever global is on the stack
STOP = b"."

HOSTILE = {
    # the classic: GLOBAL then REDUCE, protocol 0, no header at all
    "protocol-0 GLOBAL os.system": b"cos\nsystem\n(S'echo pwned'\ntR.",
    "protocol-0 INST": b"(S'echo pwned'\nios\nsystem\n.",
    "OBJ with a global class": proto(2) + b"(cos\nsystem\nS'echo'\no.",
    # STACK_GLOBAL: operands are whatever is on the stack, not the last two strings pushed
    "STACK_GLOBAL from memo": proto()
    + u("os")
    + b"\x94"
    + u("system")
    + b"\x94"
    + b"0"
    + b"0"
    # pushed, memoised, popped; decoys pushed last, popped; then the real operands fetched from the memo
    + u("numpy")
    + u("dtype")
    + b"00"
    + b"h\x00h\x01\x93"
    + CALL_SYSTEM
    + STOP,
    "STACK_GLOBAL after POP of a decoy": proto()
    + u("os")
    + u("numpy._core.numeric")
    + b"0"
    + u("system")
    + b"\x93"
    + CALL_SYSTEM
    + STOP,
    "STACK_GLOBAL allowed-looking decoys last": proto()
    + u("builtins")
    + u("open")
    + b"\x94\x93"
    + u("numpy._core.numeric")
    + u("_frombuffer")
    + b"00"
    + u("/etc/passwd")
    + b"\x85R"
    + STOP,
    "STACK_GLOBAL with a computed name": proto() + u("builtins") + b"K\x01" + b"\x93" + STOP,
    "DUP'd module string": proto() + u("os") + b"2" + b"0" + u("system") + b"\x93" + CALL_SYSTEM + STOP,
    # exact pairs, not prefixes: a function beside allowed types in the same package
    "numpy function": b"cnumpy\nload\n(S'x.npy'\ntR.",
    "numpy multiarray function": proto() + u("numpy._core.multiarray") + u("fromfile") + b"\x93" + STOP,
    "sklearn testing function": proto()
    + u("sklearn.utils._testing")
    + u("assert_run_python_script_without_output")
    + b"\x93"
    + u("import os")
    + b"\x85R"
    + STOP,
    "sklearn submodule of an allowed module": b"csklearn.linear_model._logistic\nos\n.",
    "torch function": b"ctorch\nload\n.",
    "builtins.getattr": b"cbuiltins\ngetattr\n(cbuiltins\ndict\nS'get'\ntR.",
    "Python 2 name that maps to eval": proto(2) + b"c__builtin__\neval\n(S'1'\ntR.",
    "copyreg extension registry": proto(2) + b"\x82\x01" + b")R.",
    # calls and builds on values no allowed global made
    "REDUCE on a call's result": proto(2) + b"cbuiltins\ndict\n)R)R.",
    "BUILD on a class": proto(2) + b"cbuiltins\ndict\n}S'__init__'\nS'x'\nsb.",
    # cannot be walked to the end: unsafe, even when nothing bad was seen first
    "payload then a bad opcode": b"cos\nsystem\n(S'echo'\ntR\xff.",
    "benign prefix then a bad opcode": proto() + b"K\x01\xfe.",
    "truncated": proto() + u("abc"),
    "unknown protocol": b"\x80\x07K\x01.",
    "benign pickle, then a second one": pickle.dumps([1, 2]) + b"cos\nsystem\n(S'echo'\ntR.",
    "trailing bytes": pickle.dumps([1, 2]) + b"\x00\x01",
    "memo read before written": proto() + b"h\x05.",
    "NEWOBJ_EX of a refused class": proto(4) + b"\x8c\x02os\x8c\x06system\x93)}\x92.",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_pickle_is_unsafe(case):
    for name in ("model.pkl", "weights.txt", "model.safetensors", "notes.md"):
        (r,) = scan_bytes(name, HOSTILE[case])
        assert r.safe is False, (case, name, r)
        assert r.kind in ("pickle", "joblib"), (case, name, r.kind)


def test_refusal_names_the_import():
    (r,) = scan_bytes("m.pkl", HOSTILE["STACK_GLOBAL from memo"])
    assert r.unsafe == ["os.system"] and "numpy.dtype" not in r.unsafe
    (r,) = scan_bytes("m.pkl", HOSTILE["STACK_GLOBAL allowed-looking decoys last"])
    assert r.unsafe == ["builtins.open"]
    (r,) = scan_bytes("m.pkl", HOSTILE["Python 2 name that maps to eval"])
    assert r.unsafe == ["builtins.eval"]


def test_real_data_is_safe_and_text_is_text():
    arr = np.arange(12.0).reshape(3, 4)
    for p in range(0, 6):
        (r,) = scan_bytes("a.bin", pickle.dumps({"w": arr, "n": [1, 2.5, "x", None, True]}, protocol=p))
        assert r.safe is True, (p, r)
    for text in (b'{"a": 1}\n', b"classes\ncat\ndog\n", b"# model card\n\nA model.\n", b"cat\ndog\n"):
        (r,) = scan_bytes("labels.txt", text)
        assert (r.kind, r.safe) == ("text", True), (text, r)


# --- joblib: arrays travel outside the pickle stream; compressed files are walked after inflating ------------


@pytest.fixture(scope="module")
def fitted():
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    return X, {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
        "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y),
        "hist-gbt": HistGradientBoostingClassifier(max_iter=5).fit(X, y),
    }


def _joblib_bytes(model, compress=0) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(model, buf, compress=compress)
    return buf.getvalue()


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3)])
def test_real_models_in_every_container_are_safe(fitted, compress):
    _, models = fitted
    for name, m in models.items():
        (r,) = scan_bytes("m.joblib", _joblib_bytes(m, compress), joblib=True)
        assert r.safe is True, (name, compress, r)
        for p in (2, 5):
            (r,) = scan_bytes("m.pkl", pickle.dumps(m, protocol=p))
            assert r.safe is True, (name, p, r)


def test_compressed_joblib_with_a_payload_is_unsafe():
    payload = HOSTILE["protocol-0 GLOBAL os.system"]
    for data in (zlib.compress(payload), _gzip(payload)):
        (r,) = scan_bytes("m.joblib", data, joblib=True)
        assert r.safe is False and r.unsafe == ["os.system"], r
    (r,) = scan_bytes("m.joblib", b"\x04\x22\x4d\x18" + b"\x00" * 20, joblib=True)
    assert r.safe is False and "lz4" in (r.note or "")
    (r,) = scan_bytes("m.joblib", zlib.compress(payload)[:-4], joblib=True)
    assert r.safe is False


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def test_joblib_array_bytes_cannot_hide_a_payload(fitted):
    _, models = fitted
    good = _joblib_bytes(models["logistic"])
    # an array claimed far longer than the file: cut off, unsafe
    (r,) = scan_bytes("m.joblib", good[: len(good) // 2], joblib=True)
    assert r.safe is False
    # read as a plain pickle (pickle.load would parse the array bytes as opcodes), the wrapper is refused
    (r,) = scan_bytes("m.pkl", good)
    assert r.safe is False and "joblib.numpy_pickle.NumpyArrayWrapper" in r.unsafe


def test_joblib_array_inside_a_frame_is_unsafe():
    """The unpickler reads opcodes from a frame's buffer while joblib reads array bytes from the file: a frame
    that spans the array would let the two see different bytes."""
    wrapper = (
        u("joblib.numpy_pickle")
        + u("NumpyArrayWrapper")
        + b"\x93)\x81"
        + b"}("
        + u("shape")
        + b"K\x01\x85"
        + u("dtype")
        + u("numpy")
        + u("dtype")
        + b"\x93"
        + u("u1")
        + b"\x89\x88\x87R"
        + u("order")
        + u("C")
        + b"ub"
    )
    body = wrapper + b"\x00" + b"."  # one byte of array data, then STOP
    framed = proto(4) + b"\x95" + struct.pack("<Q", len(body)) + body
    (r,) = scan_bytes("m.joblib", framed, joblib=True)
    assert r.safe is False and "frame" in (r.note or ""), r
    unframed = proto(4) + body
    (r,) = scan_bytes("m.joblib", unframed, joblib=True)
    assert r.safe is True, r


# --- zip containers --------------------------------------------------------------------------------------------


def _zip(members: list[tuple[str, bytes]], method=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name, and writes it all the same
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_archives_that_readers_disagree_on_are_refused():
    benign = pickle.dumps({"w": 1})
    evil = HOSTILE["protocol-0 GLOBAL os.system"]
    cases = {
        "duplicate member": _zip([("archive/data.pkl", benign), ("archive/data.pkl", benign)]),
        "bzip2 member": _zip([("archive/data.pkl", benign)], zipfile.ZIP_BZIP2),
        "lzma member": _zip([("archive/data.pkl", benign)], zipfile.ZIP_LZMA),
    }
    enc = bytearray(_zip([("archive/data.pkl", benign)]))
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the encrypted bit, local and central
        i = enc.find(sig)
        enc[i + flag_at] |= 1
    cases["encrypted member"] = bytes(enc)
    for case, data in cases.items():
        reports = scan_bytes("model.pt", data)
        assert reports[0].safe is False, (case, reports)
    # a pickle anywhere in an archive is walked, whatever its name, and nested archives too
    hidden = _zip([("archive/data.pkl", benign), ("archive/extra/readme.txt", evil)])
    assert scan_bytes("model.pt", hidden)[0].safe is False
    nested = _zip([("inner.zip", hidden)])
    assert scan_bytes("bundle.zip", nested)[0].safe is False
    assert scan_bytes("model.pt", _zip([("archive/data.pkl", benign)]))[0].safe is True


# --- the known-bypass corpora, as classes: our own files for each callable their suites name ------------------
# Callables recorded in picklescan's, modelscan's and fickling's test corpora and advisories (names only).
CORPUS_CALLABLES = [
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "compile"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("builtins", "open"),
    ("builtins", "globals"),
    ("builtins", "apply"),
    ("os", "system"),
    ("posix", "system"),
    ("nt", "system"),
    ("os", "popen"),
    ("os", "execv"),
    ("subprocess", "run"),
    ("subprocess", "Popen"),
    ("subprocess", "call"),
    ("subprocess", "check_output"),
    ("socket", "create_connection"),
    ("http.client", "HTTPSConnection"),
    ("urllib.request", "urlopen"),
    ("requests", "get"),
    ("aiohttp", "ClientSession"),
    ("webbrowser", "open"),
    ("sys", "exit"),
    ("pickle", "loads"),
    ("_pickle", "loads"),
    ("dill", "loads"),
    ("marshal", "loads"),
    ("runpy", "_run_code"),
    ("runpy", "run_path"),
    ("bdb", "Bdb.run"),
    ("pdb", "run"),
    ("pip", "main"),
    ("ensurepip", "_run_pip"),
    ("venv", "create"),
    ("timeit", "timeit"),
    ("cProfile", "run"),
    ("cProfile", "runctx"),
    ("profile", "Profile.run"),
    ("trace", "Trace.run"),
    ("doctest", "debug_script"),
    ("code", "InteractiveInterpreter.runcode"),
    ("idlelib.pyshell", "ModifiedInterpreter.runcode"),
    ("idlelib.calltip", "get_entity"),
    ("lib2to3.pgen2.pgen", "ParserGenerator.make_label"),
    ("pydoc", "pipepager"),
    ("pydoc", "locate"),
    ("operator", "methodcaller"),
    ("operator", "attrgetter"),
    ("functools", "partial"),
    ("functools", "reduce"),
    ("ctypes", "CDLL"),
    ("pty", "spawn"),
    ("io", "FileIO"),
    ("logging", "FileHandler"),
    ("importlib", "import_module"),
    ("shutil", "rmtree"),
    ("asyncio.unix_events", "_UnixSubprocessTransport._start"),
    ("distutils.file_util", "write_file"),
    ("numpy.testing._private.utils", "runstring"),
    ("numpy.f2py.crackfortran", "getlincoef"),
    ("numpy", "load"),
    ("numpy", "fromfile"),
    ("numpy.lib.npyio", "load"),
    ("torch", "load"),
    ("torch.serialization", "load"),
    ("torch._inductor.codecache", "compile_file"),
    ("torch.utils.collect_env", "run"),
    ("torch.utils.bottleneck.__main__", "run_cprofile"),
    ("torch.jit.unsupported_tensor_ops", "execWrapper"),
    ("torch._dynamo.guards", "GuardBuilder.get"),
    ("torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression"),
    ("torch.utils._config_module", "ConfigModule.load_config"),
    ("joblib", "load"),
    ("sklearn.utils._testing", "assert_run_python_script_without_output"),
    ("sklearn.utils", "all_estimators"),
    ("sklearn.datasets", "fetch_openml"),
    ("sklearn.externals.array_api_compat", "clone_module"),
    ("__main__", "Evil"),
    ("copyreg", "_reconstructor_evil"),
    ("numpy.core.multiarray", "fromfile"),
]


def _encodings(module: str, name: str) -> dict[str, bytes]:
    """One callable, called five ways: GLOBAL (protocol 0 and 2), INST, STACK_GLOBAL, and STACK_GLOBAL whose
    operands come from the memo after decoys."""
    arg = u("x") + b"\x85R"
    return {
        "GLOBAL p0": f"c{module}\n{name}\n(S'x'\ntR.".encode(),
        "GLOBAL p2": proto(2) + f"c{module}\n{name}\n".encode() + arg + STOP,
        "INST": f"(S'x'\ni{module}\n{name}\n.".encode(),
        "STACK_GLOBAL": proto(4) + u(module) + u(name) + b"\x93" + arg + STOP,
        "STACK_GLOBAL via memo": proto(4)
        + u(module)
        + b"\x94"
        + u(name)
        + b"\x94"
        + b"00"
        + u("numpy")
        + u("ndarray")
        + b"00h\x00h\x01\x93"
        + arg
        + STOP,
    }


def test_every_callable_of_the_known_corpora_is_refused_every_way():
    missed = []
    for module, name in CORPUS_CALLABLES:
        for how, data in _encodings(module, name).items():
            (r,) = scan_bytes("pytorch_model.bin", data)
            if r.safe is not False or f"{module}.{name}" not in r.unsafe:
                missed.append((module, name, how, r))
    assert not missed, missed[:5]
