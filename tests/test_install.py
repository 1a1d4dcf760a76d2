"""The installed environment matches the lock and imports the whole stack."""

from __future__ import annotations

import subprocess
import sys


def test_pip_check_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stack_imports_at_the_documented_versions() -> None:
    code = (
        "import tfx, tensorflow, tensorflow_data_validation, tensorflow_model_analysis, ml_metadata, apache_beam, "
        "ai_edge_litert, google.protobuf as pb; "
        "print(tfx.__version__, tensorflow.__version__, apache_beam.__version__, pb.__version__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    tfx_version, tf_version, beam_version, protobuf_version = result.stdout.split()
    assert tfx_version == "1.16.0"
    assert tf_version.startswith("2.16.")
    assert beam_version.startswith("2.60.")
    assert protobuf_version.startswith("4.25.")
