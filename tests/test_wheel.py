"""The built wheel, installed into a fresh venv outside the checkout, imports as ``quantgate`` even where the working
directory has folders named ``components/`` and ``pipelines/`` (a user's Kubeflow or TFX repository often does)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUBLIC_IMPORTS = (
    "from quantgate.components import (QuantizationEvaluation, QuantizationEvaluator, QuantizedModelPusher, "
    "Quantizer, RepresentativeDataset, RepresentativeDatasetGen); import quantgate; "
    "assert quantgate.RepresentativeDataset is RepresentativeDataset; "
    "assert RepresentativeDataset.TYPE_NAME == 'quantgate.RepresentativeDataset'; "
    "assert QuantizationEvaluation.TYPE_NAME == 'quantgate.QuantizationEvaluation'; "
    "import quantgate.components as c; assert 'site-packages' in c.__file__, c.__file__; print('ok')"
)
EVERY_MODULE = (
    "import importlib, pkgutil, quantgate; "
    "names = [m.name for m in pkgutil.walk_packages(quantgate.__path__, 'quantgate.') "
    "if not m.name.endswith('__main__')]; "
    "[importlib.import_module(n) for n in names]; print(len(names))"
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A wheel built from the checkout and a fresh venv with only that wheel installed; the dependencies come from
    the test's own environment through a path entry (so nothing is downloaded; the checkout's editable install is not
    seen: its finder is installed by a ``.pth`` file, which Python runs only in a site directory, not in a path
    entry)."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    REPO], check=True, capture_output=True)
    (wheel,) = dist.glob("quantgate-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", str(wheel)], check=True, capture_output=True)
    site = subprocess.run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(site, "zz_dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    workdir = root / "user-repo"
    for folder in ("components", "pipelines"):  # a user's own folders, with the same names as the repository's
        (workdir / folder).mkdir(parents=True)
        (workdir / folder / "__init__.py").write_text("raise ImportError('the user folder was imported')\n")
    return {"wheel": str(wheel), "python": str(bin_dir / "python"), "quantgate": str(bin_dir / "quantgate"),
            "workdir": str(workdir)}


def _run(installed: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(list(command), cwd=installed["workdir"], capture_output=True, text=True, env=env,
                          timeout=600)


def test_the_wheel_holds_one_top_level_package_and_its_license(installed: dict[str, str]) -> None:
    with zipfile.ZipFile(installed["wheel"]) as archive:
        names = archive.namelist()
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"quantgate"}
    assert "quantgate/components/quantizer/executor.py" in names
    assert "quantgate/pipelines/models/penguin/penguin_trainer.py" in names
    assert "License-Expression: Apache-2.0" in metadata
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_public_imports_from_a_folder_with_its_own_components_package(installed: dict[str, str]) -> None:
    result = _run(installed, installed["python"], "-c", "import sys; sys.path.insert(0, ''); " + PUBLIC_IMPORTS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_every_module_of_the_wheel_imports(installed: dict[str, str]) -> None:
    result = _run(installed, installed["python"], "-c", EVERY_MODULE)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 60


def test_console_script(installed: dict[str, str]) -> None:
    result = _run(installed, installed["quantgate"], "--help")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("usage: quantgate")
    for command in ("run", "lineage"):
        assert command in result.stdout
