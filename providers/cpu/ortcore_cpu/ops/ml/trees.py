"""Tree ensembles: TreeEnsembleClassifier, TreeEnsembleRegressor (ai.onnx.ml 1 and 3) and
TreeEnsemble (ai.onnx.ml 5).

At session creation the trees are flattened into node arrays (feature,
threshold, comparison, true and false successor; a leaf is its own successor)
and the leaf weights into dense [leaf, target] tables. TreeEnsemble's
BRANCH_MEMBER nodes become chains of BRANCH_EQ nodes sharing the true branch,
as onnxruntime unrolls them. A run moves every (sample, tree) pair down one
level per numpy step (all pairs while most are still moving, then only those
not yet at a leaf), then reduces the leaf tables over the trees; large batches
go in blocks of rows so that memory stays bounded.

Aggregation and scores follow onnxruntime's tree aggregators, including what
the specification leaves open: with one target only the first weight of a leaf
counts and only PROBIT applies; a target no leaf contributed to scores 0; binary
classifiers with a single weight column get a second column as ``[1 - s, s]``
(weights all positive) or ``[-s, s]`` (mixed signs), ``[1 - p, p]`` with
``p = logistic(s)`` under LOGISTIC; with two classes that both carry weights the
label is the literal 0 or 1. Sums are computed in float64.
"""

from __future__ import annotations

import numpy as np

from ortcore_cpu.ops.ml._common import (
    ML,
    NUMERIC,
    as_matrix,
    class_labels,
    logistic,
    post_transform_name,
    probit,
    strings,
    transform,
)
from ortcore_cpu.registry import kernel

_MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_MEMBER", "LEAF")
_EQ, _MEMBER, _LEAF = 4, 6, 7
_COMPARE = (np.less_equal, np.less, np.greater_equal, np.greater, np.equal, np.not_equal)
_AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")


class _Forest:
    """Trees as node arrays. Node ``i`` tests ``x[feature[i]] <mode> threshold[i]`` and moves to
    ``true_next[i]`` or ``false_next[i]``; a leaf (mode LEAF) has slot ``leaf_slot[i]`` in the
    weight tables and is its own successor."""

    def __init__(self, feature, threshold, mode, true_next, false_next, missing_true, roots):
        self.feature = np.asarray(feature, dtype=np.intp)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.mode = np.asarray(mode, dtype=np.int8)
        self.true_next = np.asarray(true_next, dtype=np.intp)
        self.false_next = np.asarray(false_next, dtype=np.intp)
        self.missing_true = np.asarray(missing_true, dtype=bool)
        self.roots = np.asarray(roots, dtype=np.intp)
        leaf = self.mode == _LEAF
        self.branch = ~leaf
        self.true_next[leaf] = self.false_next[leaf] = np.flatnonzero(leaf)
        self.leaf_slot = np.full(self.mode.size, -1, dtype=np.intp)
        self.leaf_slot[leaf] = np.arange(int(leaf.sum()))
        self.n_leaves = int(leaf.sum())
        used = np.unique(self.mode[self.branch])
        self.modes = [int(m) for m in used]
        self.any_missing = bool(self.missing_true[self.branch].any())
        self.n_features = int(self.feature[self.branch].max()) + 1 if self.branch.any() else 0
        # child[2 i + test] is node i's successor: false at even positions, true at odd ones
        self.child = np.stack([self.false_next, self.true_next], axis=1).ravel()
        self.depth = self._depth()

    def _depth(self) -> int:
        """The number of branch levels on the longest path (refusing cycles)."""
        frontier = np.unique(self.roots)
        for depth in range(self.mode.size + 1):
            frontier = frontier[self.branch[frontier]]
            if frontier.size == 0:
                return depth
            frontier = np.unique(np.concatenate([self.true_next[frontier], self.false_next[frontier]]))
        raise ValueError("the trees contain a cycle")

    def _test(self, v: np.ndarray, cur: np.ndarray) -> np.ndarray:
        if len(self.modes) == 1:
            go = _COMPARE[self.modes[0]](v, self.threshold[cur])
        else:
            go = np.zeros(v.shape, dtype=bool)
            m = self.mode[cur]
            for code in self.modes:
                sel = m == code
                go[sel] = _COMPARE[code](v[sel], self.threshold[cur[sel]])
        if self.any_missing:
            go |= self.missing_true[cur] & np.isnan(v)
        return go

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """[N, T]: the leaf slot each sample reaches in each tree.

        Every (sample, tree) pair moves one level per step; while most pairs are still on branch
        nodes all of them move (a leaf leads to itself), afterwards only the unfinished ones.
        """
        n, f = x.shape
        if self.n_features > f:
            raise ValueError(f"the trees test feature {self.n_features - 1} but the input has {f} features")
        t = self.roots.size
        xf = np.ascontiguousarray(x, dtype=np.float64).ravel()
        node = np.tile(self.roots, n)  # position i * t + j: sample i in tree j
        offset = np.repeat(np.arange(n, dtype=np.intp) * f, t)
        pos = None
        for _ in range(self.depth):
            if pos is None:
                go = self._test(xf[offset + self.feature[node]], node)
                node = self.child[2 * node + go]
                live = self.branch[node]
                if 2 * np.count_nonzero(live) < live.size:
                    pos = np.flatnonzero(live)
            else:
                cur = node[pos]
                go = self._test(xf[offset[pos] + self.feature[cur]], cur)
                nxt = self.child[2 * cur + go]
                node[pos] = nxt
                pos = pos[self.branch[nxt]]
            if pos is not None and pos.size == 0:
                break
        return self.leaf_slot[node].reshape(n, t)


