"""The QuantizedModelPusher executor, and the stock TFX Pusher, on real artifacts registered in a real MLMD store.

The artifacts are the layout the Quantizer and the QuantizationEvaluator produce (``Format-Serving/model.tflite``,
a ``ModelBlessing`` with ``blessed``/``reason``/``delta``/``threshold``), and the golden penguin artifacts (the real
Quantizer's and QuantizationEvaluator's outputs, tests/components/conftest.py); the end-to-end run is checked on
``demo_run`` (pipeline tier).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils
from tfx.components.pusher import executor as stock_pusher
from tfx.dsl.components.base import base_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import proto_utils

from quantgate.components.quantized_model_pusher import executor as pusher
from quantgate.components.shared.digests import bytes_sha256
from quantgate.components.types import QuantizationEvaluation, RepresentativeDataset


class _Double(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def double(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": 2.0 * x}


@pytest.fixture(scope="module")
def tflite_bytes() -> bytes:
    """A real (tiny) TFLite flatbuffer with a ``serving_default`` signature, as the Quantizer writes them."""
    module = _Double()
    return tf.lite.TFLiteConverter.from_concrete_functions([module.double.get_concrete_function()], module).convert()


class Artifacts:
    """Builds artifacts under ``root`` and registers them in a SQLite MLMD store, so they have real ids."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._count = 0
        os.makedirs(root)
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = os.path.join(root, "metadata.sqlite")
        self.store = metadata_store.MetadataStore(config)

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def register(self, artifact: standard_artifacts.Artifact, name: str) -> standard_artifacts.Artifact:
        artifact.uri = os.path.join(self.root, name)
        os.makedirs(artifact.uri, exist_ok=True)
        type_id = self.store.put_artifact_type(artifact.artifact_type)
        artifact.type_id = type_id
        (artifact.id,) = self.store.put_artifacts([artifact.mlmd_artifact])
        return artifact

    def quantized_model(self, data: bytes, sha256: str | None = None,
                        record_sha256: bool = True) -> standard_artifacts.Model:
        """The Quantizer's layout; ``record_sha256=False`` is a model imported with an Importer (no ``sha256``)."""
        model = standard_artifacts.Model()
        if record_sha256:
            model.set_string_custom_property("sha256", sha256 or bytes_sha256(data))
        model.set_string_custom_property("quantization_mode", "int8")
        model.set_int_custom_property("size_bytes", len(data))
        model.set_int_custom_property("float_size_bytes", 10 * len(data))
        model = self.register(model, self.name("quantized_model"))
        os.makedirs(os.path.join(model.uri, "Format-Serving"))
        with open(os.path.join(model.uri, "Format-Serving", "model.tflite"), "wb") as f:
            f.write(data)
        return model

    def blessing(self, blessed: int, reason: str = "", evaluated_sha256: str | None = None,
                 current_model_id: int | None = None, **numbers: float) -> standard_artifacts.ModelBlessing:
        blessing = standard_artifacts.ModelBlessing()
        blessing.set_int_custom_property("blessed", blessed)
        if reason:
            blessing.set_string_custom_property("reason", reason)
        if evaluated_sha256 is not None:
            blessing.set_string_custom_property("evaluated_sha256", evaluated_sha256)
        if current_model_id is not None:
            blessing.set_int_custom_property("current_model_id", current_model_id)
        for key, value in numbers.items():
            blessing.set_float_custom_property(key, value)
        return self.register(blessing, self.name("blessing"))

    def pushed_model(self) -> standard_artifacts.PushedModel:
        pushed = standard_artifacts.PushedModel()
        pushed.uri = os.path.join(self.root, self.name("pushed"))
        return pushed


@pytest.fixture
def arts(tmp_path) -> Artifacts:
    return Artifacts(str(tmp_path / "artifacts"))


def _destination(base: str) -> str:
    return proto_utils.proto_to_json(pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base)))


def _run(executor_class: type, inputs: dict, base: str, pushed: standard_artifacts.PushedModel) -> None:
    context = base_executor.BaseExecutor.Context(tmp_dir=os.path.dirname(base), pipeline_run_id="run-42")
    # A list is a channel of several artifacts (the candidates); anything else one artifact.
    executor_class(context).Do({k: v if isinstance(v, list) else [v] for k, v in inputs.items() if v is not None},
                               {"pushed_model": [pushed]}, {"push_destination": _destination(base)})


