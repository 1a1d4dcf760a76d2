"""Quantizer's executor: resolve the signature, read the calibration set, convert in a child process, publish.

``quantize_artifacts`` is the whole run on artifacts and one ``config.QuantizerConfig``; ``Executor.Do`` only unpacks
TFX's dicts. ``quantize`` / ``quantize_with_search`` are the same work on uris and resolved options.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import numpy as np
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import Artifact, artifact_utils
from tfx.utils import path_utils

from quantgate.components.quantizer import diagnostics, html_report, readiness, report
from quantgate.components.quantizer.config import QuantizerConfig
from quantgate.components.quantizer.engines import convert_with_float_reference
from quantgate.components.quantizer.float_reference import write_float_tflite
from quantgate.components.quantizer.isolation import run_isolated
from quantgate.components.quantizer.options import QuantizationOptions, qat_options
from quantgate.components.quantizer.search import (
    Search,
    SearchData,
    check_search_request,
    parse_search_config,
)
from quantgate.components.quantizer.search import single_output as search_output

# The execution-property keys stay importable from here (F401: re-exported; QuantizerConfig reads them).
from quantgate.components.quantizer.spec import (
    ACCURACY_SEARCH_KEY,  # noqa: F401
    ALLOW_FLOAT_FALLBACK_KEY,  # noqa: F401
    ALLOW_SELECT_OPS_KEY,  # noqa: F401
    DENYLISTED_NODES_KEY,  # noqa: F401
    DENYLISTED_OPS_KEY,  # noqa: F401
    ENGINE_KEY,  # noqa: F401
    INT4_BLOCK_SIZE_KEY,  # noqa: F401
    INT4_WEIGHT_NODES_KEY,  # noqa: F401
    INT16_NODES_KEY,  # noqa: F401
    IO_DTYPE_KEY,  # noqa: F401
    MODE_KEY,  # noqa: F401
    MODEL_KEY,
    QUANTIZED_MODEL_KEY,
    REPRESENTATIVE_DATASET_KEY,
    SEARCH_DATASET_KEY,
    SIGNATURE_NAME_KEY,  # noqa: F401
    TRANSFORM_GRAPH_KEY,
)
from quantgate.components.representative_dataset_gen.storage import read_examples, read_manifest
from quantgate.components.shared import properties
from quantgate.components.shared.artifact_inputs import optional_single
from quantgate.components.shared.fake_quant import fake_quant_ops
from quantgate.components.shared.finite_properties import set_finite_float_property
from quantgate.components.shared.model_runners import SavedModelRunner
from quantgate.components.shared.signature_inputs import (
    InputSpec,
    dense_signature_specs,
    examples_to_inputs,
    nonfinite_counts,
    signature_source,
)
from quantgate.components.shared.staged_output import staged_output
from quantgate.components.shared.strict_json import dumps, json_safe
from quantgate.components.shared.task_metrics import PROBABILITIES
from quantgate.components.shared.transform_inputs import TransformedInputs

READINESS_LOG_CHARS = 160  # per reason, on the console; quantization_report.json has every op and tensor


def artifact_label(key: str, uri: str, artifact_id: int | None) -> str:
    """How errors name an input artifact: its channel key, uri and (once registered in MLMD) id."""
    return f"{key} {uri}" + (f" (artifact id {artifact_id})" if artifact_id else "")


def transformed_inputs(transform_graph_uri: str, specs: list[InputSpec], *, transform_graph_id: int | None,
                       signature: str, model_label: str, source: str) -> TransformedInputs:
    """The transform graph's path to the signature's inputs; a refusal names both artifacts and the signature."""
    try:
        return TransformedInputs(transform_graph_uri, specs, source=source)
    except ValueError as e:
        raise ValueError(
            f"Quantizer: signature {signature!r} of {model_label} cannot be fed through "
            f"{artifact_label(TRANSFORM_GRAPH_KEY, transform_graph_uri, transform_graph_id)}: {e}"
        ) from e


def load_calibration_inputs(representative_dataset_uri: str, specs: list[InputSpec], *,
                            artifact_id: int | None = None,
                            transform: TransformedInputs | None = None) -> dict[str, np.ndarray]:
    """The representative examples as signature inputs (through ``transform`` when given: raw examples in,
    transformed features out).

    Raises:
      ValueError naming the artifact: the dataset is empty, lacks a (raw) feature, or a (transformed) feature holds
        NaN or infinite values (the converter derives each input's scale from its calibration range: NaN is
        accepted silently and inf ends in ``illegal scale: INF`` or a crash of the converter, neither naming the
        feature).
    """
    source = artifact_label(REPRESENTATIVE_DATASET_KEY, representative_dataset_uri, artifact_id)
    serialized = read_examples(representative_dataset_uri)
    if not serialized:
        raise ValueError(f"{source} holds no examples; calibration needs at least one (check RepresentativeDatasetGen).")
    logging.info("calibration set: %d examples from %s%s", len(serialized), representative_dataset_uri,
                 f", transformed by {transform.uri}" if transform else "")
    inputs = transform(serialized) if transform else examples_to_inputs(serialized, specs, source=source)
    nonfinite = nonfinite_counts(inputs)
    if nonfinite:
        counts = ", ".join(f"{name!r} in {count} of {len(serialized)} examples" for name, count in sorted(nonfinite.items()))
        raise ValueError(
            f"{source}: calibration values must be finite, but features hold NaN or infinite values: {counts}. "
            "Impute or drop non-finite values upstream (ExampleGen/Transform) and re-run RepresentativeDatasetGen."
        )
    return inputs


def describe_conversion(options: QuantizationOptions, signature: str, saved_model_dir: str, model_label: str,
                        dataset_label: str | None) -> str:
    """Names the conversion in the error of a crashed child: mode, engine, signature, SavedModel, input artifacts."""
    what = f"{options.mode} conversion ({options.engine}) of signature {signature!r} of {model_label}, SavedModel " \
           f"{saved_model_dir}"
    return what + (f", calibrated on {dataset_label}" if dataset_label else "")


def uses_calibration(options: QuantizationOptions, representative_dataset_uri: str | None) -> bool:
    """Whether the conversion is fed the representative examples: always in the calibrated modes, and in ``qat``
    when a dataset is wired (it then ranges only what training left without one: the I/O, layers left float)."""
    return options.calibrated or (options.mode == properties.QAT_MODE and bool(representative_dataset_uri))


def qat_report(fake_quant: dict[str, int]) -> dict[str, Any]:
    """The report's QAT entries: ``qat`` (the model was trained quantization-aware) and its ``fake_quant_ops``."""
    return {"qat": bool(fake_quant), "fake_quant_ops": fake_quant}


