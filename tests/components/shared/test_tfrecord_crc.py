"""Beam's TFRecord coder uses a compiled CRC-32C (google-crc32c, a wheel in the lock): on a fresh machine crcmod is
built from its sdist, and without a compiler Beam would checksum every record in pure Python."""

from __future__ import annotations

import apache_beam as beam
import google_crc32c
import pytest
import tensorflow as tf
from apache_beam.io import tfrecordio
from apache_beam.testing.util import assert_that, equal_to

from quantgate.components.shared import tfrecord_crc

RECORDS = [f"record {i}".encode() * (i + 1) for i in range(20)]


def test_beam_checksums_tfrecords_with_the_compiled_crc32c() -> None:
    tfrecord_crc.use_compiled_crc32c()
    assert google_crc32c.implementation == "c"
    assert tfrecordio._default_crc32c_fn.fn is google_crc32c.value
    # The CRC-32C of "123456789" (RFC 3720's check value): the function is the right CRC, not just a fast one.
    assert tfrecordio._default_crc32c_fn(b"123456789") == 0xE3069283


def test_records_written_by_tensorflow_read_back_and_a_flipped_byte_is_caught(tmp_path) -> None:
    tfrecord_crc.use_compiled_crc32c()
    path = str(tmp_path / "data.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in RECORDS:
            writer.write(record)
    with beam.Pipeline() as p:
        assert_that(p | beam.io.ReadFromTFRecord(path), equal_to(RECORDS))
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(Exception, match="Not a valid TFRecord. Mismatch of data mask"):  # Beam wraps the IOError
        with beam.Pipeline() as p:
            _ = p | beam.io.ReadFromTFRecord(path)
