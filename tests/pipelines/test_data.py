"""The demo CSV (pipelines/data.py): written only when its content changes, so a re-run keeps TFX's cache."""

from __future__ import annotations

import csv
import hashlib
import logging
import os

import palmerpenguins

from quantgate.pipelines import data
from quantgate.pipelines.models.penguin.penguin_trainer import FEATURE_KEYS, LABEL_KEY

OLD_MTIME_NS = 1_600_000_000_123_456_789  # an unmistakable mtime, far from "now"


def test_second_write_leaves_the_file_and_its_mtime_untouched(tmp_path, caplog) -> None:
    root = str(tmp_path / "data")
    path = data.write_penguins_csv(root)
    assert path == os.path.join(root, "penguins.csv")
    os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    before = os.stat(path)

    with caplog.at_level(logging.INFO):
        again = data.write_penguins_csv(root)

    after = os.stat(path)
    assert again == path
    assert (after.st_mtime_ns, after.st_ino, after.st_size) == (OLD_MTIME_NS, before.st_ino, before.st_size)
    assert os.listdir(root) == ["penguins.csv"]  # no temporary file left
    assert any(f"unchanged, kept {path}" in r.getMessage() for r in caplog.records)


def test_a_modified_file_is_rewritten(tmp_path, caplog) -> None:
    root = str(tmp_path)
    path = data.write_penguins_csv(root)
    expected = open(path, "rb").read()
    with open(path, "ab") as f:
        f.write(b"0,Torgersen,male,1.0,2.0,3.0,4.0\n")  # a stray row, same kind of content
    os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))

    with caplog.at_level(logging.INFO):
        data.write_penguins_csv(root)

    assert open(path, "rb").read() == expected
    assert os.stat(path).st_mtime_ns != OLD_MTIME_NS
    assert os.listdir(root) == ["penguins.csv"]
    assert any(f"to {path}" in r.getMessage() and r.getMessage().startswith("wrote ") for r in caplog.records)


def test_a_file_with_the_same_bytes_from_elsewhere_is_kept(tmp_path) -> None:
    content, _ = data.render_penguins_csv()
    path = tmp_path / "penguins.csv"
    path.write_bytes(content)
    os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    data.write_penguins_csv(str(tmp_path))
    assert path.stat().st_mtime_ns == OLD_MTIME_NS
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(content).hexdigest()


def test_the_content_has_the_complete_penguins_with_the_expected_columns(tmp_path) -> None:
    path = data.write_penguins_csv(str(tmp_path))
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    penguins = palmerpenguins.load_penguins().dropna()

    assert list(rows[0]) == [LABEL_KEY, *data.SLICE_KEYS, *FEATURE_KEYS]
    assert len(rows) == len(penguins) > 300
    assert [int(r[LABEL_KEY]) for r in rows] == [data.SPECIES.index(s) for s in penguins[LABEL_KEY]]
    assert [r["island"] for r in rows] == list(penguins["island"])
    for key in FEATURE_KEYS:
        assert [float(r[key]) for r in rows] == [float(v) for v in penguins[key]]
        assert all("." in r[key] for r in rows)  # floats, so that SchemaGen infers FLOAT


def test_write_if_changed_says_whether_it_wrote(tmp_path) -> None:
    path = str(tmp_path / "new" / "file.csv")  # the folder is created
    assert data.write_if_changed(path, b"a,b\n") is True
    os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    assert data.write_if_changed(path, b"a,b\n") is False
    assert os.stat(path).st_mtime_ns == OLD_MTIME_NS
    assert data.write_if_changed(path, b"a,b\n1,2\n") is True
    assert open(path, "rb").read() == b"a,b\n1,2\n"
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert os.listdir(os.path.dirname(path)) == ["file.csv"]