def quantize(model_uri: str, representative_dataset_uri: str | None, output_uri: str,
             options: QuantizationOptions, signature_name: str | None, *, model_id: int | None = None,
             representative_dataset_id: int | None = None, transform_graph_uri: str | None = None,
             transform_graph_id: int | None = None) -> dict[str, Any]:
    """Quantizes the Model artifact at ``model_uri`` into ``output_uri`` and returns the report.

    With ``transform_graph_uri`` the calibration examples are raw: they go through the transform graph (here, in
    this process: the conversion child imports no TFT) into the signature's transformed inputs.
    Everything is computed before the first write to ``output_uri``; files are written to a staging folder and
    moved into place last, so a failure leaves no artifact content behind. The ids, when given, are named in errors.
    """
    saved_model_dir = path_utils.serving_model_path(model_uri)
    signature, specs = dense_signature_specs(saved_model_dir, signature_name)
    fake_quant = fake_quant_ops(saved_model_dir, signature)
    options = qat_options(options, fake_quant, artifact_label(MODEL_KEY, model_uri, model_id), signature)
    dataset_label = (artifact_label(REPRESENTATIVE_DATASET_KEY, representative_dataset_uri, representative_dataset_id)
                     if representative_dataset_uri else None)
    # Built even for modes without calibration: a signature the transform does not produce is refused either way.
    transform = transformed_inputs(
        transform_graph_uri, specs, transform_graph_id=transform_graph_id, signature=signature,
        model_label=artifact_label(MODEL_KEY, model_uri, model_id),
        source=dataset_label or "the representative dataset") if transform_graph_uri else None
    inputs = None
    calibrating = uses_calibration(options, representative_dataset_uri)
    if calibrating:
        if not representative_dataset_uri:
            raise ValueError(f"Quantizer: mode {options.mode!r} needs a representative_dataset input.")
        inputs = load_calibration_inputs(representative_dataset_uri, specs, artifact_id=representative_dataset_id,
                                         transform=transform)
    with tempfile.TemporaryDirectory(prefix="quantgate-quantizer-") as tmp:
        local_model = os.path.join(tmp, properties.TFLITE_FILENAME)
        local_float_model = os.path.join(tmp, "float32.tflite")
        timings = run_isolated(
            convert_with_float_reference,
            {"saved_model_dir": saved_model_dir, "signature_name": signature, "options": options,
             "inputs": inputs, "output_path": local_model, "float_output_path": local_float_model},
            what=describe_conversion(options, signature, saved_model_dir,
                                     artifact_label(MODEL_KEY, model_uri, model_id), dataset_label if calibrating else None),
        )
        with open(local_model, "rb") as f:
            content = f.read()
        with open(local_float_model, "rb") as f:
            float_content = f.read()
    quantization_report = report.build_report(
        content, options=options, signature_name=signature, saved_model_dir=saved_model_dir, inputs=inputs,
        representative_dataset_uri=representative_dataset_uri, conversion_seconds=timings["conversion_seconds"],
        signature_source=signature_source(signature_name, signature))
    add_size_and_readiness(quantization_report, content, len(float_content), timings["float_tflite_seconds"])
    quantization_report.update(qat_report(fake_quant))
    # DenseBincount nodes (one-hot layers) the conversion rewrote to ONE_HOT, with the rows they were checked on.
    quantization_report["builtin_rewrites"] = timings.get("builtin_rewrites", [])
    quantization_report["transform_graph"] = (
        {"uri": transform_graph_uri, "id": transform_graph_id} if transform_graph_uri else None)
    layer_errors = timings["layer_errors"]
    diagnostics.add_to_report(quantization_report, layer_errors, timings["diagnostics_failure"])
    if layer_errors:
        logging.info("Quantizer: %d layers compared, worst by rmse/scale: %s", len(layer_errors),
                     diagnostics.worst_summary(layer_errors))
    for warning in quantization_report["warnings"]:
        logging.warning("Quantizer: %s", warning)
    _publish(output_uri, content, quantization_report, float_content)
    sizes = quantization_report["sizes"]
    logging.info("Quantizer: %s model %d bytes (float32 TFLite %d bytes, %.2fx; float variables %d bytes), ops by "
                 "dtype %s, in %.1fs (+%.1fs for the float32 TFLite)", options.mode, sizes["tflite_bytes"],
                 sizes["float_tflite_bytes"], sizes["ratio_to_float_tflite"], sizes["float_variables_bytes"],
                 quantization_report["ops"]["by_dtype"], timings["conversion_seconds"], timings["float_tflite_seconds"])
    return quantization_report


