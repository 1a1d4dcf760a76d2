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
from tfx import types
from tfx.types import Artifact, artifact_utils, standard_artifacts
from tfx.utils import path_utils

from quantgate.components.shared.signature_inputs import InputSpec

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


# --- golden penguin artifacts: what the demo pipeline's ExampleGen, Trainer, RepresentativeDatasetGen and Quantizer
# hand the QuantizationEvaluator and the pushers, without a pipeline --------------------------------------------------

@dataclass
class PenguinArtifacts:
    """The penguins as CsvExampleGen writes them (``train``/``eval`` gzipped TFRecord splits, ``species`` int label,
    ``island``/``sex`` strings, four float features) and a model trained by the demo Trainer module's own code (both
    signatures), both checked in under tests/testdata/penguin (tests/testdata/make_penguin.py makes them); a
    representative dataset of 200 train examples and the Quantizer's int8 model of that model (the real executor's
    ``Do``, so its files and MLMD properties are today's). Artifact ids are fixed, as if registered."""

    examples: Artifact
    model: Artifact
    representative_dataset: Artifact
    quantized_model: Artifact
    train_records: list[bytes]
    eval_records: list[bytes]


PENGUIN_TESTDATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "testdata", "penguin")
PENGUIN_CALIBRATION_EXAMPLES = 200  # as the demo's RepresentativeDatasetGen sample


def _read_split(examples_uri: str, split: str) -> list[bytes]:
    files = tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


@pytest.fixture(scope="session")
def penguin_artifacts(tmp_path_factory: pytest.TempPathFactory) -> PenguinArtifacts:
    import shutil

    from quantgate.components import Quantizer
    from quantgate.components.quantizer import executor as quantizer_executor
    from quantgate.components.quantizer import spec as quantizer_spec
    from quantgate.components.representative_dataset_gen.storage import write_representative_dataset
    from quantgate.components.types import RepresentativeDataset
    from quantgate.pipelines.models.penguin.penguin_trainer import DENSE_SIGNATURE

    root = tmp_path_factory.mktemp("penguin_artifacts")
    shutil.copytree(PENGUIN_TESTDATA, root, dirs_exist_ok=True)  # a private copy: nothing writes to the checkout
    examples = standard_artifacts.Examples()
    examples.uri, examples.id = str(root / "examples"), 1
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    train, evaluation = _read_split(examples.uri, "train"), _read_split(examples.uri, "eval")

    model = standard_artifacts.Model()
    model.uri, model.id = str(root / "model"), 2

    dataset = RepresentativeDataset()
    dataset.uri, dataset.id = str(root / "representative_dataset"), 3
    sample = train[:PENGUIN_CALIBRATION_EXAMPLES]
    write_representative_dataset(dataset.uri, sample, {"num_examples": len(sample), "split": "train"})

    quantized = standard_artifacts.Model()
    quantized.uri, quantized.id = str(root / "quantized_model"), 4
    tf.io.gfile.makedirs(quantized.uri)  # the launcher creates output folders before Do
    # The Quantizer as the demo wires it (int8, the dense signature), run by its executor's Do.
    component = Quantizer(model=types.Channel(type=standard_artifacts.Model),
                          representative_dataset=types.Channel(type=RepresentativeDataset),
                          signature_name=DENSE_SIGNATURE)
    quantizer_executor.Executor().Do(
        {quantizer_spec.MODEL_KEY: [model], quantizer_spec.REPRESENTATIVE_DATASET_KEY: [dataset]},
        {quantizer_spec.QUANTIZED_MODEL_KEY: [quantized]}, dict(component.exec_properties))
    return PenguinArtifacts(examples, model, dataset, quantized, train, evaluation)


@dataclass
class PenguinQuantized:
    """The golden penguin artifacts (``penguin_artifacts``: the float model, the Quantizer's int8 model, the
    examples), with what tests need of them."""

    model: Artifact
    quantized_model: Artifact
    examples: Artifact
    saved_model_dir: str
    signature_name: str
    specs: list[InputSpec]
    tflite_path: str
    quant_output: str
    eval_records: list[bytes]
    calibration_records: list[bytes]