def _props(artifact: standard_artifacts.Artifact) -> dict:
    return {k: artifact.get_custom_property(k) for k in artifact.mlmd_artifact.custom_properties}


def test_blessed_push_writes_model_and_manifest(arts, tflite_bytes, tmp_path) -> None:
    model = arts.quantized_model(tflite_bytes)
    blessing = arts.blessing(1, "blessed: every threshold passed", delta=0.004, threshold=0.01)
    blessing.set_string_custom_property("metric", "accuracy")
    evaluation = QuantizationEvaluation()
    evaluation.set_float_custom_property("float_accuracy", 0.97)
    evaluation.set_float_custom_property("quantized_accuracy", 0.966)
    evaluation = arts.register(evaluation, "evaluation")
    float_blessing = arts.blessing(1)
    float_model = arts.register(standard_artifacts.Model(), "float_model")
    representative = arts.register(RepresentativeDataset(), "representative")
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")

    _run(pusher.Executor, {"model": model, "model_blessing": blessing, "float_blessing": float_blessing,
                           "float_model": float_model, "representative_dataset": representative,
                           "evaluation": evaluation}, base, pushed)

    props = _props(pushed)
    assert props["pushed"] == 1
    (version,) = os.listdir(base)
    assert props["pushed_version"] == version and props["pushed_destination"] == os.path.join(base, version)
    assert props["sha256"] == bytes_sha256(tflite_bytes)
    with open(os.path.join(base, version, "model.tflite"), "rb") as f:
        assert f.read() == tflite_bytes
    with open(os.path.join(base, version, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["sha256"] == bytes_sha256(tflite_bytes)
    assert manifest["size_bytes"] == len(tflite_bytes) and manifest["float_size_bytes"] == 10 * len(tflite_bytes)
    assert manifest["quantization_mode"] == "int8"
    assert manifest["metric"] == pytest.approx(
        {"name": "accuracy", "float": 0.97, "quantized": 0.966, "delta": 0.004, "threshold": 0.01})
    ids = {role: (ref["id"] if ref else None) for role, ref in manifest["mlmd"].items() if role != "pipeline_run_id"}
    assert ids == {"quantized_model": model.id, "blessing": blessing.id, "float_blessing": float_blessing.id,
                   "float_model": float_model.id, "representative_dataset": representative.id,
                   "evaluation": evaluation.id}
    assert len(set(ids.values())) == 6 and manifest["mlmd"]["pipeline_run_id"] == "run-42"
    # The blessing's metric (accuracy) makes the 2-wide output a 2-class classifier: labels.txt ships too.
    assert manifest["labels"]["num_classes"] == 2
    # The PushedModel archives exactly what was published.
    assert sorted(os.listdir(pushed.uri)) == ["labels.txt", "manifest.json", "model.tflite"]
    with open(os.path.join(pushed.uri, "manifest.json")) as f:
        assert json.load(f) == manifest


def test_rerun_of_the_same_push_does_not_duplicate_the_version(arts, tflite_bytes, tmp_path) -> None:
    inputs = {"model": arts.quantized_model(tflite_bytes), "model_blessing": arts.blessing(1)}
    base = str(tmp_path / "serving")
    first, second = arts.pushed_model(), arts.pushed_model()
    _run(pusher.Executor, inputs, base, first)
    _run(pusher.Executor, inputs, base, second)
    assert len(os.listdir(base)) == 1
    assert _props(second)["pushed_version"] == _props(first)["pushed_version"]

    # A different blessing of the same bytes is a different push.
    third = arts.pushed_model()
    _run(pusher.Executor, {**inputs, "model_blessing": arts.blessing(1)}, base, third)
    assert len(os.listdir(base)) == 2 and _props(third)["pushed"] == 1


@pytest.mark.parametrize("quantized_blessed, float_blessed, refused_by", [
    (0, 1, "model_blessing"),
    (1, 0, "float_blessing"),
    (0, 0, "model_blessing"),
])
def test_no_push_when_either_blessing_is_0(arts, tflite_bytes, tmp_path, quantized_blessed: int,
                                           float_blessed: int, refused_by: str) -> None:
    blessing = arts.blessing(quantized_blessed, "not blessed: absolute delta of accuracy is 0.05 > max 0.01")
    float_blessing = arts.blessing(float_blessed)
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": arts.quantized_model(tflite_bytes), "model_blessing": blessing,
                           "float_blessing": float_blessing}, base, pushed)

    assert not os.path.exists(base)
    assert not os.path.exists(pushed.uri)
    props = _props(pushed)
    assert props["pushed"] == 0 and "pushed_destination" not in props
    assert props["reason"].startswith(f"{refused_by} (artifact ")
    assert ("0.05 > max 0.01" in props["reason"]) == (quantized_blessed == 0)
    assert ("float_blessing" in props["reason"]) == (float_blessed == 0)


