"""Engine ``tflite_converter``: TensorFlow's TFLiteConverter on the signature's concrete function.

``from_concrete_functions`` (not ``from_saved_model``, which can abort the process with Keras 3) keeps the TFLite
signature key ``serving_default`` and the input names of the SavedModel signature, i.e. the feature names.
Run it in a child process (``isolation.run_isolated``): the converter can abort. ``convert`` announces its stages
(``isolation.log_stage``), so the error of a child killed by a signal says where it died; ``refuse_crashing_layers``
runs in the parent, before the child starts, and refuses layers the converter is known to crash on.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import convert as tflite_convert
from tensorflow.lite.python import util as tflite_util
from tensorflow.lite.toco import types_pb2
from tf_keras.protobuf import saved_metadata_pb2

from components.quantizer import float_reference
from components.quantizer.isolation import log_stage
from components.quantizer.options import QuantizationOptions, check_node_names
from components.quantizer.report import op_output_names, op_summary, unexpected_float_ops
from components.shared.properties import QAT_MODE

_TF_DTYPES = {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float32": tf.float32}
_QUANTIZED_OPS = {
    "int8": tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
    "int16x8": tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
}

# Keras layer classes the converter cannot take, with the fix. Measured with TF 2.16: CategoryEncoding (the TFX
# taxi example's one-hot layer, a tf.DenseBincount) kills it natively (SIGSEGV, no Python error) in int8 and int16x8
# and fails in float16 and dynamic_range (DenseBincount has no TFLite kernel).
CONVERTER_CRASH_LAYERS = {
    "CategoryEncoding": "replace CategoryEncoding with tf.one_hot on int ids or an Embedding",
}
CRASH_DESCRIPTION = ("the TFLite converter crashes (SIGSEGV in int8 and int16x8) or fails (no TFLite kernel for its "
                     "tf.DenseBincount in float16 and dynamic_range)")
KERAS_METADATA_FILE = "keras_metadata.pb"  # written by Keras' model.save beside saved_model.pb


def keras_layers(saved_model_dir: str) -> list[tuple[str, str]]:
    """The ``(layer name, class name)`` of every Keras layer the SavedModel's ``keras_metadata.pb`` describes.

    Read without loading the model (a fraction of a second); empty for a SavedModel Keras did not write.
    """
    path = os.path.join(saved_model_dir, KERAS_METADATA_FILE)
    if not tf.io.gfile.exists(path):
        return []
    metadata = saved_metadata_pb2.SavedMetadata()
    with tf.io.gfile.GFile(path, "rb") as f:
        metadata.ParseFromString(f.read())
    layers = []
    for node in metadata.nodes:
        info = json.loads(node.metadata or "{}")
        if info.get("class_name"):
            layers.append((info.get("name") or node.node_path, info["class_name"]))
    return layers


def refuse_crashing_layers(saved_model_dir: str, model_label: str) -> None:
    """Refuses, before any child starts, a SavedModel holding a layer in ``CONVERTER_CRASH_LAYERS``.

    Raises:
      ValueError: naming the model artifact, the SavedModel, each such layer with its class, and the fix.
    """
    found = [(name, cls) for name, cls in keras_layers(saved_model_dir) if cls in CONVERTER_CRASH_LAYERS]
    if found:
        layers = ", ".join(f"{name!r} ({cls})" for name, cls in found)
        fixes = "; ".join(sorted({CONVERTER_CRASH_LAYERS[cls] for _, cls in found}))
        raise ValueError(
            f"{model_label}: SavedModel {saved_model_dir} has layer(s) {layers}, on which {CRASH_DESCRIPTION}. Fix the Trainer's model: {fixes}, and re-train."
        )


def representative_batches(inputs: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """Yields the calibration inputs one example at a time (batch 1), as the converter's calibrator expects."""
    n = len(next(iter(inputs.values())))
    log_stage(f"calibrating on {n} examples")
    for i in range(n):
        if i and i % 100 == 0:
            logging.info("calibration: %d/%d examples fed", i, n)
        yield {name: values[i:i + 1] for name, values in inputs.items()}
    log_stage("quantizing the calibrated model")


def converter_for(saved_model_dir: str, signature_name: str) -> tf.lite.TFLiteConverter:
    """A TFLiteConverter on the signature's concrete function (see the module's docstring), on the SavedModel
    loaded once per process (``float_reference.loaded_model``)."""
    return float_reference.converter(saved_model_dir, signature_name)


def configure(converter: tf.lite.TFLiteConverter, options: QuantizationOptions,
              inputs: dict[str, np.ndarray] | None, allow_float: bool) -> None:
    """Sets the converter up for ``options`` (optimizations, calibration inputs, op sets, I/O dtype)."""
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if options.mode == QAT_MODE:
        _configure_qat(converter, options, inputs)
        return
    if options.mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if not options.calibrated:
        return
    converter.representative_dataset = lambda: representative_batches(inputs)
    converter.target_spec.supported_ops = [_QUANTIZED_OPS[options.mode]] + (
        [tf.lite.OpsSet.TFLITE_BUILTINS] if allow_float else [])
    converter.inference_input_type = converter.inference_output_type = _TF_DTYPES[options.io_dtype]


