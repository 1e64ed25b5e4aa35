"""ai.onnx.ml kernels on one-node models: what the ONNX node cases and the scikit-learn
models leave out (post-transforms, binary special cases, missing values, every
LabelEncoder type, maps).

Expected values come from onnxruntime on the same model, except where
onnxruntime is known to differ from the specification (each such place says
why and uses onnx.reference or values worked out by hand instead).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import ortcore

onnxruntime.set_default_logger_severity(3)
POSTS = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]
F, D, I64, I32, STR = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64, TensorProto.INT32, TensorProto.STRING


def _model(op, inputs, outputs, *, ml_opset=1, **attrs):
    """One ai.onnx.ml node: inputs and outputs are (name, elem_type or TypeProto, shape) triples."""

    def info(name, t, shape=None):
        if isinstance(t, onnx.TypeProto):
            return helper.make_value_info(name, t)
        return helper.make_tensor_value_info(name, t, shape)

    node = helper.make_node(op, [i[0] for i in inputs], [o[0] for o in outputs], domain="ai.onnx.ml", **attrs)
    graph = helper.make_graph([node], "g", [info(*i) for i in inputs], [info(*o) for o in outputs])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", ml_opset)]
    )
    model.ir_version = 10
    return model.SerializeToString()


def _run(model, feeds):
    ours = ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)
    theirs = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)
    return ours, theirs


def _same(ours, theirs, rtol=1e-5, atol=1e-6):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert isinstance(a, np.ndarray), type(a)
        assert a.shape == b.shape, (a.shape, b.shape)
        if b.dtype.kind in "OUS":
            assert a.dtype == object
            assert a.tolist() == b.tolist()
        else:
            assert a.dtype == b.dtype, (a.dtype, b.dtype)
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


def _check(model, feeds, **tol):
    _same(*_run(model, feeds), **tol)


RNG = np.random.default_rng(0)
X3 = RNG.normal(size=(40, 3)).astype(np.float32)


# -- linear models ---------------------------------------------------------------------------------


@pytest.mark.parametrize("post", POSTS)
@pytest.mark.parametrize("labels", ["int", "str", "int-binary", "str-binary", "none-binary"])
def test_linear_classifier(post, labels):
    k = 1 if labels.endswith("binary") else 3
    attrs = {"coefficients": RNG.normal(size=3 * k).tolist(), "intercepts": RNG.normal(size=k).tolist(),
             "post_transform": post}
    label_type = STR if labels.startswith("str") else I64
    if labels == "int":
        attrs["classlabels_ints"] = [3, 5, 9]
    elif labels == "str":
        attrs["classlabels_strings"] = ["a", "b", "c"]
    elif labels == "int-binary":
        attrs["classlabels_ints"] = [4, 7]
    elif labels == "str-binary":
        attrs["classlabels_strings"] = ["no", "yes"]
    model = _model("LinearClassifier", [("X", F, [None, 3])], [("L", label_type), ("S", F)], **attrs)
    ours, theirs = _run(model, {"X": X3})
    if post == "PROBIT" and labels in ("int-binary", "str-binary"):
        # onnxruntime writes these scores packed in the wrong layout; ours are [1 - p, p]
        raw = X3 @ np.asarray(attrs["coefficients"], np.float32) + np.float32(attrs["intercepts"][0])
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_allclose(ours[1][:, 1], theirs[1].ravel()[: len(X3)], rtol=1e-4, atol=1e-5, equal_nan=True)
        np.testing.assert_allclose(ours[1][:, 0], 1 - ours[1][:, 1], equal_nan=True)
        assert (ours[0] == (np.array(attrs.get("classlabels_ints") or attrs["classlabels_strings"],
                                     dtype=object)[(raw > 0).astype(int)])).all()
        return
    _same(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
def test_linear_classifier_input_types(dtype):
    attrs = {"coefficients": RNG.normal(size=6).tolist(), "intercepts": [0.5, -0.5], "classlabels_ints": [0, 1],
             "post_transform": "SOFTMAX"}
    elem = {np.float64: D, np.int64: I64, np.int32: I32}[dtype]
    model = _model("LinearClassifier", [("X", elem, [None, 3])], [("L", I64), ("S", F)], **attrs)
    _check(model, {"X": (X3 * 4).astype(dtype)}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("post", POSTS)
@pytest.mark.parametrize("targets", [1, 3])
def test_linear_regressor(post, targets):
    attrs = {"targets": targets, "post_transform": post, "coefficients": RNG.normal(size=3 * targets).tolist(),
             "intercepts": RNG.normal(size=targets).tolist()}
    _check(_model("LinearRegressor", [("X", F, [None, 3])], [("Y", F)], **attrs), {"X": X3}, rtol=1e-4, atol=1e-5)
    # a 1-D input is one sample
    _check(_model("LinearRegressor", [("X", F, [3])], [("Y", F)], **attrs), {"X": X3[0]}, rtol=1e-4, atol=1e-5)


# -- support vector machines ---------------------------------------------------------------------


def _svc_attrs(kernel, n_class, proba, labels, post):
    counts = RNG.integers(1, 4, size=n_class).tolist()
    n_vec, n_pairs = sum(counts), n_class * (n_class - 1) // 2
    attrs = {"kernel_type": kernel, "kernel_params": [0.3, 0.5, 3.0], "post_transform": post,
             "vectors_per_class": counts, "support_vectors": RNG.normal(size=3 * n_vec).tolist(),
             "coefficients": RNG.normal(size=(n_class - 1) * n_vec).tolist(), "rho": RNG.normal(size=n_pairs).tolist()}
    if proba:
        attrs["prob_a"] = (-3 * RNG.random(n_pairs)).tolist()
        attrs["prob_b"] = RNG.normal(size=n_pairs).tolist()
    if labels == "str":
        attrs["classlabels_strings"] = [f"c{i}" for i in range(n_class)]
    else:
        attrs["classlabels_ints"] = list(range(10, 10 + n_class))
    return attrs


@pytest.mark.parametrize("kernel", ["LINEAR", "POLY", "RBF", "SIGMOID"])
@pytest.mark.parametrize("n_class", [2, 3, 4])
def test_svm_classifier(kernel, n_class):
    for proba in (False, True):
        for post in POSTS:
            # PROBIT: onnxruntime leaves the second binary column unwritten, and sharpens float32
            # rounding differences near 0.5 beyond any useful tolerance
            if post == "PROBIT":
                continue
            labels = "str" if (n_class + proba) % 2 else "int"
            attrs = _svc_attrs(kernel, n_class, proba, labels, post)
            model = _model("SVMClassifier", [("X", F, [None, 3])], [("L", STR if labels == "str" else I64), ("S", F)],
                           **attrs)
            _check(model, {"X": X3}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n_class", [2, 3])
def test_svm_classifier_linear_mode(n_class):
    """No support vectors: liblinear-style coefficients per class."""
    for post in POSTS[:4]:
        for positive in (False, True):
            coef = RNG.normal(size=3 * n_class)
            model = _model("SVMClassifier", [("X", F, [None, 3])], [("L", I64), ("S", F)], post_transform=post,
                           coefficients=(np.abs(coef) if positive else coef).tolist(), rho=[0.2],
                           kernel_params=[0.1, 0.0, 1.0], classlabels_ints=list(range(n_class)))
            _check(model, {"X": X3}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel", ["LINEAR", "POLY", "RBF", "SIGMOID"])
def test_svm_regressor(kernel):
    for n_supports in (0, 5):
        for one_class in (0, 1):
            attrs = {"kernel_type": kernel, "kernel_params": [0.3, 0.5, 3.0], "n_supports": n_supports,
                     "one_class": one_class, "rho": [0.1],
                     "coefficients": RNG.normal(size=n_supports or 3).tolist()}
            if n_supports:
                attrs["support_vectors"] = RNG.normal(size=3 * n_supports).tolist()
            model = _model("SVMRegressor", [("X", F, [None, 3])], [("Y", F)], **attrs)
            _check(model, {"X": X3}, rtol=1e-4, atol=1e-5)


# -- tree ensembles ----------------------------------------------------------------------------------


def _random_trees(n_trees, n_features, modes, depth=3, rng=RNG):
    """Trees as lists of dicts: tree, node, feature, value, mode, true, false (leaves have mode LEAF)."""
    nodes = []

    def build(tree, counter, level):
        nid = counter[0]
        counter[0] += 1
        if level == depth or (level > 0 and rng.random() < 0.2):
            nodes.append({"tree": tree, "node": nid, "feature": 0, "value": 0.0, "mode": "LEAF", "true": 0, "false": 0})
            return nid
        entry = {"tree": tree, "node": nid, "feature": int(rng.integers(n_features)),
                 "value": float(np.float32(np.round(rng.normal(), 1))), "mode": str(rng.choice(modes))}
        nodes.append(entry)
        entry["true"] = build(tree, counter, level + 1)
        entry["false"] = build(tree, counter, level + 1)
        return nid

    for tree in range(n_trees):
        build(tree, [0], 0)
    return nodes


def _tree_attrs(nodes, weights, prefix, missing=False, rng=RNG):
    attrs = {
        "nodes_treeids": [n["tree"] for n in nodes], "nodes_nodeids": [n["node"] for n in nodes],
        "nodes_featureids": [n["feature"] for n in nodes], "nodes_values": [n["value"] for n in nodes],
        "nodes_modes": [n["mode"] for n in nodes], "nodes_truenodeids": [n["true"] for n in nodes],
        "nodes_falsenodeids": [n["false"] for n in nodes],
        f"{prefix}_treeids": [w[0] for w in weights], f"{prefix}_nodeids": [w[1] for w in weights],
        f"{prefix}_ids": [w[2] for w in weights], f"{prefix}_weights": [w[3] for w in weights],
    }
    if missing:
        attrs["nodes_missing_value_tracks_true"] = [int(rng.random() < 0.5) for _ in nodes]
    return attrs


def _leaf_weights(nodes, n_out, layout, rng=RNG):
    """(tree, node, target, weight) per leaf: one column (``col0``/``col1``), all columns, one random
    column (``one``) or a random subset (``sparse``)."""
    out = []
    for n in nodes:
        if n["mode"] != "LEAF":
            continue
        if layout == "col0":
            ids = [0]
        elif layout == "col1":
            ids = [1]
        elif layout == "all":
            ids = list(range(n_out))
        elif layout == "one":
            ids = [int(rng.integers(n_out))]
        else:
            ids = sorted(rng.choice(n_out, size=int(rng.integers(1, n_out + 1)), replace=False).tolist())
        for c in ids:
            out.append((n["tree"], n["node"], c, float(np.float32(rng.normal()))))
    return out


XT = np.round(RNG.normal(size=(120, 4)), 1).astype(np.float32)  # rounded: many values equal a threshold
XT_NAN = XT.copy()
XT_NAN[RNG.random(XT.shape) < 0.15] = np.nan
ALL_MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]


@pytest.mark.parametrize("post", POSTS)
@pytest.mark.parametrize("n_class", [2, 3])
def test_tree_ensemble_classifier(post, n_class):
    cases = [("all", None), ("all", "full"), ("sparse", None), ("sparse", "full")]
    if n_class == 2:
        # a single weight column: onnxruntime's binary case ([1 - s, s] or [-s, s]); under PROBIT it leaves
        # the second column unwritten, so compare the first only
        cases += [("col0", None), ("col0", [0.3]), ("col1", None), ("positive", None)]
    for layout, base in cases:
        for labels in ("int", "str"):
            nodes = _random_trees(4, 4, ALL_MODES)
            weights = _leaf_weights(nodes, n_class, "col0" if layout == "positive" else layout)
            if layout == "positive":
                weights = [(t, n, c, abs(w)) for t, n, c, w in weights]
            attrs = _tree_attrs(nodes, weights, "class", missing=True)
            attrs["post_transform"] = post
            if base == "full":
                attrs["base_values"] = RNG.normal(size=n_class).tolist()
            elif base:
                attrs["base_values"] = base
            if labels == "int":
                attrs["classlabels_int64s"] = list(range(7, 7 + n_class))
            else:
                attrs["classlabels_strings"] = [f"k{i}" for i in range(n_class)]
            model = _model("TreeEnsembleClassifier", [("X", F, [None, 4])], [("L", I64 if labels == "int" else STR),
                                                                             ("S", F)], ml_opset=3, **attrs)
            ours, theirs = _run(model, {"X": XT_NAN})
            if n_class == 2 and layout != "all" and layout != "sparse" and post == "PROBIT":
                ours, theirs = [ours[0], ours[1][:, :1]], [theirs[0], theirs[1][:, :1]]
            if n_class == 2 and layout == "sparse":
                continue  # rows reaching only class-0 weights leave onnxruntime's second column unwritten
            _same(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("aggregate", ["SUM", "AVERAGE", "MIN", "MAX"])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_tree_ensemble_regressor(aggregate, n_targets):
    for post in POSTS:
        for layout in ("all", "sparse"):
            nodes = _random_trees(5, 4, ALL_MODES)
            attrs = _tree_attrs(nodes, _leaf_weights(nodes, n_targets, layout), "target", missing=True)
            attrs.update(n_targets=n_targets, aggregate_function=aggregate, post_transform=post,
                         base_values=RNG.normal(size=n_targets).tolist())
            model = _model("TreeEnsembleRegressor", [("X", F, [None, 4])], [("Y", F)], ml_opset=3, **attrs)
            # PROBIT turns float32 rounding near 0.5 into relative differences of ~1e-3
            tol = {"rtol": 5e-3, "atol": 1e-3} if post == "PROBIT" else {"rtol": 1e-4, "atol": 1e-5}
            _check(model, {"X": XT_NAN}, **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
def test_tree_ensemble_input_types(dtype):
    """Double and integer inputs, and double thresholds and weights (the *_as_tensor attributes)."""
    nodes = _random_trees(3, 4, ["BRANCH_LEQ", "BRANCH_GT"])
    attrs = _tree_attrs(nodes, _leaf_weights(nodes, 2, "all"), "target")
    if dtype == np.float64:
        attrs["nodes_values_as_tensor"] = numpy_helper.from_array(np.asarray(attrs.pop("nodes_values")) + 1e-9)
        attrs["target_weights_as_tensor"] = numpy_helper.from_array(np.asarray(attrs.pop("target_weights")))
        attrs["base_values_as_tensor"] = numpy_helper.from_array(np.array([0.25, -0.5]))
    elem = {np.float64: D, np.int64: I64, np.int32: I32}[dtype]
    x = XT if dtype == np.float64 else np.round(XT * 2)
    model = _model("TreeEnsembleRegressor", [("X", elem, [None, 4])], [("Y", F)], ml_opset=3, n_targets=2, **attrs)
    if dtype == np.float64:
        _check(model, {"X": x.astype(dtype)})
        return
    # onnxruntime has no integer TreeEnsembleRegressor: the same values as float32 are the reference
    as_float = _model("TreeEnsembleRegressor", [("X", F, [None, 4])], [("Y", F)], ml_opset=3, n_targets=2, **attrs)
    (ours,) = ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x.astype(dtype)})
    (theirs,) = onnxruntime.InferenceSession(as_float, providers=["CPUExecutionProvider"]).run(
        None, {"X": x.astype(np.float32)})
    _same([ours], [theirs])


def test_tree_ensemble_classifier_binary_literal_labels():
    """Two classes both carrying weights (no binary special case): onnxruntime answers the label
    values 1 and 0 themselves, not classlabels_int64s[1] and [0]."""
    nodes = _random_trees(3, 4, ["BRANCH_LEQ"])
    attrs = _tree_attrs(nodes, _leaf_weights(nodes, 2, "all"), "class")
    model = _model("TreeEnsembleClassifier", [("X", F, [None, 4])], [("L", I64), ("S", F)],
                   classlabels_int64s=[5, 8], **attrs)
    ours, theirs = _run(model, {"X": XT})
    _same(ours, theirs)
    assert set(ours[0].tolist()) <= {0, 1}


def test_tree_missing_values_track_true():
    """NaN goes to the true branch where nodes_missing_value_tracks_true says so, else to false."""
    attrs = {
        "nodes_treeids": [0, 0, 0], "nodes_nodeids": [0, 1, 2], "nodes_featureids": [0, 0, 0],
        "nodes_values": [0.5, 0.0, 0.0], "nodes_modes": ["BRANCH_LEQ", "LEAF", "LEAF"],
        "nodes_truenodeids": [1, 0, 0], "nodes_falsenodeids": [2, 0, 0],
        "target_treeids": [0, 0], "target_nodeids": [1, 2], "target_ids": [0, 0], "target_weights": [10.0, 20.0],
        "n_targets": 1,
    }
    x = np.array([[0.1], [0.9], [np.nan]], np.float32)
    for track, expected in ((0, 20.0), (1, 10.0)):
        model = _model("TreeEnsembleRegressor", [("X", F, [None, 1])], [("Y", F)],
                       nodes_missing_value_tracks_true=[track, 0, 0], **attrs)
        ours, theirs = _run(model, {"X": x})
        _same(ours, theirs)
        np.testing.assert_array_equal(ours[0].ravel(), [10.0, 20.0, expected])


def test_tree_ensemble_classifier_vectorized_many_samples():
    """Many samples and trees at once give what one sample at a time gives."""
    nodes = _random_trees(20, 4, ["BRANCH_LEQ"], depth=6)
    attrs = _tree_attrs(nodes, _leaf_weights(nodes, 3, "all"), "class")
    model = _model("TreeEnsembleClassifier", [("X", F, [None, 4])], [("L", I64), ("S", F)],
                   classlabels_int64s=[0, 1, 2], post_transform="SOFTMAX", **attrs)
    x = RNG.normal(size=(60000, 4)).astype(np.float32)  # 1.2M (sample, tree) pairs: two row blocks
    sess = ortcore.InferenceSession(model, providers=["CPUExecutionProvider"])
    label, scores = sess.run(None, {"X": x})
    for i in range(0, 60000, 7919):
        one_label, one_scores = sess.run(None, {"X": x[i : i + 1]})
        assert one_label[0] == label[i]
        np.testing.assert_allclose(one_scores[0], scores[i], rtol=1e-6)
    _check(model, {"X": x}, rtol=1e-5, atol=1e-6)


# -- TreeEnsemble (ai.onnx.ml 5) ----------------------------------------------------------------------


def _v5_from_nodes(nodes, weights, n_targets, *, member_sets=None, dtype=np.float32):
    """TreeEnsemble-5 attributes for the same trees as ``_tree_attrs`` (one weight per leaf).

    ``member_sets`` maps a node position to a set: that node becomes BRANCH_MEMBER.
    """
    codes = {m: i for i, m in enumerate(ALL_MODES)}
    branch = [i for i, n in enumerate(nodes) if n["mode"] != "LEAF"]
    leaves = [i for i, n in enumerate(nodes) if n["mode"] == "LEAF"]
    bpos = {(nodes[i]["tree"], nodes[i]["node"]): k for k, i in enumerate(branch)}
    lpos = {(nodes[i]["tree"], nodes[i]["node"]): k for k, i in enumerate(leaves)}
    target = {(t, n): (c, w) for t, n, c, w in weights}
    member_sets = member_sets or {}
    attrs = {"nodes_featureids": [], "nodes_modes": [], "nodes_splits": [], "nodes_truenodeids": [],
             "nodes_falsenodeids": [], "nodes_trueleafs": [], "nodes_falseleafs": []}
    members = []
    for k, i in enumerate(branch):
        n = nodes[i]
        attrs["nodes_featureids"].append(n["feature"])
        if k in member_sets:
            attrs["nodes_modes"].append(6)
            members += list(member_sets[k]) + [np.nan]
        else:
            attrs["nodes_modes"].append(codes[n["mode"]])
        attrs["nodes_splits"].append(n["value"])
        for side in ("true", "false"):
            key = (n["tree"], n[side])
            leaf = key in lpos
            attrs[f"nodes_{side}nodeids"].append(lpos[key] if leaf else bpos[key])
            attrs[f"nodes_{side}leafs"].append(int(leaf))
    roots = sorted({bpos[(n["tree"], n["node"])] for n in nodes if n["node"] == 0 and n["mode"] != "LEAF"})
    attrs["tree_roots"] = roots
    attrs["leaf_targetids"] = [target[(nodes[i]["tree"], nodes[i]["node"])][0] for i in leaves]
    attrs["leaf_weights"] = numpy_helper.from_array(
        np.array([target[(nodes[i]["tree"], nodes[i]["node"])][1] for i in leaves], dtype=dtype))
    attrs["nodes_modes"] = numpy_helper.from_array(np.array(attrs["nodes_modes"], dtype=np.uint8))
    attrs["nodes_splits"] = numpy_helper.from_array(np.array(attrs["nodes_splits"], dtype=dtype))
    if members:
        attrs["membership_values"] = numpy_helper.from_array(np.array(members, dtype=dtype))
    attrs["n_targets"] = n_targets
    return attrs


@pytest.mark.parametrize("aggregate", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tree_ensemble_v5(aggregate, dtype):
    """TreeEnsemble-5 against onnxruntime's TreeEnsembleRegressor on the same trees.

    onnxruntime's own TreeEnsemble-5 reads post_transform 1 as LOGISTIC and 2 as SOFTMAX, the
    reverse of the specification (1 SOFTMAX, 2 LOGISTIC); the older op spells the names out.
    """
    elem = F if dtype == np.float32 else D
    for n_targets in (1, 3):
        nodes = _random_trees(4, 4, ALL_MODES)
        weights = _leaf_weights(nodes, n_targets, "one")
        v3 = _tree_attrs(nodes, weights, "target", missing=False)
        v5 = _v5_from_nodes(nodes, weights, n_targets, dtype=dtype)
        for post in range(5):
            reference = _model("TreeEnsembleRegressor", [("X", F, [None, 4])], [("Y", F)], ml_opset=3,
                               n_targets=n_targets, aggregate_function=["AVERAGE", "SUM", "MIN", "MAX"][aggregate],
                               post_transform=["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"][post], **v3)
            model = _model("TreeEnsemble", [("X", elem, [None, 4])], [("Y", elem)], ml_opset=5,
                           aggregate_function=aggregate, post_transform=post, **v5)
            x = XT_NAN.astype(dtype)
            (ours,) = ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x})
            (expected,) = onnxruntime.InferenceSession(reference, providers=["CPUExecutionProvider"]).run(
                None, {"X": XT_NAN})
            assert ours.dtype == dtype and ours.shape == expected.shape
            tol = {"rtol": 5e-3, "atol": 1e-3} if post == 4 else {"rtol": 1e-4, "atol": 1e-5}
            np.testing.assert_allclose(ours, expected, equal_nan=True, **tol)
            if post in (0, 3, 4):  # where onnxruntime's TreeEnsemble-5 agrees with the specification
                _check(model, {"X": x}, **tol)


def test_tree_ensemble_v5_membership():
    """BRANCH_MEMBER nodes, with missing values tracking true on some."""
    nodes = _random_trees(4, 4, ["BRANCH_LEQ", "BRANCH_GT"])
    weights = _leaf_weights(nodes, 2, "one")
    n_branch = sum(n["mode"] != "LEAF" for n in nodes)
    sets = {k: sorted(RNG.choice([1, 2, 3, 4, 5, 7, 0.5], size=int(RNG.integers(1, 4)), replace=False).tolist())
            for k in range(n_branch) if RNG.random() < 0.5}
    attrs = _v5_from_nodes(nodes, weights, 2, member_sets=sets)
    attrs["nodes_missing_value_tracks_true"] = [int(RNG.random() < 0.5) for _ in range(n_branch)]
    model = _model("TreeEnsemble", [("X", F, [None, 4])], [("Y", F)], ml_opset=5, **attrs)
    x = np.round(np.abs(RNG.normal(size=(300, 4))) * 3, 0).astype(np.float32) + RNG.choice([0, 0, 0.5], (300, 4))
    x[RNG.random(x.shape) < 0.1] = np.nan
    _check(model, {"X": x.astype(np.float32)}, rtol=1e-5, atol=1e-6)


def test_tree_ensemble_v5_membership_is_set_inclusion():
    """x in {-1, 0}, worked out by hand: onnxruntime 1.31 also sends -0.5 and 0.5 to the true branch
    when a set holds 0 and a negative value, and onnx.reference stops reading a set at a 0.0 member;
    the specification tests plain set inclusion."""
    attrs = {
        "nodes_featureids": [0], "nodes_modes": numpy_helper.from_array(np.array([6], np.uint8)),
        "nodes_splits": numpy_helper.from_array(np.array([0.0], np.float32)),
        "membership_values": numpy_helper.from_array(np.array([-1.0, 0.0, np.nan], np.float32)),
        "nodes_truenodeids": [0], "nodes_falsenodeids": [1], "nodes_trueleafs": [1], "nodes_falseleafs": [1],
        "leaf_targetids": [0, 0], "leaf_weights": numpy_helper.from_array(np.array([1.0, 2.0], np.float32)),
        "tree_roots": [0], "n_targets": 1,
    }
    model = _model("TreeEnsemble", [("X", F, [None, 1])], [("Y", F)], ml_opset=5, **attrs)
    x = np.array([[-1], [-0.5], [0], [0.5], [1], [np.nan]], np.float32)
    (ours,) = ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x})
    np.testing.assert_array_equal(ours.ravel(), [1, 2, 1, 2, 2, 2])


def test_tree_ensemble_v5_single_leaf_tree():
    """A tree that is one leaf: both branches of its root name the same leaf (at the root's index)."""
    attrs = {
        "nodes_featureids": [0, 0], "nodes_modes": numpy_helper.from_array(np.array([0, 0], np.uint8)),
        "nodes_splits": numpy_helper.from_array(np.array([0.0, 0.5], np.float32)),
        "nodes_truenodeids": [0, 1], "nodes_falsenodeids": [0, 2], "nodes_trueleafs": [1, 1],
        "nodes_falseleafs": [1, 1], "leaf_targetids": [0, 0, 0],
        "leaf_weights": numpy_helper.from_array(np.array([1.0, 10.0, 100.0], np.float32)),
        "tree_roots": [0, 1], "n_targets": 1,
    }
    model = _model("TreeEnsemble", [("X", F, [None, 1])], [("Y", F)], ml_opset=5, **attrs)
    x = np.array([[0.0], [1.0]], np.float32)
    _check(model, {"X": x})
    (ours,) = ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x})
    np.testing.assert_array_equal(ours.ravel(), [11.0, 101.0])