class _LeafTable:
    """Leaf weights as dense [leaf, target] tables: sums, minima, maxima, presence, and the first
    weight of each leaf (what onnxruntime uses with a single target)."""

    def __init__(self, slots, targets, weights, n_leaves: int, n_targets: int):
        slots = np.asarray(slots, dtype=np.intp)
        targets = np.asarray(targets, dtype=np.intp)
        weights = np.asarray(weights, dtype=np.float64)
        if targets.size and (targets.min() < 0 or targets.max() >= n_targets):
            raise ValueError(f"a leaf weight targets index {targets.max()}, outside [0, {n_targets})")
        shape = (n_leaves, n_targets)
        self.sum = np.zeros(shape)
        np.add.at(self.sum, (slots, targets), weights)
        self.has = np.zeros(shape, dtype=bool)
        self.has[slots, targets] = True
        self.min = np.full(shape, np.inf)
        np.minimum.at(self.min, (slots, targets), weights)
        self.max = np.full(shape, -np.inf)
        np.maximum.at(self.max, (slots, targets), weights)
        self.first = np.zeros((n_leaves, 1))
        first_slots, at = np.unique(slots, return_index=True)
        self.first[first_slots, 0] = weights[at]


def _reduce(ufunc, table: np.ndarray, leaves: np.ndarray, init) -> np.ndarray:
    """``ufunc`` over the trees of ``table[leaves]`` ([N, T] slots -> [N, K]), a few trees at a time."""
    n, t = leaves.shape
    out = np.full((n, table.shape[1]), init, dtype=table.dtype)
    step = max(1, (1 << 22) // max(1, n * table.shape[1]))
    for a in range(0, t, step):
        ufunc(out, ufunc.reduce(table[leaves[:, a : a + step]], axis=1), out=out)
    return out


def _by_rows(x: np.ndarray, n_trees: int, fn):
    """``fn`` over blocks of rows (about a million (sample, tree) pairs each), results joined."""
    step = max(1, (1 << 20) // max(n_trees, 1))
    if x.shape[0] <= step:
        return fn(x)
    parts = [fn(x[a : a + step]) for a in range(0, x.shape[0], step)]
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(p) for p in zip(*parts))
    return np.concatenate(parts)


# -- building the forests ------------------------------------------------------------------


class _NodeIndex:
    """Positions of nodes named by (tree id, node id), looked up many at a time."""

    def __init__(self, treeids, nodeids):
        self.trees = np.asarray(treeids, dtype=np.int64)
        nodes = np.asarray(nodeids, dtype=np.int64)
        self.tree_names, tree_code = np.unique(self.trees, return_inverse=True)
        self.low = int(nodes.min()) if nodes.size else 0
        self.span = (int(nodes.max()) - self.low + 1) if nodes.size else 1
        keys = tree_code.astype(np.int64) * self.span + (nodes - self.low)
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        repeated = np.flatnonzero(self.keys[1:] == self.keys[:-1])
        if repeated.size:
            i = self.order[repeated[0]]
            raise ValueError(f"node {nodes[i]} of tree {self.trees[i]} is defined twice")

    def find(self, trees, nodes, what: str) -> np.ndarray:
        trees = np.asarray(trees, dtype=np.int64)
        nodes = np.asarray(nodes, dtype=np.int64)
        if trees.size == 0:
            return np.zeros(0, dtype=np.intp)
        code = np.searchsorted(self.tree_names, trees)
        rel = nodes - self.low
        ok = (code < self.tree_names.size) & (rel >= 0) & (rel < self.span)
        ok &= self.tree_names[np.minimum(code, self.tree_names.size - 1)] == trees
        keys = code * self.span + rel
        at = np.minimum(np.searchsorted(self.keys, keys), max(self.keys.size - 1, 0))
        ok &= self.keys.size > 0
        ok &= self.keys[at] == keys
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"{what} {nodes[bad]} of tree {trees[bad]} is not a node")
        return self.order[at]


