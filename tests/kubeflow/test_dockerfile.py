"""kubeflow/Dockerfile (no Docker engine here): its base, its ENV, and that it ships every package the compiled
spec makes the container import."""

from __future__ import annotations

import os
import re

import yaml

DOCKERFILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "kubeflow", "Dockerfile")


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
    assert ours == {"components", "pipelines"}
    assert ours <= copied
    # the build fails when one of them does not import
    (install,) = [args for op, args in _instructions() if op == "RUN" and "pip install --no-deps" in args]
    smoke_import = install.split("python -c", 1)[1]
    assert all(re.search(rf"\b{root}\b", smoke_import) for root in ours)