# -- preprocessing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_normalizer(norm, dtype):
    elem = {np.float32: F, np.float64: D, np.int64: I64, np.int32: I32}[dtype]
    for shape in [(7,), (5, 4)]:
        x = (RNG.normal(size=shape) * 5).astype(dtype)
        x[0] = 0  # a row (or column block) that sums to zero stays as is
        _check(_model("Normalizer", [("X", elem, list(shape))], [("Y", F)], norm=norm), {"X": x}, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_scaler(dtype):
    elem = {np.float32: F, np.float64: D, np.int64: I64, np.int32: I32}[dtype]
    x = (RNG.normal(size=(6, 3)) * 10).astype(dtype)
    for offset, scale in (([1.5], [0.5]), ([1.0, -2.0, 0.5], [2.0, 0.25, -1.0])):
        model = _model("Scaler", [("X", elem, [None, 3])], [("Y", F)], offset=offset, scale=scale)
        _check(model, {"X": x})


def test_binarizer():
    x = RNG.normal(size=(4, 5)).astype(np.float32)
    _check(_model("Binarizer", [("X", F, [4, 5])], [("Y", F)], threshold=0.2), {"X": x})
    _check(_model("Binarizer", [("X", F, [4, 5])], [("Y", F)]), {"X": x})


@pytest.mark.parametrize("per_column", [False, True])
def test_imputer(per_column):
    x = RNG.normal(size=(6, 3)).astype(np.float32)
    x[RNG.random(x.shape) < 0.3] = np.nan
    values = [1.0, 2.0, 3.0] if per_column else [-7.0]
    model = _model("Imputer", [("X", F, [None, 3])], [("Y", F)], imputed_value_floats=values,
                   replaced_value_float=float("nan"))
    _check(model, {"X": x})
    xi = RNG.integers(-2, 3, size=(6, 3)).astype(np.int64)
    model = _model("Imputer", [("X", I64, [None, 3])], [("Y", I64)], imputed_value_int64s=[9, 8, 7][: 3 if per_column else 1],
                   replaced_value_int64=0)
    _check(model, {"X": xi})
    x2 = np.where(np.isnan(x), np.float32(-1), x)
    model = _model("Imputer", [("X", F, [None, 3])], [("Y", F)], imputed_value_floats=values, replaced_value_float=-1.0)
    _check(model, {"X": x2})


def test_array_feature_extractor():
    x = RNG.normal(size=(3, 4, 5)).astype(np.float32)
    idx = np.array([4, 0, 2], np.int64)
    for data in (x, x[0], x[0, 0]):
        model = _model("ArrayFeatureExtractor", [("X", F, list(data.shape)), ("I", I64, [3])], [("Z", F)])
        _check(model, {"X": data, "I": idx})
    s = np.array([["a", "b", "c"], ["d", "e", "f"]], dtype=object)
    model = _model("ArrayFeatureExtractor", [("X", STR, [2, 3]), ("I", I64, [1, 2])], [("Z", STR)])
    _check(model, {"X": s, "I": np.array([[2, 1]], np.int64)})


def test_feature_vectorizer():
    a = RNG.normal(size=(4, 3)).astype(np.float32)
    b = RNG.normal(size=(4, 2)).astype(np.float32)
    c = RNG.normal(size=(4, 5)).astype(np.float32)
    model = _model("FeatureVectorizer", [("A", F, [4, 3]), ("B", F, [4, 2]), ("C", F, [4, 5])], [("Y", F)],
                   inputdimensions=[3, 4, 2])  # B zero-padded to 4 columns, C cut to 2
    _check(model, {"A": a, "B": b, "C": c})


def test_feature_vectorizer_mixed_types():
    """Inputs of different types (onnxruntime binds them all to one type): each cast to float32."""
    a = np.array([[1, 2], [3, 4]], np.int64)
    b = np.array([[0.5], [1.5]], np.float64)
    c = np.array([7, 8, 9], np.int32)  # 1-D: one row, broadcast to none -> must match the row count
    model = _model("FeatureVectorizer", [("A", I64, [2, 2]), ("B", D, [2, 1])], [("Y", F)], inputdimensions=[2, 2])
    (out,) = ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"A": a, "B": b})
    np.testing.assert_array_equal(out, np.array([[1, 2, 0.5, 0], [3, 4, 1.5, 0]], np.float32))
    assert out.dtype == np.float32
    model = _model("FeatureVectorizer", [("C", I32, [3])], [("Y", F)], inputdimensions=[4])
    (out,) = ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"C": c})
    np.testing.assert_array_equal(out, [[7, 8, 9, 0]])


