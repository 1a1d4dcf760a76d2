"""Real tiny Keras models over scikit-learn's bundled data sets (no download) for the input traps, and a hand-built
model with one deliberately bad layer for the layer-wise diagnostics."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.datasets import load_breast_cancer, load_iris, load_wine

SIGNATURE = "serving_features"
# Calibration sets stay small: the converter feeds them one example at a time.
CALIBRATION_ROWS = 96


@dataclass
class SavedKerasModel:
    """A SavedModel with a dense ``serving_features`` signature, the calibration inputs and their labels."""

    path: str
    inputs: dict[str, np.ndarray]
    labels: np.ndarray


def _save(model: keras.Model, specs: dict[str, tf.TensorSpec], path: str) -> str:
    # Saved through a plain tf.Module: Keras' own model.save traces every layer again (4x slower, measured).
    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[specs])
    def serve(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {"probabilities": model(features)}

    tf.saved_model.save(module, path, signatures={SIGNATURE: serve})
    return path


def _classifier(inputs: list[keras.Input], features: keras.layers.Layer, classes: int) -> keras.Model:
    # Untrained (seeded): the traps are in how the inputs are quantized, not in what the model learned.
    hidden = keras.layers.Dense(16, activation="relu")(features)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(hidden))


def _sample(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(0).permutation(len(x))[:CALIBRATION_ROWS]
    return x[order].astype(np.float32), y[order]


def _vector_model(root: str) -> SavedKerasModel:
    """Breast cancer: the 30 raw features in ONE input, normalized inside the model (one input scale for all)."""
    x, y = load_breast_cancer(return_X_y=True)
    x, y = _sample(x, y)
    keras.utils.set_random_seed(0)
    features = keras.Input((30,), name="features")
    normalization = keras.layers.Normalization()
    normalization.adapt(x)
    model = _classifier([features], normalization(features), 2)
    path = _save(model, {"features": tf.TensorSpec([None, 30], tf.float32, name="features")}, root)
    return SavedKerasModel(path, {"features": x}, y)


def _per_input_model(root: str, x: np.ndarray, y: np.ndarray, *, folded: bool) -> SavedKerasModel:
    """One [None, 1] input per feature, normalized per input, then concatenated: with ``folded`` by constant
    ``(x - mean) / std`` ops (which the converter folds into one scale shared by all inputs), else by a Keras
    Normalization layer per input."""
    x, y = _sample(x, y)
    keras.utils.set_random_seed(0)
    names = [f"f{i}" for i in range(x.shape[1])]
    inputs = [keras.Input((1,), name=name) for name in names]
    normalized = []
    for i, tensor in enumerate(inputs):
        mean, std = float(x[:, i].mean()), float(x[:, i].std())
        if folded:
            normalized.append(keras.layers.Lambda(lambda t, m=mean, s=std: (t - m) / s)(tensor))
        else:
            layer = keras.layers.Normalization()
            layer.adapt(x[:, i:i + 1])
            normalized.append(layer(tensor))
    model = _classifier(inputs, keras.layers.Concatenate()(normalized), int(y.max()) + 1)
    feed = {name: x[:, i:i + 1] for i, name in enumerate(names)}
    path = _save(model, {name: tf.TensorSpec([None, 1], tf.float32, name=name) for name in names}, root)
    return SavedKerasModel(path, feed, y)


@pytest.fixture(scope="session")
def trap_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SavedKerasModel]:
    """``vector`` (breast cancer, one 30-column input), ``shared_scale`` (wine, 13 inputs, constant normalization
    before a concatenation), ``penguin_like`` (iris, 4 inputs, a Normalization layer each)."""
    root = tmp_path_factory.mktemp("trap_models")
    return {
        "vector": _vector_model(os.path.join(root, "vector")),
        "shared_scale": _per_input_model(os.path.join(root, "wine"), *load_wine(return_X_y=True), folded=True),
        "penguin_like": _per_input_model(os.path.join(root, "iris"), *load_iris(return_X_y=True), folded=False),
    }


class _BadLayerModel(tf.Module):
    """x -> relu(x W1 + b1) -> h W2 (scope ``bad``) -> softmax(. W3). Hidden unit 7 is always 0 (bias -100), and
    W2's row 7 is 1000: int8 weights get a step of ~8, so W2's other weights (about ±1) round to 0 or ±8 while the
    output range stays small. That layer's error is many of its own steps; the others' stay near rounding."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        w1 = rng.normal(size=(4, 8)).astype(np.float32)
        w1[:, 7] = 0.0
        b1 = np.zeros(8, np.float32)
        b1[7] = -100.0
        w2 = rng.normal(scale=0.5, size=(8, 3)).astype(np.float32)
        w2[7, :] = 1000.0
        self.w1, self.b1, self.w2 = tf.Variable(w1), tf.Variable(b1), tf.Variable(w2)
        self.w3 = tf.Variable(rng.normal(size=(3, 2)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.name_scope("first"):
            hidden = tf.nn.relu(tf.matmul(x, self.w1) + self.b1)
        with tf.name_scope("bad"):
            bad = tf.matmul(hidden, self.w2)
        with tf.name_scope("head"):
            return {"probabilities": tf.nn.softmax(tf.matmul(bad, self.w3))}


@pytest.fixture(scope="session")
def bad_layer_model(tmp_path_factory: pytest.TempPathFactory) -> SavedKerasModel:
    """``_BadLayerModel`` saved with signature ``serving_features``, and 64 calibration inputs ``x``."""
    path = str(tmp_path_factory.mktemp("bad_layer") / "model")
    module = _BadLayerModel()
    tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve})
    x = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    return SavedKerasModel(path, {"x": x}, np.zeros(64))


@pytest.fixture(scope="session")
def wide_dense_model(tmp_path_factory: pytest.TempPathFactory) -> SavedKerasModel:
    """x [None, 64] -> Dense(64, relu, ``hidden``) -> Dense(4, softmax, ``head``), untrained (seeded), with 64
    normal inputs: the hidden weights' input dimension (64) holds whole int4 blocks of 32 and 64."""
    keras.utils.set_random_seed(0)
    x = keras.Input((64,), name="x")
    hidden = keras.layers.Dense(64, activation="relu", name="hidden")(x)
    model = keras.Model(x, keras.layers.Dense(4, activation="softmax", name="head")(hidden), name="wide")
    path = _save(model, {"x": tf.TensorSpec([None, 64], tf.float32, name="x")},
                 str(tmp_path_factory.mktemp("wide_dense") / "model"))
    inputs = {"x": np.random.default_rng(2).normal(size=(64, 64)).astype(np.float32)}
    return SavedKerasModel(path, inputs, np.zeros(64))