def _forest_v3(treeids, nodeids, featureids, values, modes, truenodeids, falsenodeids, missing):
    """The forest of TreeEnsembleClassifier/Regressor attributes: nodes named (tree id, node id)."""
    n = len(nodeids)
    for name, attr in (("nodes_treeids", treeids), ("nodes_featureids", featureids), ("nodes_values", values),
                       ("nodes_modes", modes), ("nodes_truenodeids", truenodeids),
                       ("nodes_falsenodeids", falsenodeids)):
        if len(attr) != n:
            raise ValueError(f"{name} has {len(attr)} entries, nodes_nodeids has {n}")
    codes = {m: i for i, m in enumerate(_MODES) if m != "BRANCH_MEMBER"}
    try:
        code = np.array([codes[m] for m in modes], dtype=np.int8)
    except KeyError as exc:
        raise ValueError(f"unknown node mode {exc.args[0]!r}") from None
    index = _NodeIndex(treeids, nodeids)
    trees = index.trees
    branch = np.flatnonzero(code != _LEAF)
    true_next = np.arange(n)
    false_next = np.arange(n)
    true_next[branch] = index.find(trees[branch], np.asarray(truenodeids, dtype=np.int64)[branch], "true branch")
    false_next[branch] = index.find(trees[branch], np.asarray(falsenodeids, dtype=np.int64)[branch], "false branch")
    # a tree starts wherever the tree id changes, as onnxruntime reads them
    roots = np.flatnonzero(np.concatenate([[True], trees[1:] != trees[:-1]])) if n else np.zeros(0, np.intp)
    miss = np.zeros(n, dtype=bool)
    miss[: len(missing or ())] = np.asarray(missing or (), dtype=np.int64)[:n] == 1
    forest = _Forest(featureids, values, code, true_next, false_next, miss, roots)
    return forest, index