# -- encoders ---------------------------------------------------------------------------------------


def _strings(values, shape=None):
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out if shape is None else out.reshape(shape)


def test_one_hot_encoder():
    cats = [3, 1, 7]
    for elem, dtype in ((I64, np.int64), (F, np.float32), (D, np.float64)):
        x = np.array([[1, 7], [2, 3], [3, 3]], dtype=dtype)
        _check(_model("OneHotEncoder", [("X", elem, [3, 2])], [("Y", F)], cats_int64s=cats), {"X": x})
    x = _strings(["b", "z", "a", "b"], (2, 2))
    _check(_model("OneHotEncoder", [("X", STR, [2, 2])], [("Y", F)], cats_strings=["a", "b", "c"]), {"X": x})
    model = _model("OneHotEncoder", [("X", STR, [2, 2])], [("Y", F)], cats_strings=["a", "b"], zeros=0)
    with pytest.raises(ortcore.Fail, match="zeros=0"):
        ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x})


def test_label_encoder_1():
    classes = ["cat", "dog", "emu"]
    x = _strings(["dog", "yak", "emu"])
    _check(_model("LabelEncoder", [("X", STR, [3])], [("Y", I64)], classes_strings=classes, default_int64=-5), {"X": x})
    xi = np.array([[2, 0], [7, -1]], np.int64)
    _check(_model("LabelEncoder", [("X", I64, [2, 2])], [("Y", STR)], classes_strings=classes, default_string="?"),
           {"X": xi})


