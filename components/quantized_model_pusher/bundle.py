"""The deployable bundle beside ``model.tflite``: ``labels.txt`` for a classifier, and the I/O description.

An app should be able to feed the model and read its answer without reading quantgate's code: which feature each
input is read from (a tf.Example feature, or a transform graph output), how to quantize it (scale, zero point),
and what each class index means. Pure functions over what the executor read; no I/O.
"""

from __future__ import annotations

import logging
from typing import Any

from tensorflow_metadata.proto.v0 import schema_pb2

from quantgate.components.shared import properties, task_metrics

CLASSIFICATION = task_metrics.CLASSIFICATION  # the QuantizationEvaluator's metrics.json "task" of a classifier
QUANTIZE_RULE = "q = clip(round(x / scale) + zero_point) to the dtype's range"
DEQUANTIZE_RULE = "x = scale * (q - zero_point)"

log = logging.getLogger(__name__)


def _vocabulary_names(data: bytes) -> list[str]:
    return [line.decode("utf-8", errors="replace") for line in data.splitlines()]


def _schema_feature(schema: schema_pb2.Schema, name: str) -> schema_pb2.Feature | None:
    return next((f for f in schema.feature if f.name == name), None)


def _schema_names(schema: schema_pb2.Schema, label_key: str, num_classes: int) -> tuple[list[str], str] | None:
    feature = _schema_feature(schema, label_key)
    if feature is None:
        return None
    domain = feature.string_domain if feature.HasField("string_domain") else next(
        (d for d in schema.string_domain if feature.HasField("domain") and d.name == feature.domain), None)
    if domain is not None and len(domain.value) == num_classes:
        return list(domain.value), f"schema string_domain of {label_key!r}"
    if (feature.HasField("int_domain") and feature.int_domain.HasField("min") and feature.int_domain.min == 0
            and feature.int_domain.max == num_classes - 1):
        return [str(i) for i in range(num_classes)], f"schema int_domain of {label_key!r}"
    return None


def class_labels(num_classes: int, label_key: str | None, vocabularies: dict[str, bytes],
                 schema: schema_pb2.Schema | None) -> tuple[list[str], str, list[str]]:
    """Class index -> name for ``num_classes`` classes, where the names came from, and why a source was passed over.

    In order: the transform's vocabulary named after the label (``vocab_filename=label_key``; line i is id i), the
    schema's string domain (its order) or an int domain ``[0, n-1]`` of the label feature, else the indices. A
    source whose length differs from the model's output width is passed over (it is not this model's classes).
    """
    skipped = []
    if label_key is not None:
        vocabulary = next((data for name, data in sorted(vocabularies.items())
                           if name == label_key or name.split(".")[0] == label_key), None)
        if vocabulary is not None:
            names = _vocabulary_names(vocabulary)
            if len(names) == num_classes:
                return names, f"transform vocabulary {label_key!r}", skipped
            skipped.append(f"transform vocabulary {label_key!r} has {len(names)} terms for {num_classes} outputs")
        if schema is not None:
            found = _schema_names(schema, label_key, num_classes)
            if found is not None:
                return found[0], found[1], skipped
            skipped.append(f"the schema has no string domain of {num_classes} values nor int domain [0, "
                           f"{num_classes - 1}] for {label_key!r}")
    return [str(i) for i in range(num_classes)], "indices (no label vocabulary or schema domain)", skipped


def labels_text(names: list[str]) -> bytes:
    """``labels.txt``: line i is class i's name (the format TFLite's and Coral's label files use)."""
    return "".join(f"{name}\n" for name in names).encode("utf-8")


def num_classes(io: dict[str, list[dict[str, Any]]]) -> int | None:
    """The classifier's class count: the last dimension of its single output (``None`` when not one output)."""
    outputs = io["outputs"]
    if len(outputs) != 1 or not outputs[0]["shape"] or outputs[0]["shape"][-1] is None:
        return None
    return int(outputs[0]["shape"][-1])


def describe_io(io: dict[str, list[dict[str, Any]]], *, label_key: str | None, transformed: bool,
                labels_file: str | None) -> dict[str, list[dict[str, Any]]]:
    """``io`` with, for each input, the feature it is read from and how to quantize it, and for each output what it
    predicts and how to dequantize it. The Quantizer keeps the signature's input names, which are feature names."""
    source = "transform graph output (apply transform_graph to raw examples)" if transformed else "tf.Example feature"
    inputs = [{**entry, "feature": entry["name"], "feature_source": source,
               "quantize": QUANTIZE_RULE if entry["scale"] is not None else None} for entry in io["inputs"]]
    outputs = [{**entry, "feature": label_key, "labels_file": labels_file,
                "dequantize": DEQUANTIZE_RULE if entry["scale"] is not None else None} for entry in io["outputs"]]
    return {"inputs": inputs, "outputs": outputs}


def labels_entry(names: list[str], source: str, skipped: list[str]) -> dict[str, Any]:
    """The manifest's ``labels``: the file, how many classes, and where the names came from."""
    return {"file": properties.LABELS_FILENAME, "num_classes": len(names), "source": source, "passed_over": skipped}


def metric_task(metric: Any) -> str | None:
    """The task of a blessing's gated ``metric`` (``accuracy``/``auc``: classification, ``mse``/``mae``:
    regression); ``None`` for no metric or one quantgate does not gate (a stock Evaluator's blessing).

    The QuantizationEvaluator writes the metric on every blessing, so a pipeline wiring only model and blessing
    still says whether the model is a classifier; the output width then gives the class count.
    """
    info = task_metrics.METRICS.get(metric) if isinstance(metric, str) else None
    return info.task if info is not None else None


def labels_file(model_io: dict[str, Any], task: str | None, label_key: str | None, vocabularies: dict[str, bytes],
                schema: schema_pb2.Schema | None) -> tuple[bytes, dict[str, Any]] | None:
    """``labels.txt`` and the manifest's ``labels`` for a classifier (``task``: the evaluation's, else the blessing's
    metric's; without either, a known label) with a multi-class output; ``None`` for any other model.

    A single-output model gets none even as a classifier: one sigmoid column is not one name per output index.
    """
    classes = num_classes(model_io)
    classifier = task == CLASSIFICATION if task is not None else label_key is not None
    if not classifier or classes is None or classes < 2:
        return None
    names, source, skipped = class_labels(classes, label_key, vocabularies, schema)
    for why in skipped:
        log.warning("labels.txt: %s, passed over", why)
    log.info("labels.txt: %d classes, names from %s", classes, source)
    return labels_text(names), labels_entry(names, source, skipped)
