"""Check the node indices of every tree in a loaded scikit-learn model before it predicts.

scikit-learn's tree structures (`Tree`, HistGradientBoosting's `TreePredictor`) store child and feature indices
that its compiled prediction loops follow without bounds checks, so a crafted file that loads cleanly could
read outside its arrays (or loop forever) on the first prediction. A tree is accepted only if every internal
node's children come after it and lie inside the tree (no cycles, no stray reads), every feature index fits the
model's input width, and every categorical split points at a bitset that exists.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlops_gates.errors import GateError


def check_trees(model: Any, where: str) -> int:
    """Walk the model's object graph and check each tree; returns how many were checked."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    checked, seen = 0, set()
    todo: list[tuple[Any, int | None, Any]] = [(model, None, None)]
    while todo:
        obj, width, categorical = todo.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None))):
            continue
        seen.add(id(obj))
        if isinstance(obj, Tree):
            _tree(obj, width, where)
            checked += 1
            continue
        if isinstance(obj, TreePredictor):
            _predictor(obj, width, categorical, where)
            checked += 1
            continue
        if hasattr(obj, "n_features_in_") and not isinstance(obj, np.ndarray):
            width = int(obj.n_features_in_)
            categorical = getattr(obj, "is_categorical_", categorical)
        if isinstance(obj, dict):
            children: Any = obj.values()
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = obj
        elif isinstance(obj, np.ndarray):
            children = obj.ravel() if obj.dtype == object else ()
        else:
            children = getattr(obj, "__dict__", {}).values()
        todo += [(c, width, categorical) for c in children]
    return checked


def _refuse(where: str, what: str) -> GateError:
    return GateError(
        f"refused: a tree in the model is malformed ({what})",
        where=where,
        hint="a tree built by scikit-learn never looks like this; the file was made by hand or damaged",
    )


def _children_ok(left: np.ndarray, right: np.ndarray, leaf: np.ndarray) -> bool:
    n, idx = len(left), np.arange(len(left))
    inner = ~leaf
    return bool(
        (
            (left[inner] > idx[inner]) & (left[inner] < n) & (right[inner] > idx[inner]) & (right[inner] < n)
        ).all()
    )


def _tree(tree: Any, width: int | None, where: str) -> None:
    n = int(tree.node_count)
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature, value = np.asarray(tree.feature), np.asarray(tree.value)
    if not (len(left) == len(right) == len(feature) == value.shape[0] == n):
        raise _refuse(where, "node arrays of different lengths")
    leaf = left == -1
    if not (right[leaf] == -1).all() or not _children_ok(left, right, leaf):
        raise _refuse(where, "a child index outside the tree or before its parent")
    limit = min(int(tree.n_features), width if width is not None else int(tree.n_features))
    if not ((feature[~leaf] >= 0) & (feature[~leaf] < limit)).all():
        raise _refuse(where, f"a feature index outside the model's {limit} inputs")


def _predictor(p: Any, width: int | None, categorical: Any, where: str) -> None:
    nodes = p.nodes
    leaf = np.asarray(nodes["is_leaf"]).astype(bool)
    left, right = np.asarray(nodes["left"], dtype=np.int64), np.asarray(nodes["right"], dtype=np.int64)
    if len(nodes) == 0 or not _children_ok(left, right, leaf):
        raise _refuse(where, "a child index outside the tree or before its parent")
    feature = np.asarray(nodes["feature_idx"], dtype=np.int64)[~leaf]
    if width is None or not ((feature >= 0) & (feature < width)).all():
        raise _refuse(where, "a feature index outside the model's inputs")
    cat = np.asarray(nodes["is_categorical"]).astype(bool)[~leaf]
    if cat.any():
        known = np.zeros(width, bool) if categorical is None else np.asarray(categorical, bool)
        bitset = np.asarray(nodes["bitset_idx"], dtype=np.int64)[~leaf][cat]
        if len(known) != width or not known[feature[cat]].all():
            raise _refuse(where, "a categorical split on a feature that is not categorical")
        if not ((bitset >= 0) & (bitset < len(p.raw_left_cat_bitsets))).all():
            raise _refuse(where, "a categorical split without its bitset")
