"""The executor end to end (Beam DirectRunner) on the golden penguin artifacts (the demo's data, its Trainer module's
model, the real Quantizer's int8 model; no pipeline), and the stock TFX Pusher gated by it. What the demo pipeline
itself wired is checked on ``demo_run`` (pipeline tier)."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from quantgate.components.quantization_evaluator.inference import LATENCY_CALLS, LATENCY_MIN_CALLS
from quantgate.components.quantization_evaluator.outputs import write_evaluation_files
from quantgate.components.shared.model_runners import TFLiteRunner
from quantgate.components.shared.signature_inputs import examples_to_inputs


def labels_and_islands(records: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The ``species`` label and ``island`` of each record, parsed with TensorFlow (independently of tfx_bsl)."""
    parsed = tf.io.parse_example(records, {"species": tf.io.FixedLenFeature([1], tf.int64),
                                           "island": tf.io.FixedLenFeature([1], tf.string)})
    return parsed["species"].numpy()[:, 0], np.array([v.decode() for v in parsed["island"].numpy()[:, 0]])


@pytest.fixture(scope="module")
def blessed(penguin_blessed) -> object:
    """Sliced by island, min_slice_size=10, min_agreement=0.9 (one run, shared with the pushers' tests)."""
    return penguin_blessed


@pytest.fixture(scope="module")
def refused(run_evaluator) -> object:
    return run_evaluator("refused", max_delta=-1)


