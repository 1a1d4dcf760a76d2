"""Fixtures for the components' tests: small real Examples artifacts laid out as ExampleGen writes them, and tiny
hand-built SavedModels with dense and string signatures (no pipeline needed)."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tfx.types import Artifact, artifact_utils, standard_artifacts

MakeExamples = Callable[[dict[str, list[bytes]]], Artifact]


def penguin_like_example(index: int, species: int | None) -> bytes:
    """A serialized tf.Example with one float feature and, unless ``None``, an int ``species`` label."""
    example = example_pb2.Example()
    example.features.feature["bill_length_mm"].float_list.value.append(30.0 + index)
    if species is not None:
        example.features.feature["species"].int64_list.value.append(species)
    return example.SerializeToString()


@pytest.fixture
def make_examples(tmp_path) -> MakeExamples:
    """Writes an Examples artifact (gzipped TFRecord per split, as ExampleGen lays it out) with the given records."""

    def make(splits: dict[str, list[bytes]]) -> Artifact:
        artifact = standard_artifacts.Examples()
        artifact.uri = str(tmp_path / "examples")
        artifact.id = 42
        artifact.split_names = artifact_utils.encode_split_names(list(splits))
        for split, records in splits.items():
            split_dir = os.path.join(artifact.uri, f"Split-{split}")
            tf.io.gfile.makedirs(split_dir)
            with tf.io.TFRecordWriter(os.path.join(split_dir, "data_tfrecord-00000-of-00001.gz"), "GZIP") as w:
                for record in records:
                    w.write(record)
        return artifact

    return make



def make_example(**features: list[float] | list[int] | list[bytes]) -> bytes:
    """A serialized tf.Example; float lists become float_list, ints int64_list, bytes bytes_list."""
    feature = {}
    for name, values in features.items():
        if values and isinstance(values[0], bytes):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        elif values and isinstance(values[0], int):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


class _TinyModel(tf.Module):
    """out = softmax(W · concat(a, b) + c): two dense inputs, a [None, 2] one and a [None, 1] one."""

    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable(np.array([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.25]], dtype=np.float32))
        self.c = tf.Variable(np.array([0.1, -0.2], dtype=np.float32))

    def logits(self, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        return tf.matmul(tf.concat([a, b], axis=1), self.w) + self.c

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="a"),
                                  tf.TensorSpec([None, 1], tf.float32, name="b")])
    def dense(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": tf.nn.softmax(self.logits(a, b))}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="a"),
                                  tf.TensorSpec([None, 1], tf.int64, name="b")])
    def dense_int(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"logits": self.logits(a, tf.cast(b, tf.float32))}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="a"),
                                  tf.TensorSpec([None, 1], tf.float32, name="b")])
    def sine(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
        # SIN has no int8 kernel in TFLite: a full-integer conversion must fail and name it.
        return {"probabilities": tf.nn.softmax(self.logits(tf.sin(a), b))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def parse(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(examples, {"a": tf.io.FixedLenFeature([2], tf.float32),
                                                "b": tf.io.FixedLenFeature([1], tf.float32)})
        return self.dense(parsed["a"], parsed["b"])


def save_tiny_model(path: str, *signature_names: str) -> str:
    """Saves ``_TinyModel`` with the named signatures (method names: dense, dense_int, sine, parse); returns ``path``."""
    model = _TinyModel()
    tf.saved_model.save(model, path, signatures={name: getattr(model, name) for name in signature_names})
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """SavedModel dirs by case: one dense + one string signature, two dense, string only, sine (no int8 kernel)."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "one_dense": save_tiny_model(os.path.join(root, "one_dense"), "dense", "parse"),
        "two_dense": save_tiny_model(os.path.join(root, "two_dense"), "dense", "dense_int", "parse"),
        "string_only": save_tiny_model(os.path.join(root, "string_only"), "parse"),
        "sine": save_tiny_model(os.path.join(root, "sine"), "sine"),
    }


TINY_INPUTS = {
    "a": np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32),
    "b": np.random.default_rng(1).normal(size=(64, 1)).astype(np.float32),
}


@pytest.fixture(scope="session")
def tiny_inputs() -> dict[str, np.ndarray]:
    """64 calibration/test inputs for the tiny model's dense signatures."""
    return TINY_INPUTS


@pytest.fixture(scope="session")
def example() -> object:
    """``make_example`` as a fixture (test modules cannot import conftest under --import-mode=importlib)."""
    return make_example
