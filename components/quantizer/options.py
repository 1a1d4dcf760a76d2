"""The Quantizer's knobs, checked once (when the component is built and again in the executor) and shared by engines."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from quantgate.components.shared.properties import QAT_MODE

MODES = ("int8", "dynamic_range", "float16", "int16x8", QAT_MODE)
# Modes whose activations are quantized need value ranges, i.e. a representative dataset.
CALIBRATED_MODES = ("int8", "int16x8")
# Full-integer modes: every op must compute in an integer dtype (unless float fallback or a denylist says otherwise).
# "qat" takes its ranges from the model's fake-quant ops (see qat_options); calibration is optional there.
FULL_INTEGER_MODES = (*CALIBRATED_MODES, QAT_MODE)
# Post-training modes that would quantize a quantization-aware model a second time, ignoring its learned ranges.
POST_TRAINING_ONLY_MODES = ("dynamic_range", "float16", "int16x8")
# Allowed io_dtype per mode; the first is the default.
IO_DTYPES = {
    "int8": ("int8", "uint8", "float32"),
    "int16x8": ("int16", "float32"),
    "dynamic_range": ("float32",),
    "float16": ("float32",),
    QAT_MODE: ("int8", "uint8", "float32"),
}
TFLITE_ENGINE, LITERT_ENGINE = "tflite_converter", "litert_quantizer"
ENGINES = (TFLITE_ENGINE, LITERT_ENGINE)
# ai-edge-quantizer's recipes (static_wi8_ai8, static_wi8_ai16, dynamic_wi8_afp32) fix the model I/O dtype and
# have no op-type denylist (per-tensor rules only: denylisted_nodes, int16_nodes); float16 is a converter feature only.
LITERT_IO_DTYPES = {"int8": ("int8",), "int16x8": ("int16",), "dynamic_range": ("float32",)}
# int4_weight_nodes: ai-edge-quantizer 0.10's blockwise granularities (QuantGranularity.BLOCKWISE_<n>), the first the
# default; a weight's input dimension must be a multiple of the block size.
INT4_BLOCK_SIZES = (32, 64, 128, 256)
DEFAULT_INT4_BLOCK_SIZE = INT4_BLOCK_SIZES[0]
# The op types ai-edge-quantizer 0.10's policy gives int4 blockwise weights (its "dynamic_wi4_afp32_blockwise").
INT4_WEIGHT_OPS = ("FULLY_CONNECTED", "EMBEDDING_LOOKUP")
# The litert modes int4_weight_nodes combine with. int16x8 converts and LiteRT's default CPU path (XNNPACK) runs it
# right, but its builtin kernels (what the layer-wise diagnostics run, tensors kept) give wrong outputs next to int16
# activations (measured: probabilities off by 0.64), so its layer errors and the search built on them would lie.
INT4_MODES = ("int8", "dynamic_range")


@dataclass(frozen=True)
class QuantizationOptions:
    """A validated quantization request (``io_dtype`` resolved to the mode's default when not given)."""

    mode: str
    io_dtype: str
    engine: str = "tflite_converter"
    denylisted_ops: tuple[str, ...] = ()
    allow_float_fallback: bool = False
    # Op output tensor names (as ``diagnostics.layer_errors`` reports them) whose ops stay float / get int16
    # activations with int8 weights (litert_quantizer, mode int8 only) / get int4 blockwise weights with float
    # activations (litert_quantizer, INT4_MODES).
    denylisted_nodes: tuple[str, ...] = ()
    int16_nodes: tuple[str, ...] = ()
    int4_weight_nodes: tuple[str, ...] = ()
    int4_block_size: int = DEFAULT_INT4_BLOCK_SIZE
    # Keep ops TFLite builtins lack as TF Select (Flex) ops instead of refusing the model; the report lists them and
    # warns that the app needs the Flex delegate (builtin_rewrites). Never turned on by the Quantizer itself.
    allow_select_ops: bool = False

    @property
    def calibrated(self) -> bool:
        """Whether the mode needs a representative dataset."""
        return self.mode in CALIBRATED_MODES

    @property
    def full_integer(self) -> bool:
        """Whether every op must compute in an integer dtype (float ops are refused unless allowed)."""
        return self.mode in FULL_INTEGER_MODES


def resolve_options(
    mode: str,
    io_dtype: str | None = None,
    *,
    engine: str = "tflite_converter",
    denylisted_ops: Sequence[str] = (),
    allow_float_fallback: bool = False,
    has_representative_dataset: bool = True,
    denylisted_nodes: Sequence[str] = (),
    int16_nodes: Sequence[str] = (),
    int4_weight_nodes: Sequence[str] = (),
    int4_block_size: int = DEFAULT_INT4_BLOCK_SIZE,
    allow_select_ops: bool = False,
) -> QuantizationOptions:
    """Validates the Quantizer's parameters and returns them resolved.

    Raises:
      ValueError: unknown mode, engine or io_dtype for the mode; a calibrated mode without a representative
        dataset; denylisted ops or nodes for a mode that quantizes no activations; int16_nodes outside engine
        'litert_quantizer' mode 'int8'; int4_weight_nodes outside engine 'litert_quantizer' and ``INT4_MODES``
        or with int16_nodes, or an int4_block_size not in ``INT4_BLOCK_SIZES``; a node in two of the node lists. The message says which value
        to change. Whether the named nodes exist is checked at conversion (``check_node_names``; for
        int4_weight_nodes also their op type and weight shape, ``litert_engine``): only the model knows its tensors.
    """
    if mode not in MODES:
        raise ValueError(f"Quantizer: unknown mode {mode!r}; use one of {', '.join(MODES)}.")
    if engine not in ENGINES:
        raise ValueError(f"Quantizer: unknown engine {engine!r}; use one of {', '.join(ENGINES)}.")
    if engine == "litert_quantizer" and mode not in LITERT_IO_DTYPES:
        raise ValueError(f"Quantizer: engine 'litert_quantizer' has no {mode!r} recipe; use one of "
                         f"{tuple(LITERT_IO_DTYPES)} or engine 'tflite_converter'.")
    allowed = LITERT_IO_DTYPES[mode] if engine == "litert_quantizer" else IO_DTYPES[mode]
    io_dtype = io_dtype or allowed[0]
    if io_dtype not in allowed:
        raise ValueError(f"Quantizer: io_dtype {io_dtype!r} is not available in mode {mode!r}; use one of {allowed}.")
    if mode in CALIBRATED_MODES and not has_representative_dataset:
        raise ValueError(
            f"Quantizer: mode {mode!r} quantizes activations and needs representative_dataset (calibration "
            "examples, e.g. RepresentativeDatasetGen's output); wire one, or use mode 'dynamic_range' or 'float16'."
        )
    ops = tuple(str(op).upper() for op in denylisted_ops)
    _check_qat_request(mode, ops)
    if ops and engine == "litert_quantizer":
        raise ValueError("Quantizer: denylisted_ops needs engine 'tflite_converter' (TFLite's quantizer denylist).")
    if ops and mode not in CALIBRATED_MODES:
        raise ValueError(
            f"Quantizer: denylisted_ops {list(ops)} apply to the calibrated modes {CALIBRATED_MODES}; mode {mode!r} "
            "quantizes no activations. Drop denylisted_ops or change the mode."
        )
    nodes, int16 = _node_names("denylisted_nodes", denylisted_nodes), _node_names("int16_nodes", int16_nodes)
    int4 = _node_names("int4_weight_nodes", int4_weight_nodes)
    _check_node_options(mode, engine, nodes, int16)
    _check_int4_options(mode, engine, int4, int4_block_size, {"denylisted_nodes": nodes, "int16_nodes": int16})
    if (ops or nodes) and engine == "tflite_converter" and mode == "int16x8":
        # The converter quantizes int16 activations with its older calibrator, which has no denylist; the MLIR
        # quantizer that has one gives int16 models that fail to prepare (CONCATENATION: 'zero_point != 0').
        raise ValueError(
            "Quantizer: denylisted_ops / denylisted_nodes with mode 'int16x8' need engine 'litert_quantizer' "
            "(denylisted_nodes only): TFLiteConverter's denylist gives int16 models that fail to load. Use mode "
            "'int8' with the denylist, or engine='litert_quantizer' with denylisted_nodes."
        )
    return QuantizationOptions(mode=mode, io_dtype=io_dtype, engine=engine, denylisted_ops=ops,
                               allow_float_fallback=bool(allow_float_fallback), denylisted_nodes=nodes,
                               int16_nodes=int16, int4_weight_nodes=int4, int4_block_size=int4_block_size,
                               allow_select_ops=bool(allow_select_ops))


def _node_names(parameter: str, names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str):  # a bare string would be taken letter by letter
        raise ValueError(f"Quantizer: {parameter} must be a list of op output tensor names, not the string {names!r}.")
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise ValueError(f"Quantizer: {parameter} must hold non-empty tensor names (strings); got {bad!r}.")
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise ValueError(f"Quantizer: {parameter} names {duplicates} more than once; list each tensor once.")
    return tuple(names)


def _check_node_options(mode: str, engine: str, nodes: tuple[str, ...], int16: tuple[str, ...]) -> None:
    if nodes and mode not in CALIBRATED_MODES:
        raise ValueError(
            f"Quantizer: denylisted_nodes apply to the calibrated modes {CALIBRATED_MODES}; mode {mode!r} quantizes no "
            "activations. Drop denylisted_nodes or change the mode."
        )
    if int16 and (engine != "litert_quantizer" or mode != "int8"):
        raise ValueError(
            f"Quantizer: int16_nodes (int16 activations for named ops, int8 elsewhere) needs engine 'litert_quantizer' "
            f"and mode 'int8' (got engine {engine!r}, mode {mode!r}); with tflite_converter use mode 'int16x8' for the "
            "whole model, or set engine='litert_quantizer', mode='int8'."
        )
    both = sorted(set(nodes) & set(int16))
    if both:
        raise ValueError(f"Quantizer: {both} are in both denylisted_nodes and int16_nodes; a node is either float or "
                         "int16, drop it from one list.")


def _check_int4_options(mode: str, engine: str, int4: tuple[str, ...], block_size: int,
                        other_lists: dict[str, tuple[str, ...]]) -> None:
    # bool is an int: True would pass as block size 1 and fail the membership test with a confusing message.
    if isinstance(block_size, bool) or block_size not in INT4_BLOCK_SIZES:
        raise ValueError(f"Quantizer: int4_block_size {block_size!r} is not one of ai-edge-quantizer's blockwise "
                         f"sizes {INT4_BLOCK_SIZES}; use one of them (default {DEFAULT_INT4_BLOCK_SIZE}).")
    if int4 and engine != "litert_quantizer":
        raise ValueError(
            f"Quantizer: int4_weight_nodes (int4 blockwise weights for named ops) needs engine 'litert_quantizer' "
            f"(got engine {engine!r}): TFLiteConverter has no int4 weights. Set engine='litert_quantizer' (modes "
            f"{', '.join(INT4_MODES)}), or drop int4_weight_nodes.")
    if int4 and (mode not in INT4_MODES or other_lists["int16_nodes"]):
        raise ValueError(
            f"Quantizer: int4_weight_nodes combine with modes {', '.join(INT4_MODES)} and no int16_nodes (got mode "
            f"{mode!r}{', int16_nodes' if other_lists['int16_nodes'] else ''}): next to int16 activations LiteRT's "
            "builtin kernels, which the layer-wise diagnostics run, compute int4 weights wrong. Use mode 'int8' or "
            "'dynamic_range' without int16_nodes, or drop int4_weight_nodes.")
    for parameter, names in other_lists.items():
        both = sorted(set(int4) & set(names))
        if both:
            raise ValueError(f"Quantizer: {both} are in both {parameter} and int4_weight_nodes; an op gets one rule, "
                             "drop it from one list.")


# How many of the model's tensor names an unknown-node error lists.
MAX_LISTED_NODES = 40


def check_node_names(options: QuantizationOptions, known: Sequence[str], where: str) -> None:
    """Refuses ``denylisted_nodes`` / ``int16_nodes`` / ``int4_weight_nodes`` naming tensors that are no op output of
    the model.

    Args:
      known: the op output tensor names of the model being quantized (what ``diagnostics.layer_errors`` reports).
      where: names the model in the error (signature, SavedModel).

    Raises:
      ValueError: listing each unknown name with its closest known names, and the known names.
    """
    known_set = set(known)
    for parameter, names in (("denylisted_nodes", options.denylisted_nodes), ("int16_nodes", options.int16_nodes),
                             ("int4_weight_nodes", options.int4_weight_nodes)):
        unknown = [n for n in names if n not in known_set]
        if not unknown:
            continue
        hints = "; ".join(
            f"{n!r}" + (f" (did you mean {', '.join(repr(c) for c in close)}?)"
                        if (close := difflib.get_close_matches(n, known, n=3, cutoff=0.5)) else "")
            for n in unknown)
        listed = ", ".join(repr(k) for k in list(known)[:MAX_LISTED_NODES])
        more = f" and {len(known) - MAX_LISTED_NODES} more" if len(known) > MAX_LISTED_NODES else ""
        raise ValueError(
            f"Quantizer: {parameter} names tensor(s) that no op of {where} outputs: {hints}. Its op output tensors "
            f"are: {listed}{more} (quantization_report.json's layer_errors lists them with their errors)."
        )


def _check_qat_request(mode: str, denylisted_ops: tuple[str, ...]) -> None:
    if mode == QAT_MODE and denylisted_ops:
        raise ValueError("Quantizer: denylisted_ops do not apply to mode 'qat' (the model's fake-quant ops decide "
                         "what is quantized); annotate those layers out in the Trainer (components/shared/qat.py) "
                         "or use mode 'int8' on a float model.")


def qat_options(options: QuantizationOptions, fake_quant_ops: dict[str, int], model_label: str,
                signature: str) -> QuantizationOptions:
    """The conversion a model's fake-quant ops call for: ``int8`` on a quantization-aware model becomes ``qat``.

    Raises:
      ValueError naming the model and signature: a post-training mode (``dynamic_range``, ``float16``,
        ``int16x8``) on a quantization-aware model, or mode ``qat`` on a model without fake-quant ops.
    """
    if fake_quant_ops and options.mode in POST_TRAINING_ONLY_MODES:
        raise ValueError(
            f"Quantizer: {model_label}, signature {signature!r}, is quantization-aware (fake-quant ops "
            f"{fake_quant_ops}); post-training mode {options.mode!r} would ignore its learned int8 ranges. Use mode "
            "'qat' (or 'int8', which converts such a model the same way), or quantize the float model instead."
        )
    if not fake_quant_ops and options.mode == QAT_MODE:
        raise ValueError(
            f"Quantizer: mode 'qat' needs a quantization-aware model, but signature {signature!r} of {model_label} "
            "runs no fake-quant op. Train it with components/shared/qat.py (tfmot's quantize_model), or use "
            "mode 'int8' with a representative_dataset."
        )
    if fake_quant_ops and options.mode == "int8":
        _check_qat_request(QAT_MODE, options.denylisted_ops)
        return dataclasses.replace(options, mode=QAT_MODE)
    return options
