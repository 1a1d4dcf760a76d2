"""Quantizer: the Trainer's SavedModel signature -> a quantized TFLite ``Model``, calibrated and crash-isolated."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from quantgate.components.quantizer import executor
from quantgate.components.quantizer.options import DEFAULT_INT4_BLOCK_SIZE, resolve_options
from quantgate.components.quantizer.search import SearchConfig, check_search_request
from quantgate.components.quantizer.spec import QuantizerSpec


class Quantizer(base_component.BaseComponent):
    """Converts a dense-input signature of the Trainer's model to TFLite in one post-training quantization mode.

    Inputs: ``model`` (the Trainer's Model), optional ``representative_dataset`` (needed for int8 / int16x8),
    optional ``transform_graph`` (Transform's output, when the signature takes transformed features), optional
    ``search_dataset`` (with ``accuracy_search``: the sample the accuracy-aware search scores candidates on).
    Parameters: ``mode``, ``engine``, ``signature_name``, ``io_dtype``, ``denylisted_ops``, ``denylisted_nodes``,
    ``int16_nodes``, ``int4_weight_nodes``, ``int4_block_size``, ``allow_float_fallback``, ``allow_select_ops``,
    ``accuracy_search`` (see ``__init__``).

    Output ``quantized_model`` (standard ``Model``):
      files: ``Format-Serving/model.tflite`` (signature ``serving_default``, inputs named after the features), the
        same bytes as ``Format-Serving/tflite`` (what TFMA's ``tf_lite`` model type loads), and
        ``quantization_report.json`` (mode, engine, I/O quantization, input steps, layer errors, op counts, sizes,
        versions) and ``quantization_report.html`` (the worst layers, a table and a plot);
      custom properties: ``quantization_mode``, ``engine``, ``signature_name``, ``io_dtype``, ``size_bytes``,
        ``float_size_bytes``, ``sha256``, ``float_op_count``, ``coarse_input_count``, ``qat`` (1 for a
        quantization-aware model), ``report_path``, and with a ``transform_graph`` ``transform_graph_id`` /
        ``transform_graph_uri``; with ``accuracy_search`` ``candidates_tried``, ``chosen_config`` (JSON) and
        ``search_delta`` too, and the report's ``search`` section.
    """

    SPEC_CLASS = QuantizerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        representative_dataset: types.BaseChannel | None = None,
        mode: str = "int8",
        signature_name: str | None = None,
        io_dtype: str | None = None,
        denylisted_ops: Sequence[str] = (),
        allow_float_fallback: bool = False,
        engine: str = "tflite_converter",
        transform_graph: types.BaseChannel | None = None,
        denylisted_nodes: Sequence[str] = (),
        int16_nodes: Sequence[str] = (),
        int4_weight_nodes: Sequence[str] = (),
        int4_block_size: int = DEFAULT_INT4_BLOCK_SIZE,
        accuracy_search: Mapping[str, Any] | None = None,
        search_dataset: types.BaseChannel | None = None,
        allow_select_ops: bool = False,
    ) -> None:
        """Builds the component; bad parameter combinations fail here, before any pipeline runs.

        Args:
          model: the Trainer's ``Model`` channel (a SavedModel in ``Format-Serving``).
          representative_dataset: calibration examples (RepresentativeDatasetGen's output); needed for int8/int16x8.
          mode: ``int8`` (full integer), ``dynamic_range``, ``float16``, ``int16x8`` (16-bit activations), or
            ``qat``: a quantization-aware model (``components/shared/qat.py``) to full integer with its learned
            ranges, ``representative_dataset`` optional. ``int8`` on such a model converts it as ``qat``; the other
            modes are refused on it.
          signature_name: the dense-input signature to convert; by default the only one whose inputs are all dense
            numeric tensors.
          io_dtype: model input/output dtype: int8 mode ``int8`` (default), ``uint8`` or ``float32``; int16x8 mode
            ``int16`` (default) or ``float32``; other modes and the litert_quantizer engine ``float32``.
          denylisted_ops: TFLite op names (e.g. ``FULLY_CONNECTED``) that stay float (int8 / int16x8 only).
          denylisted_nodes: op output tensor names (as the report's ``layer_errors`` names them) whose ops stay float
            (int8 / int16x8; int16x8 only with engine ``litert_quantizer``); unknown names fail the conversion with
            the model's names listed.
          int16_nodes: op output tensor names whose ops get int16 activations with int8 weights, the rest int8
            (engine ``litert_quantizer``, mode ``int8``).
          int4_weight_nodes: op output tensor names whose ops (FULLY_CONNECTED, EMBEDDING_LOOKUP) get int4
            blockwise weights and keep float activations, the rest as ``mode`` says (engine ``litert_quantizer``, modes
            ``int8`` / ``dynamic_range``, not with ``int16_nodes``); unknown names and other op types fail the
            conversion. Only LiteRT's XNNPACK path computes such ops right (the report warns).
          int4_block_size: input values per int4 scale: 32 (default), 64, 128 or 256; must divide the named ops'
            weight input dimension.
          allow_float_fallback: let ops without a quantized kernel stay float instead of failing.
          allow_select_ops: keep TensorFlow ops that TFLite builtins lack as TF Select (Flex) ops instead of refusing
            the model (the refusal names op and layer). The report lists them (``select_ops``) and warns: the app
            then needs the Flex delegate. One-hot layers (``CategoryEncoding``, ``DenseBincount``) need no opt-in:
            they are rewritten to the ``ONE_HOT`` builtin.
          engine: ``tflite_converter`` (TFLiteConverter) or ``litert_quantizer`` (ai-edge-quantizer recipes).
          transform_graph: Transform's ``transform_graph``; when wired, the raw calibration examples are transformed
            by it and the signature's inputs are transformed feature names (wire the same graph to the
            QuantizationEvaluator).
          accuracy_search: turns the accuracy-aware search on (default off): a dict with ``label_key``, ``metric``,
            ``max_delta``, ``delta_type`` (as the QuantizationEvaluator's), ``max_trials`` (conversions, default
            12) and ``max_float_op_fraction`` (default 0.2). Needs ``search_dataset``. See README, "Accuracy-aware
            search".
          search_dataset: RepresentativeDatasetGen's ``search_dataset`` output (``num_search_examples`` > 0), the
            examples the search scores its candidates on; only with ``accuracy_search``.
        """
        options = resolve_options(mode, io_dtype, engine=engine, denylisted_ops=denylisted_ops,
                        allow_float_fallback=allow_float_fallback,
                        has_representative_dataset=representative_dataset is not None,
                        denylisted_nodes=denylisted_nodes, int16_nodes=int16_nodes,
                        int4_weight_nodes=int4_weight_nodes, int4_block_size=int4_block_size,
                        allow_select_ops=allow_select_ops)
        search = SearchConfig.from_mapping(accuracy_search) if accuracy_search is not None else None
        check_search_request(search, search_dataset is not None, options)
        spec = QuantizerSpec(
            model=model,
            representative_dataset=representative_dataset,
            transform_graph=transform_graph,
            search_dataset=search_dataset,
            mode=mode,
            engine=engine,
            signature_name=signature_name,
            io_dtype=io_dtype,
            denylisted_ops=json.dumps(list(denylisted_ops)),
            allow_float_fallback=int(allow_float_fallback),
            allow_select_ops=int(allow_select_ops),
            denylisted_nodes=json.dumps(list(denylisted_nodes)),
            int16_nodes=json.dumps(list(int16_nodes)),
            int4_weight_nodes=json.dumps(list(int4_weight_nodes)),
            int4_block_size=int4_block_size,
            accuracy_search=search.to_json() if search else None,
            quantized_model=types.Channel(type=standard_artifacts.Model),
        )
        super().__init__(spec=spec)