def load_search_data(search_dataset_uri: str, specs: list[InputSpec], label_key: str, saved_model_dir: str,
                     signature: str, *, artifact_id: int | None = None,
                     transform: TransformedInputs | None = None) -> SearchData:
    """The search examples as signature inputs (the calibration's path), their labels (raw ``label_key``) and the
    float model's predictions on them.

    Raises:
      ValueError naming the artifact: no examples, a missing or non-numeric label or feature, non-finite inputs.
    """
    source = artifact_label(SEARCH_DATASET_KEY, search_dataset_uri, artifact_id)
    serialized = read_examples(search_dataset_uri)
    if not serialized:
        raise ValueError(f"{source} holds no examples; accuracy_search scores candidates on it (set "
                         "RepresentativeDatasetGen's num_search_examples > 0).")
    inputs = transform(serialized) if transform else examples_to_inputs(serialized, specs, source=source)
    nonfinite = nonfinite_counts(inputs)
    if nonfinite:
        raise ValueError(f"{source}: search inputs must be finite, but features hold NaN or infinite values: "
                         f"{sorted(nonfinite.items())}. Impute or drop them upstream.")
    label_spec = InputSpec(name=label_key, dtype=np.dtype(np.float64), shape=(None, 1))
    labels = examples_to_inputs(serialized, [label_spec], source=f"{source} (accuracy_search label_key)")[label_key]
    float_predictions = search_output(SavedModelRunner(saved_model_dir, signature).predict(inputs),
                                      f"float model's {signature!r} signature")
    logging.info("search set: %d examples from %s", len(serialized), search_dataset_uri)
    return SearchData(inputs=inputs, labels=labels[:, 0], float_predictions=float_predictions, uri=search_dataset_uri)