def test_file_that_changed_after_quantization_is_refused(arts, tflite_bytes, tmp_path) -> None:
    model = arts.quantized_model(tflite_bytes, sha256="0" * 64)
    base = str(tmp_path / "serving")
    with pytest.raises(ValueError, match=rf"sha256 custom property of input 'model' \(artifact {model.id}\)"):
        _run(pusher.Executor, {"model": model, "model_blessing": arts.blessing(1)}, base, arts.pushed_model())
    assert not os.path.exists(base)


def _assert_nothing_pushed(base: str, pushed: standard_artifacts.PushedModel) -> None:
    assert not os.path.exists(base)
    assert not os.path.exists(pushed.uri)
    assert "pushed" not in _props(pushed)  # the execution fails: TFX records it FAILED, not "not pushed"


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty"])
def test_corrupt_model_without_sha256_property_is_refused(arts, tflite_bytes, tmp_path, damage: str) -> None:
    data = {"truncated": tflite_bytes[:len(tflite_bytes) // 2],
            "random bytes": np.random.default_rng(0).bytes(len(tflite_bytes)),
            "empty": b""}[damage]
    model = arts.quantized_model(data, record_sha256=False)  # e.g. imported: nothing to compare the bytes with
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    expected = "is empty" if damage == "empty" else "is not a loadable TFLite model"
    with pytest.raises(ValueError, match=rf"input 'model' \(artifact {model.id}, .*\): .*model.tflite.* {expected}"
                       r".*re-run the Quantizer, or re-import a valid TFLite model"):
        _run(pusher.Executor, {"model": model, "model_blessing": arts.blessing(1)}, base, pushed)
    _assert_nothing_pushed(base, pushed)


def test_tflite_model_without_serving_default_signature_is_refused(arts, tmp_path) -> None:
    # A bare concrete function converts to a valid flatbuffer with no signature at all.
    double = tf.function(lambda x: 2.0 * x, input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    data = tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()]).convert()
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    with pytest.raises(ValueError, match=r"not a loadable TFLite model with a 'serving_default' signature"):
        _run(pusher.Executor, {"model": arts.quantized_model(data), "model_blessing": arts.blessing(1)}, base, pushed)
    _assert_nothing_pushed(base, pushed)


def test_blessing_computed_on_other_bytes_is_refused(arts, tflite_bytes, tmp_path) -> None:
    model = arts.quantized_model(tflite_bytes)
    blessing = arts.blessing(1, evaluated_sha256="f" * 64, current_model_id=model.id)
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    with pytest.raises(ValueError, match=(
            rf"input 'model_blessing' \(artifact {blessing.id}\) was computed on model.tflite bytes with sha256 "
            rf"f{{64}} \(evaluated_sha256\), but input 'model' \(artifact {model.id}, .*\) holds bytes with sha256 "
            rf"{bytes_sha256(tflite_bytes)}; wire the blessing")):
        _run(pusher.Executor, {"model": model, "model_blessing": blessing}, base, pushed)
    _assert_nothing_pushed(base, pushed)


def test_blessing_of_another_model_is_refused(arts, tflite_bytes, tmp_path) -> None:
    # Without evaluated_sha256 (a stock Evaluator's blessing), current_model_id must name the model.
    model, other = arts.quantized_model(tflite_bytes), arts.quantized_model(tflite_bytes)
    blessing = arts.blessing(1, current_model_id=other.id)
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    with pytest.raises(ValueError, match=(
            rf"input 'model_blessing' \(artifact {blessing.id}\) is about model {other.id} \(current_model_id\), "
            rf"not input 'model' \(artifact {model.id}\)")):
        _run(pusher.Executor, {"model": model, "model_blessing": blessing}, base, pushed)
    _assert_nothing_pushed(base, pushed)


def test_the_evaluated_bytes_decide_over_ids_reassigned_by_an_orchestrator(arts, tflite_bytes, tmp_path) -> None:
    # A Kubeflow container sees other artifact ids than the MLMD the blessing was written in.
    model, other = arts.quantized_model(tflite_bytes), arts.quantized_model(tflite_bytes)
    blessing = arts.blessing(1, evaluated_sha256=bytes_sha256(tflite_bytes), current_model_id=other.id)
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": model, "model_blessing": blessing}, base, pushed)
    assert _props(pushed)["pushed"] == 1


