"""quantgate: TFX components that calibrate, quantize, evaluate and gate int8 TFLite models.

The public API, as ``tfx.components`` reads: ``from quantgate.components import Quantizer, ...``. Public names: the
four components and the custom artifact types (their ``TYPE_NAME`` is ``quantgate.<Class>``, see ``types.py``). They are imported on first use (PEP 562), so
a process that needs one helper module (the Quantizer's conversion child, say) does not pay for importing TFX.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "QuantizedModelPusher": "quantgate.components.quantized_model_pusher.component",
    "QuantizationEvaluator": "quantgate.components.quantization_evaluator.component",
    "Quantizer": "quantgate.components.quantizer.component",
    "RepresentativeDatasetGen": "quantgate.components.representative_dataset_gen.component",
    "QuantizationEvaluation": "quantgate.components.types",
    "RepresentativeDataset": "quantgate.components.types",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'quantgate.components' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
