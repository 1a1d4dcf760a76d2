"""On-demand benchmark (``make bench``): RepresentativeDatasetGen's sampling against a Beam read+count of the same
split, side by side in one run, and its peak memory growth by sample size.

It writes N gzipped taxi-like tf.Examples (``QUANTGATE_BENCH_SAMPLING_N``, default 1,000,000; 3 classes) as
ExampleGen lays out a split, then runs each measurement in a fresh child process (so that each peak RSS is its
own): Beam read+count, and ``SampleExamples`` (k=300 and k=30,000, uniform and stratified) behind the same read, on
the DirectRunner with one worker, in ``QUANTGATE_BENCH_SAMPLING_ROUNDS`` interleaved rounds (default 3; the best
of each is compared). Time is the pipeline's wall time (imports excluded); memory is the child's peak
RSS minus its RSS before the pipeline. Writes ``tests/benchmarks/results/sampling.json``. Nothing here asserts a
speed: the machine is shared, only ratios measured in the same run are worth quoting.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import tensorflow as tf
from tensorflow.core.example import example_pb2

RESULTS = os.path.join(os.path.dirname(__file__), "results", "sampling.json")
NUM_RECORDS = int(os.environ.get("QUANTGATE_BENCH_SAMPLING_N", "1000000"))
ROUNDS = int(os.environ.get("QUANTGATE_BENCH_SAMPLING_ROUNDS", "3"))

# One measurement, in a child: `python -c CHILD <pattern> <what> <k> <strategy>`; prints a JSON line.
CHILD = """
import json, resource, sys, time
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from tfx_bsl.public import tfxio
from quantgate.components.representative_dataset_gen.sampling import SampleExamples, SamplingConfig
from quantgate.pipelines.local_runner import direct_runner_args

pattern, what, k, strategy = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def rss_kb():
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0])

before = rss_kb()
start = time.perf_counter()
with beam.Pipeline(options=PipelineOptions(direct_runner_args())) as p:
    records = p | tfxio.TFExampleRecord([pattern]).RawRecordBeamSource()
    if what == "count":
        _ = records | beam.combiners.Count.Globally()
    else:
        # uniform without a label key (as the taxi pipeline samples), stratified by the label
        label_key = "label" if strategy == "stratified" else None
        config = SamplingConfig(num_examples=k, strategy=strategy, label_key=label_key, seed=0)
        _ = records | SampleExamples(config) | beam.Map(lambda s: len(s.records))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "rss_before_kb": before, "peak_rss_kb": peak}))
"""


def _write_split(path: str, n: int) -> int:
    """Writes ``n`` taxi-like examples (8 floats, a string, an int label of 3 classes); returns the mean size."""
    rng = random.Random(0)
    total = 0
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i in range(n):
            example = example_pb2.Example()
            features = example.features.feature
            for j in range(8):
                features[f"f{j}"].float_list.value.append(rng.random())
            features["payment_type"].bytes_list.value.append(rng.choice([b"Cash", b"Credit Card", b"No Charge"]))
            features["trip_id"].int64_list.value.append(i)
            features["label"].int64_list.value.append(rng.choices((0, 1, 2), weights=(6, 3, 1))[0])
            record = example.SerializeToString()
            total += len(record)
            writer.write(record)
    return round(total / max(n, 1))


def _measure(pattern: str, what: str, k: int = 0, strategy: str = "uniform") -> dict:
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", CHILD, pattern, what, str(k), strategy], capture_output=True,
                          text=True, check=True, cwd=repo, env={**os.environ, "PYTHONPATH": repo})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["rss_growth_mb"] = (result["peak_rss_kb"] - result["rss_before_kb"]) / 1024
    return result


def test_sampling_against_read_and_count(tmp_path) -> None:
    path = str(tmp_path / "data_tfrecord-00000-of-00001.gz")
    record_bytes = _write_split(path, NUM_RECORDS)
    configs = [(strategy, k) for strategy in ("uniform", "stratified") for k in (300, 30_000)]
    count: list[dict] = []
    runs: dict[str, list[dict]] = {f"{strategy} k={k}": [] for strategy, k in configs}
    # Interleaved rounds, the best of each: a machine that slows down for a minute slows every measure alike
    # instead of the ones that happened to run then.
    for _ in range(ROUNDS):
        count.append(_measure(path, "count"))
        for strategy, k in configs:
            runs[f"{strategy} k={k}"].append(_measure(path, "sample", k, strategy))
    memory = {k: _measure(path, "sample", k, "uniform") for k in (300, 30_000, 300_000) if k <= NUM_RECORDS}
    count_seconds = min(c["seconds"] for c in count)
    count_growth = min(c["rss_growth_mb"] for c in count)
    results = {
        "machine": {"cpus": os.cpu_count()},
        "num_records": NUM_RECORDS,
        "mean_record_bytes": record_bytes,
        "runner": "DirectRunner, 1 worker, in_memory",
        "read_count": {"seconds": [c["seconds"] for c in count], "records_per_s": NUM_RECORDS / count_seconds,
                       "rss_growth_mb": count_growth},
        "rounds": ROUNDS,
        "sampling": {name: {"seconds": [r["seconds"] for r in rs],
                            "over_read_count": min(r["seconds"] for r in rs) / count_seconds,
                            "rss_growth_mb": max(r["rss_growth_mb"] for r in rs)} for name, rs in runs.items()},
        "memory_by_k (uniform)": {
            str(k): {"rss_growth_mb": r["rss_growth_mb"],
                     "over_read_count_mb": r["rss_growth_mb"] - count_growth,
                     "bytes_per_kept_record_beyond_the_record":
                         ((r["rss_growth_mb"] - count_growth) * 2**20 / k - record_bytes) if k >= 30_000 else None}
            for k, r in memory.items()},
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
