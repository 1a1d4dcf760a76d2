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

from quantgate.components.quantizer import builtin_rewrites
from quantgate.components.quantizer.isolation import log_stage
from quantgate.components.shared.model_runners import ModelFunction


@functools.cache
def loaded_model(saved_model_dir: str) -> tf.Module:
    """The SavedModel, loaded once per (child) process for every conversion of it."""
    log_stage(f"loading SavedModel {saved_model_dir}")
    return tf.saved_model.load(saved_model_dir)


# What the converter says when a recurrent layer's loop (a TensorList in a while loop) cannot be lowered to
# builtins with a dynamic batch; with a fixed batch the layer becomes a fused TFLite op (measured on TFX's IMDB
# BiLSTM: UNIDIRECTIONAL_SEQUENCE_LSTM).
_NEEDS_FIXED_BATCH = ("Lowering tensor list ops is failed", "TensorListReserve", "requires element_shape to be static")
# The batch size a model converts with when the dynamic batch fails: one example per invoke, normal on devices.
FIXED_BATCH_SIZE = 1


def _converter(saved_model_dir: str, signature_name: str, batch_size: int | None) -> tf.lite.TFLiteConverter:
    model = loaded_model(saved_model_dir)
    function = ModelFunction(model, saved_model_dir, signature_name, batch_size)
    # DenseBincount (one-hot layers) -> ONE_HOT builtins; ops builtins lack refused by name (builtin_rewrites).
    return builtin_rewrites.tflite_converter(function.concrete, model, source=saved_model_dir)


@functools.cache
def _float_tflite(saved_model_dir: str, signature_name: str, batch_size: int | None) -> bytes:
    return _converter(saved_model_dir, signature_name, batch_size).convert()


@functools.cache
def conversion_batch_size(saved_model_dir: str, signature_name: str) -> int | None:
    """``None`` (dynamic batch) when the float conversion takes it, else ``FIXED_BATCH_SIZE`` when the dynamic batch
    fails on a recurrent layer's loop and the fixed one converts; the float conversion is kept (``float_tflite``).

    Raises:
      The converter's error when it fails for another reason, or with the fixed batch too.
    """
    try:
        _float_tflite(saved_model_dir, signature_name, None)
        return None
    except Exception as error:  # the converter raises ConverterError, ValueError or RuntimeError by stage
        if not any(marker in str(error) for marker in _NEEDS_FIXED_BATCH):
            raise
    log_stage(f"signature {signature_name!r}: a recurrent layer's loop converts only with a fixed batch; converting "
              f"with batch size {FIXED_BATCH_SIZE} (one example per invoke)")
    _float_tflite(saved_model_dir, signature_name, FIXED_BATCH_SIZE)
    return FIXED_BATCH_SIZE


def converter(saved_model_dir: str, signature_name: str) -> tf.lite.TFLiteConverter:
    """A converter of the function ``signature_name`` stands for (``ModelFunction``: a signature or the Keras call),
    with the batch size it converts with (``conversion_batch_size``); TFLite signature key ``serving_default``."""
    return _converter(saved_model_dir, signature_name, conversion_batch_size(saved_model_dir, signature_name))


def float_tflite(saved_model_dir: str, signature_name: str) -> bytes:
    """The signature as a float32 TFLite model: no optimizations, weights only (no optimizer state)."""
    return _float_tflite(saved_model_dir, signature_name, conversion_batch_size(saved_model_dir, signature_name))


def write_float_tflite(saved_model_dir: str, signature_name: str, output_path: str) -> float:
    """Writes ``float_tflite`` to ``output_path``; returns the seconds it took (0 when already converted)."""
    start = time.monotonic()
    log_stage(f"converting signature {signature_name!r} to float32 TFLite (the size reference)")
    content = float_tflite(saved_model_dir, signature_name)
    with open(output_path, "wb") as f:
        f.write(content)
    return time.monotonic() - start
