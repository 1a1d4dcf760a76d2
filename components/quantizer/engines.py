"""The conversion that runs in the child process: pick the engine, convert, write the flatbuffer.

Kept apart from the executor so the child imports TensorFlow and one engine only, not TFX and Beam: on a busy
machine each import costs tens of seconds, and the child starts fresh for every conversion.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

import numpy as np

from quantgate.components.quantizer import builtin_rewrites, float_reference
from quantgate.components.quantizer.options import QuantizationOptions

# Imported on use: ai-edge-quantizer is only loaded when its engine is asked for.
_ENGINE_MODULES = {
    "tflite_converter": "quantgate.components.quantizer.tflite_engine",
    "litert_quantizer": "quantgate.components.quantizer.litert_engine",
}


def convert_to_file(saved_model_dir: str, signature_name: str, options: QuantizationOptions,
                    inputs: dict[str, np.ndarray] | None, output_path: str) -> float:
    """Runs ``options.engine``'s ``convert`` and writes the flatbuffer to ``output_path``; returns the seconds taken.

    Module-level with picklable arguments, for ``isolation.run_isolated``.
    """
    start = time.monotonic()
    content = importlib.import_module(_ENGINE_MODULES[options.engine]).convert(
        saved_model_dir, signature_name, options, inputs)
    with open(output_path, "wb") as f:
        f.write(content)
    return time.monotonic() - start


def convert_and_diagnose(saved_model_dir: str, signature_name: str, options: QuantizationOptions,
                         inputs: dict[str, np.ndarray] | None, output_path: str,
                         ) -> tuple[float, list[dict[str, Any]] | None, str | None]:
    """``convert_to_file``, then, for a calibrated mode, ``diagnostics.layer_errors`` in the same child (one
    TensorFlow import). Returns the conversion's seconds, the layer errors (``None`` without calibration) and why
    the diagnostics failed (``None`` when they did not): a model that converted is not lost to its diagnostics."""
    seconds = convert_to_file(saved_model_dir, signature_name, options, inputs, output_path)
    if not options.calibrated:
        return seconds, None, None
    from quantgate.components.quantizer import diagnostics

    try:
        return seconds, diagnostics.layer_errors(saved_model_dir, signature_name, options, inputs), None
    except Exception as error:  # reported in the report's layer_errors and warnings
        logging.warning("layer-wise diagnostics failed: %s", error)
        return seconds, None, f"{type(error).__name__}: {error}"


def convert_with_float_reference(saved_model_dir: str, signature_name: str, options: QuantizationOptions,
                                 inputs: dict[str, np.ndarray] | None, output_path: str,
                                 float_output_path: str) -> dict[str, Any]:
    """``convert_and_diagnose``, then the same signature as float32 TFLite into ``float_output_path``, in one child.

    The float conversion reuses the SavedModel the engine loaded (``float_reference.loaded_model``), so it costs one
    more ``convert()`` at most (none for the litert engine and the diagnostics, which convert it anyway). Returns
    ``{"conversion_seconds", "layer_errors", "diagnostics_failure", "float_tflite_seconds", "builtin_rewrites"}``:
    the last lists the ``DenseBincount`` nodes rewritten to ONE_HOT, checked equal on the calibration rows
    (``builtin_rewrites.check_rewrites``; a difference raises, so nothing is published).
    """
    seconds, layer_errors, failure = convert_and_diagnose(saved_model_dir, signature_name, options, inputs,
                                                          output_path)
    float_seconds = float_reference.write_float_tflite(saved_model_dir, signature_name, float_output_path)
    checked_rows = builtin_rewrites.check_rewrites(inputs, source=saved_model_dir)
    rewrites = [{**rewrite, "checked_rows": checked_rows}
                for rewrite in builtin_rewrites.rewrites_done(source=saved_model_dir)]
    return {"conversion_seconds": seconds, "layer_errors": layer_errors, "diagnostics_failure": failure,
            "float_tflite_seconds": float_seconds, "builtin_rewrites": rewrites}