_KEYS = {
    "strings": (STR, ["a", "b", "c"], _strings(["c", "x", "a", "b", "a"])),
    "int64s": (I64, [4, -2, 9], np.array([9, 1, 4, -2, 4], np.int64)),
    "floats": (F, [0.5, -1.25, float("nan")], np.array([0.5, 2.0, np.nan, -1.25, 0.0], np.float32)),
}
_VALUES = {
    "strings": (STR, ["x", "y", "z"]),
    "int64s": (I64, [10, 20, 30]),
    "floats": (F, [1.5, 2.5, 3.5]),
}


@pytest.mark.parametrize("opset", [2, 4])
@pytest.mark.parametrize("keys", list(_KEYS))
@pytest.mark.parametrize("values", list(_VALUES))
def test_label_encoder(opset, keys, values):
    key_type, key_list, x = _KEYS[keys]
    value_type, value_list = _VALUES[values]
    attrs = {f"keys_{keys}": key_list, f"values_{values}": value_list}
    model = _model("LabelEncoder", [("X", key_type, [5])], [("Y", value_type)], ml_opset=opset, **attrs)
    if keys == "floats" and opset == 2:
        # LabelEncoder-2 maps a NaN key "bit-wise" by the specification; onnxruntime and onnx.reference
        # never match it, so the other elements are compared with onnxruntime and NaN by hand
        ours = ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
        theirs = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
        nan = np.isnan(x)
        assert ours[~nan].tolist() == theirs[~nan].tolist()
        assert ours[nan].tolist() == [value_list[2]]
        return
    _check(model, {"X": x})
    default = {"strings": "default_string", "int64s": "default_int64", "floats": "default_float"}[values]
    attrs[default] = {"strings": "none", "int64s": -9, "floats": 0.125}[values]
    _check(_model("LabelEncoder", [("X", key_type, [5])], [("Y", value_type)], ml_opset=opset, **attrs), {"X": x})


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.float64, np.float32, object])
def test_label_encoder_4_tensors(dtype):
    """keys_tensor / values_tensor / default_tensor of each type."""
    keys = _strings(["p", "q", "r"]) if dtype is object else np.array([3, -1, 8], dtype=dtype)
    values = np.array([7, 8, 9], dtype=np.int16) if dtype is object else _strings(["p", "q", "r"])
    elem = {np.int64: I64, np.int32: I32, np.int16: TensorProto.INT16, np.float64: D, np.float32: F, object: STR}[dtype]
    x = _strings(["q", "z", "p"]) if dtype is object else np.array([8, 0, 3, -1], dtype=dtype)
    default = np.array([-4], np.int16) if dtype is object else _strings(["?"])
    model = _model("LabelEncoder", [("X", elem, list(x.shape))], [("Y", TensorProto.INT16 if dtype is object else STR)],
                   ml_opset=4, keys_tensor=numpy_helper.from_array(keys), values_tensor=numpy_helper.from_array(values),
                   default_tensor=numpy_helper.from_array(default))
    (ours,) = ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x})
    expected = [8, -4, 7] if dtype is object else ["r", "?", "p", "q"]
    assert ours.tolist() == expected
    assert ours.dtype == (np.int16 if dtype is object else object)
    if dtype in (np.int64, np.float32, np.float64):
        _check(model, {"X": x})


