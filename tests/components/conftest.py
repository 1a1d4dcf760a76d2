"""Fixtures for the components' tests: small real Examples artifacts laid out as ExampleGen writes them, and tiny
hand-built SavedModels with dense and string signatures (no pipeline needed)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

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


# --- a real (tiny) TFT transform graph, a model over its outputs, and its int8 model: no pipeline -------------------

@dataclass
class TinyTransform:
    """A tft_beam run on 120 raw rows (``x`` float, ``color`` string, ``tips`` float) and a model trained on nothing
    but built over its outputs: ``serving_features`` takes ``x_xf`` (z-score) and ``color_xf`` (int32 vocabulary id),
    ``serving_default`` takes serialized raw examples (parse -> the transform layer -> the model). ``label_xf``
    (``tips > 0.5``) exists only after the transform; ``quantized`` is the Quantizer's int8 model of it."""

    transform_graph: Artifact
    model: Artifact
    representative_dataset: Artifact
    quantized: Artifact
    records: list[bytes]


TINY_COLORS = (b"red", b"green", b"blue")


def tiny_raw_example(i: int, drop: tuple[str, ...] = ()) -> bytes:
    """Raw row ``i``: ``x`` spread around 40 (far from 0, as a latitude), ``color`` one of three, ``tips``."""
    rng = np.random.default_rng(i)
    features = {"x": [float(40.0 + rng.normal())], "color": [TINY_COLORS[i % 3]],
                "tips": [float(rng.uniform())]}
    return make_example(**{k: v for k, v in features.items() if k not in drop})


def _tiny_preprocessing_fn(inputs: dict) -> dict:
    import tensorflow_transform as tft

    return {
        "x_xf": tft.scale_to_z_score(inputs["x"]),
        "color_xf": tft.compute_and_apply_vocabulary(inputs["color"], num_oov_buckets=1, vocab_filename="color"),
        "label_xf": tf.cast(inputs["tips"] > 0.5, tf.int64),
    }


class _TinyTransformModel(tf.Module):
    def __init__(self, tft_output: object) -> None:
        super().__init__()
        self.w = tf.Variable([[2.0, -2.0]])
        self.embedding = tf.Variable([[0.5, -0.5], [-1.0, 1.0], [0.2, 0.1], [0.0, 0.0]])
        self.tft_layer = tft_output.transform_features_layer()  # tracked: its vocabulary asset is saved too
        self.raw_spec = {k: v for k, v in tft_output.raw_feature_spec().items() if k != "tips"}

    @tf.function(input_signature=[{"x_xf": tf.TensorSpec([None, 1], tf.float32, name="x_xf"),
                                   "color_xf": tf.TensorSpec([None, 1], tf.int32, name="color_xf")}])
    def serving_features(self, features: dict) -> dict:
        logits = tf.matmul(features["x_xf"], self.w) + tf.gather(self.embedding, features["color_xf"][:, 0])
        return {"probabilities": tf.nn.softmax(logits)}

    @tf.function(input_signature=[{"x": tf.TensorSpec([None, 1], tf.float32, name="x")}])
    def raw_features(self, features: dict) -> dict:
        return {"probabilities": tf.nn.softmax(tf.matmul(features["x"], self.w))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serving_default(self, examples: tf.Tensor) -> dict:
        transformed = self.tft_layer(tf.io.parse_example(examples, self.raw_spec))
        return self.serving_features({"x_xf": transformed["x_xf"], "color_xf": tf.cast(transformed["color_xf"],
                                                                                      tf.int32)})


@pytest.fixture(scope="session")
def tiny_transform(tmp_path_factory: pytest.TempPathFactory) -> TinyTransform:
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from quantgate.components.quantizer import executor as quantizer_executor
    from quantgate.components.quantizer.options import resolve_options
    from quantgate.components.representative_dataset_gen.storage import write_representative_dataset
    from quantgate.components.types import RepresentativeDataset

    root = tmp_path_factory.mktemp("tiny_transform")
    raw_spec = {"x": tf.io.FixedLenFeature([1], tf.float32), "color": tf.io.FixedLenFeature([1], tf.string),
                "tips": tf.io.FixedLenFeature([1], tf.float32)}
    records = [tiny_raw_example(i) for i in range(120)]
    rows = [{k: v.numpy() for k, v in tf.io.parse_single_example(r, raw_spec).items()} for r in records]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_spec))
    transform_graph = standard_artifacts.TransformGraph()
    transform_graph.uri, transform_graph.id = str(root / "transform_graph"), 11
    with tft_beam.Context(temp_dir=str(root / "tmp")):
        _, transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(_tiny_preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(transform_graph.uri)
    metadata_io.write_metadata(metadata, os.path.join(transform_graph.uri, tft.TFTransformOutput.RAW_METADATA_DIR))

    model = standard_artifacts.Model()
    model.uri, model.id = str(root / "model"), 12
    module = _TinyTransformModel(tft.TFTransformOutput(transform_graph.uri))
    tf.saved_model.save(module, os.path.join(model.uri, "Format-Serving"), signatures={
        "serving_default": module.serving_default, "serving_features": module.serving_features,
        "raw_features": module.raw_features})
    dataset = RepresentativeDataset()
    dataset.uri, dataset.id = str(root / "rep"), 13
    write_representative_dataset(dataset.uri, records[:60], {"num_examples": 60})

    quantized = standard_artifacts.Model()
    quantized.uri, quantized.id = str(root / "quantized"), 14
    report = quantizer_executor.quantize(
        model.uri, dataset.uri, quantized.uri, resolve_options("int8"), "serving_features", model_id=model.id,
        representative_dataset_id=dataset.id, transform_graph_uri=transform_graph.uri,
        transform_graph_id=transform_graph.id)
    quantizer_executor.set_artifact_properties(quantized, report, quantized.uri)
    return TinyTransform(transform_graph, model, dataset, quantized, records)


@pytest.fixture(scope="session")
def raw_example() -> Callable[..., bytes]:
    """``tiny_raw_example`` as a fixture: ``raw_example(i, drop=("x",))``."""
    return tiny_raw_example