def _table_v3(forest, index, w_treeids, w_nodeids, w_ids, w_weights, n_targets):
    """Leaf tables of (tree, node, target, weight) tuples; weights on branch nodes are ignored."""
    if not len(w_ids) == len(w_treeids) == len(w_nodeids) == len(w_weights):
        raise ValueError("the leaf weight attributes (tree ids, node ids, targets, weights) differ in length")
    slots = forest.leaf_slot[index.find(w_treeids, w_nodeids, "weighted node")]
    keep = slots >= 0
    return _LeafTable(slots[keep], np.asarray(w_ids, dtype=np.intp)[keep],
                      np.asarray(w_weights, dtype=np.float64)[keep], forest.n_leaves, n_targets)


def _forest_v5(featureids, splits, modes, truenodeids, falsenodeids, trueleafs, falseleafs, missing,
               membership_values, roots, leaf_targetids, leaf_weights, n_targets):
    """The forest and leaf table of TreeEnsemble-5: nodes_* are branches, leaf_* the leaves."""
    n, n_leaf = len(featureids), len(leaf_weights)
    modes = np.asarray(modes, dtype=np.int64).ravel()
    splits = np.asarray(splits, dtype=np.float64).ravel()
    for name, attr in (("nodes_splits", splits), ("nodes_modes", modes), ("nodes_truenodeids", truenodeids),
                       ("nodes_falsenodeids", falsenodeids), ("nodes_trueleafs", trueleafs),
                       ("nodes_falseleafs", falseleafs)):
        if len(attr) != n:
            raise ValueError(f"{name} has {len(attr)} entries, nodes_featureids has {n}")
    if len(leaf_targetids) != n_leaf:
        raise ValueError(f"leaf_targetids has {len(leaf_targetids)} entries, leaf_weights has {n_leaf}")
    if ((modes < 0) | (modes > _MEMBER)).any():
        raise ValueError(f"unknown node mode in {sorted(set(modes.tolist()))}")
    true_next = np.where(np.asarray(trueleafs) != 0, n, 0) + np.asarray(truenodeids, dtype=np.intp)
    false_next = np.where(np.asarray(falseleafs) != 0, n, 0) + np.asarray(falsenodeids, dtype=np.intp)
    if ((true_next < 0) | (true_next >= n + n_leaf) | (false_next < 0) | (false_next >= n + n_leaf)).any():
        raise ValueError("a node's true or false branch is out of range")
    miss = np.zeros(n, dtype=bool)
    miss[: len(missing or ())] = np.asarray(missing or (), dtype=np.int64)[:n] == 1
    # leaves go after the branch nodes (index n + leaf), extra chain nodes after the leaves
    feature = list(featureids) + [0] * n_leaf
    threshold = splits.tolist() + [0.0] * n_leaf
    code = modes.tolist() + [_LEAF] * n_leaf
    true_next = true_next.tolist() + [0] * n_leaf
    false_next = false_next.tolist() + [0] * n_leaf
    miss = miss.tolist() + [False] * n_leaf
    # BRANCH_MEMBER: a chain of BRANCH_EQ nodes, one per member, all sharing the true branch
    members = np.asarray(membership_values if membership_values is not None else [], dtype=np.float64).ravel()
    sets = [seg[~np.isnan(seg)] for seg in np.split(members, np.flatnonzero(np.isnan(members)))]
    member_nodes = [i for i in range(n) if code[i] == _MEMBER]
    if len(member_nodes) > len(sets):
        raise ValueError(f"membership_values holds {len(sets)} sets for {len(member_nodes)} BRANCH_MEMBER nodes")
    for i, values in zip(member_nodes, sets):
        code[i] = _EQ
        threshold[i] = values[0] if values.size else np.nan  # NaN equals nothing: an empty set
        last_false, prev = false_next[i], i
        for v in values[1:].tolist():
            new = len(feature)
            feature.append(feature[i])
            threshold.append(v)
            code.append(_EQ)
            true_next.append(true_next[i])
            false_next.append(last_false)
            miss.append(miss[i])
            false_next[prev] = new
            prev = new
    # a root whose branches are the same leaf is a single-leaf tree; onnxruntime and onnx.reference
    # then read the leaf at the root's own index
    root_index = [
        n + r if trueleafs[r] and falseleafs[r] and falsenodeids[r] == truenodeids[r] else r for r in roots
    ]
    forest = _Forest(feature, threshold, code, true_next, false_next, miss, root_index)
    table = _LeafTable(np.arange(n_leaf), leaf_targetids, np.asarray(leaf_weights, dtype=np.float64).ravel(),
                       n_leaf, n_targets)
    return forest, table


