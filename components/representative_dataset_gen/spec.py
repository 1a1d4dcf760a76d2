"""RepresentativeDatasetGen's keys and spec, as data: the component builds it, the executor reads by these keys."""

from __future__ import annotations

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from quantgate.components.shared import properties
from quantgate.components.types import RepresentativeDataset

EXAMPLES_KEY = properties.EXAMPLES_KEY
SCHEMA_KEY = "schema"
REPRESENTATIVE_DATASET_KEY = properties.REPRESENTATIVE_DATASET_KEY
SEARCH_DATASET_KEY = properties.SEARCH_DATASET_KEY
SPLIT_KEY = "split"
NUM_EXAMPLES_KEY = "num_examples"
NUM_SEARCH_EXAMPLES_KEY = "num_search_examples"
SEARCH_SPLIT_KEY = "search_split"
STRATEGY_KEY = "strategy"
LABEL_KEY_KEY = "label_key"
SEED_KEY = "seed"
# An int, not a bool: MLMD stores execution properties as int, double or string.
ALLOW_EVAL_SPLIT_KEY = "allow_eval_split"


class RepresentativeDatasetGenSpec(ComponentSpec):
    """Inputs, parameters and output of RepresentativeDatasetGen."""

    PARAMETERS = {
        SPLIT_KEY: ExecutionParameter(type=str),
        NUM_EXAMPLES_KEY: ExecutionParameter(type=int),
        NUM_SEARCH_EXAMPLES_KEY: ExecutionParameter(type=int),
        # Optional so that executions recorded before it existed keep their cache key and meaning.
        SEARCH_SPLIT_KEY: ExecutionParameter(type=str, optional=True),
        STRATEGY_KEY: ExecutionParameter(type=str),
        LABEL_KEY_KEY: ExecutionParameter(type=str, optional=True),
        SEED_KEY: ExecutionParameter(type=int),
        ALLOW_EVAL_SPLIT_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema, optional=True),
    }
    OUTPUTS = {
        REPRESENTATIVE_DATASET_KEY: ChannelParameter(type=RepresentativeDataset),
        # Declared only when num_search_examples > 0: a component without it has no such output at all, so
        # nothing downstream can read an empty search sample (TFX leaves optional outputs out of the node).
        SEARCH_DATASET_KEY: ChannelParameter(type=RepresentativeDataset, optional=True),
    }
