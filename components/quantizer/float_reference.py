"""The float32 TFLite conversion of the signature: the honest size a quantized model is compared with.

The SavedModel's ``variables/`` hold the optimizer's slots too (65 % of a small wine classifier's), so "x times
smaller than the SavedModel" overstates what quantization saves; the same signature converted to TFLite without
optimizations holds the weights only. Runs in the conversion child, on the SavedModel the engine already loaded
(``loaded_model`` is cached per process, and so is the float conversion, which the litert engine quantizes anyway).
"""

from __future__ import annotations

import functools
import time

import tensorflow as tf

from components.quantizer.isolation import log_stage


@functools.cache
def loaded_model(saved_model_dir: str) -> tf.Module:
    """The SavedModel, loaded once per (child) process for every conversion of it."""
    log_stage(f"loading SavedModel {saved_model_dir}")
    return tf.saved_model.load(saved_model_dir)


def converter(saved_model_dir: str, signature_name: str) -> tf.lite.TFLiteConverter:
    """A converter of the signature's concrete function (TFLite signature key ``serving_default``)."""
    model = loaded_model(saved_model_dir)
    return tf.lite.TFLiteConverter.from_concrete_functions([model.signatures[signature_name]], model)


@functools.cache
def float_tflite(saved_model_dir: str, signature_name: str) -> bytes:
    """The signature as a float32 TFLite model: no optimizations, weights only (no optimizer state)."""
    return converter(saved_model_dir, signature_name).convert()


def write_float_tflite(saved_model_dir: str, signature_name: str, output_path: str) -> float:
    """Writes ``float_tflite`` to ``output_path``; returns the seconds it took (0 when already converted)."""
    start = time.monotonic()
    log_stage(f"converting signature {signature_name!r} to float32 TFLite (the size reference)")
    content = float_tflite(saved_model_dir, signature_name)
    with open(output_path, "wb") as f:
        f.write(content)
    return time.monotonic() - start
