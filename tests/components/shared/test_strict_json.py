"""strict_json: what quantgate writes as JSON parses in any strict parser."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from quantgate.components.shared.strict_json import dumps, json_safe


def test_json_safe_writes_strict_json() -> None:
    value = json_safe({"a": math.nan, "b": [np.float32(0.5), math.inf], ("c",): np.int64(3)})
    assert value == {"a": None, "b": [0.5, None], "('c',)": 3}
    json.dumps(value, allow_nan=False)


def test_dumps_never_writes_nan_or_infinity() -> None:
    text = dumps({"step": math.inf, "std": math.nan, "levels": np.array([1.0, math.nan])})
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}")) == {
        "step": None, "std": None, "levels": [1.0, None]}
