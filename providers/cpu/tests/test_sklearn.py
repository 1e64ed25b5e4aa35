"""scikit-learn models converted by skl2onnx, run on the CPU provider.

Each model is trained on seeded synthetic data (or iris) and converted with
skl2onnx; labels must equal scikit-learn's ``predict`` exactly, probabilities and
regression values must be close to ``predict_proba`` / ``predict`` (the model
runs in float32), and every output must match onnxruntime on the same model,
the ZipMap output (a list of dicts) included.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import (
    DictionaryType,
    FloatTensorType,
    Int64TensorType,
    StringTensorType,
)
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR

import ortcore

# ai.onnx.ml 3 is the newest domain version skl2onnx writes (TreeEnsemble* with *_as_tensor)
OPSET = {"": 21, "ai.onnx.ml": 3}


def _data(kind, n_classes=2, seed=0):
    if kind == "iris":
        x, y = load_iris(return_X_y=True)
    elif kind == "classification":
        x, y = make_classification(
            n_samples=240, n_features=6, n_informative=4, n_redundant=0, n_classes=n_classes,
            n_clusters_per_class=1, random_state=seed,
        )
    else:
        x, y = make_regression(n_samples=240, n_features=6, noise=5.0, random_state=seed)
    x = x.astype(np.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    cut = len(x) * 2 // 3
    return x[:cut], y[:cut], x[cut:], y[cut:]


def _sessions(onx):
    data = onx.SerializeToString()
    ours = ortcore.InferenceSession(data, providers=["CPUExecutionProvider"])
    theirs = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return ours, theirs


def _convert(model, x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return to_onnx(model, x[:1], target_opset=OPSET, **kwargs)


def _assert_zipmap_equal(ours, theirs):
    assert isinstance(ours, list) and len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert isinstance(a, dict) and set(a) == set(b)
        np.testing.assert_allclose([a[k] for k in b], [b[k] for k in b], rtol=1e-5, atol=1e-6)


def _check_classifier(model, x_train, y_train, x_test, *, proba_atol=1e-5):
    model.fit(x_train, y_train)
    expected_label = model.predict(x_test)
    expected_proba = model.predict_proba(x_test)
    # without ZipMap: label and probability tensors
    onx = _convert(model, x_test, options={id(model): {"zipmap": False}} if not isinstance(model, Pipeline)
                   else {id(model.steps[-1][1]): {"zipmap": False}})
    ours, theirs = _sessions(onx)
    label, proba = ours.run(None, {"X": x_test})
    ort_label, ort_proba = theirs.run(None, {"X": x_test})
    np.testing.assert_array_equal(label, expected_label)
    np.testing.assert_allclose(proba, expected_proba, rtol=1e-4, atol=proba_atol)
    np.testing.assert_array_equal(label, ort_label)
    assert proba.dtype == ort_proba.dtype and proba.shape == ort_proba.shape
    np.testing.assert_allclose(proba, ort_proba, rtol=1e-4, atol=1e-5)
    # with ZipMap (skl2onnx's default): a list of {class: probability}
    onx = _convert(model, x_test)
    ours, theirs = _sessions(onx)
    label, zipped = ours.run(None, {"X": x_test})
    ort_label, ort_zipped = theirs.run(None, {"X": x_test})
    np.testing.assert_array_equal(label, expected_label)
    _assert_zipmap_equal(zipped, ort_zipped)
    classes = list(model.classes_)
    np.testing.assert_allclose([[row[c] for c in classes] for row in zipped], expected_proba,
                               rtol=1e-4, atol=proba_atol)


def _check_regressor(model, x_train, y_train, x_test, rtol=1e-4):
    model.fit(x_train, y_train)
    expected = model.predict(x_test)
    ours, theirs = _sessions(_convert(model, x_test))
    (y,) = ours.run(None, {"X": x_test})
    (ort_y,) = theirs.run(None, {"X": x_test})
    scale = np.abs(expected).max()
    np.testing.assert_allclose(y.ravel(), expected, rtol=rtol, atol=rtol * scale)
    assert y.dtype == ort_y.dtype and y.shape == ort_y.shape
    np.testing.assert_allclose(y, ort_y, rtol=1e-5, atol=1e-5 * scale)


# -- classifiers -------------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["iris", "binary"])
def test_random_forest_classifier(data):
    x, y, xt, _ = _data("iris") if data == "iris" else _data("classification", 2, seed=1)
    _check_classifier(RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0), x, y, xt)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_gradient_boosting_classifier(n_classes):
    x, y, xt, _ = _data("classification", n_classes, seed=2)
    _check_classifier(GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0), x, y, xt)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_regression_pipeline(n_classes):
    x, y, xt, _ = _data("classification", n_classes, seed=3)
    pipe = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(max_iter=500))])
    _check_classifier(pipe, x, y, xt)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # SVC(probability=True) is deprecated in sklearn 1.9
@pytest.mark.parametrize("n_classes", [2, 3])
def test_svc_probability(n_classes):
    x, y, xt, _ = _data("classification", n_classes, seed=4)
    # libsvm couples pairwise probabilities exactly for two classes and iteratively (to 0.005/k) for more;
    # the ONNX model always iterates, so probabilities agree to about 1e-3
    _check_classifier(SVC(probability=True, random_state=0), x, y, xt, proba_atol=5e-3)


# -- regressors ----------------------------------------------------------------------------------


def test_random_forest_regressor():
    x, y, xt, _ = _data("regression", seed=5)
    _check_regressor(RandomForestRegressor(n_estimators=15, max_depth=6, random_state=0), x, y, xt)


def test_gradient_boosting_regressor():
    x, y, xt, _ = _data("regression", seed=6)
    _check_regressor(GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0), x, y, xt)


def test_svr():
    x, y, xt, _ = _data("regression", seed=7)
    _check_regressor(make_pipeline(StandardScaler(), SVR(C=50.0)), x, y, xt)


def test_linear_regression():
    x, y, xt, _ = _data("regression", seed=8)
    _check_regressor(LinearRegression(), x, y, xt)


# -- preprocessing pipelines ---------------------------------------------------------------------


def test_column_transformer_one_hot_pipeline():
    """Integer-coded categories one-hot encoded next to scaled numbers, then a classifier."""
    rng = np.random.default_rng(10)
    n = 240
    x = np.stack([rng.integers(0, 3, n), rng.integers(0, 4, n), rng.normal(size=n), rng.normal(size=n)], axis=1)
    x = x.astype(np.float32)
    y = ((x[:, 0] == 1) ^ (x[:, 2] > 0.3)).astype(np.int64) + (x[:, 1] == 3)
    pipe = Pipeline([
        ("prep", ColumnTransformer([
            ("onehot", OneHotEncoder(handle_unknown="ignore"), [0, 1]),
            ("scale", StandardScaler(), [2, 3]),
        ])),
        ("clf", LogisticRegression(max_iter=1000)),
    ])
    _check_classifier(pipe, x[:160], y[:160], x[160:])


def test_string_one_hot_pipeline():
    """String categories through OneHotEncoder (ai.onnx.ml) into a tree classifier."""
    rng = np.random.default_rng(13)
    n = 200
    cats = np.stack([rng.choice(["red", "green", "blue"], n), rng.choice(["S", "M", "L", "XL"], n)], axis=1)
    cats = cats.astype(object)
    y = ((cats[:, 0] == "red") | (cats[:, 1] == "XL")).astype(np.int64)
    pipe = make_pipeline(OneHotEncoder(handle_unknown="ignore"),
                         RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0)).fit(cats[:150], y[:150])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = to_onnx(pipe, initial_types=[("X", StringTensorType([None, 2]))], target_opset=OPSET,
                      options={id(pipe.steps[-1][1]): {"zipmap": False}})
    assert any(n.op_type == "OneHotEncoder" and n.domain == "ai.onnx.ml" for n in onx.graph.node)
    test = cats[150:]
    ours, theirs = _sessions(onx)
    label, proba = ours.run(None, {"X": test})
    ort_label, ort_proba = theirs.run(None, {"X": test})
    np.testing.assert_array_equal(label, pipe.predict(test))
    np.testing.assert_allclose(proba, pipe.predict_proba(test), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(label, ort_label)
    np.testing.assert_allclose(proba, ort_proba, rtol=1e-5, atol=1e-6)


def test_dict_vectorizer_pipeline():
    """A DictVectorizer in front of a classifier: the input is a dict (map) per run."""
    rng = np.random.default_rng(11)
    words = ["alpha", "beta", "gamma", "delta", "eps"]
    rows = [{w: float(rng.integers(0, 4)) for w in rng.choice(words, size=3, replace=False)} for _ in range(120)]
    y = np.array([int(r.get("alpha", 0) + r.get("beta", 0) > 2) for r in rows])
    pipe = make_pipeline(DictVectorizer(sparse=False), LogisticRegression(max_iter=500)).fit(rows, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = to_onnx(pipe, initial_types=[("X", DictionaryType(StringTensorType([]), FloatTensorType([])))], target_opset=OPSET,
                      options={id(pipe.steps[-1][1]): {"zipmap": False}})
    assert any(n.op_type == "DictVectorizer" for n in onx.graph.node)
    ours, theirs = _sessions(onx)
    for row in rows[:12]:
        feed = {"X": {k: np.float32(v) for k, v in row.items()}}
        label, proba = ours.run(None, feed)
        ort_label, ort_proba = theirs.run(None, feed)
        np.testing.assert_array_equal(label, pipe.predict([row]))
        np.testing.assert_allclose(proba, pipe.predict_proba([row]), rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(label, ort_label)
        np.testing.assert_allclose(proba, ort_proba, rtol=1e-5, atol=1e-6)


def test_label_encoder():
    """sklearn's LabelEncoder on strings becomes an ai.onnx.ml LabelEncoder."""
    enc = LabelEncoder().fit(["paris", "tokyo", "amsterdam", "lima"])
    values = np.array(["tokyo", "lima", "paris", "amsterdam", "lima"], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = to_onnx(enc, initial_types=[("X", StringTensorType([None]))], target_opset=OPSET)
    assert any(n.op_type == "LabelEncoder" for n in onx.graph.node)
    ours, theirs = _sessions(onx)
    (out,) = ours.run(None, {"X": values})
    (ort_out,) = theirs.run(None, {"X": values})
    np.testing.assert_array_equal(out, enc.transform(values))
    np.testing.assert_array_equal(out, ort_out)


def test_int64_input_classifier():
    """Integer features: the tree classifier reads int64 input directly."""
    x, y, xt, _ = _data("classification", 3, seed=12)
    xi, xti = np.round(x * 3).astype(np.int64), np.round(xt * 3).astype(np.int64)
    model = RandomForestClassifier(n_estimators=6, max_depth=4, random_state=0).fit(xi, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = to_onnx(model, initial_types=[("X", Int64TensorType([None, xi.shape[1]]))], target_opset=OPSET,
                      options={id(model): {"zipmap": False}})
    ours, theirs = _sessions(onx)
    label, proba = ours.run(None, {"X": xti})
    ort_label, ort_proba = theirs.run(None, {"X": xti})
    np.testing.assert_array_equal(label, model.predict(xti))
    np.testing.assert_allclose(proba, model.predict_proba(xti), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(label, ort_label)
    np.testing.assert_allclose(proba, ort_proba, rtol=1e-5, atol=1e-6)
