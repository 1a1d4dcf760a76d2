"""On-demand benchmark (``make bench``): the Quantizer's accuracy-aware search against one plain conversion plus
one QuantizationEvaluator run, on the demo's penguin model, side by side in one run (goal: the search <= 5x).

It reads the demo run in ``out/demo`` (``quantgate run --pipeline penguin`` first; ``QUANTGATE_DEMO_HOME`` overrides) and writes
``tests/benchmarks/results/search.json``. The search sample is the train examples outside the calibration sample (at most 100; 31 in the demo).
Three timings: the plain path (Quantizer + evaluator), the search as the demo would run it (int8 passes at once),
and the search forced up its whole ladder (an impossible ``max_delta``, ``max_trials`` 8). Nothing asserts a speed.
"""

from __future__ import annotations

import json
import os
import time

import apache_beam as beam
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from quantgate.components.quantization_evaluator.config import EvaluatorConfig
from quantgate.components.quantization_evaluator.executor import evaluate
from quantgate.components.quantization_evaluator.gate import Thresholds
from quantgate.components.quantizer.executor import quantize, quantize_with_search
from quantgate.components.quantizer.isolation import warm_up
from quantgate.components.quantizer.options import resolve_options
from quantgate.components.quantizer.search import SearchConfig, SearchFailed
from quantgate.components.representative_dataset_gen.storage import (
    read_examples,
    write_representative_dataset,
)
from quantgate.components.types import RepresentativeDataset
from quantgate.pipelines import lineage
from quantgate.pipelines.kinds import PIPELINES
from quantgate.pipelines.local_runner import LocalRunPaths

DEMO = LocalRunPaths(home=os.path.abspath(os.environ.get("QUANTGATE_DEMO_HOME", PIPELINES["penguin"].home)),
                     pipeline_name=PIPELINES["penguin"].pipeline_name)
RESULTS = os.path.join(os.path.dirname(__file__), "results", "search.json")
SIGNATURE = "serving_features"
NUM_SEARCH_EXAMPLES = 100


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    if not os.path.exists(DEMO.metadata_path):
        pytest.skip(f"no demo run at {DEMO.home}: run `quantgate run --pipeline penguin` first")
    store = lineage.open_sqlite_store(DEMO.metadata_path, read_only=True)

    def artifact(component: str, key: str, kind: type):
        execution = lineage.latest_complete_execution(store, DEMO.pipeline_name, component)
        assert execution is not None, f"the demo run has no {component}: run `quantgate run --pipeline penguin`"
        found = lineage.output_artifacts(store, execution.id)[key][0]
        made = kind()
        made.uri, made.id = found.uri, found.id
        return made

    examples = artifact("CsvExampleGen", "examples", standard_artifacts.Examples)
    examples.split_names = '["train", "eval"]'
    representative = artifact("RepresentativeDatasetGen", "representative_dataset", RepresentativeDataset)
    calibration = set(read_examples(representative.uri))
    files = tf.io.gfile.glob(os.path.join(examples.uri, "Split-train", "*"))
    rest = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP") if r.numpy() not in calibration]
    search_uri = str(tmp_path_factory.mktemp("search") / "search_dataset")
    search = rest[:NUM_SEARCH_EXAMPLES]
    write_representative_dataset(search_uri, search, {"num_examples": len(search)})
    return {"num_search_examples": len(search), "model": artifact("Trainer", "model", standard_artifacts.Model), "examples": examples,
            "representative_uri": representative.uri, "search_uri": search_uri}


def _evaluate(demo: dict, quantized_uri: str, root) -> float:
    quantized = standard_artifacts.Model()
    quantized.uri = quantized_uri
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(root / "evaluation"), str(root / "blessing")
    start = time.perf_counter()
    evaluate(beam.Pipeline(), model=demo["model"], quantized_model=quantized, examples=demo["examples"],
             evaluation=evaluation, blessing=blessing,
             config=EvaluatorConfig(label_key="species", thresholds=Thresholds(), slicing_feature_keys=("island",)))
    return time.perf_counter() - start


def test_search_against_one_conversion_and_evaluation(demo: dict, tmp_path) -> None:
    options = resolve_options("int8")
    # A local run starts the fork server before the pipeline; one untimed conversion waits for its TensorFlow
    # import, so no timing below pays it.
    warm_up()
    quantize(demo["model"].uri, demo["representative_uri"], str(tmp_path / "warm"), options, SIGNATURE)
    start = time.perf_counter()
    quantize(demo["model"].uri, demo["representative_uri"], str(tmp_path / "plain"), options, SIGNATURE)
    plain_quantizer_s = time.perf_counter() - start
    evaluator_s = _evaluate(demo, str(tmp_path / "plain"), tmp_path)

    def search(output: str, **overrides) -> tuple[float, dict | None, str | None]:
        config = SearchConfig.from_mapping({"label_key": "species", "metric": "accuracy", "max_delta": 0.01,
                                            **overrides})
        start = time.perf_counter()
        try:
            report = quantize_with_search(demo["model"].uri, demo["representative_uri"], demo["search_uri"],
                                          str(tmp_path / output), options, SIGNATURE, config.to_json())
            return time.perf_counter() - start, report["search"], None
        except SearchFailed as failure:
            return time.perf_counter() - start, None, str(failure)

    search_s, section, _ = search("search")
    full_s, _, failure = search("full", max_delta=-1.0, max_trials=8)
    plain_s = plain_quantizer_s + evaluator_s
    results = {
        "machine": {"cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0]},
        "model": "penguin demo (4 inputs, 2x16 hidden units), int8, tflite_converter",
        "search_examples": demo["num_search_examples"],
        "seconds": {"plain Quantizer (one conversion)": plain_quantizer_s, "QuantizationEvaluator": evaluator_s,
                    "plain path (Quantizer + evaluator)": plain_s,
                    "search Quantizer (demo: passes at once)": search_s,
                    "search Quantizer, whole ladder (max_trials 8, nothing passes)": full_s},
        "search_candidates": [(c["step"], c["description"], c["delta"]) for c in section["candidates"]],
        "whole_ladder_reason": failure,
        "search_over_plain_path": (search_s + evaluator_s) / plain_s,
        "whole_ladder_over_plain_path": (full_s + evaluator_s) / plain_s,
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