def test_label_encoder_4_repeated_key_last_wins():
    model = _model("LabelEncoder", [("X", I64, [3])], [("Y", I64)], ml_opset=4,
                   keys_int64s=[1, 2, 1], values_int64s=[10, 20, 30])
    (ours,) = ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(
        None, {"X": np.array([1, 2, 3], np.int64)})
    assert ours.tolist() == [30, 20, -1]


def test_category_mapper():
    attrs = {"cats_strings": ["lo", "mid", "hi"], "cats_int64s": [1, 5, 9]}
    x = _strings(["hi", "zz", "lo", "mid"], (2, 2))
    _check(_model("CategoryMapper", [("X", STR, [2, 2])], [("Y", I64)], default_int64=-3, **attrs), {"X": x})
    xi = np.array([9, 2, 1], np.int64)
    _check(_model("CategoryMapper", [("X", I64, [3])], [("Y", STR)], default_string="n/a", **attrs), {"X": xi})
    _check(_model("CategoryMapper", [("X", I64, [3])], [("Y", STR)], **attrs), {"X": xi})


# -- maps ---------------------------------------------------------------------------------------------


def _map_type(key, value):
    return helper.make_map_type_proto(key, helper.make_tensor_type_proto(value, None))


@pytest.mark.parametrize("labels", ["int", "str"])
def test_zipmap(labels):
    keys = {"classlabels_int64s": [10, 2, 7]} if labels == "int" else {"classlabels_strings": ["b", "a", "c"]}
    key_type = I64 if labels == "int" else STR
    out_type = helper.make_sequence_type_proto(_map_type(key_type, F))
    model = _model("ZipMap", [("X", F, [None, 3])], [("Z", out_type)], **keys)
    x = RNG.random((4, 3)).astype(np.float32)
    ours, theirs = _run(model, {"X": x})
    assert isinstance(ours[0], list) and len(ours[0]) == 4
    for a, b in zip(ours[0], theirs[0]):
        assert list(a) == list(b)  # same keys in the same (ascending) order
        assert all(type(a[k]) is float for k in a)
        np.testing.assert_allclose([a[k] for k in b], [b[k] for k in b], rtol=1e-7)