def test_imported_model_with_a_matching_blessing_is_pushed_with_its_io(arts, tflite_bytes, tmp_path) -> None:
    model = arts.quantized_model(tflite_bytes, record_sha256=False)
    blessing = arts.blessing(1, evaluated_sha256=bytes_sha256(tflite_bytes), current_model_id=model.id)
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": model, "model_blessing": blessing}, base, pushed)

    assert _props(pushed)["pushed"] == 1
    with open(os.path.join(_props(pushed)["pushed_destination"], "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["io"] == {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 2], "scale": None, "zero_point": None,
                    "feature": "x", "feature_source": "tf.Example feature", "quantize": None}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [None, 2], "scale": None, "zero_point": None,
                     "feature": None, "labels_file": None, "dequantize": None}],
    }


def test_float_savedmodel_instead_of_quantized_model_is_refused(arts, tmp_path) -> None:
    trainer_model = arts.register(standard_artifacts.Model(), "trainer_model")
    with pytest.raises(ValueError, match="has no Format-Serving/model.tflite; wire the Quantizer's"):
        _run(pusher.Executor, {"model": trainer_model, "model_blessing": arts.blessing(1)},
             str(tmp_path / "serving"), arts.pushed_model())


def test_push_destination_without_filesystem_is_refused() -> None:
    with pytest.raises(ValueError, match="push_destination needs filesystem.base_directory"):
        pusher.base_directory("{}")
    assert pusher.base_directory(_destination("/srv/models")) == "/srv/models"


def test_bad_destination_is_reported_even_when_nothing_would_be_pushed(arts, tflite_bytes) -> None:
    inputs = {"model": [arts.quantized_model(tflite_bytes)], "model_blessing": [arts.blessing(0)]}
    with pytest.raises(ValueError, match="push_destination needs filesystem.base_directory"):
        pusher.Executor().Do(inputs, {"pushed_model": [arts.pushed_model()]}, {"push_destination": "{}"})


@pytest.mark.parametrize("blessed", [1, 0])
def test_stock_pusher_is_gated_by_our_blessing(arts, tflite_bytes, tmp_path, blessed: int) -> None:
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(stock_pusher.Executor, {"model": arts.quantized_model(tflite_bytes),
                                 "model_blessing": arts.blessing(blessed)}, base, pushed)
    assert artifact_utils.get_single_instance([pushed]).get_int_custom_property("pushed") == blessed
    if blessed:
        (version,) = os.listdir(base)
        with open(os.path.join(base, version, "model.tflite"), "rb") as f:
            assert f.read() == tflite_bytes
    else:
        assert not os.path.exists(base)


def _from_store(artifact_class: type, proto: metadata_store_pb2.Artifact) -> standard_artifacts.Artifact:
    """A copy of ``proto`` as an artifact of ``artifact_class``: editing it leaves the shared fixture alone."""
    artifact = artifact_class()
    copy = metadata_store_pb2.Artifact()
    copy.CopyFrom(proto)
    artifact.set_mlmd_artifact(copy)
    return artifact


@pytest.mark.parametrize("blessed", [1, 0])
def test_stock_pusher_on_the_quantizer_and_evaluator_outputs(penguin_quantized, penguin_blessed, tmp_path,
                                                             blessed: int) -> None:
    """The stock Pusher, fed the real Quantizer's model and the real QuantizationEvaluator's blessing of it (the
    golden penguin artifacts; as blessed or, on a copy, refused) pushes the TFLite file or nothing."""
    model = _from_store(standard_artifacts.Model, penguin_quantized.quantized_model.mlmd_artifact)
    blessing = _from_store(standard_artifacts.ModelBlessing, penguin_blessed.blessing.mlmd_artifact)
    assert blessing.get_int_custom_property("blessed") == 1, "the golden quantized model should be blessed"
    assert blessing.get_int_custom_property("current_model_id") == model.id
    blessing.set_int_custom_property("blessed", blessed)
    pushed, base = standard_artifacts.PushedModel(), str(tmp_path / "serving")
    pushed.uri = str(tmp_path / "pushed")

    _run(stock_pusher.Executor, {"model": model, "model_blessing": blessing}, base, pushed)

    assert pushed.get_int_custom_property("pushed") == blessed
    if blessed:
        (version,) = os.listdir(base)
        assert "model.tflite" in os.listdir(os.path.join(base, version))  # the whole Format-Serving folder
        with open(os.path.join(base, version, "model.tflite"), "rb") as f:
            assert bytes_sha256(f.read()) == model.get_string_custom_property("sha256")
    else:
        assert not os.path.exists(base)


