"""QuantizationEvaluator: float vs quantized model on the same split, and the gate that writes the ModelBlessing."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts

from quantgate.components.quantization_evaluator import executor
from quantgate.components.quantization_evaluator.config import (
    PROBABILITIES,
    SMALLEST,
    EvaluatorConfig,
    gated_metrics,
)
from quantgate.components.quantization_evaluator.gate import KERNEL, POINT, REFUSE, Thresholds
from quantgate.components.quantization_evaluator.spec import (
    MAX_CANDIDATES,
    QuantizationEvaluatorSpec,
    candidate_key,
)
from quantgate.components.types import QuantizationEvaluation


class QuantizationEvaluator(base_beam_component.BaseBeamComponent):
    """Scores the float SavedModel and the quantized TFLite model on the same split and gates the quantized one.

    Inputs: ``model`` (float Model), ``quantized_model`` (the Quantizer's Model), ``examples`` (Examples), optional
    ``transform_graph`` (the one wired to the Quantizer), optional ``search_dataset`` (the one wired to the
    Quantizer's accuracy search: its examples are left out of the gate).
    Parameters: ``label_key``, ``split``, ``metric``, ``max_delta``, ``delta_type``, ``slicing_feature_keys``,
    ``min_slice_size``, ``max_slice_delta``, ``min_agreement``, ``max_model_bytes``, ``max_latency_ms``,
    ``signature_name``, ``nonfinite_inputs``, ``delta_bound``, ``confidence``, ``min_examples``, ``selection``,
    ``output_kind`` (see ``__init__``).

    Outputs:
      ``evaluation`` (``quantgate.QuantizationEvaluation``): files ``metrics.json`` (strict JSON, written last)
        and ``report.html`` (self-contained, with plots); custom properties ``blessed``, ``reason``, ``delta``,
        ``threshold``, ``metric``, ``delta_type``, ``float_<metric>``, ``quantized_<metric>``, ``agreement``,
        ``num_examples``, ``search_excluded_examples`` (with ``search_dataset``), ``quantized_size_bytes``, ``float_latency_p95_ms``, ``quantized_latency_p95_ms``,
        ``evaluated_sha256``, ``report_path``, ``metrics_path``, and with a transform graph
        ``serving_signature_agreement``.
      ``blessing`` (standard ``ModelBlessing`` about the quantized model, readable by the stock Pusher and by
        ``LatestBlessedModelStrategy``): file ``BLESSED`` or ``NOT_BLESSED``; custom properties ``blessed`` (1/0),
        ``current_model_id``, ``current_model``, ``reason``, ``delta``, ``delta_upper``, ``delta_bound``,
        ``confidence``, ``threshold``, ``metric``, ``delta_type``, ``selection``, ``candidate_ids``,
        ``evaluated_sha256`` (of the ``model.tflite`` bytes that were scored); with several candidates, the
        ``current_model*`` and ``evaluated_sha256`` properties name the one ``selection`` chose.
    """

    SPEC_CLASS = QuantizationEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        quantized_model: types.BaseChannel | Sequence[types.BaseChannel],
        examples: types.BaseChannel,
        label_key: str,
        split: str = "eval",
        metric: str | Sequence[str] = "accuracy",
        max_delta: float | Sequence[float] | Mapping[str, float] = 0.01,
        delta_type: str = "absolute",
        slicing_feature_keys: Sequence[str] = (),
        min_slice_size: int = 30,
        max_slice_delta: float | None = None,
        min_agreement: float | None = None,
        max_model_bytes: int | None = None,
        max_latency_ms: float | None = None,
        latency_measure: str = KERNEL,
        signature_name: str | None = None,
        nonfinite_inputs: str = REFUSE,
        transform_graph: types.BaseChannel | None = None,
        delta_bound: str = POINT,
        confidence: float = 0.95,
        min_examples: int = 30,
        selection: str = SMALLEST,
        search_dataset: types.BaseChannel | None = None,
        output_kind: str = PROBABILITIES,
    ) -> None:
        """Builds the component; bad parameter values fail here, before any pipeline runs.

        Args:
          model: the float Model (the Trainer's), with a dense-input signature in ``Format-Serving``.
          quantized_model: the Quantizer's Model (``Format-Serving/model.tflite``), or a list of up to
            ``MAX_CANDIDATES`` such channels (e.g. int8, float16, dynamic_range Quantizers): every candidate is
            scored against the float model in the same Beam pass, and ``selection`` picks the one the blessing
            names. A channel holding several Model artifacts is taken as several candidates too.
          examples: Examples with ``split``; tf.Example payload carrying the model inputs and ``label_key``.
          label_key: the label feature (class index for classification metrics, a number for regression).
          split: the split to evaluate on.
          metric: ``accuracy`` or ``auc`` (binary) for classifiers, ``mse`` or ``mae`` for regressors; or a list
            of them (one task), every one gated (the first is the one the blessing's ``delta`` is about).
          max_delta: the largest allowed degradation of ``metric`` (positive = quantized is worse). May be
            negative: the quantized model must then improve by that much. With several metrics: one value for
            all, a list in the same order, or a dict by metric.
          delta_type: ``absolute`` or ``relative`` (degradation divided by the float model's value).
          slicing_feature_keys: features whose values define slices (each feature on its own).
          min_slice_size: slices with fewer examples are reported as skipped and not gated.
          max_slice_delta: if set, every gated slice's degradation must be at most this.
          min_agreement: if set, the fraction of examples where both models predict the same class (classifiers).
          max_model_bytes: if set, a budget on the quantized model's size.
          max_latency_ms: if set, a budget on the quantized model's batch-1 p95 latency on the evaluating machine.
          latency_measure: what ``max_latency_ms`` gates on: ``'kernel'`` (``Interpreter.invoke`` alone, the model's
            own cost) or ``'end_to_end'`` (through the runner: input quantization, copies, Python). Both are
            measured and written to ``metrics.json``.
          signature_name: the float model's dense signature (default: the only dense one, as the Quantizer picks).
          nonfinite_inputs: examples with a NaN/inf input are never scored; ``'refuse'`` withholds the blessing
            when there are any, ``'drop'`` gates on the other examples and records how many were dropped.
          transform_graph: Transform's ``transform_graph``, the same one wired to the Quantizer (refused otherwise):
            raw examples go through it into the signature's transformed inputs; a label or slicing feature absent
            from the raw examples is read from its outputs (e.g. ``tips_xf``).
          delta_bound: ``'point'`` gates on the degradation measured; ``'upper'`` on its paired one-sided upper
            confidence bound at ``confidence`` (always reported beside it), for every gated metric and slice.
          confidence: the bound's one-sided level, in (0.5, 1).
          min_examples: fewer scored examples than this are not blessed.
          selection: ``'smallest'`` (bytes) or ``'fastest'`` (batch-1 p50 latency) of the candidates passing every
            threshold; the blessing's ``current_model_id`` names it.
          search_dataset: RepresentativeDatasetGen's ``search_dataset``, the one the Quantizer's accuracy search
            scored candidates on. When it is a sample of ``split`` its examples are left out of the gate, so the
            gate judges on examples the search did not see; a quantized model searched on ``split`` is refused
            without it. The report warns when the float model's metric there and on the gate's examples differ by
            more than the search's ``max_delta``.
          output_kind: what a classifier's single output holds: ``'probabilities'`` (sigmoid / softmax outputs,
            scored as they are; outputs that look like logits are refused) or ``'logits'`` (e.g. a final
            ``Dense(1)`` trained with ``from_logits=True``): sigmoid (one column) or softmax (several) is applied
            to the float model's and every candidate's outputs before any metric, agreement or confusion. Refused
            with a regression metric.
        """
        channels = [quantized_model] if isinstance(quantized_model, types.BaseChannel) else list(quantized_model)
        if not 1 <= len(channels) <= MAX_CANDIDATES:
            raise ValueError(f"QuantizationEvaluator: quantized_model takes 1 to {MAX_CANDIDATES} channels, got "
                             f"{len(channels)}")
        metric, max_delta, extra_metrics = gated_metrics(metric, max_delta)
        EvaluatorConfig(
            label_key=label_key, split=split, slicing_feature_keys=tuple(slicing_feature_keys),
            signature_name=signature_name, nonfinite_inputs=nonfinite_inputs, selection=selection,
            output_kind=output_kind,
            thresholds=Thresholds(metric=metric, max_delta=max_delta, delta_type=delta_type,
                                  min_slice_size=min_slice_size, max_slice_delta=max_slice_delta,
                                  min_agreement=min_agreement, max_model_bytes=max_model_bytes,
                                  max_latency_ms=max_latency_ms, extra_metrics=extra_metrics,
                                  delta_bound=delta_bound, confidence=confidence, min_examples=min_examples,
                                  latency_measure=latency_measure),
        ).validate()
        spec = QuantizationEvaluatorSpec(
            model=model,
            **{candidate_key(i): channel for i, channel in enumerate(channels)},
            examples=examples,
            transform_graph=transform_graph,
            search_dataset=search_dataset,
            label_key=label_key,
            split=split,
            metric=metric,
            max_delta=float(max_delta),
            delta_type=delta_type,
            slicing_feature_keys=json.dumps(list(slicing_feature_keys)),
            min_slice_size=min_slice_size,
            max_slice_delta=None if max_slice_delta is None else float(max_slice_delta),
            min_agreement=None if min_agreement is None else float(min_agreement),
            max_model_bytes=max_model_bytes,
            max_latency_ms=None if max_latency_ms is None else float(max_latency_ms),
            latency_measure=latency_measure,
            signature_name=signature_name,
            nonfinite_inputs=nonfinite_inputs,
            extra_metrics=json.dumps([list(pair) for pair in extra_metrics]),
            delta_bound=delta_bound,
            confidence=float(confidence),
            min_examples=min_examples,
            selection=selection,
            output_kind=output_kind,
            evaluation=types.Channel(type=QuantizationEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
        )
        super().__init__(spec=spec)
