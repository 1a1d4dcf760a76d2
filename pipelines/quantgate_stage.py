"""The quantgate part of a pipeline, after the Trainer: Quantizer -> QuantizationEvaluator -> QuantizedModelPusher.

Every pipeline factory (``create_pipeline``, ``create_taxi_pipeline``) takes the same ``quantization_*`` keyword
parameters, so the Kubeflow runner's ``--set`` and the docs name one set of knobs; ``QuantizationKnobs`` picks them
out of a factory's arguments and ``quantgate_stage`` wires the three components the same way for every pipeline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tfx import types
from tfx import v1 as tfx

from quantgate.components import QuantizationEvaluator, QuantizedModelPusher, Quantizer
from quantgate.components.quantizer.options import LITERT_ENGINE, LITERT_IO_DTYPES, TFLITE_ENGINE
from quantgate.components.shared.properties import MAX_CANDIDATES

KNOB_PREFIX = "quantization_"


@dataclass(frozen=True)
class QuantizationKnobs:
    """The Quantizer's and the QuantizationEvaluator's parameters, as a factory's ``quantization_<name>`` args."""

    mode: str
    engine: str
    signature: str | None
    io_dtype: str | None
    denylisted_ops: tuple[str, ...]
    allow_float_fallback: bool
    denylisted_nodes: tuple[str, ...]
    int16_nodes: tuple[str, ...]
    int4_weight_nodes: tuple[str, ...]
    int4_block_size: int
    accuracy_search: dict | None
    metric: str
    max_delta: float
    delta_type: str
    slicing_feature_keys: tuple[str, ...]
    min_slice_size: int
    max_slice_delta: float | None
    min_agreement: float | None
    max_model_bytes: int | None
    max_latency_ms: float | None
    nonfinite_inputs: str
    candidate_modes: tuple[str, ...]
    selection: str
    # 'logits' when the model's classifier output is logits (TFX's IMDB example): the QuantizationEvaluator
    # applies sigmoid / softmax to both models' outputs.
    output_kind: str = "probabilities"

    @classmethod
    def of(cls, **overrides: Any) -> QuantizationKnobs:
        """Plain int8 through the tflite converter, the signature derived, accuracy within 0.01, no search, no
        extra candidates: for a pipeline that takes its knobs as one object; ``overrides`` replace any of them."""
        defaults = dict(mode="int8", engine="tflite_converter", signature=None, io_dtype=None, denylisted_ops=(),
                        allow_float_fallback=False, denylisted_nodes=(), int16_nodes=(), int4_weight_nodes=(),
                        int4_block_size=32, accuracy_search=None, metric="accuracy", max_delta=0.01,
                        delta_type="absolute", slicing_feature_keys=(), min_slice_size=30, max_slice_delta=None,
                        min_agreement=None, max_model_bytes=None, max_latency_ms=None, nonfinite_inputs="refuse",
                        candidate_modes=(), selection="smallest")
        return cls(**{**defaults, **overrides})

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> QuantizationKnobs:
        """The knobs among a factory's arguments (``locals()``): ``quantization_mode`` -> ``mode``, and so on; a
        knob with a default that the factory does not take keeps its default."""
        return cls(**{f.name: arguments[KNOB_PREFIX + f.name] for f in dataclasses.fields(cls)
                      if KNOB_PREFIX + f.name in arguments or f.default is dataclasses.MISSING})