def _metrics(run: object) -> dict:
    with open(os.path.join(run.evaluation.uri, "metrics.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def predictions(penguin_quantized) -> dict[str, np.ndarray]:
    """Independent predictions of the eval split: the float model's tf.Example signature, the TFLite runner."""
    records = penguin_quantized.eval_records
    loaded = tf.saved_model.load(penguin_quantized.saved_model_dir)
    float_probs = loaded.signatures["serving_default"](tf.constant(records))["probabilities"].numpy()
    inputs = examples_to_inputs(records, penguin_quantized.specs, source="test")
    quant_probs = TFLiteRunner(penguin_quantized.tflite_path).predict(inputs)[penguin_quantized.quant_output]
    labels, islands = labels_and_islands(records)
    return {"float": float_probs.argmax(1), "quantized": quant_probs.argmax(1), "labels": labels, "islands": islands}


def test_blessed_at_the_default_threshold_like_tfx_evaluator(blessed, penguin_quantized) -> None:
    assert blessed.blessing_property("blessed") == 1
    assert blessed.blessing_property("threshold") == pytest.approx(0.01)
    assert blessed.blessing_property("delta") <= 0.01
    assert blessed.blessing_property("reason") == "blessed: every threshold passed"
    # What TFX's Evaluator writes, about the model that gets pushed: the quantized one.
    assert blessed.blessing_property("current_model_id") == penguin_quantized.quantized_model.id
    assert blessed.blessing_property("current_model") == penguin_quantized.quantized_model.uri
    assert os.listdir(blessed.blessing.uri) == ["BLESSED"]
    # LatestBlessedModelStrategy picks the quantized model when given this blessing.
    resolved = LatestBlessedModelStrategy().resolve_artifacts(
        None, {"model": [penguin_quantized.quantized_model], "model_blessing": [blessed.blessing]})
    assert [m.id for m in resolved["model"]] == [penguin_quantized.quantized_model.id]


def test_overall_metrics_match_an_independent_computation(blessed, predictions) -> None:
    metrics = _metrics(blessed)
    overall = metrics["overall"]
    labels = predictions["labels"]
    assert overall["num_examples"] == len(labels) and overall["missing"] == overall["nonfinite"] == 0
    float_acc = np.mean(predictions["float"] == labels)
    quant_acc = np.mean(predictions["quantized"] == labels)
    assert overall["float"]["accuracy"] == pytest.approx(float_acc)
    assert overall["quantized"]["accuracy"] == pytest.approx(quant_acc)
    assert overall["delta"] == pytest.approx(float_acc - quant_acc)
    assert overall["agreement"] == pytest.approx(np.mean(predictions["float"] == predictions["quantized"]))
    assert float_acc > 0.9  # a trained model, so the comparison means something
    for cls in range(3):
        assert overall["quantized"]["recall"][str(cls)] == pytest.approx(
            np.mean(predictions["quantized"][labels == cls] == cls))
    evaluation = blessed.evaluation.mlmd_artifact.custom_properties
    assert evaluation["float_accuracy"].double_value == pytest.approx(float_acc)
    assert evaluation["quantized_accuracy"].double_value == pytest.approx(quant_acc)
    assert evaluation["blessed"].int_value == 1
    assert evaluation["report_path"].string_value == os.path.join(blessed.evaluation.uri, "report.html")


def test_per_slice_metrics_on_island(blessed, predictions) -> None:
    metrics = _metrics(blessed)
    islands, labels = predictions["islands"], predictions["labels"]
    counts = Counter(islands)
    gated = {s["value"]: s for s in metrics["slices"]}
    skipped = {s["value"]: s["num_examples"] for s in metrics["skipped_slices"]}
    assert set(gated) | set(skipped) == set(counts) and len(counts) == 3
    for island, entry in gated.items():
        rows = islands == island
        assert entry["feature"] == "island" and entry["num_examples"] == counts[island] >= 10
        assert entry["float"]["accuracy"] == pytest.approx(np.mean(predictions["float"][rows] == labels[rows]))
        assert entry["quantized"]["accuracy"] == pytest.approx(
            np.mean(predictions["quantized"][rows] == labels[rows]))
    assert all(n < 10 for n in skipped.values())


def test_metrics_json_records_sizes_latency_thresholds(blessed, penguin_quantized) -> None:
    metrics = _metrics(blessed)
    props = penguin_quantized.quantized_model.mlmd_artifact.custom_properties
    assert {k: metrics["sizes"][k] for k in ("quantized_bytes", "float_bytes")} == {
        "quantized_bytes": props["size_bytes"].int_value, "float_bytes": props["float_size_bytes"].int_value}
    assert metrics["sizes"]["quantized_bytes"] == os.path.getsize(penguin_quantized.tflite_path)
    for model in ("float", "quantized"):
        latency = metrics["latency_ms"][model]
        assert 0 < latency["p50_ms"] <= latency["p95_ms"] and LATENCY_MIN_CALLS <= latency["calls"] <= LATENCY_CALLS
        assert 0 < latency["kernel_p50_ms"] <= latency["kernel_p95_ms"]
    assert metrics["thresholds"]["latency_measure"] == "kernel"
    assert metrics["thresholds"]["max_delta"] == 0.01 and metrics["thresholds"]["min_agreement"] == 0.9
    assert metrics["verdict"]["blessed"] is True and metrics["models"]["float"]["signature_name"] == "serving_features"


def test_refused_at_negative_max_delta(refused) -> None:
    assert refused.blessing_property("blessed") == 0
    assert refused.blessing_property("threshold") == -1.0
    assert "> max -1" in refused.blessing_property("reason")
    assert os.listdir(refused.blessing.uri) == ["NOT_BLESSED"]
    assert _metrics(refused)["verdict"]["blessed"] is False


@pytest.mark.parametrize(("run_name", "word"), [("blessed", "BLESSED"), ("refused", "NOT BLESSED")])
def test_report_is_written_and_names_the_verdict(request, run_name: str, word: str) -> None:
    run = request.getfixturevalue(run_name)
    with open(os.path.join(run.evaluation.uri, "report.html")) as f:
        page = f.read()
    assert f"<h1 class=\"verdict\">{word}</h1>" in page
    assert sorted(os.listdir(run.evaluation.uri)) == ["metrics.json", "report.html"]  # no staging left behind


def _push(penguin_quantized, blessing: object, root: str) -> tuple[object, str]:
    destination = os.path.join(root, "serving")
    pushed = standard_artifacts.PushedModel()
    pushed.uri = os.path.join(root, "pushed_model")
    pusher_executor.Executor().Do(
        {"model": [penguin_quantized.quantized_model], "model_blessing": [blessing]},
        {"pushed_model": [pushed]},
        {"push_destination": proto_utils.proto_to_json(pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=destination)))},
    )
    return pushed, destination


def test_stock_pusher_pushes_the_blessed_quantized_model(blessed, penguin_quantized, tmp_path) -> None:
    pushed, destination = _push(penguin_quantized, blessed.blessing, str(tmp_path))
    assert pushed.get_int_custom_property("pushed") == 1
    (version,) = os.listdir(destination)
    with open(os.path.join(destination, version, "model.tflite"), "rb") as f, \
            open(penguin_quantized.tflite_path, "rb") as g:
        assert f.read() == g.read()


def test_stock_pusher_pushes_nothing_when_refused(refused, penguin_quantized, tmp_path) -> None:
    pushed, destination = _push(penguin_quantized, refused.blessing, str(tmp_path))
    assert pushed.get_int_custom_property("pushed") == 0
    assert not os.path.exists(destination)


