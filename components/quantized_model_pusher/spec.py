"""The QuantizedModelPusher's keys and spec, as data: the component builds it, the executor reads by these keys.

The stock Pusher's keys (``model``, ``model_blessing``, ``push_destination``, ``pushed_model``) come from
``tfx.types.standard_component_specs``, so the stock Pusher's wiring works unchanged.
"""

from __future__ import annotations

from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from quantgate.components.shared import properties
from quantgate.components.types import QuantizationEvaluation, RepresentativeDataset

MODEL_KEY = standard_component_specs.MODEL_KEY
MODEL_BLESSING_KEY = standard_component_specs.MODEL_BLESSING_KEY
PUSH_DESTINATION_KEY = standard_component_specs.PUSH_DESTINATION_KEY
PUSHED_MODEL_KEY = standard_component_specs.PUSHED_MODEL_KEY
FLOAT_BLESSING_KEY = properties.FLOAT_BLESSING_KEY
FLOAT_MODEL_KEY = properties.FLOAT_MODEL_KEY
REPRESENTATIVE_DATASET_KEY = properties.REPRESENTATIVE_DATASET_KEY
EVALUATION_KEY = properties.EVALUATION_KEY
TRANSFORM_GRAPH_KEY = properties.TRANSFORM_GRAPH_KEY
SCHEMA_KEY = standard_component_specs.SCHEMA_KEY
CANDIDATE_KEYS = tuple(properties.candidate_model_key(i) for i in range(properties.MAX_CANDIDATES))
# Every blessing the push needs, in the order the refusals are reported.
BLESSING_KEYS = (MODEL_BLESSING_KEY, FLOAT_BLESSING_KEY)


class QuantizedModelPusherSpec(ComponentSpec):
    """Inputs: the quantized model (one, or every candidate the QuantizationEvaluator scored) and its blessing
    (required), the float model's blessing, for the manifest the float model, the representative dataset and the
    QuantizationEvaluator's evaluation, Transform's transform graph, whose vocabularies ship beside the model, and
    the schema, whose label domain names the classes in labels.txt (optional)."""

    PARAMETERS = {
        PUSH_DESTINATION_KEY: ExecutionParameter(type=pusher_pb2.PushDestination),
    }
    INPUTS = {
        MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        **{key: ChannelParameter(type=standard_artifacts.Model, optional=True) for key in CANDIDATE_KEYS[1:]},
        MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        FLOAT_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
        FLOAT_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
        REPRESENTATIVE_DATASET_KEY: ChannelParameter(type=RepresentativeDataset, optional=True),
        EVALUATION_KEY: ChannelParameter(type=QuantizationEvaluation, optional=True),
        TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph, optional=True),
        SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema, optional=True),
    }
    OUTPUTS = {
        PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel),
    }