def _configure_qat(converter: tf.lite.TFLiteConverter, options: QuantizationOptions,
                   inputs: dict[str, np.ndarray] | None) -> None:
    # The converter sees the fake-quant ops and quantizes with their learned ranges. Calibration, when given, only
    # reaches the tensors those ops leave without a range (the model's I/O, layers tfmot left float). supported_ops
    # stays at its default: TFLITE_BUILTINS_INT8 without a representative dataset makes TF 2.16's converter raise
    # "a representative_dataset must be specified" (its metrics step checks before it sees the graph); the
    # all-integer result is checked afterwards instead (report.unexpected_float_ops).
    if inputs:
        converter.representative_dataset = lambda: representative_batches(inputs)
    converter.inference_input_type = converter.inference_output_type = _TF_DTYPES[options.io_dtype]


def calibrated_model(converter: tf.lite.TFLiteConverter) -> bytes:
    """The float model with calibration statistics: what TFLite's QuantizationDebugger starts from.

    Its I/O stays float whatever ``configure`` asked (the I/O types are set after quantization; asking for int16 I/O
    here fails with 'Model input is not dequantized')."""
    converter.inference_input_type = converter.inference_output_type = tf.float32
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True
    return converter.convert()


def quantize_calibrated(calibrated: bytes, options: QuantizationOptions, *, numeric_verify: bool = False) -> bytes:
    """What ``QuantizationDebugger.get_nondebug_quantized_model`` (``numeric_verify``: ``get_debug_quantized_model``)
    does with its ``QuantizationDebugOptions(denylisted_ops, denylisted_nodes)``, with the mode's activation type:
    the debugger itself always quantizes to int8. The model keeps float I/O."""
    return tflite_convert.mlir_quantize(
        calibrated,
        inference_type=types_pb2.QUANTIZED_INT16 if options.mode == "int16x8" else types_pb2.QUANTIZED_INT8,
        enable_numeric_verify=numeric_verify,
        denylisted_ops=list(options.denylisted_ops),
        denylisted_nodes=list(options.denylisted_nodes),
    )


def _convert_with_denylist(converter: tf.lite.TFLiteConverter, options: QuantizationOptions,
                           signature_name: str) -> bytes:
    # Calibrate only, then quantize with the listed ops / op outputs left float; the I/O types are set afterwards
    # as the converter does (the debugger's path stops at float I/O).
    calibrated = calibrated_model(converter)
    check_node_names(options, op_output_names(calibrated), f"signature {signature_name!r}")
    model = quantize_calibrated(calibrated, options)
    io = _TF_DTYPES[options.io_dtype]
    return tflite_util.modify_model_io_type(model, io, io)


def convert(saved_model_dir: str, signature_name: str, options: QuantizationOptions,
            inputs: dict[str, np.ndarray] | None) -> bytes:
    """Converts the signature to a TFLite flatbuffer in ``options.mode`` and returns its bytes.

    Args:
      saved_model_dir: the float SavedModel.
      signature_name: its dense-input signature (see ``calibration.dense_signature_specs``).
      options: the validated request.
      inputs: calibration inputs (``calibration.examples_to_inputs``), required for int8 / int16x8.

    Raises:
      ValueError: an op has no kernel in the quantized dtype and float fallback is off (the op is named).
    """
    if options.calibrated and not inputs:
        raise ValueError(f"mode {options.mode!r} needs calibration inputs")
    converter = converter_for(saved_model_dir, signature_name)
    denylist = bool(options.denylisted_ops or options.denylisted_nodes)
    allow_float = options.allow_float_fallback or denylist
    configure(converter, options, inputs, allow_float)
    log_stage(f"converting signature {signature_name!r} ({options.mode})")
    try:
        content = _convert_with_denylist(converter, options, signature_name) if denylist else converter.convert()
    except Exception as error:  # ConverterError: find out which ops lack a quantized kernel
        if not options.calibrated or allow_float:
            raise
        logging.info("%s conversion failed (%s); converting with float fallback to name the ops", options.mode, error)
        retry = converter_for(saved_model_dir, signature_name)
        configure(retry, options, inputs, allow_float=True)
        log_stage(f"converting signature {signature_name!r} ({options.mode}) with float fallback to name the ops")
        try:
            float_ops = op_summary(retry.convert())["float_ops"]
        except Exception:
            raise error from None
        raise ValueError(_no_kernel_message(signature_name, options, float_ops) + f" Converter error: {error}") from error
    # The converter may leave an op without a quantized kernel in float even with int8-only ops: check the result.
    log_stage("checking the converted ops")
    float_ops = unexpected_float_ops(content, options)
    if float_ops:
        raise ValueError(_no_kernel_message(signature_name, options, float_ops))
    return content


def _no_kernel_message(signature_name: str, options: QuantizationOptions, float_ops: list[str]) -> str:
    return (
        f"signature {signature_name!r} has op(s) without a quantized {options.mode} kernel, left in float: "
        f"{', '.join(float_ops)}. Set allow_float_fallback=True to keep them float, denylist them "
        "(denylisted_ops), or change the model."
    )
