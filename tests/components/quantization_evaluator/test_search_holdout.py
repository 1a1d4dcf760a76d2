"""The accuracy search's sample is held out of the gate: the real executor on the golden penguin model and eval split, with
a search sample of that split (or of another) wired, and a quantized model whose search summary names it."""

from __future__ import annotations

import json
import os

import pytest
from tfx.types import Artifact, standard_artifacts

from quantgate.components.quantization_evaluator.search_holdout import search_fit_warning
from quantgate.components.representative_dataset_gen.storage import write_representative_dataset
from quantgate.components.shared import properties
from quantgate.components.types import RepresentativeDataset

from ..conftest import PenguinQuantized


def _search_dataset(path: str, records: list[bytes], split: str) -> Artifact:
    artifact = RepresentativeDataset()
    artifact.uri, artifact.id = path, 77
    write_representative_dataset(path, records, {properties.SPLIT: split, properties.NUM_EXAMPLES: len(records)})
    return artifact


def _searched(quantized: Artifact, search_uri: str, split: str, float_value: float) -> Artifact:
    """The demo's int8 model as the Quantizer publishes it after an accuracy search on ``search_uri``."""
    model = standard_artifacts.Model()
    model.uri, model.id = quantized.uri, quantized.id
    for name, value in quantized.mlmd_artifact.custom_properties.items():
        model.mlmd_artifact.custom_properties[name].CopyFrom(value)
    model.set_string_custom_property(properties.SEARCH_SUMMARY, json.dumps({
        "dataset_uri": search_uri, properties.SPLIT: split, properties.METRIC: "accuracy",
        properties.DELTA_TYPE: "absolute", "max_delta": 0.02, "float_metric_value": float_value}))
    return model


def _metrics(run) -> dict:
    with open(os.path.join(run.evaluation.uri, properties.METRICS_FILENAME)) as f:
        return json.load(f)


def test_the_gate_leaves_the_search_sample_out_and_warns_when_its_float_metric_differs(
        penguin_quantized: PenguinQuantized, run_evaluator, tmp_path) -> None:
    held_out = penguin_quantized.eval_records[::3]
    search = _search_dataset(str(tmp_path / "search"), held_out, "eval")
    # A float accuracy of 0.5 on the search sample, far from what the demo model reaches on the rest of the split.
    quantized = _searched(penguin_quantized.quantized_model, search.uri, "eval", 0.5)
    run = run_evaluator("holdout", quantized_model=quantized, search_dataset=search)
    metrics = _metrics(run)
    assert metrics["overall"]["num_examples"] == len(penguin_quantized.eval_records) - len(held_out)
    assert metrics["search_holdout"] == {"uri": search.uri, "id": 77, "split": "eval",
                                         "num_examples": len(held_out), "excluded_examples": len(held_out)}
    assert run.blessing_property(properties.SEARCH_EXCLUDED_EXAMPLES) == len(held_out)
    assert run.evaluation.get_int_custom_property(properties.NUM_EXAMPLES) == metrics["overall"]["num_examples"]
    (warning,) = [w for w in metrics["verdict"]["warnings"] if "accuracy search" in w]
    assert "0.5 on the accuracy search's sample (split 'eval')" in warning and "max_delta 0.02" in warning
    with open(os.path.join(run.evaluation.uri, properties.EVALUATION_REPORT_FILENAME)) as f:
        page = f.read()
    assert f"{len(held_out)} examples of the evaluated split were left out of the gate" in page


def test_a_model_searched_on_the_gate_split_is_refused_without_its_sample(penguin_quantized: PenguinQuantized, run_evaluator,
                                                                         tmp_path, tmp_path_factory) -> None:
    search = _search_dataset(str(tmp_path / "search"), penguin_quantized.eval_records[:10], "eval")
    quantized = _searched(penguin_quantized.quantized_model, search.uri, "eval", 1.0)
    with pytest.raises(ValueError, match=r"search_dataset=RepresentativeDatasetGen.outputs\['search_dataset'\]") as e:
        run_evaluator("refused_holdout", quantized_model=quantized)
    assert "none is wired" in str(e.value) and search.uri in str(e.value)
    other = _search_dataset(str(tmp_path / "other"), penguin_quantized.eval_records[:10], "eval")
    with pytest.raises(ValueError, match=f"the wired one is '{other.uri}'"):
        run_evaluator("refused_other_holdout", quantized_model=quantized, search_dataset=other)
    for name in ("refused_holdout", "refused_other_holdout"):
        (root,) = [p for p in tmp_path_factory.getbasetemp().iterdir() if p.name.startswith(name + "0")]
        assert not os.listdir(root / "evaluation") and not os.listdir(root / "blessing")


def test_a_search_sample_of_another_split_leaves_the_gate_whole(penguin_quantized: PenguinQuantized, run_evaluator,
                                                                tmp_path) -> None:
    search = _search_dataset(str(tmp_path / "search"), penguin_quantized.calibration_records[:10], "train")
    quantized = _searched(penguin_quantized.quantized_model, search.uri, "train", 1.0)
    run = run_evaluator("other_split_holdout", quantized_model=quantized, search_dataset=search)
    metrics = _metrics(run)
    assert metrics["overall"]["num_examples"] == len(penguin_quantized.eval_records)
    assert metrics["search_holdout"]["excluded_examples"] == 0 and metrics["search_holdout"]["split"] == "train"


@pytest.mark.parametrize(("summary", "gated", "warned"), [
    ({"metric": "mae", "delta_type": "relative", "max_delta": 0.02, "float_metric_value": 15.5}, 54.0, True),
    ({"metric": "mae", "delta_type": "relative", "max_delta": 0.02, "float_metric_value": 53.5}, 54.0, False),
    ({"metric": "auc", "delta_type": "absolute", "max_delta": 0.01, "float_metric_value": 0.99}, 0.95, True),
    ({"metric": "auc", "delta_type": "absolute", "max_delta": 0.01, "float_metric_value": 0.90}, 0.95, True),
    ({"metric": "auc", "delta_type": "absolute", "max_delta": 0.01, "float_metric_value": None}, 0.95, False),
    (None, 0.95, False),
])
def test_the_fit_warning_compares_the_float_metrics_both_ways(summary, gated, warned) -> None:
    metric = summary["metric"] if summary else "auc"
    warning = search_fit_warning("int8 #3", summary and {**summary, "split": "eval"}, {metric: gated}, "the gate")
    assert (warning is not None) == warned


def test_the_fit_warning_names_a_search_that_read_the_outputs_differently() -> None:
    summary = {"metric": "auc", "delta_type": "absolute", "max_delta": 0.01, "float_metric_value": 0.9,
               "split": "eval", "output_kind": "probabilities"}
    warning = search_fit_warning("int8 #3", summary, {"auc": 0.9}, "the gate", output_kind="logits")
    assert warning is not None and "'probabilities'" in warning and "'logits'" in warning
    assert search_fit_warning("int8 #3", summary, {"auc": 0.9}, "the gate") is None