def quantize_with_search(model_uri: str, representative_dataset_uri: str, search_dataset_uri: str, output_uri: str,
                         options: QuantizationOptions, signature_name: str | None, search_json: str, *,
                         model_id: int | None = None, representative_dataset_id: int | None = None,
                         search_dataset_id: int | None = None, transform_graph_uri: str | None = None,
                         transform_graph_id: int | None = None) -> dict[str, Any]:
    """``quantize`` with the accuracy-aware search (``search.Search``): publishes the chosen candidate, with the
    report's ``search`` section; raises ``search.SearchFailed`` (nothing written) when no candidate passes."""
    config = parse_search_config(search_json)
    model_label = artifact_label(MODEL_KEY, model_uri, model_id)
    saved_model_dir = path_utils.serving_model_path(model_uri)
    signature, specs = dense_signature_specs(saved_model_dir, signature_name)
    fake_quant = fake_quant_ops(saved_model_dir, signature)
    if fake_quant:
        raise ValueError(
            f"Quantizer: {model_label}, signature {signature!r}, is quantization-aware (fake-quant ops {fake_quant}); "
            "accuracy_search tries post-training variants, which would ignore its learned ranges. Drop "
            "accuracy_search (mode 'int8' / 'qat' converts it with those ranges), or search on the float model."
        )
    dataset_label = artifact_label(REPRESENTATIVE_DATASET_KEY, representative_dataset_uri, representative_dataset_id)
    transform = transformed_inputs(transform_graph_uri, specs, transform_graph_id=transform_graph_id,
                                   signature=signature, model_label=model_label,
                                   source=dataset_label) if transform_graph_uri else None
    inputs = load_calibration_inputs(representative_dataset_uri, specs, artifact_id=representative_dataset_id,
                                     transform=transform)
    data = load_search_data(search_dataset_uri, specs, config.label_key, saved_model_dir, signature,
                            artifact_id=search_dataset_id, transform=transform)
    outcome = Search(saved_model_dir=saved_model_dir, signature_name=signature, calibration_inputs=inputs, data=data,
                     config=config, what=f"signature {signature!r} of {model_label}").run(options)
    chosen = outcome.chosen
    with tempfile.TemporaryDirectory(prefix="quantgate-quantizer-") as tmp:
        local_float_model = os.path.join(tmp, "float32.tflite")
        float_tflite_seconds = run_isolated(
            write_float_tflite, {"saved_model_dir": saved_model_dir, "signature_name": signature,
                                 "output_path": local_float_model},
            what=f"float32 TFLite conversion (the size reference) of signature {signature!r} of {model_label}")
        with open(local_float_model, "rb") as f:
            float_content = f.read()
    quantization_report = report.build_report(
        chosen.content, options=chosen.options, signature_name=signature, saved_model_dir=saved_model_dir,
        inputs=inputs, representative_dataset_uri=representative_dataset_uri,
        conversion_seconds=chosen.conversion_seconds, signature_source=signature_source(signature_name, signature))
    add_size_and_readiness(quantization_report, chosen.content, len(float_content), float_tflite_seconds)
    quantization_report["transform_graph"] = (
        {"uri": transform_graph_uri, "id": transform_graph_id} if transform_graph_uri else None)
    # Only the first candidate's layer errors were computed: they describe the chosen model when it is that one.
    diagnostics.add_to_report(quantization_report, chosen.layer_errors if chosen.number == 1 else None)
    quantization_report["search"] = outcome.section
    # Which split the candidates were judged on: the QuantizationEvaluator leaves these examples out of its gate
    # when it scores the same split.
    search_split = read_manifest(search_dataset_uri).get(properties.SPLIT)
    quantization_report["search"]["search_dataset"][properties.SPLIT] = search_split
    for warning in quantization_report["warnings"]:
        logging.warning("Quantizer: %s", warning)
    _publish(output_uri, chosen.content, quantization_report, float_content)
    return quantization_report


def set_search_properties(artifact: Artifact, quantization_report: dict[str, Any]) -> None:
    """The search's outcome as MLMD custom properties (``float_op_count`` is set with the others)."""
    search = quantization_report["search"]
    chosen = next(c for c in search["candidates"] if c["trial"] == search["chosen_trial"])
    artifact.set_int_custom_property(properties.CANDIDATES_TRIED, len(search["candidates"]))
    artifact.set_string_custom_property(properties.CHOSEN_CONFIG, dumps(chosen["config"], sort_keys=True))
    set_finite_float_property(artifact, properties.SEARCH_DELTA, chosen["delta"])
    artifact.set_string_custom_property(properties.SEARCH_SUMMARY, dumps(search_summary(search), sort_keys=True))


