"""kubeflow/Dockerfile (no Docker engine here): its base, its ENV, and that it ships every package the compiled
spec makes the container import."""

from __future__ import annotations

import ast
import os
import re
import shlex

import tomllib
import yaml
from packaging.requirements import Requirement

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(REPO, "kubeflow", "Dockerfile")


def _instructions() -> list[tuple[str, str]]:
    with open(DOCKERFILE) as f:
        text = re.sub(r"\\\n", " ", f.read())  # join continuation lines
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_base_image_and_legacy_keras() -> None:
    instructions = _instructions()
    assert instructions[0] == ("FROM", "tensorflow/tfx:1.16.0")
    env = " ".join(args for op, args in instructions if op == "ENV")
    assert re.search(r"\bTF_USE_LEGACY_KERAS=1\b", env)


def _imported_roots(compiled) -> set[str]:
    """Top-level packages the container imports: executor class paths and artifact type titles (``module.Class``)."""
    roots = {task.executor_class_path.split(".")[0] for task in compiled.job.tasks.values()}
    for task in compiled.job.tasks.values():
        for artifact_type in [*task.input_types.values(), *task.output_types.values()]:
            title = yaml.safe_load(artifact_type["instanceSchema"])["title"]
            roots.add(title.split(".")[0])
    trainer_run_fn = compiled.options.trainer_run_fn
    roots.add(trainer_run_fn.split(".")[0])
    return roots


def test_image_ships_every_package_the_spec_imports(compiled) -> None:
    copied = {args.split()[0].rstrip("/") for op, args in _instructions() if op == "COPY"}
    ours = _imported_roots(compiled) - {"tfx"}  # tfx is the base image's
    assert ours == {"quantgate"}
    # the root package and the two folders it maps (pyproject.toml, package-dir)
    assert {"quantgate", "components", "pipelines"} <= copied
    # the build fails when one of them does not import
    (install,) = [args for op, args in _instructions() if op == "RUN" and "pip install --no-deps" in args]
    smoke_import = install.split("python -c", 1)[1]
    assert all(re.search(rf"\b{root}\b", smoke_import) for root in ours)


def test_quantgate_installs_without_ignoring_requires_python_and_pip_check_runs() -> None:
    runs = [args for op, args in _instructions() if op == "RUN"]
    assert not [run for run in runs if "--ignore-requires-python" in run]
    (install,) = [run for run in runs if "pip install --no-deps ." in run]
    assert install.index("pip install --no-deps .") < install.index("pip check") < install.index("python -c")


def test_the_packages_the_image_adds_are_pinned_as_pyproject_declares_them() -> None:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        declared = {Requirement(text).name: str(Requirement(text)) for text in tomllib.load(f)["project"]["dependencies"]}
    (added,) = [args for op, args in _instructions() if op == "RUN" and "-c /tmp/image-constraints.txt" in args]
    names = shlex.split(added.split("-c /tmp/image-constraints.txt", 1)[1])
    # tensorflow-model-optimization: the QAT helper (components/shared/qat.py) that the digits-qat Trainer imports
    assert {"ai-edge-litert", "ai-edge-quantizer", "tensorflow-model-optimization"} <= {
        Requirement(text).name for text in names}
    assert {str(Requirement(text)) for text in names} <= set(declared.values())


# Standard-library names that are new in Python 3.11 (the TFX 1.16 image runs 3.10): (module, name or None).
PY311_ONLY = {("datetime", "UTC"), ("typing", "Self"), ("typing", "LiteralString"), ("typing", "Never"),
              ("typing", "assert_never"), ("typing", "reveal_type"), ("enum", "StrEnum"), ("tomllib", None),
              ("asyncio", "TaskGroup"), ("hashlib", "file_digest")}


def _container_modules() -> list[str]:
    """The files the containers import: every component module, the pipeline, its data and Trainer modules."""
    paths = []
    for folder in ("components", os.path.join("pipelines", "models")):
        for root, _dirs, files in os.walk(os.path.join(REPO, folder)):
            paths += [os.path.join(root, name) for name in files if name.endswith(".py")]
    return sorted(paths + [os.path.join(REPO, "pipelines", name)
                           for name in ("pipeline.py", "data.py", "digits_qat.py", "digits_data.py")])


def _py311_uses(tree: ast.Module) -> list[str]:
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            uses += [f"from {node.module} import {a.name}" for a in node.names if (node.module, a.name) in PY311_ONLY]
        elif isinstance(node, ast.Import):
            uses += [f"import {a.name}" for a in node.names if (a.name, None) in PY311_ONLY]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in PY311_ONLY:
                uses.append(f"{node.value.id}.{node.attr}")
    return uses


def test_code_the_containers_import_runs_on_python_3_10() -> None:
    paths = _container_modules()
    assert any(p.endswith(os.path.join("components", "types.py")) for p in paths)
    problems = []
    for path in paths:
        with open(path) as f:
            source = f.read()
        try:
            tree = ast.parse(source, filename=path, feature_version=(3, 10))
        except SyntaxError as error:
            problems.append(f"{path}: not Python 3.10 syntax: {error}")
            continue
        problems += [f"{path}: {use} is Python 3.11+" for use in _py311_uses(tree)]
    assert not problems, "the tensorflow/tfx:1.16.0 image runs Python 3.10:\n" + "\n".join(problems)
