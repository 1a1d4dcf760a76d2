"""The quantgate part of a pipeline, after the Trainer: Quantizer -> QuantizationEvaluator -> QuantizedModelPusher.

Every pipeline factory takes a ``QuantizeConfig`` and a ``GateConfig`` (``pipelines/config.py``); ``quantgate_stage``
wires the three components from them the same way for every pipeline, every parameter of the Quantizer and the
QuantizationEvaluator taken from one of the two (``label_key`` and ``split`` are the pipeline's wiring).
"""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx import v1 as tfx

from quantgate.components import QuantizationEvaluator, QuantizedModelPusher, Quantizer
from quantgate.pipelines.config import GateConfig, QuantizeConfig

# The split the gate judges on: the float Evaluator's, never seen by calibration or training.
GATE_SPLIT = "eval"


def quantgate_stage(*, examples: types.BaseChannel, model: types.BaseChannel, float_blessing: types.BaseChannel,
                    representative_dataset: types.BaseChannel, label_key: str, quantize: QuantizeConfig,
                    gate: GateConfig, push_base_directory: str, transform_graph: types.BaseChannel | None = None,
                    search_dataset: types.BaseChannel | None = None,
                    schema: types.BaseChannel | None = None,
                    ) -> tuple[list[Quantizer], QuantizationEvaluator, QuantizedModelPusher]:
    """The components, wired: the float model's eval split gates the quantized one, both blessings the push.

    ``examples`` are raw (ExampleGen's); with ``transform_graph`` (Transform's), calibration and both models see
    the transformed features and the push ships its vocabularies; ``schema`` (SchemaGen's) lets the push name the
    classes in labels.txt from the label's domain. ``search_dataset`` (RepresentativeDatasetGen's, with
    ``representative_num_search_examples`` > 0, a sample of the eval split) feeds ``quantize.accuracy_search``, and
    the QuantizationEvaluator leaves its examples out of the gate.

    ``quantize.candidate_modes`` (e.g. ``("float16", "dynamic_range")``) adds one Quantizer per mode (id
    ``Quantizer_<mode>``) beside the main one; the QuantizationEvaluator scores them all in one Beam pass,
    ``gate.selection`` picks the blessed one and the pusher ships that one. Returns the Quantizers (the main one
    first), the evaluator and the pusher.
    """
    quantizer = Quantizer(
        model=model,
        representative_dataset=representative_dataset,
        transform_graph=transform_graph,
        search_dataset=search_dataset,
        **quantizer_parameters(quantize, gate, label_key),
    )
    quantizers = [quantizer, *extra_candidate_quantizers(model, representative_dataset, quantize, transform_graph)]
    candidates = [candidate.outputs["quantized_model"] for candidate in quantizers]
    quantization_evaluator = QuantizationEvaluator(
        model=model,
        quantized_model=candidates[0] if len(candidates) == 1 else candidates,
        examples=examples,
        transform_graph=transform_graph,
        search_dataset=search_dataset,
        **evaluator_parameters(quantize, gate, label_key),
    )
    pusher = QuantizedModelPusher(
        model=candidates[0] if len(candidates) == 1 else candidates,
        model_blessing=quantization_evaluator.outputs["blessing"],
        float_blessing=float_blessing,
        float_model=model,
        representative_dataset=representative_dataset,
        evaluation=quantization_evaluator.outputs["evaluation"],
        transform_graph=transform_graph,
        schema=schema,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=push_base_directory)),
    )
    return quantizers, quantization_evaluator, pusher


def quantizer_parameters(quantize: QuantizeConfig, gate: GateConfig, label_key: str) -> dict[str, Any]:
    """The main Quantizer's parameters: ``quantize``'s, the accuracy search completed from ``gate``."""
    search = quantize.accuracy_search
    return dict(
        mode=quantize.mode,
        engine=quantize.engine,
        signature_name=quantize.signature,
        io_dtype=quantize.io_dtype,
        denylisted_ops=quantize.denylisted_ops,
        allow_float_fallback=quantize.allow_float_fallback,
        allow_select_ops=quantize.allow_select_ops,
        denylisted_nodes=quantize.denylisted_nodes,
        int16_nodes=quantize.int16_nodes,
        int4_weight_nodes=quantize.int4_weight_nodes,
        int4_block_size=quantize.int4_block_size,
        accuracy_search=None if search is None else search.parameter(label_key, gate),
    )


def evaluator_parameters(quantize: QuantizeConfig, gate: GateConfig, label_key: str) -> dict[str, Any]:
    """The QuantizationEvaluator's parameters: ``gate``'s, the float model read through ``quantize.signature``."""
    return dict(
        label_key=label_key,
        split=GATE_SPLIT,
        metric=gate.metric,
        max_delta=gate.max_delta,
        delta_type=gate.delta_type,
        slicing_feature_keys=gate.slicing_feature_keys,
        min_slice_size=gate.min_slice_size,
        max_slice_delta=gate.max_slice_delta,
        min_agreement=gate.min_agreement,
        max_model_bytes=gate.max_model_bytes,
        max_latency_ms=gate.max_latency_ms,
        latency_measure=gate.latency_measure,
        signature_name=quantize.signature,
        nonfinite_inputs=gate.nonfinite_inputs,
        delta_bound=gate.delta_bound,
        confidence=gate.confidence,
        min_examples=gate.min_examples,
        selection=gate.selection,
        output_kind=gate.output_kind,
    )


def extra_candidate_quantizers(model: types.BaseChannel, representative_dataset: types.BaseChannel,
                               quantize: QuantizeConfig,
                               transform_graph: types.BaseChannel | None = None) -> list[Quantizer]:
    """One ``Quantizer_<mode>`` per ``quantize.candidate_modes`` (checked by ``QuantizeConfig``): the mode alone,
    with ``quantize.candidate_engine(mode)``, the signature and the mode's default I/O dtype; no per-node rules, no
    search."""
    return [Quantizer(model=model, representative_dataset=representative_dataset, transform_graph=transform_graph,
                      mode=mode, engine=quantize.candidate_engine(mode),
                      signature_name=quantize.signature).with_id(f"Quantizer_{mode}")
            for mode in quantize.candidate_modes]