COLORS = ("red", "green", "blue")


def _preprocessing_fn(inputs: dict) -> dict:
    return {"color_xf": tft.compute_and_apply_vocabulary(inputs["color"], num_oov_buckets=1, vocab_filename="color"),
            "x_xf": tft.scale_to_z_score(inputs["x"])}


@pytest.fixture(scope="module")
def transform_graph_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real (tiny) TFT transform graph with one vocabulary, as Transform's transform_graph output lays it out."""
    root = tmp_path_factory.mktemp("tft")
    output = str(root / "transform_graph")
    feature_spec = {"color": tf.io.FixedLenFeature([1], tf.string), "x": tf.io.FixedLenFeature([1], tf.float32)}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(feature_spec))
    rows = [{"color": [COLORS[i % 5 % 3]], "x": [float(i)]} for i in range(20)]
    with tft_beam.Context(temp_dir=str(root / "tmp")):
        _, transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(_preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(output)
    return output


def _transform_graph(arts: Artifacts, uri: str) -> standard_artifacts.TransformGraph:
    graph = arts.register(standard_artifacts.TransformGraph(), arts.name("transform_graph"))
    graph.uri = uri
    return graph


def _manifest(pushed: standard_artifacts.PushedModel) -> dict:
    with open(os.path.join(_props(pushed)["pushed_destination"], "manifest.json")) as f:
        return json.load(f)


def test_the_transforms_vocabularies_ship_beside_the_model(arts, tflite_bytes, tmp_path, transform_graph_uri) -> None:
    model = arts.quantized_model(tflite_bytes)
    graph = _transform_graph(arts, transform_graph_uri)
    model.set_int_custom_property("transform_graph_id", graph.id)
    model.set_string_custom_property("transform_graph_uri", graph.uri)
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": model, "model_blessing": arts.blessing(1), "transform_graph": graph}, base, pushed)

    destination = _props(pushed)["pushed_destination"]
    assert sorted(os.listdir(destination)) == ["manifest.json", "model.tflite", "vocabularies"]
    with open(os.path.join(transform_graph_uri, "transform_fn", "assets", "color"), "rb") as f:
        vocabulary = f.read()
    assert sorted(vocabulary.split()) == sorted(c.encode() for c in COLORS)
    with open(os.path.join(destination, "vocabularies", "color"), "rb") as f:
        assert f.read() == vocabulary
    manifest = _manifest(pushed)
    assert manifest["transform_graph"] == {"id": graph.id, "uri": transform_graph_uri}
    assert manifest["vocabularies"] == [{"name": "color", "file": "vocabularies/color",
                                         "sha256": bytes_sha256(vocabulary), "size": len(vocabulary)}]
    assert manifest["preprocessing"].startswith("inputs are the transform graph's outputs")
    assert [i["name"] for i in manifest["io"]["inputs"]] == ["x"]  # the io stays the model's
    # The PushedModel archives the vocabularies too.
    with open(os.path.join(pushed.uri, "vocabularies", "color"), "rb") as f:
        assert f.read() == vocabulary
    with open(os.path.join(pushed.uri, "manifest.json")) as f:
        assert json.load(f) == manifest


def test_without_transform_graph_the_push_is_unchanged(arts, tflite_bytes, tmp_path) -> None:
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": arts.quantized_model(tflite_bytes), "model_blessing": arts.blessing(1)},
         base, pushed)
    assert sorted(os.listdir(_props(pushed)["pushed_destination"])) == ["manifest.json", "model.tflite"]
    assert not {"transform_graph", "vocabularies", "preprocessing"} & set(_manifest(pushed))
    assert sorted(os.listdir(pushed.uri)) == ["manifest.json", "model.tflite"]