def _tensor_or(attr_tensor, attr_list):
    if attr_tensor is not None:
        return np.asarray(attr_tensor, dtype=np.float64).ravel().tolist()
    return list(attr_list or [])


# -- scores ----------------------------------------------------------------------------------


def _regression(forest, table, leaves, aggregate, post, base, n_targets, dtype):
    """onnxruntime's regression aggregators: [N, n_targets] scores."""
    n_trees = forest.roots.size
    base = np.asarray(base, dtype=np.float64)
    if n_targets == 1:
        first = table.first
        if aggregate in ("SUM", "AVERAGE"):
            s = _reduce(np.add, first, leaves, 0.0)
            if aggregate == "AVERAGE":
                s /= n_trees
        elif aggregate == "MIN":
            s = _reduce(np.minimum, first, leaves, np.inf) if n_trees else np.zeros((leaves.shape[0], 1))
        else:
            s = _reduce(np.maximum, first, leaves, -np.inf) if n_trees else np.zeros((leaves.shape[0], 1))
        if base.size == 1:
            s += base[0]
        s = s.astype(dtype)
        return probit(s) if post == "PROBIT" else s
    has = _reduce(np.logical_or, table.has, leaves, False)
    if aggregate in ("SUM", "AVERAGE"):
        s = _reduce(np.add, table.sum, leaves, 0.0)
        if aggregate == "AVERAGE":
            s /= n_trees
    else:
        ufunc, src, init = (np.minimum, table.min, np.inf) if aggregate == "MIN" else (np.maximum, table.max, -np.inf)
        s = np.where(has, _reduce(ufunc, src, leaves, init), 0.0)
    if base.size == n_targets:
        s += base
    # a target no leaf contributed to scores 0, base value or not
    return transform(np.where(has, s, 0.0).astype(dtype), post)


def _classification(table, leaves, post, base, labels, binary_case, all_positive):
    """onnxruntime's classifier aggregator: (label index or literal 0/1, [N, n_classes] scores)."""
    n_class = len(labels)
    base = np.asarray(base, dtype=np.float64)
    n = leaves.shape[0]
    if n_class == 1:  # one output: the summed first weights, the label their sign
        s = _reduce(np.add, table.first, leaves, 0.0)[:, 0]
        s = s + (base[0] if base.size == 1 else base[1] if base.size == 2 else 0.0)
        z = s.astype(np.float32)[:, None]
        return (s > 0).astype(np.intp), (probit(z) if post == "PROBIT" else z)
    s = _reduce(np.add, table.sum, leaves, 0.0)
    has = _reduce(np.logical_or, table.has, leaves, False)
    if n_class > 2:
        k = min(base.size, n_class)
        s[:, :k] += base[:k]
        has[:, :k] = True
        top = np.argmax(np.where(has, s, -np.inf), axis=1)
        return top, transform(s.astype(np.float32), post)
    p0, p1, h0, h1 = s[:, 0], s[:, 1], has[:, 0], has[:, 1]
    two = np.ones(n, dtype=bool)  # whether the scores keep two entries
    extra = -1
    if base.size == 2:
        p0, p1 = np.where(h1, -(base[1] + p0), p0 + base[0]), np.where(h1, base[1] + p0, p1 + base[1])
    elif base.size == 1:
        p0 = p0 + base[0]
        two = h1
    elif base.size == 0:
        extra = 3
        two = h1
    pos = np.where(two & h1, p1, np.where(h0, p0, 0.0))
    # scores no leaf contributed to read as 0 whatever base value was added
    p0, p1 = np.where(h0, p0, 0.0), np.where(h1, p1, 0.0)
    if binary_case:
        win = pos > 0.5 if all_positive else pos > 0
        extra = np.where(win, 0, 1) if all_positive else np.where(win, 2, 3)
    else:
        win = pos > 0
        extra = np.full(n, extra)
    top = win.astype(np.intp)
    z = np.zeros((n, 2), dtype=np.float32)
    if two.any():
        z[two] = transform(np.stack([p0[two], p1[two]], axis=1).astype(np.float32), post)
    one = ~two
    if one.any():
        v, e = p0[one].astype(np.float32), extra[one]
        if post == "PROBIT":
            z[one, 0] = probit(v)
        else:
            flip = (e == 0) | (e == 1)
            mixed = (e == 2) | (e == 3)
            if post == "LOGISTIC":
                v = np.where(flip | mixed, logistic(v), v)
                mixed, flip = np.zeros_like(mixed), flip | mixed
            lo = np.where(flip, 1 - v, np.where(mixed, -v, v))
            hi = np.where(flip | mixed, v, 0)
            z[one, 0], z[one, 1] = lo, hi
    return top, z


