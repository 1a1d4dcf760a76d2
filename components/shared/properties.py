"""Every name one quantgate component (or the lineage CLI) writes and another reads, defined once.

Custom-property names of the output artifacts, the files inside them, and the channel keys the lineage walk
follows. Plain strings only, importable without TensorFlow or TFX: the lineage CLI stays a one-second command.
The few names TFX itself defines (``blessed``, ``current_model_id``, ``pushed`` ...) are repeated here for that
reason; ``tests/components/shared/test_properties.py`` checks they still equal TFX's.
"""

from __future__ import annotations

# --- quantgate's artifact type names (``components/types.py``), and the ones stores written before the
# ``quantgate`` import name hold: the lineage CLI reads both as today's names.
REPRESENTATIVE_DATASET_TYPE = "quantgate.RepresentativeDataset"
QUANTIZATION_EVALUATION_TYPE = "quantgate.QuantizationEvaluation"
LEGACY_TYPE_NAMES = {
    "components.RepresentativeDataset": REPRESENTATIVE_DATASET_TYPE,
    "components.QuantizationEvaluation": QUANTIZATION_EVALUATION_TYPE,
}

# --- properties several artifacts carry --------------------------------------------------------------------------
SHA256 = "sha256"  # of the artifact's main file: the sample's TFRecord, the model.tflite, the pushed model
REASON = "reason"  # why the verdict (blessing, evaluation) or the push (pushed model) went as it did
REPORT_PATH = "report_path"  # the human-readable report (the UIs show properties, not HTML)
NUM_EXAMPLES = "num_examples"
LABEL_KEY = "label_key"

# --- RepresentativeDatasetGen: quantgate.RepresentativeDataset ------------------------------------------------
REPRESENTATIVE_DATA_FILENAME = "data.tfrecord.gz"
REPRESENTATIVE_MANIFEST_FILENAME = "manifest.json"
STRATEGY = "strategy"
SEED = "seed"
SPLIT = "split"
NUM_EXAMPLES_REQUESTED = "num_examples_requested"
SOURCE_NUM_EXAMPLES = "source_num_examples"
SOURCE_EXAMPLES_ID = "source_examples_id"
# The calibration sample and the search sample (num_search_examples > 0) name each other, in the manifest and as a
# property: an artifact's MLMD id does not exist yet while its executor runs, so they record the uri.
SEARCH_DATASET_URI = "search_dataset_uri"
CALIBRATION_DATASET_URI = "calibration_dataset_uri"

# --- Quantizer: the quantized Model ------------------------------------------------------------------------------
SERVING_DIR = "Format-Serving"  # tfx.utils.path_utils' serving model folder, which the stock Pusher copies
TFLITE_FILENAME = "model.tflite"
TFMA_TFLITE_FILENAME = "tflite"  # TFMA's Evaluator with model_type='tf_lite' reads exactly <serving dir>/tflite
QUANTIZATION_REPORT_FILENAME = "quantization_report.json"
QUANTIZATION_REPORT_HTML_FILENAME = "quantization_report.html"  # beside the json: the worst layers, table and plot
QUANTIZATION_MODE = "quantization_mode"
ENGINE = "engine"
SIGNATURE_NAME = "signature_name"
# Where the converted function came from: 'named' (signature_name given), 'dense' (the one dense signature) or
# 'derived' (the Keras call of a stock export, signature_name '__call__').
SIGNATURE_SOURCE = "signature_source"
IO_DTYPE = "io_dtype"
SIZE_BYTES = "size_bytes"
FLOAT_SIZE_BYTES = "float_size_bytes"
FLOAT_OP_COUNT = "float_op_count"
# The same signature converted to float32 TFLite (no optimizations): weights only, the honest size to compare with
# (FLOAT_SIZE_BYTES is the SavedModel's variables, optimizer state included).
FLOAT_TFLITE_SIZE_BYTES = "float_tflite_size_bytes"
# That float32 TFLite model itself, at the artifact's root (not in SERVING_DIR: it is not what is served): the
# QuantizationEvaluator times it beside the quantized model, the like-for-like latency (same interpreter, same threads).
FLOAT_TFLITE_FILENAME = "float32_reference.tflite"
NOT_SMALLER_THAN_FLOAT = "not_smaller_than_float"  # 1 when the quantized model is not smaller than the float TFLite
INTEGER_ONLY_READY = "integer_only_ready"  # 1 when the static Edge TPU / integer-only check passes, else 0
COARSE_INPUT_COUNT = "coarse_input_count"
# With accuracy_search: how many candidates the search converted, the chosen one's options (a JSON object) and its
# delta on the search dataset (float_op_count above is the chosen model's).
CANDIDATES_TRIED = "candidates_tried"
CHOSEN_CONFIG = "chosen_config"
SEARCH_DELTA = "search_delta"
# With accuracy_search, a JSON object: the search sample (``dataset_uri``, ``split``), the search's ``metric``,
# ``delta_type`` and ``max_delta``, and the float model's ``float_metric_value`` on that sample. The
# QuantizationEvaluator reads it to keep the search's examples out of its gate and to compare the float metrics.
SEARCH_SUMMARY = "search_summary"
# 1 when the model was trained quantization-aware (fake-quant ops; quantization_mode is then "qat"), else 0.
QAT = "qat"
QAT_MODE = "qat"  # the quantization_mode of a model converted with its learned (QAT) ranges
# The Transform graph the model's inputs were calibrated through (absent when the signature reads raw features).
TRANSFORM_GRAPH_ID = "transform_graph_id"
TRANSFORM_GRAPH_URI = "transform_graph_uri"

