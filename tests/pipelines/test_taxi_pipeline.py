"""create_taxi_pipeline's DAG without quantization (no run), the taxi data copy, and the names the taxi modules
share. The default DAG (quantgate wired to the transform graph) is checked in test_taxi.py, beside its real run."""

from __future__ import annotations

import hashlib
import os

from quantgate.components.representative_dataset_gen.spec import STRATEGY_KEY
from quantgate.pipelines.models.taxi import taxi_trainer, taxi_transform
from quantgate.pipelines.taxi import LABEL_KEY, RAW_LABEL_KEY, create_taxi_pipeline
from quantgate.pipelines.taxi_data import CSV_NAME, taxi_csv_source, write_taxi_csv

BASE = ["CsvExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer", "Evaluator", "RepresentativeDatasetGen"]
QUANTGATE = ["Quantizer", "QuantizationEvaluator", "QuantizedModelPusher"]


def _ids(pipeline) -> list[str]:
    return sorted(c.id for c in pipeline.components)


def test_the_dag_reads_transformed_examples_for_training_and_raw_ones_for_quantgate(tmp_path) -> None:
    pipeline = create_taxi_pipeline("taxi", str(tmp_path / "root"), str(tmp_path / "data"))
    assert _ids(pipeline) == sorted(BASE + QUANTGATE)
    by_id = {c.id: c for c in pipeline.components}
    trainer_inputs = by_id["Trainer"].inputs
    assert trainer_inputs["examples"].producer_component_id == "Transform"
    assert trainer_inputs["transform_graph"].producer_component_id == "Transform"
    calibration = by_id["RepresentativeDatasetGen"]
    assert calibration.inputs["examples"].producer_component_id == "CsvExampleGen"
    assert calibration.exec_properties[STRATEGY_KEY] == "uniform"


def test_the_modules_agree_on_names() -> None:
    assert taxi_trainer.RAW_LABEL_KEY == taxi_transform.LABEL_KEY == RAW_LABEL_KEY
    assert taxi_trainer.LABEL_KEY == taxi_transform.transformed_name(taxi_transform.LABEL_KEY) == LABEL_KEY


def test_taxi_csv_is_copied_only_when_changed(tmp_path) -> None:
    with open(taxi_csv_source(), "rb") as f:
        source = f.read()
    assert source.count(b"\n") == 15003  # a header + 15,002 rows
    path = write_taxi_csv(str(tmp_path))
    assert path == os.path.join(tmp_path, CSV_NAME)
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(source).digest()
    os.utime(path, (1_000_000, 1_000_000))
    write_taxi_csv(str(tmp_path))
    assert os.stat(path).st_mtime == 1_000_000  # unchanged content: kept, mtime untouched
    with open(path, "ab") as f:
        f.write(b"changed\n")
    write_taxi_csv(str(tmp_path))
    with open(path, "rb") as f:
        assert f.read() == source
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no temporary file left
