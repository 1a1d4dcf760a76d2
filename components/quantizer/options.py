"""The Quantizer's knobs, checked once (when the component is built and again in the executor) and shared by engines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MODES = ("int8", "dynamic_range", "float16", "int16x8")
# Modes whose activations are quantized need value ranges, i.e. a representative dataset.
CALIBRATED_MODES = ("int8", "int16x8")
# Allowed io_dtype per mode; the first is the default.
IO_DTYPES = {
    "int8": ("int8", "uint8", "float32"),
    "int16x8": ("int16", "float32"),
    "dynamic_range": ("float32",),
    "float16": ("float32",),
}
ENGINES = ("tflite_converter", "litert_quantizer")
# ai-edge-quantizer's recipes (static_wi8_ai8, static_wi8_ai16, dynamic_wi8_afp32) fix the model I/O dtype and
# have no denylist; float16 is a converter feature only.
LITERT_IO_DTYPES = {"int8": ("int8",), "int16x8": ("int16",), "dynamic_range": ("float32",)}


@dataclass(frozen=True)
class QuantizationOptions:
    """A validated quantization request (``io_dtype`` resolved to the mode's default when not given)."""

    mode: str
    io_dtype: str
    engine: str = "tflite_converter"
    denylisted_ops: tuple[str, ...] = ()
    allow_float_fallback: bool = False

    @property
    def calibrated(self) -> bool:
        """Whether the mode needs a representative dataset."""
        return self.mode in CALIBRATED_MODES


def resolve_options(
    mode: str,
    io_dtype: str | None = None,
    *,
    engine: str = "tflite_converter",
    denylisted_ops: Sequence[str] = (),
    allow_float_fallback: bool = False,
    has_representative_dataset: bool = True,
) -> QuantizationOptions:
    """Validates the Quantizer's parameters and returns them resolved.

    Raises:
      ValueError: unknown mode, engine or io_dtype for the mode; a calibrated mode without a representative
        dataset; denylisted ops for a mode that quantizes no activations. The message says which value to change.
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
    if ops and engine == "litert_quantizer":
        raise ValueError("Quantizer: denylisted_ops needs engine 'tflite_converter' (TFLite's quantizer denylist).")
    if ops and mode not in CALIBRATED_MODES:
        raise ValueError(
            f"Quantizer: denylisted_ops {list(ops)} apply to the calibrated modes {CALIBRATED_MODES}; mode {mode!r} "
            "quantizes no activations. Drop denylisted_ops or change the mode."
        )
    return QuantizationOptions(mode=mode, io_dtype=io_dtype, engine=engine, denylisted_ops=ops,
                               allow_float_fallback=bool(allow_float_fallback))
