"""quantgate: TFX components that calibrate, quantize, evaluate and gate int8 TFLite models.

The installed package has two subpackages, mapped from the repository's top-level folders (``pyproject.toml``,
``package-dir``): ``quantgate.components`` (the four components and their artifact types, the public API) and
``quantgate.pipelines`` (the demo pipelines, the local runner, the lineage CLI and the ``quantgate`` console script).

The artifact types are also importable from here: their ``TYPE_NAME`` is ``quantgate.<Class>``, and Kubeflow's
container entrypoint imports a type name as ``module.Class``. They load on first use (PEP 562), so ``import
quantgate`` does not import TFX.
"""

from __future__ import annotations

import importlib
from typing import Any

_ARTIFACT_TYPES = ("QuantizationEvaluation", "RepresentativeDataset")

__all__ = list(_ARTIFACT_TYPES)


def __getattr__(name: str) -> Any:
    if name not in _ARTIFACT_TYPES:
        raise AttributeError(f"module 'quantgate' has no attribute {name!r}")
    value = getattr(importlib.import_module("quantgate.components.types"), name)
    globals()[name] = value
    return value