@pytest.fixture(scope="session")
def penguin_quantized(penguin_artifacts) -> PenguinQuantized:
    from quantgate.components.representative_dataset_gen.storage import read_examples
    from quantgate.components.shared.model_runners import TFLiteRunner
    from quantgate.components.shared.signature_inputs import dense_signature_specs

    model, quantized = penguin_artifacts.model, penguin_artifacts.quantized_model
    saved_model_dir = path_utils.serving_model_path(model.uri)
    signature_name, specs = dense_signature_specs(saved_model_dir, None)
    tflite_path = os.path.join(path_utils.serving_model_dir(quantized.uri), "model.tflite")
    (quant_output,) = TFLiteRunner(tflite_path).output_names
    calibration = read_examples(penguin_artifacts.representative_dataset.uri)
    return PenguinQuantized(model, quantized, penguin_artifacts.examples, saved_model_dir, signature_name, specs,
                            tflite_path, quant_output, penguin_artifacts.eval_records, calibration)


@dataclass
class EvaluatorRun:
    """The outputs of one executor run."""

    evaluation: Artifact
    blessing: Artifact

    def blessing_property(self, name: str) -> object:
        value = self.blessing.mlmd_artifact.custom_properties[name]
        return getattr(value, value.WhichOneof("value"))


RunEvaluator = Callable[..., EvaluatorRun]


@pytest.fixture(scope="session")
def run_evaluator(penguin_quantized, tmp_path_factory) -> RunEvaluator:
    from quantgate.components import QuantizationEvaluator
    from quantgate.components.quantization_evaluator import executor
    from quantgate.components.quantization_evaluator.spec import candidate_key
    from quantgate.components.types import QuantizationEvaluation, RepresentativeDataset

    """``run_evaluator(name, model=..., quantized_model=..., examples=..., **component params)``: builds the component
    (so parameters go through its checks and encoding) and runs its executor on the golden penguin artifacts by default.
    ``quantized_model`` may be a list of candidates, each wired to its own input key as the component does."""

    def run(name: str, *, model: Artifact | None = None, quantized_model: Artifact | list[Artifact] | None = None,
            examples: Artifact | None = None, search_dataset: Artifact | None = None,
            **params: object) -> EvaluatorRun:
        quantized = quantized_model or penguin_quantized.quantized_model
        candidates = quantized if isinstance(quantized, list) else [quantized]
        component = QuantizationEvaluator(
            model=types.Channel(type=standard_artifacts.Model),
            quantized_model=[types.Channel(type=standard_artifacts.Model) for _ in candidates],
            examples=types.Channel(type=standard_artifacts.Examples),
            search_dataset=types.Channel(type=RepresentativeDataset) if search_dataset else None,
            **{"label_key": "species", **params},
        )
        root = tmp_path_factory.mktemp(name)
        evaluation, blessing = QuantizationEvaluation(), standard_artifacts.ModelBlessing()
        evaluation.uri, blessing.uri = str(root / "evaluation"), str(root / "blessing")
        for artifact in (evaluation, blessing):
            tf.io.gfile.makedirs(artifact.uri)  # the launcher creates output folders before Do
        executor.Executor().Do(
            {executor.MODEL_KEY: [model or penguin_quantized.model],
             **{candidate_key(i): [c] for i, c in enumerate(candidates)},
             executor.EXAMPLES_KEY: [examples or penguin_quantized.examples],
             **({executor.SEARCH_DATASET_KEY: [search_dataset]} if search_dataset else {})},
            {executor.EVALUATION_KEY: [evaluation], executor.BLESSING_KEY: [blessing]},
            dict(component.exec_properties),
        )
        return EvaluatorRun(evaluation, blessing)

    return run


@pytest.fixture(scope="session")
def penguin_blessed(run_evaluator) -> EvaluatorRun:
    """One real evaluator run on the golden artifacts, sliced by island, blessed: its evaluation and blessing."""
    return run_evaluator("blessed", slicing_feature_keys=["island"], min_slice_size=10, min_agreement=0.9)
