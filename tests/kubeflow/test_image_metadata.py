"""pyproject.toml's metadata admits both places quantgate is installed: the tensorflow/tfx:1.16.0 image (Python 3.10,
kfp 2.5, Beam 2.59, protobuf 3.20) and the local lock (Python 3.11, kfp 2.13, Beam 2.60, protobuf 4.25).

Both are checked without Docker by resolving with uv (`.venv/bin/uv`, which `make venv` installs); the two resolves
need PyPI (uv's cache makes repeated runs cheap). quantgate is passed as a `quantgate @ file://...` requirement, not
as a pyproject.toml source, so that uv checks its Requires-Python the way pip does when the image installs it (a
pyproject.toml source's own Requires-Python is not checked by `uv pip compile`).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UV = os.path.join(os.path.dirname(sys.executable), "uv")
IMAGE_CONSTRAINTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tfx_1_16_image_constraints.txt")
LOCK = os.path.join(REPO, "requirements", "requirements.lock")
REQUIREMENTS_IN = os.path.join(REPO, "requirements", "requirements.in")
# tfx and ml-pipelines-sdk 1.16 declare Requires-Python <3.11; locally they are installed with --no-deps
# --ignore-requires-python (Makefile), and their own requirements are listed in requirements.in instead.
TFX_PACKAGES = ("tfx", "ml-pipelines-sdk")
# The image's glibc is not read from the image (no Docker here): 2.31 is assumed, and a resolve that holds for
# manylinux_2_31 holds for any newer glibc too.
IMAGE_PLATFORM = "x86_64-manylinux_2_31"
UV_TIMEOUT_S = 600


def _quantgate_requirement(tmp_path) -> str:
    """A requirements file naming a copy of the project's metadata (pyproject.toml, README.md) as a file:// URL,
    so that building its metadata writes nothing into the checkout."""
    project = tmp_path / "quantgate"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), project / name)
    requirements = tmp_path / "quantgate.in"
    requirements.write_text(f"quantgate @ {project.as_uri()}\n")
    return str(requirements)


def _uv_compile(*args: str) -> dict[str, str]:
    """``uv pip compile ARGS``: the resolved pins (name -> version); fails with uv's explanation when unsatisfiable."""
    command = [UV, "pip", "compile", "--no-header", "--no-annotate", "--no-python-downloads", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=UV_TIMEOUT_S)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stderr[-4000:]}"
    pins = {}
    for line in result.stdout.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[name.strip().lower()] = version.strip()
        elif line.startswith("quantgate @ "):
            pins["quantgate"] = line
    return pins


def _lock_pins() -> dict[str, str]:
    with open(LOCK) as f:
        return {name.lower(): version.split()[0] for name, sep, version in
                (line.partition("==") for line in f if line[:1].isalnum()) if sep}


def test_uv_is_the_pinned_one() -> None:
    result = subprocess.run([UV, "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split()[1] == "0.13.9"


def test_pyproject_resolves_inside_the_tfx_1_16_image_on_python_3_10(tmp_path) -> None:
    pins = _uv_compile("--python-version", "3.10", "--python-platform", IMAGE_PLATFORM,
                       _quantgate_requirement(tmp_path), "-c", IMAGE_CONSTRAINTS)
    assert "quantgate" in pins
    # the image's own stack, unchanged (kubeflow/Dockerfile installs quantgate with --no-deps, then runs pip check)
    assert {name: pins.get(name) for name in ("tfx", "ml-pipelines-sdk", "tensorflow", "apache-beam", "kfp",
                                              "kfp-pipeline-spec", "protobuf", "numpy", "pyarrow")} == {
        "tfx": "1.16.0", "ml-pipelines-sdk": "1.16.0", "tensorflow": "2.16.2", "apache-beam": "2.59.0",
        "kfp": "2.5.0", "kfp-pipeline-spec": "0.2.2", "protobuf": "3.20.3", "numpy": "1.26.4", "pyarrow": "10.0.1"}
    # what the Dockerfile adds: cp310 wheels exist for these exact versions
    assert pins["ai-edge-litert"] == "2.3.0" and pins["ai-edge-quantizer"] == "0.10.0"


def test_pyproject_and_tfx_requirements_resolve_to_the_lock_on_python_3_11(tmp_path) -> None:
    # tfx / ml-pipelines-sdk 1.16 cannot be resolved for 3.11 (Requires-Python <3.11), so they are excluded here;
    # what they require is in requirements.in (checked against their metadata below) and so in this resolve.
    excludes = tmp_path / "excludes.txt"
    excludes.write_text("\n".join(TFX_PACKAGES) + "\n")
    pins = _uv_compile("--python-version", "3.11", _quantgate_requirement(tmp_path), REQUIREMENTS_IN,
                       "-c", LOCK, "--excludes", str(excludes))
    assert "quantgate" in pins
    del pins["quantgate"]
    assert pins == _lock_pins()


@pytest.mark.parametrize("package", TFX_PACKAGES)
def test_requirements_in_lists_what_tfx_itself_requires(package: str) -> None:
    """Excluding tfx from the 3.11 resolve is honest only if requirements.in carries tfx's own requirements."""
    with open(REQUIREMENTS_IN) as f:
        lines = [line.split("#", 1)[0].strip() for line in f]
    listed = {str(Requirement(line)) for line in lines if line}
    own = [Requirement(text) for text in importlib.metadata.requires(package) or []]
    missing = [str(r) for r in own if r.name not in TFX_PACKAGES and not (r.marker and "extra" in str(r.marker))
               and str(r) not in listed]
    assert not missing, f"{package} {importlib.metadata.version(package)} requires, but requirements.in lacks: {missing}"