def test_a_model_quantized_through_a_graph_that_is_not_wired_is_pushed_with_a_warning(arts, tflite_bytes, tmp_path,
                                                                                      caplog) -> None:
    model = arts.quantized_model(tflite_bytes)
    model.set_int_custom_property("transform_graph_id", 77)
    model.set_string_custom_property("transform_graph_uri", "/p/Transform/transform_graph/77")
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": model, "model_blessing": arts.blessing(1)}, base, pushed)

    assert _props(pushed)["pushed"] == 1
    assert sorted(os.listdir(_props(pushed)["pushed_destination"])) == ["manifest.json", "model.tflite"]
    manifest = _manifest(pushed)
    assert manifest["transform_graph"] == {"id": 77, "uri": "/p/Transform/transform_graph/77"}
    assert manifest["vocabularies"] == []
    assert "its vocabularies were not shipped (wire transform_graph to ship them)" in caplog.text


def test_a_transform_graph_other_than_the_quantizers_is_refused(arts, tflite_bytes, tmp_path,
                                                               transform_graph_uri) -> None:
    model = arts.quantized_model(tflite_bytes)
    model.set_string_custom_property("transform_graph_uri", "/p/Transform/transform_graph/1")
    graph = _transform_graph(arts, transform_graph_uri)
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    with pytest.raises(ValueError, match=(
            rf"input 'transform_graph' \(artifact {graph.id}, .*\) is not the transform graph input 'model' "
            rf"\(artifact {model.id}\) was quantized through \(/p/Transform/transform_graph/1, its "
            r"transform_graph_uri property\); wire the same Transform output")):
        _run(pusher.Executor, {"model": model, "model_blessing": arts.blessing(1), "transform_graph": graph},
             base, pushed)
    _assert_nothing_pushed(base, pushed)


def test_a_transform_graph_wired_for_a_model_quantized_over_raw_features_is_refused(arts, tflite_bytes, tmp_path,
                                                                                      transform_graph_uri) -> None:
    model, graph = arts.quantized_model(tflite_bytes), _transform_graph(arts, transform_graph_uri)
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    with pytest.raises(ValueError, match=(
            rf"input 'transform_graph' \(artifact {graph.id}, .*\) is wired, but input 'model' \(artifact "
            rf"{model.id}\) was quantized over raw features .*; wire the same Transform output into the Quantizer")):
        _run(pusher.Executor, {"model": model, "model_blessing": arts.blessing(1), "transform_graph": graph},
             base, pushed)
    _assert_nothing_pushed(base, pushed)


# --- the deployable bundle: labels.txt and the I/O description; the candidate the blessing chose -----------------

class _Classifier(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def classify(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": tf.nn.softmax(tf.concat([x, -x, 0.5 * x], axis=1))}


@pytest.fixture(scope="module")
def classifier_bytes() -> bytes:
    """A real int8 TFLite classifier: input 'x' [None, 1], three class probabilities, int8 I/O."""
    module = _Classifier()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.classify.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ({"x": np.array([[v]], np.float32)} for v in np.linspace(-2, 2, 32))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def _evaluation(arts: Artifacts, task: str, label_key: str) -> QuantizationEvaluation:
    evaluation = arts.register(QuantizationEvaluation(), arts.name("evaluation"))
    with open(os.path.join(evaluation.uri, "metrics.json"), "w") as f:
        json.dump({"task": task, "label_key": label_key}, f)
    return evaluation


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_a_classifier_ships_labels_from_the_label_vocabulary_and_describes_its_io(
        arts, classifier_bytes, tmp_path, transform_graph_uri) -> None:
    model = arts.quantized_model(classifier_bytes)
    graph = _transform_graph(arts, transform_graph_uri)
    model.set_string_custom_property("transform_graph_uri", graph.uri)
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": model, "model_blessing": arts.blessing(1), "transform_graph": graph,
                           "evaluation": _evaluation(arts, "classification", "color")}, base, pushed)

    destination = _props(pushed)["pushed_destination"]
    assert sorted(os.listdir(destination)) == ["labels.txt", "manifest.json", "model.tflite", "vocabularies"]
    vocabulary = _read(os.path.join(transform_graph_uri, "transform_fn", "assets", "color"))
    assert _read(os.path.join(destination, "labels.txt")) == vocabulary  # line i = class i = vocabulary id i
    assert _read(os.path.join(pushed.uri, "labels.txt")) == vocabulary  # archived too
    manifest = _manifest(pushed)
    assert manifest["labels"] == {"file": "labels.txt", "num_classes": 3, "source": "transform vocabulary 'color'",
                                  "passed_over": []}
    (x,) = manifest["io"]["inputs"]
    assert (x["name"], x["feature"], x["dtype"], x["shape"]) == ("x", "x", "int8", [None, 1])
    assert x["feature_source"].startswith("transform graph output") and x["scale"] > 0
    assert isinstance(x["zero_point"], int) and x["quantize"].startswith("q = clip(round(x / scale)")
    (out,) = manifest["io"]["outputs"]
    assert (out["feature"], out["labels_file"], out["dtype"], out["shape"]) == ("color", "labels.txt", "int8", [None, 3])
    assert out["scale"] == pytest.approx(1 / 256) and out["dequantize"] == "x = scale * (q - zero_point)"


