"""Strict JSON for every JSON file quantgate writes: ``null`` where a number is undefined, never ``NaN``/``Infinity``."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """NaN and infinities become ``None``; numpy scalars and arrays become Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``json_safe(value)`` that refuses anything non-strict (``allow_nan=False``)."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)
