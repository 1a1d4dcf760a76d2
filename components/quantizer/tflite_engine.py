"""Engine ``tflite_converter``: TensorFlow's TFLiteConverter on the signature's concrete function.

``from_concrete_functions`` (not ``from_saved_model``, which can abort the process with Keras 3) keeps the TFLite
signature key ``serving_default`` and the input names of the SavedModel signature, i.e. the feature names.
Run it in a child process (``isolation.run_isolated``): the converter can abort. ``convert`` announces its stages
(``isolation.log_stage``), so the error of a child killed by a signal says where it died. CategoryEncoding (the TFX
taxi example's one-hot layer, a tf.DenseBincount) killed the converter natively (SIGSEGV) in int8 and int16x8 with
TF 2.16; every converter is made by ``builtin_rewrites``, which rewrites DenseBincount into the ONE_HOT builtin first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import convert as tflite_convert
from tensorflow.lite.python import util as tflite_util
from tensorflow.lite.toco import types_pb2

from quantgate.components.quantizer import builtin_rewrites, float_reference
from quantgate.components.quantizer.isolation import log_stage
from quantgate.components.quantizer.options import QuantizationOptions, check_node_names
from quantgate.components.quantizer.report import op_output_names, op_summary, unexpected_float_ops
from quantgate.components.shared.properties import QAT_MODE

_TF_DTYPES = {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float32": tf.float32}
_QUANTIZED_OPS = {
    "int8": tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
    "int16x8": tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
}

# "Quantization to 16x8-bit not yet supported for op: 'UNIDIRECTIONAL_SEQUENCE_LSTM'": the op the converter names.
_UNSUPPORTED_OP = re.compile(r"not yet supported for op: '([A-Z0-9_]+)'")
# The quantization modes a recurrent layer's fused op converts in, measured on TFX's IMDB BiLSTM (TF 2.16): the
# refusal says which to use instead of a converter trace.
RECURRENT_OP_MODES = {
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("int8", "dynamic_range"),
}


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
    # The opt-in keeps ops the builtins lack as Flex ops; without it they are refused (builtin_rewrites).
    select = [tf.lite.OpsSet.SELECT_TF_OPS] if options.allow_select_ops else []
    if not options.calibrated:  # the float op set, as the converter's default, plus the opt-in
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, *select]
    if options.mode == QAT_MODE:
        _configure_qat(converter, options, inputs)
        return
    if options.mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if not options.calibrated:
        return
    converter.representative_dataset = lambda: representative_batches(inputs)
    converter.target_spec.supported_ops = [_QUANTIZED_OPS[options.mode]] + (
        [tf.lite.OpsSet.TFLITE_BUILTINS] if allow_float else []) + select
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
    # The float reference conversions in this process (float_reference) follow the same opt-in.
    builtin_rewrites.set_select_ops_allowed(options.allow_select_ops)
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
        named = sorted(set(_UNSUPPORTED_OP.findall(str(error))))
        try:
            float_ops = op_summary(retry.convert())["float_ops"] or named
        except Exception:
            if not named:
                raise error from None
            float_ops = named
        detail = f"the converter: {_UNSUPPORTED_OP.search(str(error)).group(0)}" if named else f"Converter error: {error}"
        raise ValueError(_no_kernel_message(signature_name, options, float_ops) + f" ({detail})") from error
    # The converter may leave an op without a quantized kernel in float even with int8-only ops: check the result.
    log_stage("checking the converted ops")
    float_ops = unexpected_float_ops(content, options)
    if float_ops:
        raise ValueError(_no_kernel_message(signature_name, options, float_ops))
    return content


def _no_kernel_message(signature_name: str, options: QuantizationOptions, float_ops: list[str]) -> str:
    recurrent = sorted({op.split(" ")[0] for op in float_ops} & set(RECURRENT_OP_MODES))
    modes = "; ".join(f"{op} converts in {', '.join(RECURRENT_OP_MODES[op])}" for op in recurrent)
    return (
        f"signature {signature_name!r} has op(s) without a quantized {options.mode} kernel, left in float: "
        f"{', '.join(float_ops)}. "
        + (f"Recurrent ops have no {options.mode} kernel in TFLite (measured: {modes}): use one of those modes. "
           if recurrent else "")
        + "Set allow_float_fallback=True to keep them float, denylist them (denylisted_ops), or change the model."
    )