def _schema(arts: Artifacts, text: str) -> standard_artifacts.Schema:
    schema = arts.register(standard_artifacts.Schema(), arts.name("schema"))
    with open(os.path.join(schema.uri, "schema.pbtxt"), "w") as f:
        f.write(text)
    return schema


def test_labels_come_from_the_schemas_string_domain_with_the_label_key_of_the_calibration_set(
        arts, classifier_bytes, tmp_path) -> None:
    representative = arts.register(RepresentativeDataset(), arts.name("representative"))
    representative.set_string_custom_property("label_key", "species")
    schema = _schema(arts, 'feature { name: "species" type: BYTES domain: "species" }\n'
                           'string_domain { name: "species" value: "Adelie" value: "Chinstrap" value: "Gentoo" }\n')
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": arts.quantized_model(classifier_bytes), "model_blessing": arts.blessing(1),
                           "representative_dataset": representative, "schema": schema}, base, pushed)
    assert _read(os.path.join(_props(pushed)["pushed_destination"], "labels.txt")) == b"Adelie\nChinstrap\nGentoo\n"
    manifest = _manifest(pushed)
    assert manifest["labels"]["source"] == "schema string_domain of 'species'"
    assert manifest["io"]["inputs"][0]["feature_source"] == "tf.Example feature"


def test_without_vocabulary_or_domain_the_labels_are_the_indices(arts, classifier_bytes, tmp_path, caplog) -> None:
    schema = _schema(arts, 'feature { name: "species" type: INT }\n')  # SchemaGen's int label: no domain
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": arts.quantized_model(classifier_bytes), "model_blessing": arts.blessing(1),
                           "evaluation": _evaluation(arts, "classification", "species"), "schema": schema},
         base, pushed)
    assert _read(os.path.join(_props(pushed)["pushed_destination"], "labels.txt")) == b"0\n1\n2\n"
    labels = _manifest(pushed)["labels"]
    assert labels["source"].startswith("indices") and "int domain [0, 2] for 'species'" in labels["passed_over"][0]


def test_a_regression_model_ships_no_labels(arts, classifier_bytes, tmp_path) -> None:
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": arts.quantized_model(classifier_bytes), "model_blessing": arts.blessing(1),
                           "evaluation": _evaluation(arts, "regression", "price")}, base, pushed)
    assert "labels.txt" not in os.listdir(_props(pushed)["pushed_destination"])
    manifest = _manifest(pushed)
    assert manifest["labels"] is None and manifest["io"]["outputs"][0]["labels_file"] is None


