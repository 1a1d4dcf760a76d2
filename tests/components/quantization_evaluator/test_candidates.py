"""Several quantized candidates in one evaluator run: int8 (the golden penguin artifacts' Quantizer output), float16
and dynamic_range (the Quantizer's own conversion of the same Trainer model), scored against the float model in the same Beam pass."""

from __future__ import annotations

import json
import os

import pytest
from tfx.types import standard_artifacts

from quantgate.components.quantization_evaluator.gate import GateResult
from quantgate.components.quantization_evaluator.metrics_json import select


@pytest.fixture(scope="module")
def three_candidates(penguin_quantized, tmp_path_factory) -> list:
    from quantgate.components.quantizer import executor as quantizer_executor
    from quantgate.components.quantizer.options import resolve_options

    models = [penguin_quantized.quantized_model]
    for i, mode in enumerate(("float16", "dynamic_range")):
        artifact = standard_artifacts.Model()
        artifact.uri, artifact.id = str(tmp_path_factory.mktemp(mode) / "quantized"), 900 + i
        report = quantizer_executor.quantize(penguin_quantized.model.uri, None, artifact.uri, resolve_options(mode),
                                             penguin_quantized.signature_name, model_id=penguin_quantized.model.id)
        quantizer_executor.set_artifact_properties(artifact, report, artifact.uri)
        models.append(artifact)
    return models


def _size(artifact) -> int:
    return artifact.get_int_custom_property("size_bytes")


@pytest.fixture(scope="module")
def run(run_evaluator, three_candidates) -> object:
    largest = max(_size(a) for a in three_candidates)
    # A size budget the largest candidate fails; the others pass every threshold.
    return run_evaluator("candidates", quantized_model=three_candidates, max_model_bytes=largest - 1,
                         slicing_feature_keys=["island"], min_slice_size=10)


def test_the_smallest_candidate_passing_every_threshold_is_blessed(run, three_candidates) -> None:
    with open(os.path.join(run.evaluation.uri, "metrics.json")) as f:
        metrics = json.load(f)
    sections = metrics["candidates"]
    assert [s["id"] for s in sections] == [a.id for a in three_candidates]
    assert [s["quantization_mode"] for s in sections] == ["int8", "float16", "dynamic_range"]
    largest = max(three_candidates, key=_size)
    by_id = {s["id"]: s for s in sections}
    assert not by_id[largest.id]["verdict"]["blessed"]
    assert f"bytes > max {_size(largest) - 1}" in by_id[largest.id]["verdict"]["reason"]
    passing = [a for a in three_candidates if by_id[a.id]["verdict"]["blessed"]]
    assert len(passing) == 2
    smallest = min(passing, key=_size)
    assert run.blessing_property("blessed") == 1
    assert run.blessing_property("current_model_id") == smallest.id
    assert run.blessing_property("current_model") == smallest.uri
    assert run.blessing_property("evaluated_sha256") == smallest.get_string_custom_property("sha256")
    assert run.blessing_property("selection") == "smallest"
    assert json.loads(run.blessing_property("candidate_ids")) == [a.id for a in three_candidates]
    assert metrics["models"]["quantized"]["id"] == smallest.id and metrics["selection"] == "smallest"
    assert sections[metrics["selected_candidate"]]["id"] == smallest.id
    # Each candidate scored on the same examples, the float model's accuracy identical in each section.
    assert len({s["overall"]["float"]["accuracy"] for s in sections}) == 1
    assert len({s["overall"]["num_examples"] for s in sections}) == 1
    assert all(s["slices"] and s["quantization_report"]["mode"] == s["quantization_mode"] for s in sections)


def test_the_report_shows_every_candidate(run) -> None:
    with open(os.path.join(run.evaluation.uri, "report.html")) as f:
        page = f.read()
    assert "3 candidates; selection <code>smallest</code> chose" in page
    for mode in ("int8", "float16", "dynamic_range"):
        assert f"{mode} #" in page


def _section(size: int | None, p50: float) -> dict:
    return {"sizes": {"quantized_bytes": size}, "latency": {"p50_ms": p50}}


def test_selection_rules() -> None:
    sections = [_section(6000, 0.30), _section(9000, 0.10), _section(5000, 0.05), _section(None, 0.01)]
    ok, bad = GateResult(True, 0.0, 0.01), GateResult(False, 0.5, 0.01, ["x"])
    verdicts = [ok, ok, bad, ok]
    assert select(sections, verdicts, "smallest") == 0  # 2 is smaller but fails; an unknown size is last
    assert select(sections, verdicts, "fastest") == 3
    assert select(sections, [bad] * 4, "smallest") == 2  # none passes: the blessing still names one, not blessed
    assert select([_section(5000, 0.2), _section(5000, 0.1)], [ok, ok], "smallest") == 1  # a tie goes to speed


def test_three_candidates_compile_for_kubeflow_v2(tmp_path) -> None:
    """One input key per candidate: what the KubeflowV2DagRunner compiles (it refuses a channel union)."""
    from tfx import v1 as tfx
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from quantgate.components import QuantizationEvaluator

    def imported(name: str, kind: type) -> object:
        return tfx.dsl.Importer(source_uri=f"/data/{name}", artifact_type=kind).with_id(f"import_{name}")

    model = imported("model", standard_artifacts.Model)
    examples = imported("examples", standard_artifacts.Examples)
    quantized = [imported(mode, standard_artifacts.Model) for mode in ("int8", "float16", "dynamic_range")]
    evaluator = QuantizationEvaluator(model=model.outputs["result"], examples=examples.outputs["result"],
                                      quantized_model=[q.outputs["result"] for q in quantized], label_key="species",
                                      selection="fastest")
    output = tmp_path / "pipeline.json"
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image="quantgate:test"),
        output_filename=str(output))
    runner.run(tfx_pipeline.Pipeline(pipeline_name="candidates", pipeline_root=str(tmp_path / "root"),
                                     components=[model, examples, *quantized, evaluator]))
    spec = json.loads(output.read_text())
    task = spec["pipelineSpec"]["root"]["dag"]["tasks"]["QuantizationEvaluator"]
    assert {k: v["taskOutputArtifact"]["producerTask"] for k, v in task["inputs"]["artifacts"].items()
            if k.startswith("quantized_model")} == {"quantized_model": "import_int8",
                                                     "quantized_model_1": "import_float16",
                                                     "quantized_model_2": "import_dynamic_range"}
    assert "fastest" in json.dumps(task["inputs"]["parameters"]["selection"])
