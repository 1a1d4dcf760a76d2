"""The Quantizer's keys and spec, as data: the component builds it, the executor reads by these keys."""

from __future__ import annotations

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from quantgate.components.shared import properties
from quantgate.components.types import RepresentativeDataset

MODEL_KEY = properties.MODEL_KEY
REPRESENTATIVE_DATASET_KEY = properties.REPRESENTATIVE_DATASET_KEY
TRANSFORM_GRAPH_KEY = properties.TRANSFORM_GRAPH_KEY
SEARCH_DATASET_KEY = properties.SEARCH_DATASET_KEY
QUANTIZED_MODEL_KEY = "quantized_model"
MODE_KEY = "mode"
ENGINE_KEY = "engine"
SIGNATURE_NAME_KEY = "signature_name"
IO_DTYPE_KEY = "io_dtype"
DENYLISTED_OPS_KEY = "denylisted_ops"  # a JSON list: execution properties are int, float or string
ALLOW_FLOAT_FALLBACK_KEY = "allow_float_fallback"  # int 0/1, for the same reason
ALLOW_SELECT_OPS_KEY = "allow_select_ops"  # int 0/1: keep ops TFLite builtins lack as TF Select (Flex) ops
ACCURACY_SEARCH_KEY = "accuracy_search"  # a JSON object (search.SearchConfig), absent when the search is off
DENYLISTED_NODES_KEY = "denylisted_nodes"  # JSON lists of op output tensor names
INT16_NODES_KEY = "int16_nodes"
INT4_WEIGHT_NODES_KEY = "int4_weight_nodes"
INT4_BLOCK_SIZE_KEY = "int4_block_size"


class QuantizerSpec(ComponentSpec):
    """Inputs, parameters and output of the Quantizer."""

    PARAMETERS = {
        MODE_KEY: ExecutionParameter(type=str),
        ENGINE_KEY: ExecutionParameter(type=str),
        SIGNATURE_NAME_KEY: ExecutionParameter(type=str, optional=True),
        IO_DTYPE_KEY: ExecutionParameter(type=str, optional=True),
        DENYLISTED_OPS_KEY: ExecutionParameter(type=str),
        ALLOW_FLOAT_FALLBACK_KEY: ExecutionParameter(type=int),
        ALLOW_SELECT_OPS_KEY: ExecutionParameter(type=int, optional=True),
        ACCURACY_SEARCH_KEY: ExecutionParameter(type=str, optional=True),
        DENYLISTED_NODES_KEY: ExecutionParameter(type=str, optional=True),
        INT16_NODES_KEY: ExecutionParameter(type=str, optional=True),
        INT4_WEIGHT_NODES_KEY: ExecutionParameter(type=str, optional=True),
        INT4_BLOCK_SIZE_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        REPRESENTATIVE_DATASET_KEY: ChannelParameter(type=RepresentativeDataset, optional=True),
        # When wired, the signature takes transformed features: calibration examples go through this graph first.
        TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph, optional=True),
        # With accuracy_search: the sample the candidates are scored on (disjoint from the calibration one).
        SEARCH_DATASET_KEY: ChannelParameter(type=RepresentativeDataset, optional=True),
    }
    OUTPUTS = {
        QUANTIZED_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
    }
