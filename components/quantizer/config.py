"""The Quantizer's parameters as one value, read from TFX's execution properties in one place.

``QuantizerConfig.from_exec_properties`` only decodes (JSON lists, 0/1 ints, absent optionals); the checks stay
where the component builder runs them too: ``options`` (``options.resolve_options``) and ``search``
(``search.parse_search_config``), so a bad value is refused with the same error, in the same order, as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quantgate.components.quantizer.options import (
    DEFAULT_INT4_BLOCK_SIZE,
    TFLITE_ENGINE,
    QuantizationOptions,
    resolve_options,
)
from quantgate.components.quantizer.search import SearchConfig, parse_search_config
from quantgate.components.quantizer.spec import (
    ACCURACY_SEARCH_KEY,
    ALLOW_FLOAT_FALLBACK_KEY,
    ALLOW_SELECT_OPS_KEY,
    DENYLISTED_NODES_KEY,
    DENYLISTED_OPS_KEY,
    ENGINE_KEY,
    INT4_BLOCK_SIZE_KEY,
    INT4_WEIGHT_NODES_KEY,
    INT16_NODES_KEY,
    IO_DTYPE_KEY,
    MODE_KEY,
    SIGNATURE_NAME_KEY,
)


def _json_list(text: str | None) -> Any:
    """A JSON list property as a tuple; anything else as decoded, for ``resolve_options`` to refuse by name (a
    bare string must reach it as a string, not letter by letter)."""
    value = json.loads(text or "[]")
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class QuantizerConfig:
    """The component's parameters (see ``component.Quantizer``), as its execution properties carry them."""

    mode: str
    engine: str = TFLITE_ENGINE
    io_dtype: str | None = None
    signature_name: str | None = None
    denylisted_ops: tuple[str, ...] = ()
    allow_float_fallback: bool = False
    allow_select_ops: bool = False
    denylisted_nodes: tuple[str, ...] = ()
    int16_nodes: tuple[str, ...] = ()
    int4_weight_nodes: tuple[str, ...] = ()
    int4_block_size: int = DEFAULT_INT4_BLOCK_SIZE
    # The accuracy search's JSON object (``search.SearchConfig.to_json``), ``None`` when the search is off.
    accuracy_search: str | None = None

    @classmethod
    def from_exec_properties(cls, exec_properties: Mapping[str, Any]) -> QuantizerConfig:
        """The config of a component's execution properties (absent optionals take the component's defaults)."""
        return cls(
            mode=exec_properties[MODE_KEY],
            engine=exec_properties[ENGINE_KEY],
            io_dtype=exec_properties.get(IO_DTYPE_KEY) or None,
            signature_name=exec_properties.get(SIGNATURE_NAME_KEY) or None,
            denylisted_ops=_json_list(exec_properties.get(DENYLISTED_OPS_KEY)),
            allow_float_fallback=bool(exec_properties.get(ALLOW_FLOAT_FALLBACK_KEY)),
            allow_select_ops=bool(exec_properties.get(ALLOW_SELECT_OPS_KEY)),
            denylisted_nodes=_json_list(exec_properties.get(DENYLISTED_NODES_KEY)),
            int16_nodes=_json_list(exec_properties.get(INT16_NODES_KEY)),
            int4_weight_nodes=_json_list(exec_properties.get(INT4_WEIGHT_NODES_KEY)),
            int4_block_size=(DEFAULT_INT4_BLOCK_SIZE if exec_properties.get(INT4_BLOCK_SIZE_KEY) is None
                             else exec_properties[INT4_BLOCK_SIZE_KEY]),
            accuracy_search=exec_properties.get(ACCURACY_SEARCH_KEY) or None,
        )

    def options(self, *, has_representative_dataset: bool) -> QuantizationOptions:
        """The validated conversion options (``options.resolve_options``; raises its ``ValueError``)."""
        return resolve_options(
            self.mode,
            self.io_dtype,
            engine=self.engine,
            denylisted_ops=self.denylisted_ops,
            allow_float_fallback=self.allow_float_fallback,
            allow_select_ops=self.allow_select_ops,
            has_representative_dataset=has_representative_dataset,
            denylisted_nodes=self.denylisted_nodes,
            int16_nodes=self.int16_nodes,
            int4_weight_nodes=self.int4_weight_nodes,
            int4_block_size=self.int4_block_size,
        )

    def search(self) -> SearchConfig | None:
        """The accuracy search's parameters, ``None`` when it is off (``search.parse_search_config``)."""
        return parse_search_config(self.accuracy_search)
