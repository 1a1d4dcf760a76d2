"""Issue 23, items 1 and 2, on real models and real Beam: NaN / inf in several eval features (the demo's four
[None, 1] inputs and a model with a [None, 2] vector input) is counted per feature and refused or dropped, never a
numpy crash; an evaluation that scores nothing finishes in a real MLMD store with its not-blessed verdict and no
NaN property."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.types import Artifact, standard_artifacts

from quantgate.components import QuantizationEvaluator
from quantgate.components.quantization_evaluator.inference import (
    BatchParser,
    feature_kinds,
    measure_latency,
    parse_examples,
)
from quantgate.components.shared import properties
from quantgate.components.shared.finite_properties import set_finite_float_property
from quantgate.components.shared.model_runners import InputQuantizer, SavedModelRunner, TFLiteRunner
from quantgate.components.shared.signature_inputs import InputSpec, decode_examples, examples_to_inputs
from quantgate.components.types import QuantizationEvaluation

from .test_executor import _edited, _strict_json

NAN, INF = float("nan"), float("inf")


def _outputs_exist(evaluation: Artifact) -> tuple[dict, str]:
    metrics = _strict_json(os.path.join(evaluation.uri, properties.METRICS_FILENAME))
    with open(os.path.join(evaluation.uri, properties.EVALUATION_REPORT_FILENAME)) as f:
        return metrics, f.read()


# --- the runners: a NaN never crashes the int8 input quantization, in either path ---------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_nan_is_quantized_to_the_zero_point_in_both_paths_and_inf_clips(dtype) -> None:
    zero_point = {np.int8: -3, np.uint8: 131, np.int16: 0}[dtype]
    quantizer = InputQuantizer(0.05, zero_point, dtype)
    info = np.iinfo(dtype)
    values = np.array([NAN, INF, -INF, 1.0], dtype=np.float32)
    expected = [zero_point, info.max, info.min, zero_point + 20]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "invalid value encountered in cast" is a NaN reaching astype
        whole = quantizer(values.reshape(-1, 1))
        one_by_one = [int(quantizer(values[i:i + 1].reshape(1, 1))[0, 0]) for i in range(len(values))]
    np.testing.assert_array_equal(whole[:, 0], expected)
    assert one_by_one == expected


@pytest.fixture(scope="module")
def demo_float_tflite(penguin_quantized, tmp_path_factory) -> str:
    """The demo's dense signature converted to a float32 TFLite model (float inputs, no quantization)."""
    loaded = tf.saved_model.load(penguin_quantized.saved_model_dir)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [loaded.signatures[penguin_quantized.signature_name]], loaded)
    path = str(tmp_path_factory.mktemp("float_tflite") / "model.tflite")
    with open(path, "wb") as f:
        f.write(converter.convert())
    return path


def test_every_runner_predicts_on_nan_and_inf_rows_of_every_batch_size(penguin_quantized, demo_float_tflite) -> None:
    """A batch of one (the batch-1 latency call, a last Beam batch of one record) and a whole batch, with NaN in all
    four inputs or in one, and inf: the float SavedModel, the float TFLite and the int8 TFLite models all answer,
    and the rows without a NaN get what they get in a clean batch."""
    inputs = examples_to_inputs(penguin_quantized.eval_records[:8], penguin_quantized.specs, source="test")
    names = sorted(inputs)
    dirty = {name: value.copy() for name, value in inputs.items()}
    for name in names:
        dirty[name][0] = NAN
    dirty[names[1]][3] = INF
    dirty[names[2]][5] = NAN
    runners = [SavedModelRunner(penguin_quantized.saved_model_dir, penguin_quantized.signature_name),
               TFLiteRunner(demo_float_tflite), TFLiteRunner(penguin_quantized.tflite_path)]
    clean_rows = [1, 2, 4, 6, 7]
    for runner in runners:
        (output,) = runner.output_names
        clean = runner.predict(inputs)[output]
        for rows in (slice(0, 1), slice(3, 4), slice(5, 6), slice(0, 8)):
            predicted = runner.predict({name: value[rows] for name, value in dirty.items()})[output]
            assert len(predicted) == len(range(8)[rows])
        whole = runner.predict(dirty)[output]
        np.testing.assert_allclose(whole[clean_rows], clean[clean_rows], rtol=1e-6)
        latency = measure_latency(runner, dirty, warmup=1, calls=3, budget_s=0.0)
        assert latency.calls == 3