# --- QuantizationEvaluator: the ModelBlessing and quantgate.QuantizationEvaluation -----------------------------
METRICS_FILENAME = "metrics.json"
EVALUATION_REPORT_FILENAME = "report.html"
BLESSED = "blessed"  # = tfx.components.evaluator.constants.ARTIFACT_PROPERTY_BLESSED_KEY
CURRENT_MODEL_ID = "current_model_id"  # = ...ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY
CURRENT_MODEL_URI = "current_model"  # = ...ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY
METRIC = "metric"
DELTA = "delta"
DELTA_TYPE = "delta_type"
THRESHOLD = "threshold"
AGREEMENT = "agreement"
QUANTIZED_SIZE_BYTES = "quantized_size_bytes"
FLOAT_LATENCY_P95_MS = "float_latency_p95_ms"
QUANTIZED_LATENCY_P95_MS = "quantized_latency_p95_ms"
# With a transform graph: how often the float model's serving signature agrees with it fed transformed features.
SERVING_SIGNATURE_AGREEMENT = "serving_signature_agreement"
# With a search_dataset of the evaluated split: how many of its examples the gate left out (the search's sample).
SEARCH_EXCLUDED_EXAMPLES = "search_excluded_examples"
METRICS_PATH = "metrics_path"
# On the blessing: the sha256 of the model.tflite bytes the verdict was computed on; the pusher pushes only those.
EVALUATED_SHA256 = "evaluated_sha256"
# With several quantized candidates: the blessing's CURRENT_MODEL_ID / CURRENT_MODEL_URI / EVALUATED_SHA256 name the
# one candidate ``selection`` chose (the pusher ships exactly that one, from a model channel holding several);
# SELECTION is the rule ('smallest' | 'fastest'), CANDIDATE_IDS the ids of every candidate scored (a JSON list).
SELECTION = "selection"
CANDIDATE_IDS = "candidate_ids"
# The degradation's one-sided upper confidence bound (at CONFIDENCE), and which of point / upper the gate compared.
DELTA_UPPER = "delta_upper"
DELTA_BOUND = "delta_bound"
CONFIDENCE = "confidence"


def float_metric(metric: str) -> str:
    """The evaluation's property holding the float model's value of ``metric`` (e.g. ``float_accuracy``)."""
    return f"float_{metric}"


def quantized_metric(metric: str) -> str:
    """The evaluation's property holding the quantized model's value of ``metric``."""
    return f"quantized_{metric}"


# --- QuantizedModelPusher: the PushedModel and the pushed version ------------------------------------------------
PUSH_MANIFEST_FILENAME = "manifest.json"
PUSHED = "pushed"  # = the stock Pusher's _PUSHED_KEY (1 pushed, 0 not)
PUSHED_DESTINATION = "pushed_destination"
PUSHED_VERSION = "pushed_version"
LABELS_FILENAME = "labels.txt"  # beside model.tflite for a classifier: line i is class i's name
VOCABULARY_DIRNAME = "vocabularies"  # beside model.tflite: the transform's vocabulary files, for on-device lookups

# --- channel keys the lineage walk follows (input keys of the pusher and the Quantizer) --------------------------
MODEL_KEY = "model"  # = tfx.types.standard_component_specs.MODEL_KEY
MODEL_BLESSING_KEY = "model_blessing"  # = ...MODEL_BLESSING_KEY
PUSHED_MODEL_KEY = "pushed_model"  # = ...PUSHED_MODEL_KEY
EXAMPLES_KEY = "examples"  # = ...EXAMPLES_KEY
# Several quantized candidates reach the pusher as model, model_1 ... model_{MAX_CANDIDATES - 1} (Kubeflow v2
# compiles one channel per input key, no union), as many as the QuantizationEvaluator scores.
MAX_CANDIDATES = 6


def candidate_model_key(index: int) -> str:
    """The pusher's input key of the ``index``-th candidate (0: ``model``)."""
    return MODEL_KEY if index == 0 else f"{MODEL_KEY}_{index}"


FLOAT_BLESSING_KEY = "float_blessing"
FLOAT_MODEL_KEY = "float_model"
REPRESENTATIVE_DATASET_KEY = "representative_dataset"
# RepresentativeDatasetGen's second sample (num_search_examples > 0), disjoint from the calibration one; the
# Quantizer's accuracy search reads it under the same input key.
SEARCH_DATASET_KEY = "search_dataset"
EVALUATION_KEY = "evaluation"
TRANSFORM_GRAPH_KEY = "transform_graph"  # = ...TRANSFORM_GRAPH_KEY

# --- on executions -----------------------------------------------------------------------------------------------
# A FAILED execution's error, one line, recorded by the local runner (TFX records none for an executor's exception)
# so that `lineage --why-not` can say why it failed.
FAILURE_REASON = "failure_reason"