def test_demo_pipeline_gates_the_quantizers_model(demo_run) -> None:
    """Wired in create_pipeline: the demo run's evaluation blesses the Quantizer's output, sliced by island."""
    quantized = demo_run.output("Quantizer", "quantized_model")
    blessing = demo_run.output("QuantizationEvaluator", "blessing").custom_properties
    evaluation = demo_run.output("QuantizationEvaluator", "evaluation")
    assert blessing["blessed"].int_value == 1 and blessing["threshold"].double_value == pytest.approx(0.01)
    assert blessing["current_model_id"].int_value == quantized.id
    with open(os.path.join(evaluation.uri, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["slicing_feature_keys"] == ["island"] and metrics["slices"]
    assert evaluation.custom_properties["report_path"].string_value == os.path.join(evaluation.uri, "report.html")
    assert os.path.getsize(os.path.join(evaluation.uri, "report.html")) > 10_000


def _edited(records: list[bytes], edit: Callable[[int, tf.train.Example], None]) -> list[bytes]:
    """The records with ``edit(index, example)`` applied to each parsed example."""
    out = []
    for i, record in enumerate(records):
        example = tf.train.Example.FromString(record)
        edit(i, example)
        out.append(example.SerializeToString())
    return out


def _strict_json(path: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{path} holds {constant}, which strict JSON has not")

    with open(path) as f:
        return json.load(f, parse_constant=refuse)


NAN_ROWS = (3, 10, 40)


def _nan_bill_length(i: int, example: tf.train.Example) -> None:
    if i in NAN_ROWS:
        example.features.feature["bill_length_mm"].float_list.value[0] = float("nan")


def test_nonfinite_inputs_refuse_the_blessing_and_nothing_is_pushed(run_evaluator, penguin_quantized, make_examples,
                                                                     tmp_path) -> None:
    records = penguin_quantized.eval_records
    run = run_evaluator("nan_refused", examples=make_examples({"eval": _edited(records, _nan_bill_length)}),
                        max_delta=1.0)
    reason = run.blessing_property("reason")
    assert run.blessing_property("blessed") == 0 and os.listdir(run.blessing.uri) == ["NOT_BLESSED"]
    assert ("eval split has 3 examples with non-finite inputs (bill_length_mm: 3); fix the data upstream or pass "
            "nonfinite_inputs='drop'") in reason
    metrics = _strict_json(os.path.join(run.evaluation.uri, "metrics.json"))
    overall = metrics["overall"]
    assert overall["nonfinite_inputs"] == {"bill_length_mm": 3} and overall["nonfinite_input_examples"] == 3
    assert overall["num_examples"] == len(records) - 3  # never scored, whatever the policy
    assert metrics["verdict"]["nonfinite_inputs"] == "refuse" and metrics["verdict"]["dropped"]["examples"] == 0
    pushed, destination = _push(penguin_quantized, run.blessing, str(tmp_path))
    assert pushed.get_int_custom_property("pushed") == 0 and not os.path.exists(destination)


def test_nonfinite_inputs_dropped_are_left_out_and_recorded(run_evaluator, penguin_quantized, make_examples,
                                                            predictions) -> None:
    records = penguin_quantized.eval_records
    run = run_evaluator("nan_dropped", examples=make_examples({"eval": _edited(records, _nan_bill_length)}),
                        max_delta=1.0, nonfinite_inputs="drop")
    assert run.blessing_property("blessed") == 1
    assert "dropped: eval split has 3 examples with non-finite inputs (bill_length_mm: 3)" in \
        run.blessing_property("reason")
    metrics = _strict_json(os.path.join(run.evaluation.uri, "metrics.json"))
    assert metrics["verdict"]["dropped"] == {"examples": 3, "nonfinite_inputs": {"bill_length_mm": 3}}
    kept = np.ones(len(records), dtype=bool)
    kept[list(NAN_ROWS)] = False
    labels = predictions["labels"]
    for model in ("float", "quantized"):
        assert metrics["overall"][model]["accuracy"] == pytest.approx(
            np.mean(predictions[model][kept] == labels[kept]))


def test_labels_that_are_not_class_indices_count_as_missing(run_evaluator, penguin_quantized, make_examples) -> None:
    def fractional(i: int, example: tf.train.Example) -> None:
        species = example.features.feature["species"]
        (value,) = species.int64_list.value
        species.Clear()  # one feature type for every example: float labels, five of them not class indices
        species.float_list.value.append(value + (0.9 if i < 5 else 0.0))

    run = run_evaluator("fractional_labels", max_delta=1.0,
                        examples=make_examples({"eval": _edited(penguin_quantized.eval_records, fractional)}))
    assert run.blessing_property("blessed") == 0
    assert "5 examples got no prediction or no label (5 of them have a label that is not a class index" in \
        run.blessing_property("reason")
    overall = _strict_json(os.path.join(run.evaluation.uri, "metrics.json"))["overall"]
    assert (overall["missing"], overall["invalid_labels"]) == (5, 5)
    assert overall["num_examples"] == len(penguin_quantized.eval_records) - 5


def test_slice_values_with_mathtext_and_bad_bytes_are_literal(run_evaluator, penguin_quantized, make_examples) -> None:
    def odd_islands(i: int, example: tf.train.Example) -> None:
        island = example.features.feature["island"].bytes_list.value
        if i % 2:
            island[0] = rb"$\undefinedmacro{x}$"
        elif i % 3 == 0:
            island[0] = b"Dr\xffeam"

    run = run_evaluator("odd_slices", slicing_feature_keys=["island"], min_slice_size=1,
                        examples=make_examples({"eval": _edited(penguin_quantized.eval_records, odd_islands)}))
    metrics = _strict_json(os.path.join(run.evaluation.uri, "metrics.json"))
    values = {s["value"] for s in metrics["slices"]}
    assert {r"$\undefinedmacro{x}$", r"Dr\xffeam"} <= values
    with open(os.path.join(run.evaluation.uri, "report.html")) as f:
        page = f.read()
    assert r"island=$\undefinedmacro{x}$" in page and r"island=Dr\xffeam" in page


def test_blessing_names_the_sha256_of_the_scored_tflite_bytes(blessed, penguin_quantized) -> None:
    with open(penguin_quantized.tflite_path, "rb") as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    assert blessed.blessing_property("evaluated_sha256") == sha256
    assert blessed.evaluation.get_string_custom_property("evaluated_sha256") == sha256
    assert _metrics(blessed)["models"]["quantized"]["evaluated_sha256"] == sha256
    assert sha256 == penguin_quantized.quantized_model.get_string_custom_property("sha256")


def test_metrics_json_is_strict_even_for_undefined_values(blessed, tmp_path) -> None:
    metrics = _metrics(blessed)
    metrics["overall"]["agreement"] = float("nan")
    metrics["latency_ms"]["float"]["p95_ms"] = float("inf")
    write_evaluation_files(str(tmp_path), metrics)
    written = _strict_json(str(tmp_path / "metrics.json"))
    assert written["overall"]["agreement"] is None and written["latency_ms"]["float"]["p95_ms"] is None


def test_a_tiny_split_passes_on_the_point_delta_but_not_on_its_upper_bound(run_evaluator, make_examples,
                                                                           penguin_quantized) -> None:
    tiny_split = make_examples({"eval": penguin_quantized.eval_records[:40]})
    point = run_evaluator("tiny_point", examples=tiny_split)
    upper = run_evaluator("tiny_upper", examples=tiny_split, delta_bound="upper")
    metrics = _metrics(upper)
    delta, bound = metrics["overall"]["delta"], metrics["overall"]["delta_upper"]
    assert delta <= 0.01 < bound  # the same scores: the point delta passes, its 95 % bound does not
    assert point.blessing_property("blessed") == 1 and upper.blessing_property("blessed") == 0
    assert "the 95% upper confidence bound of the absolute delta of accuracy on overall is" in \
        upper.blessing_property("reason")
    assert upper.blessing_property("delta_upper") == pytest.approx(bound)
    assert upper.blessing_property("delta_bound") == "upper"
    assert metrics["overall"]["deltas"]["accuracy"]["method"] == "newcombe_paired_score"
    # 1/40 > 0.01: said in the verdict (and the report), without refusing.
    (warning,) = [w for w in _metrics(point)["verdict"]["warnings"] if "one flipped prediction" in w]
    assert "by 0.025 > max_delta 0.01: 40 examples are too few" in warning


def test_fewer_examples_than_min_examples_are_not_blessed(run_evaluator, make_examples, penguin_quantized) -> None:
    five = make_examples({"eval": penguin_quantized.eval_records[:5]})
    run = run_evaluator("five", examples=five, max_delta=1.0)
    assert run.blessing_property("blessed") == 0
    assert "only 5 examples of the eval split were scored < min_examples 30" in run.blessing_property("reason")
    assert run_evaluator("five_allowed", examples=five, max_delta=1.0, min_examples=5).blessing_property("blessed")


def test_metrics_json_has_confusion_and_disagreement_matrices(blessed, predictions) -> None:
    overall = _metrics(blessed)["overall"]
    labels, float_cls, quant_cls = predictions["labels"], predictions["float"], predictions["quantized"]
    for model, classes in (("float", float_cls), ("quantized", quant_cls)):
        expected = np.zeros((3, 3), dtype=int)
        np.add.at(expected, (labels, classes), 1)
        assert overall["confusion"][model] == expected.tolist()
    disagreement = np.zeros((3, 3), dtype=int)
    np.add.at(disagreement, (float_cls, quant_cls), 1)
    assert overall["confusion"]["disagreement"] == disagreement.tolist()
    paired = overall["paired"]
    assert paired["float_only_correct"] == int(((float_cls == labels) & (quant_cls != labels)).sum())
    assert sum(paired.values()) == overall["num_examples"]
    for entry in [overall, *_metrics(blessed)["slices"]]:
        bounds = entry["deltas"]["accuracy"]
        assert bounds["lower"] <= bounds["delta"] <= bounds["upper"]