# -- kernels ---------------------------------------------------------------------------------


@kernel("TreeEnsembleClassifier", since=1, domain=ML, dtypes=NUMERIC, factory=True, multi_output=True)
@kernel("TreeEnsembleClassifier", since=3, domain=ML, dtypes=NUMERIC, factory=True, multi_output=True)
def tree_ensemble_classifier(
    ctx, *, base_values=None, base_values_as_tensor=None, class_ids=None, class_nodeids=None,
    class_treeids=None, class_weights=None, class_weights_as_tensor=None, classlabels_int64s=None,
    classlabels_strings=None, nodes_falsenodeids=None, nodes_featureids=None, nodes_hitrates=None,
    nodes_hitrates_as_tensor=None, nodes_missing_value_tracks_true=None, nodes_modes=None,
    nodes_nodeids=None, nodes_treeids=None, nodes_truenodeids=None, nodes_values=None,
    nodes_values_as_tensor=None, post_transform="NONE",
):
    """TreeEnsembleClassifier-1/3: summed class weights, the top class as label."""
    post = post_transform_name(post_transform)
    labels = class_labels(classlabels_int64s, classlabels_strings)
    if labels is None:
        raise ValueError("TreeEnsembleClassifier needs classlabels_int64s or classlabels_strings")
    use_strings = bool(classlabels_strings)
    forest, index = _forest_v3(
        list(nodes_treeids or []), list(nodes_nodeids or []), list(nodes_featureids or []),
        _tensor_or(nodes_values_as_tensor, nodes_values), list(nodes_modes or []),
        list(nodes_truenodeids or []), list(nodes_falsenodeids or []), nodes_missing_value_tracks_true,
    )
    weights = _tensor_or(class_weights_as_tensor, class_weights)
    ids = list(class_ids or [])
    table = _table_v3(forest, index, list(class_treeids or []), list(class_nodeids or []), ids, weights, len(labels))
    base = _tensor_or(base_values_as_tensor, base_values)
    binary_case = len(labels) == 2 and len(set(ids)) == 1
    all_positive = all(w >= 0 for w in weights)
    # with two classes and no binary special case onnxruntime answers the literal labels 0 and 1
    literal = len(labels) <= 2 and not binary_case and not use_strings

    def scores(x):
        return _classification(table, forest.leaves(x), post, base, labels, binary_case, all_positive)

    def run(x, /):
        top, z = _by_rows(as_matrix(x, "TreeEnsembleClassifier"), forest.roots.size, scores)
        if literal:
            label = top.astype(np.int64)
        else:
            label = labels[np.minimum(top, len(labels) - 1)]
            if use_strings:
                label = strings(label.tolist())
        return label, z

    return run