def _classifier_of_width(width: int) -> bytes:
    """A real float TFLite classifier: input 'x' [None, 1], ``width`` softmax probabilities (1: one sigmoid)."""
    module = tf.Module()
    weights = tf.constant(np.linspace(-1.0, 1.0, width)[np.newaxis], tf.float32)

    def classify(x: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = x * weights
        return {"probabilities": tf.sigmoid(logits) if width == 1 else tf.nn.softmax(logits)}

    module.classify = tf.function(classify, input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    return tf.lite.TFLiteConverter.from_concrete_functions([module.classify.get_concrete_function()],
                                                           module).convert()


def _metric_blessing(arts: Artifacts, metric: str, data: bytes) -> standard_artifacts.ModelBlessing:
    """The QuantizationEvaluator's blessing as a minimal wiring sees it: blessed, about ``data``, naming ``metric``."""
    blessing = arts.blessing(1, evaluated_sha256=bytes_sha256(data))
    blessing.set_string_custom_property("metric", metric)
    return blessing


@pytest.mark.parametrize("metric, width", [("accuracy", 3), ("accuracy", 5), ("auc", 2)])
def test_model_and_blessing_alone_ship_index_labels_for_a_classifier(arts, classifier_bytes, tmp_path, metric: str,
                                                                      width: int) -> None:
    # Only the two required inputs: the blessing's metric says "classifier", the output width the class count.
    data = classifier_bytes if width == 3 else _classifier_of_width(width)  # the int8 one, and float ones
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": arts.quantized_model(data), "model_blessing": _metric_blessing(arts, metric, data)},
         base, pushed)

    destination = _props(pushed)["pushed_destination"]
    expected = "".join(f"{i}\n" for i in range(width)).encode()
    assert _read(os.path.join(destination, "labels.txt")) == expected
    assert _read(os.path.join(pushed.uri, "labels.txt")) == expected  # archived too
    manifest = _manifest(pushed)
    assert manifest["labels"] == {"file": "labels.txt", "num_classes": width,
                                  "source": "indices (no label vocabulary or schema domain)", "passed_over": []}
    (out,) = manifest["io"]["outputs"]
    assert (out["shape"], out["labels_file"], out["feature"]) == ([None, width], "labels.txt", None)


@pytest.mark.parametrize("wired", ["model and blessing", "with the evaluation"])
def test_a_single_sigmoid_output_ships_no_labels_whatever_is_wired(arts, tmp_path, wired: str) -> None:
    # One column is P(class 1), not one name per output index: no labels.txt, as with the evaluation wired before.
    data = _classifier_of_width(1)
    inputs = {"model": arts.quantized_model(data), "model_blessing": _metric_blessing(arts, "auc", data)}
    if wired == "with the evaluation":
        inputs["evaluation"] = _evaluation(arts, "classification", "is_fraud")
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, inputs, base, pushed)
    assert sorted(os.listdir(_props(pushed)["pushed_destination"])) == ["manifest.json", "model.tflite"]
    assert _manifest(pushed)["labels"] is None


@pytest.mark.parametrize("metric, width", [("mse", 1), ("mae", 2)])
def test_a_regression_blessing_ships_no_labels_even_with_a_known_label(arts, tmp_path, metric: str,
                                                                       width: int) -> None:
    # The blessing's regression metric decides over the calibration set's label key, which alone meant "classifier".
    representative = arts.register(RepresentativeDataset(), arts.name("representative"))
    representative.set_string_custom_property("label_key", "price")
    data = _classifier_of_width(width)
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": arts.quantized_model(data), "model_blessing": _metric_blessing(arts, metric, data),
                           "representative_dataset": representative}, base, pushed)
    assert sorted(os.listdir(_props(pushed)["pushed_destination"])) == ["manifest.json", "model.tflite"]
    manifest = _manifest(pushed)
    assert manifest["labels"] is None and manifest["io"]["outputs"][0]["labels_file"] is None


def test_of_several_candidates_the_one_the_blessing_chose_is_pushed(arts, tflite_bytes, classifier_bytes,
                                                                    tmp_path) -> None:
    candidates = [arts.quantized_model(tflite_bytes), arts.quantized_model(classifier_bytes),
                  arts.quantized_model(tflite_bytes[:-4] + b"\0\0\0\0")]  # the third would not even load
    chosen = candidates[1]
    blessing = arts.blessing(1, evaluated_sha256=bytes_sha256(classifier_bytes), current_model_id=chosen.id)
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    _run(pusher.Executor, {"model": candidates, "model_blessing": blessing}, base, pushed)
    assert _read(os.path.join(_props(pushed)["pushed_destination"], "model.tflite")) == classifier_bytes
    assert _manifest(pushed)["mlmd"]["quantized_model"] == {"id": chosen.id, "uri": chosen.uri}


@pytest.mark.parametrize("current_model_id", [None, 0])
def test_candidates_without_the_chosen_one_are_refused(arts, tflite_bytes, classifier_bytes, tmp_path,
                                                       current_model_id) -> None:
    candidates = [arts.quantized_model(tflite_bytes), arts.quantized_model(classifier_bytes)]
    named = None if current_model_id is None else 10_000  # an id no candidate has, and bytes none holds
    evaluated = bytes_sha256(classifier_bytes if named is None else b"bytes no candidate holds")
    blessing = arts.blessing(1, evaluated_sha256=evaluated, current_model_id=named)
    pushed, base = arts.pushed_model(), str(tmp_path / "serving")
    ids = f"artifacts {candidates[0].id}, {candidates[1].id}"
    expected = (r"has no current_model_id to say which was chosen" if named is None else
                rf"chose model 10000 \(current_model_id\), which is not among the 2 candidates of input 'model' \({ids}\)")
    with pytest.raises(ValueError, match=expected):
        _run(pusher.Executor, {"model": candidates, "model_blessing": blessing}, base, pushed)
    _assert_nothing_pushed(base, pushed)
