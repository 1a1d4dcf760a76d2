"""storage.py: the artifact layout round-trips, and a missing file is named."""

from __future__ import annotations

import os

import pytest

from quantgate.components.representative_dataset_gen import storage

RECORDS = [b"first", b"", b"third\x00\x00", b"\x00"]  # empty and NUL-ended records must survive


def test_write_then_read_round_trips_bytes_and_order(tmp_path) -> None:
    written = storage.write_representative_dataset(str(tmp_path), RECORDS, {"num_examples": len(RECORDS)})
    assert storage.read_examples(str(tmp_path)) == RECORDS
    assert storage.read_manifest(str(tmp_path)) == written
    assert written["sha256"] == storage.file_sha256(os.path.join(tmp_path, storage.DATA_FILENAME))
    assert written["data_file"] == storage.DATA_FILENAME and written["format_version"] == 1


def test_same_records_give_identical_bytes(tmp_path) -> None:
    first = storage.write_representative_dataset(str(tmp_path / "a"), RECORDS, {})
    second = storage.write_representative_dataset(str(tmp_path / "b"), RECORDS, {})
    assert first["sha256"] == second["sha256"]
    assert storage.write_representative_dataset(str(tmp_path / "c"), RECORDS[::-1], {})["sha256"] != first["sha256"]


@pytest.mark.parametrize(("reader", "filename"), [(storage.read_examples, storage.DATA_FILENAME),
                                                   (storage.read_manifest, storage.MANIFEST_FILENAME)])
def test_a_missing_file_names_the_artifact_and_the_file(tmp_path, reader, filename: str) -> None:
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}.*'{filename}'"):
        reader(str(tmp_path))