@pytest.mark.parametrize("key,value", [(STR, F), (STR, D), (STR, I64), (I64, STR), (I64, F), (I64, D)])
def test_dict_vectorizer(key, value):
    vocab = ["a", "b", "c", "d"] if key == STR else [5, 1, 9]
    feed = {"a": 1.5, "c": -2.0, "zz": 4.0} if key == STR else {9: 3.0, 5: 0.25, 2: 1.0}
    dtype = {F: np.float32, D: np.float64, I64: np.int64, STR: object}[value]
    if value == STR:
        feed = {k: f"v{k}" for k in feed}
    elif value == I64:
        feed = {k: int(v * 4) for k, v in feed.items()}
    model = _model("DictVectorizer", [("X", _map_type(key, value))], [("Y", value)],
                   **({"string_vocabulary": vocab} if key == STR else {"int64_vocabulary": vocab}))
    sess = ortcore.InferenceSession(model, providers=["CPUExecutionProvider"])
    (ours,) = sess.run(None, {"X": feed})
    expected = np.array([[feed.get(k, "" if value == STR else 0) for k in vocab]], dtype=dtype)
    assert ours.dtype == expected.dtype and ours.tolist() == expected.tolist()
    if value == F:  # the map values onnxruntime's Python API can feed
        _check(model, {"X": feed})
    # a list of maps: one row each
    (rows,) = sess.run(None, {"X": [feed, {}, feed]})
    assert rows.shape == (3, len(vocab)) and rows.dtype == expected.dtype
    assert rows[0].tolist() == rows[2].tolist() == expected[0].tolist()


