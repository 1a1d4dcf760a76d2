"""QuantizationEvaluator's executor: check the inputs, score both models with Beam, time them, gate, publish.

``evaluate`` is the whole run as a plain function; ``Executor.Do`` only unpacks TFX's dicts. Everything that can be
refused is refused in ``checks.check_inputs``, before Beam starts; the outputs are staged and moved into place at
the end (``staged_output``), so a failed run leaves no half-written artifact.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import apache_beam as beam
from tfx.dsl.components.base import base_beam_executor
from tfx.types import Artifact, artifact_utils

from quantgate.components.quantization_evaluator.beam_pipeline import run_beam_evaluation
from quantgate.components.quantization_evaluator.checks import check_inputs
from quantgate.components.quantization_evaluator.config import EvaluatorConfig, config_from_exec_properties
from quantgate.components.quantization_evaluator.inference import measure_latency
from quantgate.components.quantization_evaluator.metrics import OVERALL
from quantgate.components.quantization_evaluator.metrics_json import build_metrics
from quantgate.components.quantization_evaluator.outputs import (
    set_properties,
    write_blessing_marker,
    write_evaluation_files,
)
from quantgate.components.quantization_evaluator.search_holdout import plan_holdout
from quantgate.components.quantization_evaluator.spec import (
    BLESSING_KEY,
    EVALUATION_KEY,
    EXAMPLES_KEY,
    MAX_CANDIDATES,
    MODEL_KEY,
    SEARCH_DATASET_KEY,
    TRANSFORM_GRAPH_KEY,
    candidate_key,
)
from quantgate.components.shared import properties
from quantgate.components.shared.artifact_inputs import optional_single
from quantgate.components.shared.staged_output import staged_output


def evaluate(pipeline: beam.Pipeline, *, model: Artifact, quantized_models: list[Artifact], examples: Artifact,
             evaluation: Artifact, blessing: Artifact, config: EvaluatorConfig,
             transform_graph: Artifact | None = None, search_dataset: Artifact | None = None,
             run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole run: check, evaluate every candidate with Beam in one pass (less the accuracy search's examples
    when ``search_dataset`` samples the same split), time the models, gate each, select one, publish. Returns
    ``metrics.json``."""
    config.validate()
    holdout = plan_holdout(quantized_models, search_dataset, config.split)
    plan = check_inputs(model, quantized_models, examples, config, transform_graph)
    started = time.monotonic()
    with staged_output(evaluation.uri, (properties.EVALUATION_REPORT_FILENAME, properties.METRICS_FILENAME)) as staging:
        results, serving, excluded = run_beam_evaluation(pipeline, plan, config, staging,
                                                         holdout.records if holdout else frozenset())
        if holdout is not None:
            logging.info("QuantizationEvaluator: left %d examples of %s out of the gate: the accuracy search's "
                         "sample %s (%d examples of split %r)", excluded, plan.source, holdout.uri,
                         holdout.num_examples, holdout.split)
        n = results[0].get(OVERALL, {}).get("num_examples", 0)
        elapsed = time.monotonic() - started
        logging.info("QuantizationEvaluator: scored %d examples of %s in %.1f s (%.0f examples/s), %d slices",
                     n, plan.source, elapsed, n / max(elapsed, 1e-9), len(results[0]) - 1)
        latency = {"float": measure_latency(plan.float_runner, plan.sample_inputs),
                   "candidates": [measure_latency(c.runner, plan.sample_inputs) for c in plan.candidates]}
        for name, value in [("float", latency["float"])] + [
                (c.name, timed) for c, timed in zip(plan.candidates, latency["candidates"], strict=True)]:
            logging.info("QuantizationEvaluator: %s model batch-1 latency p50/p95 end to end %.4f/%.4f ms, kernel "
                         "%s ms (%d calls each after warm-up)", name, value.p50_ms, value.p95_ms,
                         "n/a" if value.kernel_p50_ms is None else
                         f"{value.kernel_p50_ms:.4f}/{value.kernel_p95_ms:.4f}", value.calls)
        if serving is not None:
            logging.info("QuantizationEvaluator: serving signature %r agrees with the transformed-feature path on "
                         "%s of %d examples (max |difference| %s)", serving["signature"], serving["agreement"],
                         serving["num_examples"], serving["max_abs_diff"])
        metrics, verdict, chosen = build_metrics(results, config, plan, model, latency, serving, run,
                                                 holdout.section(excluded) if holdout else None)
        write_evaluation_files(staging, metrics)
    write_blessing_marker(blessing.uri, verdict)
    set_properties(evaluation, blessing, metrics, verdict, chosen.artifact)
    if holdout is not None:
        for artifact in (evaluation, blessing):
            artifact.set_int_custom_property(properties.SEARCH_EXCLUDED_EXAMPLES, excluded)
    logging.info("QuantizationEvaluator: %s (float %s %s, quantized %s, delta %s, threshold %s)", verdict.reason,
                 metrics["metric"], metrics["overall"]["float"].get(metrics["metric"]),
                 metrics["overall"]["quantized"].get(metrics["metric"]), verdict.delta, verdict.threshold)
    return metrics


class Executor(base_beam_executor.BaseBeamExecutor):
    """Compares the float model and the quantized model on one split and writes the evaluation and the blessing."""

    def Do(self, input_dict: dict[str, list[Artifact]], output_dict: dict[str, list[Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        evaluate(
            self._make_beam_pipeline(),
            model=artifact_utils.get_single_instance(input_dict[MODEL_KEY]),
            quantized_models=[a for i in range(MAX_CANDIDATES) for a in input_dict.get(candidate_key(i)) or []],
            examples=artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY]),
            evaluation=artifact_utils.get_single_instance(output_dict[EVALUATION_KEY]),
            blessing=artifact_utils.get_single_instance(output_dict[BLESSING_KEY]),
            config=config_from_exec_properties(exec_properties),
            transform_graph=optional_single(input_dict, TRANSFORM_GRAPH_KEY),
            search_dataset=optional_single(input_dict, SEARCH_DATASET_KEY),
            run=self._run_info(),
        )

    def _run_info(self) -> dict[str, Any]:
        """The pipeline name and run id the orchestrator passed in (``None`` when run by hand)."""
        context = self._context
        info = getattr(context, "pipeline_info", None)
        return {"pipeline_name": info.id if info is not None and info.id else None,
                "run_id": getattr(context, "pipeline_run_id", None) or None}