def quantgate_stage(*, examples: types.BaseChannel, model: types.BaseChannel, float_blessing: types.BaseChannel,
                    representative_dataset: types.BaseChannel, label_key: str, knobs: QuantizationKnobs,
                    push_base_directory: str, transform_graph: types.BaseChannel | None = None,
                    search_dataset: types.BaseChannel | None = None,
                    schema: types.BaseChannel | None = None,
                    ) -> tuple[list[Quantizer], QuantizationEvaluator, QuantizedModelPusher]:
    """The components, wired: the float model's eval split gates the quantized one, both blessings the push.

    ``examples`` are raw (ExampleGen's); with ``transform_graph`` (Transform's), calibration and both models see
    the transformed features and the push ships its vocabularies; ``schema`` (SchemaGen's) lets the push name the
    classes in labels.txt from the label's domain. ``search_dataset`` (RepresentativeDatasetGen's, with
    ``representative_num_search_examples`` > 0, a sample of the eval split) feeds the Quantizer's ``accuracy_search``
    knob, and the QuantizationEvaluator leaves its examples out of the gate.

    ``knobs.candidate_modes`` (e.g. ``("float16", "dynamic_range")``) adds one Quantizer per mode (id
    ``Quantizer_<mode>``, the same float model, engine (``candidate_engine``) and signature, the mode's own I/O dtype) beside the main one;
    the QuantizationEvaluator scores them all in one Beam pass, ``knobs.selection`` picks the blessed one and the
    pusher ships that one. Returns the Quantizers (the main one first), the evaluator and the pusher.
    """
    quantizer = Quantizer(
        model=model,
        representative_dataset=representative_dataset,
        transform_graph=transform_graph,
        mode=knobs.mode,
        engine=knobs.engine,
        signature_name=knobs.signature,
        io_dtype=knobs.io_dtype,
        denylisted_ops=knobs.denylisted_ops,
        allow_float_fallback=knobs.allow_float_fallback,
        denylisted_nodes=knobs.denylisted_nodes,
        int16_nodes=knobs.int16_nodes,
        int4_weight_nodes=knobs.int4_weight_nodes,
        int4_block_size=knobs.int4_block_size,
        accuracy_search=knobs.accuracy_search,
        search_dataset=search_dataset,
    )
    quantizers = [quantizer, *extra_candidate_quantizers(model, representative_dataset, knobs, transform_graph)]
    candidates = [candidate.outputs["quantized_model"] for candidate in quantizers]
    quantization_evaluator = QuantizationEvaluator(
        model=model,
        quantized_model=candidates[0] if len(candidates) == 1 else candidates,
        examples=examples,
        transform_graph=transform_graph,
        search_dataset=search_dataset,
        label_key=label_key,
        split="eval",
        metric=knobs.metric,
        max_delta=knobs.max_delta,
        delta_type=knobs.delta_type,
        slicing_feature_keys=knobs.slicing_feature_keys,
        min_slice_size=knobs.min_slice_size,
        max_slice_delta=knobs.max_slice_delta,
        min_agreement=knobs.min_agreement,
        max_model_bytes=knobs.max_model_bytes,
        max_latency_ms=knobs.max_latency_ms,
        signature_name=knobs.signature,
        nonfinite_inputs=knobs.nonfinite_inputs,
        selection=knobs.selection,
        output_kind=knobs.output_kind,
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


def extra_candidate_quantizers(model: types.BaseChannel, representative_dataset: types.BaseChannel,
                               knobs: QuantizationKnobs,
                               transform_graph: types.BaseChannel | None = None) -> list[Quantizer]:
    """One ``Quantizer_<mode>`` per ``knobs.candidate_modes`` (checked by ``candidate_quantizer_modes``): the mode
    alone, with ``candidate_engine``, the signature and the mode's default I/O dtype; no per-node knobs, no search."""
    return [Quantizer(model=model, representative_dataset=representative_dataset, transform_graph=transform_graph,
                      mode=mode, engine=candidate_engine(mode, knobs.engine),
                      signature_name=knobs.signature).with_id(f"Quantizer_{mode}")
            for mode in candidate_quantizer_modes(knobs)]


def candidate_engine(mode: str, engine: str) -> str:
    """The main Quantizer's ``engine`` for an extra candidate when it has that mode, else ``tflite_converter`` (e.g.
    float16 with ``litert_quantizer``, which has no float16 recipe): a candidate must not make the pipeline unbuildable."""
    return engine if engine != LITERT_ENGINE or mode in LITERT_IO_DTYPES else TFLITE_ENGINE


def candidate_quantizer_modes(knobs: QuantizationKnobs) -> tuple[str, ...]:
    """The extra candidates' modes, checked: each once, none equal to the main ``mode``, at most
    ``MAX_CANDIDATES`` - 1 (the evaluator scores up to ``MAX_CANDIDATES`` models)."""
    modes = tuple(knobs.candidate_modes)
    if knobs.mode in modes or len(set(modes)) != len(modes):
        raise ValueError(f"quantization_candidate_modes {list(modes)}: each mode once, and not the main "
                         f"quantization_mode {knobs.mode!r} (it is the first candidate already)")
    if len(modes) > MAX_CANDIDATES - 1:
        raise ValueError(f"quantization_candidate_modes {list(modes)}: at most {MAX_CANDIDATES - 1} beside the main "
                         f"mode (the QuantizationEvaluator scores up to {MAX_CANDIDATES} candidates)")
    return modes