def search_summary(search: dict[str, Any]) -> dict[str, Any]:
    """What the QuantizationEvaluator needs of the search (``properties.SEARCH_SUMMARY``): the sample it judged on
    (uri, split) and the float model's metric there, with the search's own threshold."""
    config = search["config"]
    dataset = search["search_dataset"]
    return json_safe({"dataset_uri": dataset["uri"], properties.SPLIT: dataset.get(properties.SPLIT),
                      properties.METRIC: config["metric"], properties.DELTA_TYPE: config["delta_type"],
                      "max_delta": config["max_delta"], "float_metric_value": search["float_metric_value"],
                      "output_kind": config.get("output_kind", PROBABILITIES)})


def add_size_and_readiness(quantization_report: dict[str, Any], content: bytes, float_tflite_bytes: int,
                           float_tflite_seconds: float) -> None:
    """The honest size comparison (``report.compare_with_float_tflite``) and ``edge_tpu_readiness``."""
    report.compare_with_float_tflite(quantization_report, float_tflite_bytes, float_tflite_seconds)
    ready = quantization_report["edge_tpu_readiness"] = readiness.edge_tpu_readiness(content)
    logging.info("Quantizer: Edge TPU / integer-only readiness (static check): %s",
                 "ready" if ready["ready"] else "not ready: " + "; ".join(
                     reason if len(reason) <= READINESS_LOG_CHARS else reason[:READINESS_LOG_CHARS] + " ..."
                     for reason in ready["reasons"]) + " (all in quantization_report.json)")


def _publish(output_uri: str, content: bytes, quantization_report: dict[str, Any], float_content: bytes) -> None:
    """The model (``SERVING_DIR``), the float32 TFLite reference of the same function (``FLOAT_TFLITE_FILENAME``,
    at the root: the QuantizationEvaluator times it beside the model) and the reports."""
    # The json report last: its presence marks a complete artifact.
    names = (properties.SERVING_DIR, properties.FLOAT_TFLITE_FILENAME, properties.QUANTIZATION_REPORT_HTML_FILENAME,
             properties.QUANTIZATION_REPORT_FILENAME)
    page = html_report.render_html(quantization_report)
    with staged_output(output_uri, names) as staging:
        fileio.makedirs(os.path.join(staging, properties.SERVING_DIR))
        for name in (properties.TFLITE_FILENAME, properties.TFMA_TFLITE_FILENAME):
            with fileio.open(os.path.join(staging, properties.SERVING_DIR, name), "wb") as f:
                f.write(content)
        with fileio.open(os.path.join(staging, properties.FLOAT_TFLITE_FILENAME), "wb") as f:
            f.write(float_content)
        with fileio.open(os.path.join(staging, properties.QUANTIZATION_REPORT_FILENAME), "w") as f:
            f.write(dumps(quantization_report, indent=2, sort_keys=True))
        with fileio.open(os.path.join(staging, properties.QUANTIZATION_REPORT_HTML_FILENAME), "w") as f:
            f.write(page)


def set_artifact_properties(artifact: Artifact, quantization_report: dict[str, Any], output_uri: str) -> None:
    """Writes the numbers people filter and gate on as MLMD custom properties."""
    strings = {
        properties.QUANTIZATION_MODE: quantization_report["mode"],
        properties.ENGINE: quantization_report["engine"],
        properties.SIGNATURE_NAME: quantization_report["signature_name"],
        properties.SIGNATURE_SOURCE: quantization_report.get("signature_source") or "",
        properties.IO_DTYPE: quantization_report["io_dtype"],
        properties.SHA256: quantization_report["sha256"],
        properties.REPORT_PATH: os.path.join(output_uri, properties.QUANTIZATION_REPORT_FILENAME),
    }
    ints = {
        properties.SIZE_BYTES: quantization_report["sizes"]["tflite_bytes"],
        properties.FLOAT_SIZE_BYTES: quantization_report["sizes"]["float_variables_bytes"],
        properties.FLOAT_OP_COUNT: quantization_report["ops"]["float_op_count"],
        properties.COARSE_INPUT_COUNT: sum(s["coarse"] for s in quantization_report["input_steps"].values()),
    }
    transform_graph = quantization_report.get("transform_graph")
    if transform_graph:  # what the QuantizationEvaluator checks its own transform_graph against
        strings[properties.TRANSFORM_GRAPH_URI] = transform_graph["uri"]
        if transform_graph["id"]:
            ints[properties.TRANSFORM_GRAPH_ID] = transform_graph["id"]
    ints[properties.QAT] = int(bool(quantization_report.get("qat")))
    for name, text in strings.items():
        artifact.set_string_custom_property(name, text)
    for name, number in ints.items():
        artifact.set_int_custom_property(name, number)