def test_nonfinite_values_are_masked_and_zeroed_before_any_model_sees_them() -> None:
    records = [tf.train.Example(features=tf.train.Features(feature={
        "v": tf.train.Feature(float_list=tf.train.FloatList(value=v)),
        "s": tf.train.Feature(float_list=tf.train.FloatList(value=[s])),
        "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))})).SerializeToString()
        for v, s in (([1.0, NAN], 2.0), ([3.0, 4.0], INF), ([5.0, 6.0], 7.0), ([-INF, NAN], NAN))]
    specs = [InputSpec("s", np.dtype(np.float32), (None, 1)), InputSpec("v", np.dtype(np.float32), (None, 2))]
    exact = parse_examples(records, specs, "y", [], "test")
    parser = BatchParser(specs, "y", [], "test", feature_kinds(decode_examples(records, source="test")))
    assert parser._feature_spec is not None  # the one-pass parse_example path, the Beam workers' one
    fast = parser(records)
    for parsed in (exact, fast):
        np.testing.assert_array_equal(parsed.nonfinite_inputs["v"], [True, False, False, True])
        np.testing.assert_array_equal(parsed.nonfinite_inputs["s"], [False, True, False, True])
        np.testing.assert_array_equal(parsed.inputs["v"], [[1.0, 0.0], [3.0, 4.0], [5.0, 6.0], [0.0, 0.0]])
        np.testing.assert_array_equal(parsed.inputs["s"], [[2.0], [0.0], [7.0], [0.0]])


# --- the demo's model: NaN in the four float features of some rows ------------------------------------------------

# Rows with NaN in all four inputs (row 0 is the one the batch-1 latency is timed on), and single-feature faults.
ALL_NAN_ROWS = (0, 4, 21)


def _demo_faults(features: list[str]) -> tuple[Callable[[int, tf.train.Example], None], dict[str, int], set[int]]:
    single = {33: (features[3], INF), 34: (features[2], -INF), 50: (features[0], NAN)}

    def edit(i: int, example: tf.train.Example) -> None:
        if i in ALL_NAN_ROWS:
            for name in features:
                example.features.feature[name].float_list.value[0] = NAN
        if i in single:
            name, value = single[i]
            example.features.feature[name].float_list.value[0] = value

    counts = {name: len(ALL_NAN_ROWS) + sum(1 for n, _ in single.values() if n == name) for name in features}
    return edit, counts, set(ALL_NAN_ROWS) | set(single)


@pytest.fixture(scope="module")
def demo_faults(penguin_quantized, make_examples_module) -> tuple[Artifact, dict[str, int], set[int]]:
    features = sorted(spec.name for spec in penguin_quantized.specs)
    assert len(features) == 4
    edit, counts, rows = _demo_faults(features)
    return make_examples_module({"eval": _edited(penguin_quantized.eval_records, edit)}), counts, rows


@pytest.fixture(scope="module")
def make_examples_module(tmp_path_factory) -> Callable[[dict[str, list[bytes]]], Artifact]:
    """``make_examples`` for module-scoped fixtures: each call writes a new Examples artifact."""

    def make(splits: dict[str, list[bytes]]) -> Artifact:
        artifact = standard_artifacts.Examples()
        artifact.uri = str(tmp_path_factory.mktemp("examples"))
        artifact.id = 4242
        artifact.split_names = json.dumps(list(splits))
        for split, records in splits.items():
            os.makedirs(os.path.join(artifact.uri, f"Split-{split}"))
            with tf.io.TFRecordWriter(os.path.join(artifact.uri, f"Split-{split}", "data.gz"), "GZIP") as w:
                for record in records:
                    w.write(record)
        return artifact

    return make


def _nonfinite_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in sorted(counts.items()))


def test_demo_nan_in_four_features_is_not_blessed_naming_each_feature(run_evaluator, penguin_quantized,
                                                                      demo_faults) -> None:
    examples, counts, rows = demo_faults
    run = run_evaluator("demo_nan_refused", examples=examples, max_delta=1.0)
    reason = run.blessing_property("reason")
    assert run.blessing_property("blessed") == 0 and os.listdir(run.blessing.uri) == ["NOT_BLESSED"]
    assert (f"eval split has {len(rows)} examples with non-finite inputs ({_nonfinite_text(counts)}); fix the data "
            "upstream or pass nonfinite_inputs='drop'") in reason
    metrics, page = _outputs_exist(run.evaluation)
    overall = metrics["overall"]
    assert overall["nonfinite_inputs"] == counts and overall["nonfinite_input_examples"] == len(rows)
    assert overall["num_examples"] == len(penguin_quantized.eval_records) - len(rows)
    assert overall["nonfinite"] == 0  # the NaN rows are counted as bad inputs, not as NaN predictions
    assert _nonfinite_text(counts) in page and "NOT BLESSED" in page


def test_demo_nan_rows_dropped_are_scored_on_the_rest(run_evaluator, penguin_quantized, demo_faults) -> None:
    examples, counts, rows = demo_faults
    run = run_evaluator("demo_nan_dropped", examples=examples, max_delta=1.0, nonfinite_inputs="drop")
    assert run.blessing_property("blessed") == 1, run.blessing_property("reason")
    assert f"dropped: eval split has {len(rows)} examples with non-finite inputs ({_nonfinite_text(counts)})" in \
        run.blessing_property("reason")
    metrics, _ = _outputs_exist(run.evaluation)
    assert metrics["verdict"]["dropped"] == {"examples": len(rows), "nonfinite_inputs": counts}
    # Independently: the float model's tf.Example signature and the int8 runner on the clean rows alone.
    kept = [r for i, r in enumerate(penguin_quantized.eval_records) if i not in rows]
    labels = tf.io.parse_example(kept, {"species": tf.io.FixedLenFeature([1], tf.int64)})["species"].numpy()[:, 0]
    loaded = tf.saved_model.load(penguin_quantized.saved_model_dir)
    float_cls = loaded.signatures["serving_default"](tf.constant(kept))["probabilities"].numpy().argmax(1)
    quant = TFLiteRunner(penguin_quantized.tflite_path).predict(
        examples_to_inputs(kept, penguin_quantized.specs, source="test"))[penguin_quantized.quant_output]
    assert metrics["overall"]["num_examples"] == len(kept)
    assert metrics["overall"]["float"]["accuracy"] == pytest.approx(np.mean(float_cls == labels))
    assert metrics["overall"]["quantized"]["accuracy"] == pytest.approx(np.mean(quant.argmax(1) == labels))


# --- another shape: a [None, 2] vector input and a [None, 1] input (the tiny model), quantized to int8 ----------------

def _tiny_values(i: int) -> tuple[list[float], float]:
    rng = np.random.default_rng(1000 + i)
    return [float(v) for v in rng.normal(size=2)], float(rng.normal())


def _tiny_record(a: list[float], b: float, label: int) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "a": tf.train.Feature(float_list=tf.train.FloatList(value=a)),
        "b": tf.train.Feature(float_list=tf.train.FloatList(value=[b])),
        "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))})).SerializeToString()


# Row: (column of a set to the value, value) and/or a value for b. Row 0 has NaN in b: the batch-1 latency row,
# through the one-value quantization path; a's NaN goes through the whole-array path.
VECTOR_FAULTS = {0: ((1, NAN), NAN), 7: ((1, NAN), None), 9: (None, INF), 20: ((0, -INF), None)}
VECTOR_COUNTS = {"a": 3, "b": 2}


@pytest.fixture(scope="module")
def vector_model(tiny_models, make_examples_module, tmp_path_factory) -> tuple[Artifact, Artifact, Artifact]:
    """The tiny two-input classifier (``a`` [None, 2], ``b`` [None, 1]), the Quantizer's int8 model of it calibrated
    on 100 clean rows, and 240 eval rows labelled with the float model's class, with ``VECTOR_FAULTS``."""
    import shutil

    from quantgate.components.quantizer import executor as quantizer_executor
    from quantgate.components.quantizer.options import resolve_options
    from quantgate.components.representative_dataset_gen.storage import write_representative_dataset

    root = tmp_path_factory.mktemp("vector_model")
    model = standard_artifacts.Model()
    model.uri, model.id = str(root / "model"), 7001
    shutil.copytree(tiny_models["one_dense"], os.path.join(model.uri, "Format-Serving"))
    runner = SavedModelRunner(os.path.join(model.uri, "Format-Serving"), "dense")
    values = [_tiny_values(i) for i in range(340)]
    clean = {"a": np.array([a for a, _ in values], np.float32), "b": np.array([[b] for _, b in values], np.float32)}
    labels = runner.predict(clean)["probabilities"].argmax(1)
    records = [_tiny_record(a, b, int(y)) for (a, b), y in zip(values, labels, strict=True)]
    calibration = str(root / "representative_dataset")
    write_representative_dataset(calibration, records[:100], {"num_examples": 100})
    quantized = standard_artifacts.Model()
    quantized.uri, quantized.id = str(root / "quantized"), 7002
    report = quantizer_executor.quantize(model.uri, calibration, quantized.uri, resolve_options("int8"), "dense",
                                         model_id=model.id)
    quantizer_executor.set_artifact_properties(quantized, report, quantized.uri)
    eval_records = []
    for i, ((a, b), y) in enumerate(zip(values[100:], labels[100:], strict=True)):
        a_fault, b_fault = VECTOR_FAULTS.get(i, (None, None))
        if a_fault is not None:
            a = list(a)
            a[a_fault[0]] = a_fault[1]
        eval_records.append(_tiny_record(a, b if b_fault is None else b_fault, int(y)))
    return model, quantized, make_examples_module({"eval": eval_records})


@pytest.mark.parametrize("policy", ["refuse", "drop"])
def test_vector_input_nan_and_inf_are_counted_per_feature(run_evaluator, vector_model, policy: str) -> None:
    model, quantized, examples = vector_model
    run = run_evaluator(f"vector_{policy}", model=model, quantized_model=quantized, examples=examples,
                        label_key="y", max_delta=1.0, nonfinite_inputs=policy)
    found = f"eval split has {len(VECTOR_FAULTS)} examples with non-finite inputs (a: 3, b: 2)"
    metrics, page = _outputs_exist(run.evaluation)
    overall = metrics["overall"]
    assert overall["nonfinite_inputs"] == VECTOR_COUNTS and overall["nonfinite_input_examples"] == 4
    assert overall["num_examples"] == 240 - len(VECTOR_FAULTS) and overall["nonfinite"] == overall["missing"] == 0
    assert "a: 3, b: 2" in page
    if policy == "refuse":
        assert run.blessing_property("blessed") == 0
        assert f"{found}; fix the data upstream" in run.blessing_property("reason")
    else:
        assert run.blessing_property("blessed") == 1, run.blessing_property("reason")
        assert f"dropped: {found}" in run.blessing_property("reason")
        assert overall["float"]["accuracy"] == 1.0  # the labels are the float model's classes on the kept rows


# --- no MLMD property is ever NaN or infinite ----------------------------------------------------------------------

def test_set_finite_float_property_leaves_undefined_values_unset() -> None:
    artifact = standard_artifacts.ModelBlessing()
    assert set_finite_float_property(artifact, "delta", 0.25)
    assert artifact.get_float_custom_property("delta") == 0.25
    for value in (None, NAN, INF, -INF):
        assert not set_finite_float_property(artifact, "delta", value)
        assert not artifact.has_custom_property("delta")  # an older value is removed, not left stale
        set_finite_float_property(artifact, "delta", 0.25)
    assert set_finite_float_property(artifact, "count", np.float32(2.5))
    assert artifact.get_float_custom_property("count") == 2.5


def _fractional_species(i: int, example: tf.train.Example) -> None:
    species = example.features.feature["species"]
    species.Clear()
    species.float_list.value.append(0.5)  # no class index: every example counts as missing


@pytest.mark.pipeline  # a LocalDagRunner run (of the evaluator alone, on the golden artifacts)
def test_nothing_scored_finishes_in_mlmd_not_blessed_without_nan(penguin_quantized, make_examples_module,
                                                                 tmp_path) -> None:
    """Importer(model, quantized model, examples with every label 0.5) -> QuantizationEvaluator on LocalDagRunner with
    a real SQLite MLMD store: the execution is COMPLETE, the blessing says not blessed and why, and the properties
    that have no value (delta, delta_upper, the metrics) are absent, not NaN."""
    examples = make_examples_module({"eval": _edited(penguin_quantized.eval_records, _fractional_species)})
    model = tfx.dsl.Importer(source_uri=penguin_quantized.model.uri, artifact_type=standard_artifacts.Model
                             ).with_id("model")
    quantized = tfx.dsl.Importer(source_uri=penguin_quantized.quantized_model.uri, artifact_type=standard_artifacts.Model,
                                 reimport=True).with_id("quantized")
    split = tfx.dsl.Importer(source_uri=examples.uri, artifact_type=standard_artifacts.Examples,
                             properties={"split_names": examples.split_names}).with_id("examples")
    evaluator = QuantizationEvaluator(model=model.outputs["result"], quantized_model=quantized.outputs["result"],
                                      examples=split.outputs["result"], label_key="species", max_delta=1.0,
                                      slicing_feature_keys=["island"])
    metadata_path = str(tmp_path / "metadata.sqlite")
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="nothing-scored", pipeline_root=str(tmp_path / "pipeline_root"),
        components=[model, quantized, split, evaluator],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)))

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)
    type_names = {t.id: t.name for t in store.get_execution_types()}
    (execution,) = [e for e in store.get_executions() if type_names[e.type_id].endswith(".QuantizationEvaluator")]
    assert execution.last_known_state == metadata_store_pb2.Execution.COMPLETE
    (blessing,) = store.get_artifacts_by_type("ModelBlessing")
    (evaluation,) = store.get_artifacts_by_type(QuantizationEvaluation.TYPE_NAME)
    props = blessing.custom_properties
    assert props[properties.BLESSED].int_value == 0
    reason = props[properties.REASON].string_value
    assert reason.startswith("not blessed: no examples were evaluated")
    assert f"{len(penguin_quantized.eval_records)} examples got no prediction or no label" in reason
    for artifact in (blessing, evaluation):
        assert properties.DELTA not in artifact.custom_properties
        assert properties.DELTA_UPPER not in artifact.custom_properties
        for name, value in artifact.custom_properties.items():
            if value.WhichOneof("value") == "double_value":
                assert math.isfinite(value.double_value), name
    assert evaluation.custom_properties[properties.NUM_EXAMPLES].int_value == 0
    assert properties.float_metric("accuracy") not in evaluation.custom_properties
    assert os.listdir(blessing.uri) == ["NOT_BLESSED"]
    metrics = _strict_json(os.path.join(evaluation.uri, properties.METRICS_FILENAME))
    assert metrics["verdict"]["blessed"] is False and metrics["overall"]["num_examples"] == 0
    assert metrics["overall"]["invalid_labels"] == len(penguin_quantized.eval_records)
    assert metrics["overall"]["float"]["accuracy"] is None and metrics["verdict"]["delta"] is None
    with open(os.path.join(evaluation.uri, properties.EVALUATION_REPORT_FILENAME)) as f:
        page = f.read()
    assert "NOT BLESSED" in page and "no examples were evaluated" in page