@kernel("TreeEnsembleRegressor", since=1, domain=ML, dtypes=NUMERIC, factory=True)
@kernel("TreeEnsembleRegressor", since=3, domain=ML, dtypes=NUMERIC, factory=True)
def tree_ensemble_regressor(
    ctx, *, aggregate_function="SUM", base_values=None, base_values_as_tensor=None, n_targets=None,
    nodes_falsenodeids=None, nodes_featureids=None, nodes_hitrates=None, nodes_hitrates_as_tensor=None,
    nodes_missing_value_tracks_true=None, nodes_modes=None, nodes_nodeids=None, nodes_treeids=None,
    nodes_truenodeids=None, nodes_values=None, nodes_values_as_tensor=None, post_transform="NONE",
    target_ids=None, target_nodeids=None, target_treeids=None, target_weights=None,
    target_weights_as_tensor=None,
):
    """TreeEnsembleRegressor-1/3: leaf weights aggregated per target over the trees."""
    post = post_transform_name(post_transform)
    if aggregate_function not in _AGGREGATES:
        raise ValueError(f"unknown aggregate_function {aggregate_function!r}")
    if not n_targets or n_targets < 1:
        raise ValueError("TreeEnsembleRegressor needs n_targets >= 1")
    forest, index = _forest_v3(
        list(nodes_treeids or []), list(nodes_nodeids or []), list(nodes_featureids or []),
        _tensor_or(nodes_values_as_tensor, nodes_values), list(nodes_modes or []),
        list(nodes_truenodeids or []), list(nodes_falsenodeids or []), nodes_missing_value_tracks_true,
    )
    table = _table_v3(forest, index, list(target_treeids or []), list(target_nodeids or []),
                      list(target_ids or []), _tensor_or(target_weights_as_tensor, target_weights), n_targets)
    base = _tensor_or(base_values_as_tensor, base_values)

    def scores(x):
        return _regression(forest, table, forest.leaves(x), aggregate_function, post, base, n_targets, np.float32)

    def run(x, /):
        return _by_rows(as_matrix(x, "TreeEnsembleRegressor"), forest.roots.size, scores)

    return run


@kernel("TreeEnsemble", since=5, domain=ML, dtypes=(np.float32, np.float64, np.float16), factory=True)
def tree_ensemble(
    ctx, *, aggregate_function=1, leaf_targetids, leaf_weights, membership_values=None, n_targets=None,
    nodes_falseleafs, nodes_falsenodeids, nodes_featureids, nodes_hitrates=None,
    nodes_missing_value_tracks_true=None, nodes_modes, nodes_splits, nodes_trueleafs, nodes_truenodeids,
    post_transform=0, tree_roots,
):
    """TreeEnsemble-5: branch nodes and leaves in separate attributes, set-membership splits."""
    post = post_transform_name(post_transform)
    if not 0 <= aggregate_function < len(_AGGREGATES):
        raise ValueError(f"unknown aggregate_function {aggregate_function!r}")
    aggregate = _AGGREGATES[aggregate_function]
    if not n_targets or n_targets < 1:
        raise ValueError("TreeEnsemble needs n_targets >= 1")
    forest, table = _forest_v5(
        list(nodes_featureids), nodes_splits, nodes_modes, list(nodes_truenodeids), list(nodes_falsenodeids),
        list(nodes_trueleafs), list(nodes_falseleafs), nodes_missing_value_tracks_true, membership_values,
        list(tree_roots), list(leaf_targetids), leaf_weights, n_targets,
    )

    def run(x, /):
        def scores(rows):
            return _regression(forest, table, forest.leaves(rows), aggregate, post, [], n_targets, x.dtype)

        return _by_rows(as_matrix(x, "TreeEnsemble"), forest.roots.size, scores)

    return run
