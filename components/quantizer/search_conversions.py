"""The search's conversions, several per child process: one TensorFlow import for a batch of candidates.

Imported by the child (``isolation.run_isolated``), so it imports no TFX, Beam or model runner: only the engines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantgate.components.quantizer.engines import convert_and_diagnose, convert_to_file
from quantgate.components.quantizer.options import QuantizationOptions


@dataclass(frozen=True)
class Conversion:
    """One candidate's conversion in the child: its seconds, layer errors when asked, or the error it raised."""

    seconds: float | None
    layer_errors: list[dict[str, Any]] | None = None
    error: str | None = None


def convert_batch(saved_model_dir: str, signature_name: str, requests: list[tuple[QuantizationOptions, str, bool]],
                  inputs: dict[str, np.ndarray] | None) -> list[Conversion]:
    """Converts each ``(options, output_path, diagnose)`` request in turn; with ``diagnose`` the layer errors of that
    model too (``engines.convert_and_diagnose``). A candidate that raises is recorded, and the next one converts."""
    results = []
    for options, output_path, diagnose in requests:
        try:
            if diagnose:
                seconds, errors, failure = convert_and_diagnose(saved_model_dir, signature_name, options, inputs,
                                                                output_path)
                if failure:
                    logging.warning("search: layer errors of %s failed: %s", options, failure)
                results.append(Conversion(seconds, errors))
            else:
                results.append(Conversion(convert_to_file(saved_model_dir, signature_name, options, inputs,
                                                          output_path)))
        except Exception as error:  # one candidate the converter refuses does not end the search
            results.append(Conversion(None, error=f"{type(error).__name__}: {error}"))
    return results
