"""The reviewed names a model file may make its loader import: exact `module.qualname` pairs, never a prefix.

Each is a type or a reviewed constructor that builds data (arrays, dtypes, tensors, containers); none opens a
file, runs a process or evaluates a string. A submodule of a listed module is not listed. scikit-learn's
estimator classes come from scikit-learn's own registry (`all_estimators`), by exact defining module and name,
so a function in an estimator's module (`sklearn.utils._testing.*`) is never among them.
"""

from __future__ import annotations

import functools

_BUILTIN_TYPES = [
    "set",
    "frozenset",
    "dict",
    "list",
    "tuple",
    "slice",
    "range",
    "complex",
    "bytearray",
    "bytes",
    "object",
    "float",
    "int",
    "bool",
    "str",
]
_NUMPY_SCALARS = [
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "object_",
    "str_",
    "bytes_",
    "datetime64",
    "timedelta64",
]
_TORCH_STORAGES = [
    f"{t}Storage"
    for t in [
        "Float",
        "Double",
        "Half",
        "BFloat16",
        "Long",
        "Int",
        "Short",
        "Char",
        "Byte",
        "Bool",
        "ComplexFloat",
        "ComplexDouble",
        "Untyped",
    ]
]
_TORCH_DTYPES = [
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
    "complex64",
    "complex128",
]

PICKLE: frozenset[tuple[str, str]] = frozenset(
    {("builtins", n) for n in _BUILTIN_TYPES}
    | {("numpy", n) for n in ("dtype", "ndarray", *_NUMPY_SCALARS)}
    | {("numpy.dtypes", f"{n.capitalize()}DType") for n in ("float64", "float32", "int64", "int32", "bool")}
    | {
        (m, n)
        for m in ("numpy.core.multiarray", "numpy._core.multiarray")
        for n in ("_reconstruct", "scalar")
    }
    | {(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")}
    | {
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random.mtrand", "RandomState"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random._pcg64", "PCG64"),
        ("numpy.random.bit_generator", "SeedSequence"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("copyreg", "_reconstructor"),
        ("_codecs", "encode"),  # how protocol 2 writes bytes: encode(text, 'latin1')
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch", "Size"),
        ("torch", "device"),
        ("torch.serialization", "_get_layout"),
    }
    | {("torch", n) for n in (*_TORCH_STORAGES, *_TORCH_DTYPES)}
)

# Types scikit-learn estimators hold that are not estimators themselves (losses, links, tree structures,
# binning), checked one by one: each is a class whose pickled state is data. The two tree structures hold raw
# node indices that scikit-learn follows without bounds checks (skops distrusts them for that reason): they are
# allowed because the adapter checks every index of every tree after loading, before any prediction
# (`tree_check.py`).
SKLEARN_INTERNALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("sklearn.tree._tree", "Tree"),
        ("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor"),
        ("sklearn._loss.loss", "HalfBinomialLoss"),
        ("sklearn._loss.loss", "HalfMultinomialLoss"),
        ("sklearn._loss.loss", "HalfSquaredError"),
        ("sklearn._loss.loss", "AbsoluteError"),
        ("sklearn._loss.loss", "HalfPoissonLoss"),
        ("sklearn._loss.loss", "PinballLoss"),
        ("sklearn._loss.loss", "ExponentialLoss"),
        ("sklearn._loss._loss", "CyHalfBinomialLoss"),
        ("sklearn._loss._loss", "CyHalfMultinomialLoss"),
        ("sklearn._loss._loss", "CyHalfSquaredError"),
        ("sklearn._loss._loss", "CyAbsoluteError"),
        ("sklearn._loss._loss", "CyHalfPoissonLoss"),
        ("sklearn._loss._loss", "CyPinballLoss"),
        ("sklearn._loss._loss", "CyExponentialLoss"),
        ("sklearn._loss._loss", "__pyx_unpickle_CyHalfBinomialLoss"),
        ("sklearn._loss._loss", "__pyx_unpickle_CyHalfMultinomialLoss"),
        ("sklearn._loss._loss", "__pyx_unpickle_CyHalfSquaredError"),
        ("sklearn._loss.link", "Interval"),
        ("sklearn._loss.link", "LogitLink"),
        ("sklearn._loss.link", "MultinomialLogit"),
        ("sklearn._loss.link", "IdentityLink"),
        ("sklearn._loss.link", "LogLink"),
        ("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper"),
        ("sklearn.utils._bunch", "Bunch"),
    }
)

# joblib writes each array as this wrapper followed by its raw bytes, which joblib.load reads itself.
JOBLIB_ARRAY = ("joblib.numpy_pickle", "NumpyArrayWrapper")


@functools.cache
def sklearn_estimators() -> frozenset[tuple[str, str]]:
    """scikit-learn's estimator classes by exact defining module and name (imports scikit-learn once)."""
    try:
        from sklearn.utils import all_estimators
    except ImportError:
        return frozenset()
    return frozenset((cls.__module__, cls.__qualname__) for _, cls in all_estimators())


def allowed(module: str, name: str, *, joblib: bool = False) -> bool:
    """May a model file name this global? Exact pairs only; scikit-learn's registry is read only when asked."""
    pair = (module, name)
    if pair in PICKLE or pair in SKLEARN_INTERNALS or joblib and pair == JOBLIB_ARRAY:
        return True
    return module.split(".", 1)[0] == "sklearn" and pair in sklearn_estimators()


def allowed_dotted(dotted: str) -> bool:
    """The same test for a `module.qualname` string (skops lists types this way)."""
    module, _, name = dotted.rpartition(".")
    return bool(module) and allowed(module, name)
