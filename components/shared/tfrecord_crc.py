"""A compiled CRC-32C for Beam's TFRecord reads and writes.

``apache_beam.io.tfrecordio`` checks every record's two CRCs with python-snappy when it is installed, else with
crcmod, whose C extension exists only when crcmod (an sdist) was built with a compiler: without one every record is
checksummed in pure Python (measured 6.5 % of the evaluator's time at 1M examples). ``google-crc32c`` ships compiled
wheels (in the lock) and is ~9x faster than even crcmod's extension on a 300-byte record, so every quantgate module
that reads TFRecords with Beam installs it through ``use_compiled_crc32c`` at import, in the driver and in each worker.
"""

from __future__ import annotations

import google_crc32c
from apache_beam.io import tfrecordio


def use_compiled_crc32c() -> None:
    """Makes Beam's TFRecord coder use ``google_crc32c``'s C implementation (a no-op when it has none)."""
    if google_crc32c.implementation == "c":
        tfrecordio._default_crc32c_fn.fn = google_crc32c.value


use_compiled_crc32c()