@pytest.mark.parametrize("cast_to", ["TO_FLOAT", "TO_INT64"])
@pytest.mark.parametrize("map_form", ["DENSE", "SPARSE"])
def test_cast_map(cast_to, map_form):
    """map(int64, float) against onnxruntime (its Python API cannot feed map(int64, string))."""
    model = _model("CastMap", [("X", _map_type(I64, F))], [("Y", F if cast_to == "TO_FLOAT" else I64)],
                   cast_to=cast_to, map_form=map_form, max_map=5)
    _check(model, {"X": {3: 1.5, 0: -2.25, 1: 7.0}})


def test_cast_map_strings():
    """String values parsed as numbers, and floats written with C's %f; SPARSE pads with "0.f"."""
    def run(value, out, feed, **attrs):
        model = _model("CastMap", [("X", _map_type(I64, value))], [("Y", out)], **attrs)
        return ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": feed})[0]

    out = run(F, STR, {2: 1.5, 0: -3.0}, cast_to="TO_STRING", map_form="SPARSE", max_map=4)
    assert out.tolist() == [["-3.000000", "0.f", "1.500000", "0.f"]]
    out = run(STR, F, {3: "4.5", 0: "-2"}, cast_to="TO_FLOAT")
    assert out.dtype == np.float32 and out.tolist() == [[-2.0, 4.5]]
    out = run(STR, I64, {3: "4", 1: "-2"}, cast_to="TO_INT64", map_form="SPARSE", max_map=5)
    assert out.dtype == np.int64 and out.tolist() == [[0, -2, 0, 4, 0]]
    out = run(STR, STR, {1: "b", 0: "a"}, cast_to="TO_STRING")
    assert out.tolist() == [["a", "b"]]
