"""RepresentativeDatasetGen's parameters as one value, read from TFX's execution properties in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quantgate.components.representative_dataset_gen.sampling import SamplingConfig
from quantgate.components.representative_dataset_gen.spec import (
    ALLOW_EVAL_SPLIT_KEY,
    LABEL_KEY_KEY,
    NUM_EXAMPLES_KEY,
    NUM_SEARCH_EXAMPLES_KEY,
    SEARCH_SPLIT_KEY,
    SEED_KEY,
    SPLIT_KEY,
    STRATEGY_KEY,
)
from quantgate.components.representative_dataset_gen.validation import EVAL_SPLIT


@dataclass(frozen=True)
class RepresentativeDatasetGenConfig:
    """The component's parameters (see ``component.RepresentativeDatasetGen``): what to sample (``sampling``,
    checked on construction) from which split, and the search sample's split."""

    sampling: SamplingConfig
    split: str
    allow_eval_split: bool = False
    # The split the search sample (``sampling.num_search_examples``) comes from; the eval split by default.
    search_split: str = EVAL_SPLIT

    @classmethod
    def from_exec_properties(cls, exec_properties: Mapping[str, Any]) -> RepresentativeDatasetGenConfig:
        """The config of a component's execution properties (absent optionals take the component's defaults).

        Raises:
          ValueError: a sampling parameter out of range (``sampling.SamplingConfig``).
        """
        return cls(
            sampling=SamplingConfig(
                num_examples=int(exec_properties[NUM_EXAMPLES_KEY]),
                strategy=exec_properties[STRATEGY_KEY],
                seed=int(exec_properties[SEED_KEY]),
                label_key=exec_properties.get(LABEL_KEY_KEY) or None,
                num_search_examples=int(exec_properties.get(NUM_SEARCH_EXAMPLES_KEY) or 0),
            ),
            split=exec_properties[SPLIT_KEY],
            allow_eval_split=bool(exec_properties.get(ALLOW_EVAL_SPLIT_KEY)),
            search_split=exec_properties.get(SEARCH_SPLIT_KEY) or EVAL_SPLIT,
        )
