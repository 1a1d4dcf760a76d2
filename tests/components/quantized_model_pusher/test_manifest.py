"""Pure helpers of the pusher: blessing refusals, push keys and the manifest (hand-built artifacts, no I/O)."""

from __future__ import annotations

import math

from tfx.types import standard_artifacts

from quantgate.components.quantized_model_pusher import manifest


def _blessing(artifact_id: int, blessed: int | None, **props: object) -> standard_artifacts.ModelBlessing:
    blessing = standard_artifacts.ModelBlessing()
    blessing.id = artifact_id
    if blessed is not None:
        blessing.set_int_custom_property("blessed", blessed)
    for key, value in props.items():
        if isinstance(value, str):
            blessing.set_string_custom_property(key, value)
        else:
            blessing.set_float_custom_property(key, value)
    return blessing


def test_refusal_names_the_input_and_quotes_the_reason() -> None:
    assert manifest.refusal("model_blessing", _blessing(3, 1)) is None
    refused = _blessing(3, 0, reason="not blessed: delta 0.05 > max 0.01")
    assert manifest.refusal("model_blessing", refused) == (
        "model_blessing (artifact 3) is not blessed: delta 0.05 > max 0.01")
    # The stock Evaluator's blessing has no 'reason'; its blessing_message is used instead.
    stock = _blessing(4, 0, blessing_message="value thresholds were checked and failed")
    assert manifest.refusal("float_blessing", stock).endswith(": value thresholds were checked and failed")
    assert manifest.refusal("float_blessing", _blessing(5, None)) == (
        "float_blessing (artifact 5) is not blessed: it has no 'blessed' custom property")


def test_refusals_lists_every_unblessed_input() -> None:
    blessings = {"model_blessing": _blessing(1, 0), "float_blessing": _blessing(2, 0)}
    assert [r.split(" ")[0] for r in manifest.refusals(blessings)] == ["model_blessing", "float_blessing"]
    assert manifest.refusals({"model_blessing": _blessing(1, 1)}) == []


def test_push_key_changes_with_model_bytes_and_blessings() -> None:
    model = standard_artifacts.Model()
    model.id = 10
    key = manifest.push_key(model, {"model_blessing": _blessing(1, 1)}, "aa")
    assert key == {"model_id": 10, "sha256": "aa", "model_blessing_id": 1}
    assert manifest.push_key(model, {"model_blessing": _blessing(2, 1)}, "aa") != key
    assert manifest.push_key(model, {"model_blessing": _blessing(1, 1)}, "bb") != key


def test_manifest_reads_metric_values_from_the_evaluation_and_drops_nan() -> None:
    model = standard_artifacts.Model()
    model.id, model.uri = 10, "/m"
    model.set_string_custom_property("quantization_mode", "int8")
    blessing = _blessing(11, 1, metric="auc", delta=math.nan, threshold=0.01)
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.set_float_custom_property("float_auc", 0.9)
    evaluation.set_float_custom_property("quantized_auc", math.nan)

    io = {"inputs": [{"name": "x", "dtype": "int8", "shape": [None, 2], "scale": 0.5, "zero_point": -3}],
          "outputs": [{"name": "y", "dtype": "float32", "shape": [None, 1], "scale": None, "zero_point": None}]}

    built = manifest.build_manifest(model=model, blessing=blessing, evaluation=evaluation, sha256="s",
                                    size_bytes=3, io=io)

    assert built["metric"] == {"name": "auc", "float": 0.9, "quantized": None, "delta": None, "threshold": 0.01}
    assert built["quantization_mode"] == "int8" and built["float_size_bytes"] is None
    assert built["io"] == io
    assert built["mlmd"]["quantized_model"] == {"id": 10, "uri": "/m"}
    assert built["mlmd"]["blessing"]["id"] == 11 and built["mlmd"]["float_model"] is None


def test_transform_entries_list_the_graph_and_each_vocabulary() -> None:
    model = standard_artifacts.Model()
    graph = standard_artifacts.TransformGraph()
    graph.id, graph.uri = 5, "/p/Transform/transform_graph/5"
    entries = manifest.transform_entries(model, graph, {"company": b"Flash Cab\nTaxi Affiliation\n", "payment": b""})
    assert entries == {
        "transform_graph": {"id": 5, "uri": "/p/Transform/transform_graph/5"},
        "vocabularies": [
            {"name": "company", "file": "vocabularies/company", "size": 27,
             "sha256": "1d9eea3f09bceb0b004b33daf84db7dc93a7fa727e16417e35de3449b289120f"},
            {"name": "payment", "file": "vocabularies/payment", "size": 0,
             "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        ],
        "preprocessing": manifest.PREPROCESSING_NOTE,
    }
    assert manifest.PREPROCESSING_NOTE.startswith("inputs are the transform graph's outputs; apply transform_graph")


def test_transform_entries_fall_back_on_the_models_properties_and_are_empty_on_raw_features() -> None:
    model = standard_artifacts.Model()
    assert manifest.transform_entries(model, None, {}) == {}  # a model on raw features: the manifest is unchanged
    model.set_int_custom_property("transform_graph_id", 5)
    model.set_string_custom_property("transform_graph_uri", "/p/Transform/transform_graph/5")
    entries = manifest.transform_entries(model, None, {})
    assert entries["transform_graph"] == {"id": 5, "uri": "/p/Transform/transform_graph/5"}
    assert entries["vocabularies"] == []
