"""quantgate: TFX components that calibrate, quantize, evaluate and gate int8 TFLite models.

Public names: the custom artifact types (their ``TYPE_NAME`` is ``components.<Class>``, which Kubeflow's
container entrypoint imports as ``module.Class``) and the components. They are imported on first use (PEP 562), so
a process that needs one helper module (the Quantizer's conversion child, say) does not pay for importing TFX.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "QuantizedModelPusher": "components.pusher.component",
    "QuantizationEvaluator": "components.quantization_evaluator.component",
    "Quantizer": "components.quantizer.component",
    "RepresentativeDatasetGen": "components.representative_dataset.component",
    "QuantizationEvaluation": "components.types",
    "RepresentativeDataset": "components.types",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'components' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