def set_size_and_readiness_properties(artifact: Artifact, quantization_report: dict[str, Any]) -> None:
    """The honest size (``float_tflite_size_bytes``, ``not_smaller_than_float``) and ``integer_only_ready``."""
    sizes = quantization_report["sizes"]
    artifact.set_int_custom_property(properties.FLOAT_TFLITE_SIZE_BYTES, sizes["float_tflite_bytes"])
    artifact.set_int_custom_property(properties.NOT_SMALLER_THAN_FLOAT, int(sizes["not_smaller_than_float"]))
    artifact.set_int_custom_property(properties.INTEGER_ONLY_READY,
                                     int(quantization_report["edge_tpu_readiness"]["ready"]))


def quantize_artifacts(model: Artifact, representative_dataset: Artifact | None, quantized_model: Artifact,
                       config: QuantizerConfig, *, transform_graph: Artifact | None = None,
                       search_dataset: Artifact | None = None) -> dict[str, Any]:
    """The whole run on artifacts: resolve ``config``'s options, quantize ``model`` into ``quantized_model`` (with
    the accuracy search when ``config.accuracy_search`` is set: ``quantize_with_search``, else ``quantize``) and
    set its MLMD custom properties. Returns the report.

    Raises:
      ValueError: an invalid option (``options.resolve_options``), or one of accuracy_search / search_dataset
        without the other (``search.check_search_request``); then nothing is written.
    """
    options = config.options(has_representative_dataset=representative_dataset is not None)
    search = config.search()
    check_search_request(search, search_dataset is not None, options)
    transform = {"transform_graph_uri": transform_graph.uri if transform_graph else None,
                 "transform_graph_id": transform_graph.id if transform_graph else None}
    if search is not None:
        quantization_report = quantize_with_search(
            model_uri=model.uri, representative_dataset_uri=representative_dataset.uri,
            search_dataset_uri=search_dataset.uri, output_uri=quantized_model.uri, options=options,
            signature_name=config.signature_name, search_json=config.accuracy_search, model_id=model.id,
            representative_dataset_id=representative_dataset.id, search_dataset_id=search_dataset.id, **transform)
    else:
        quantization_report = quantize(
            model_uri=model.uri,
            representative_dataset_uri=representative_dataset.uri if representative_dataset else None,
            output_uri=quantized_model.uri,
            options=options,
            signature_name=config.signature_name,
            model_id=model.id,
            representative_dataset_id=representative_dataset.id if representative_dataset else None,
            **transform,
        )
    set_artifact_properties(quantized_model, quantization_report, quantized_model.uri)
    set_size_and_readiness_properties(quantized_model, quantization_report)
    if search is not None:
        set_search_properties(quantized_model, quantization_report)
    return quantization_report


class Executor(base_executor.BaseExecutor):
    """Converts the Trainer's SavedModel signature to a quantized TFLite ``Model`` (see ``quantize_artifacts``)."""

    def Do(self, input_dict: dict[str, list[Artifact]], output_dict: dict[str, list[Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        config = QuantizerConfig.from_exec_properties(exec_properties)
        quantize_artifacts(
            model=artifact_utils.get_single_instance(input_dict[MODEL_KEY]),
            representative_dataset=optional_single(input_dict, REPRESENTATIVE_DATASET_KEY),
            quantized_model=artifact_utils.get_single_instance(output_dict[QUANTIZED_MODEL_KEY]),
            config=config,
            transform_graph=optional_single(input_dict, TRANSFORM_GRAPH_KEY),
            search_dataset=optional_single(input_dict, SEARCH_DATASET_KEY),
        )
