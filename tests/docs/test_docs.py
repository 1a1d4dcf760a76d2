"""The documentation: README.md, CONTRIBUTING.md and the MkDocs site under docs/.

- ``mkdocs build --strict`` passes (a broken link or anchor fails it: see ``validation`` in mkdocs.yml);
- the README stays under 200 lines;
- every shell command the docs show (```` ```bash ```` blocks, the one convention) is either run here (the cheap
  ``--help`` ones, with ``.venv/bin`` on the PATH) or named in ``RUN_ELSEWHERE`` with the test or CI step that runs
  it; the flags of a shown ``quantgate`` / ``kubeflow/*.py`` command exist, a shown ``make`` target exists;
- every Python snippet compiles, and the README's usage snippet builds its components against real TFX channels;
- every section of docs/benchmarks.md carries a date and a command;
- no drift: no ``python -m pipelines``, every ``--pipeline NAME`` is a key of ``PIPELINES``, one Kubeflow guide.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest

from quantgate.pipelines.kinds import DEFAULT_PIPELINE, PIPELINES

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CONTRIBUTING = REPO / "CONTRIBUTING.md"
DOCS = REPO / "docs"
DOC_FILES = [README, CONTRIBUTING, *sorted(DOCS.rglob("*.md"))]
BIN = Path(sys.executable).parent  # .venv/bin under `make test`
SHELL = "bash"  # the one fence language for shell commands
OTHER_SHELL_FENCES = {"console", "sh", "shell", "shell-session", "zsh", "terminal"}
README_MAX_LINES = 200

# Shown commands run by this file (the cheap ones), by the test that runs them.
RUN_HERE = {
    "quantgate --help": "test_help_commands_run",
    "quantgate run --help": "test_help_commands_run",
    "quantgate lineage --help": "test_help_commands_run",
    ".venv/bin/python kubeflow/runner.py --help": "test_help_commands_run",
    "mkdocs build --strict -d out/site": "test_mkdocs_build_is_strict_clean (into a temporary folder)",
}

_BENCH = "on demand, not in CI: `make bench` runs tests/benchmarks/ (results in tests/benchmarks/results/)"
_DEMO_LIKE = ("tests/pipelines/test_main.py runs `quantgate run` (the CLI); tests/conftest.py::demo_run and the "
              "tests/pipelines/ fixtures run the pipelines through the same local runner (run_local); CI does not "
              "run `make demo` itself")
_LINEAGE_SQLITE = ("tests/pipelines/test_main.py runs the lineage CLI (--pushed, --why-not, --json) on SQLite stores; "
                   "the flags are checked here against `quantgate lineage --help`")
_LINEAGE_MYSQL = ("tests/pipelines/test_lineage.py::test_mysql_lineage_cli runs the lineage CLI on a real MariaDB; the "
                  "flags are checked here against `quantgate lineage --help`")
_COMPILE = ("parsed here by kubeflow/runner.py's options_from_args (pipeline, name, --set keys); "
            "tests/kubeflow/test_runner.py compiles jobs with these flags")
_CLOUD = ("not run by any test: needs a Docker engine, a GCP project or a cluster; tests/kubeflow/test_dockerfile.py "
          "and tests/kubeflow/test_image_metadata.py check the Dockerfile and the image's pins")

# Shown commands too expensive (or impossible) to run here, and who runs them.
RUN_ELSEWHERE = {
    "make demo": _DEMO_LIKE,
    "make test": ".ci/run (CI) runs `make test`",
    "make check": "developers, before a commit: lint and the unit tier; its tests run inside `make test` too",
    "make flink-job-server": ("tests/pipelines/test_flink.py calls the same fetch_job_server (the cached, verified "
                              "jars) before its Flink run"),
    "quantgate run --pipeline penguin --runner flink --home out/flink": (
        "tests/pipelines/test_flink.py::flink_run runs `quantgate run --pipeline penguin --runner flink` (its own "
        "--home)"),
    "make bench": _BENCH,
    "pip install --no-deps .": ("tests/test_wheel.py builds the wheel from the checkout and installs it with "
                                "--no-deps; kubeflow/Dockerfile runs it in the tensorflow/tfx:1.16.0 image"),
    ".venv/bin/python -m pytest -q -s tests/benchmarks/test_bench_inference.py": _BENCH,
    "QUANTGATE_BENCH_SAMPLING_ROUNDS=5 .venv/bin/python -m pytest -q -s tests/benchmarks/test_bench_sampling.py":
        _BENCH,
    ".venv/bin/python -m pytest -q -s tests/benchmarks/test_bench_quantizer.py": _BENCH,
    ".venv/bin/python -m pytest -q -s tests/benchmarks/test_bench_sizes.py": _BENCH,
    ".venv/bin/python -m pytest -q -s tests/benchmarks/test_bench_search.py": _BENCH,
    ".venv/bin/python -m pytest -q -s tests/benchmarks/test_bench_evaluator.py": _BENCH,
    "TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m pytest -q -s -p no:warnings "
    "tests/benchmarks/test_bench_cnn.py": _BENCH,
    ".venv/bin/python kubeflow/runner.py": ("tests/kubeflow/test_runner.py compiles the no-flag job offline "
                                            "(gs:// placeholders)"),
    ".venv/bin/python kubeflow/runner.py --pipeline penguin --pipeline-name penguin-quantgate "
    "--pipeline-root gs://MY_BUCKET/quantgate/pipeline_root --data-root gs://MY_BUCKET/quantgate/data/penguin "
    "--image europe-west4-docker.pkg.dev/MY_PROJECT/quantgate/quantgate:v1 --set train_steps=500 "
    "--set float_accuracy_threshold=0.8 --output-dir out/kubeflow": _COMPILE,
    ".venv/bin/python kubeflow/runner.py --pipeline taxi --pipeline-root gs://MY_BUCKET/quantgate/pipeline_root "
    "--data-root gs://MY_BUCKET/quantgate/data/taxi "
    "--image europe-west4-docker.pkg.dev/MY_PROJECT/quantgate/quantgate:v1": _COMPILE,
    ".venv/bin/python kubeflow/runner.py --pipeline penguin --pipeline-root /tmp/qg/root --data-root out/demo/data "
    "--image local/quantgate:dev --output-dir /tmp/qg": (
        "tests/kubeflow/test_runner.py::test_readme_spec_run_command_compiles_a_job_with_only_absolute_local_paths "
        "reads this command from docs/guides/kubeflow.md and compiles it"),
    ".venv/bin/python kubeflow/spec_runner.py /tmp/qg/pipeline.json --pipeline-root /tmp/qg/root": (
        "tests/kubeflow/test_runner.py reads it (same pipeline root as the compile); "
        "tests/kubeflow/test_spec_runner.py::test_the_compiled_job_runs_end_to_end runs a compiled job, in CI"),
    "QUANTGATE_KUBEFLOW_E2E=1 .venv/bin/python -m pytest -q tests/kubeflow/test_spec_runner.py -k end_to_end": (
        ".ci/run sets QUANTGATE_KUBEFLOW_E2E=1 and runs `make test`, which runs this test"),
    "gcloud artifacts repositories create quantgate --repository-format=docker --location=europe-west4": _CLOUD,
    "gcloud auth configure-docker europe-west4-docker.pkg.dev": _CLOUD,
    "docker build -f kubeflow/Dockerfile -t europe-west4-docker.pkg.dev/MY_PROJECT/quantgate/quantgate:v1 .": _CLOUD,
    "docker push europe-west4-docker.pkg.dev/MY_PROJECT/quantgate/quantgate:v1": _CLOUD,
    "kubectl -n kubeflow port-forward svc/mysql 3306:3306 &": _CLOUD,
    "MYSQL_PASSWORD= .venv/bin/quantgate lineage --mysql-host 127.0.0.1 --mysql-port 3306 --mysql-database metadb "
    "--mysql-user root --pushed latest": _LINEAGE_MYSQL,
    ".venv/bin/quantgate lineage --mysql-host 127.0.0.1 --mysql-database metadb --mysql-user root --why-not":
        _LINEAGE_MYSQL,
    ".venv/bin/quantgate lineage --mysql-host 127.0.0.1 --mysql-port 3306 --mysql-database mlmd --mysql-user root "
    "--why-not --json": _LINEAGE_MYSQL,
    ".venv/bin/quantgate lineage --metadata out/demo/pipeline_root/metadata.sqlite": _LINEAGE_SQLITE,
    ".venv/bin/quantgate lineage --metadata out/demo/pipeline_root/metadata.sqlite --pushed 12": _LINEAGE_SQLITE,
    ".venv/bin/quantgate lineage --metadata out/demo/pipeline_root/metadata.sqlite --why-not": _LINEAGE_SQLITE,
    ".venv/bin/quantgate lineage --metadata out/demo/pipeline_root/metadata.sqlite --why-not "
    "2026-11-22T19:57:11.026549": _LINEAGE_SQLITE,
}


# --- reading the docs ------------------------------------------------------------------------------------------

def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


@functools.cache
def _blocks(path: Path) -> tuple[tuple[str, str], ...]:
    """The fenced blocks of a Markdown file: (language, body)."""
    return tuple((m.group(1), m.group(2))
                 for m in re.finditer(r"^```([\w-]*)[^\n]*\n(.*?)^```", path.read_text(), re.S | re.M))


def _commands(body: str) -> list[str]:
    """A bash block's commands, one a line (a trailing backslash continues it), comments dropped, normalised."""
    return [" ".join(tokens) for line in body.replace("\\\n", " ").splitlines()
            if (tokens := shlex.split(line, comments=True))]


@functools.cache
def _shown_commands() -> tuple[tuple[str, str], ...]:
    return tuple((_rel(path), command) for path in DOC_FILES for lang, body in _blocks(path) if lang == SHELL
                 for command in _commands(body))


def _python_snippets() -> list[tuple[str, str]]:
    return [(_rel(path), body) for path in DOC_FILES for lang, body in _blocks(path) if lang == "python"]


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _argv(command: str) -> list[str]:
    """A shown command as an argv to run from the repository root: `quantgate` and `mkdocs` from .venv/bin."""
    argv = shlex.split(command)
    if argv[0] in ("quantgate", "mkdocs", "python"):
        argv[0] = str(BIN / argv[0])
    return argv


@functools.cache
def _help(program: tuple[str, ...]) -> str:
    result = subprocess.run([*program, "--help"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _program(argv: list[str]) -> tuple[tuple[str, ...], list[str]] | None:
    """(the program a shown command runs, as an argv prefix; its arguments) for the CLIs whose flags are checked."""
    argv = [a for a in argv if not re.fullmatch(r"[A-Z_]+=.*", a)]  # leading VAR=value assignments
    if not argv:
        return None
    if Path(argv[0]).name == "quantgate" and len(argv) > 1 and argv[1] in ("run", "lineage"):
        return (str(BIN / "quantgate"), argv[1]), argv[2:]
    if len(argv) > 1 and argv[1] in ("kubeflow/runner.py", "kubeflow/spec_runner.py"):
        return (sys.executable, argv[1]), argv[2:]
    return None


@functools.cache
def _runner() -> types.ModuleType:
    path = REPO / "kubeflow" / "runner.py"
    spec = importlib.util.spec_from_file_location("quantgate_docs_kubeflow_runner", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(path.parent))  # the runner's own sibling imports
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def _anchors(path: Path) -> set[str]:
    from markdown.extensions.toc import slugify
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return {slugify(m.group(1).strip(), "-") for m in re.finditer(r"^#+ (.+)$", text, re.M)}


# --- (a) the site builds ----------------------------------------------------------------------------------------

def test_mkdocs_build_is_strict_clean(tmp_path) -> None:
    result = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d",
                             str(tmp_path / "site")], cwd=REPO, env=_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").exists()


def test_every_page_is_in_the_nav() -> None:
    nav = (REPO / "mkdocs.yml").read_text()
    for page in DOCS.rglob("*.md"):
        assert str(page.relative_to(DOCS)) in nav, f"{_rel(page)} is not in mkdocs.yml's nav"


def test_readme_and_contributing_links_resolve() -> None:
    for path in (README, CONTRIBUTING, REPO / "CHANGELOG.md", REPO / "kubeflow" / "README.md"):
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            resolved = (path.parent / file).resolve() if file else path
            assert resolved.exists(), f"{_rel(path)} links to {target}, which does not exist"
            if anchor and resolved.suffix == ".md":
                assert anchor in _anchors(resolved), f"{_rel(path)} links to {target}: no such heading"


# --- (b) the README is short ------------------------------------------------------------------------------------

def test_readme_is_at_most_200_lines() -> None:
    assert len(README.read_text().splitlines()) <= README_MAX_LINES


# --- (c) every shown command is run, here or elsewhere ----------------------------------------------------------

def test_shell_commands_use_one_fence_convention() -> None:
    for path in DOC_FILES:
        for lang, _ in _blocks(path):
            assert lang not in OTHER_SHELL_FENCES, f"{_rel(path)}: shell commands go in ```{SHELL} blocks"


def test_every_shown_command_is_run_here_or_by_a_named_test() -> None:
    shown = _shown_commands()
    assert shown, "no ```bash block found"
    unaccounted = sorted({f"{file}: {command}" for file, command in shown
                          if command not in RUN_HERE and command not in RUN_ELSEWHERE})
    assert not unaccounted, ("shown commands neither run by tests/docs/test_docs.py nor in its RUN_ELSEWHERE list "
                             "(name the test or CI step that runs each):\n" + "\n".join(unaccounted))
    stale = sorted((set(RUN_HERE) | set(RUN_ELSEWHERE)) - {command for _, command in shown})
    assert not stale, "commands in the lists that no page shows any more:\n" + "\n".join(stale)


def test_help_commands_run() -> None:
    helps = sorted({command for _, command in _shown_commands() if command.endswith("--help")})
    assert set(helps) == {c for c in RUN_HERE if c.endswith("--help")}
    for command in helps:
        result = subprocess.run(_argv(command), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        assert result.stdout.startswith("usage:"), command


def test_quantgate_run_help_lists_every_pipeline() -> None:
    text = _help((str(BIN / "quantgate"), "run"))
    choices = re.search(r"--pipeline \{([^}]+)\}", text).group(1).split(",")
    assert sorted(choices) == sorted(PIPELINES)
    assert f"default: {DEFAULT_PIPELINE}" in text


def test_shown_flags_exist() -> None:
    """Each --flag of a shown quantgate run / lineage or kubeflow/*.py command is one its --help lists."""
    checked = 0
    for file, command in _shown_commands():
        found = _program(shlex.split(command))
        if found is None:
            continue
        program, args = found
        text = _help(program)
        for flag in (a.split("=", 1)[0] for a in args if a.startswith("--")):
            assert re.search(rf"{re.escape(flag)}\b", text), f"{file}: {command}: {flag} is not an option"
        checked += 1
    assert checked >= 5


def test_shown_kubeflow_compiles_parse() -> None:
    """The runner's own parser (pipeline names, the Vertex AI name rule, every --set key) accepts each shown compile."""
    runner = _runner()
    compiles = [shlex.split(c) for _, c in _shown_commands() if "kubeflow/runner.py" in c and "--help" not in c]
    assert len(compiles) >= 3
    for argv in compiles:
        runner.options_from_args(argv[argv.index("kubeflow/runner.py") + 1:])


def test_shown_make_targets_exist() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = {c.split()[1] for _, c in _shown_commands() if c.startswith("make ")}
    assert {"demo", "test"} <= targets
    for target in targets:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"make {target}: no such Makefile target"


def test_shown_test_files_exist() -> None:
    for file, command in _shown_commands():
        for path in re.findall(r"tests/\S+\.py", command):
            assert (REPO / path).exists(), f"{file}: {command}: {path} does not exist"


# --- (d) Python snippets -----------------------------------------------------------------------------------------

def test_every_python_snippet_compiles() -> None:
    snippets = _python_snippets()
    assert any("quantgate" in body for _, body in snippets)
    for file, body in snippets:
        compile(body, file, "exec")


def _readme_usage() -> str:
    (usage,) = [body for lang, body in _blocks(README) if lang == "python"]
    return usage


def test_readme_usage_imports_resolve() -> None:
    imports = "\n".join(re.findall(r"^(?:from \S+ import \([^)]*\)|from \S+ import .+|import .+)$", _readme_usage(),
                                   re.M))
    assert "quantgate.components" in imports
    exec(compile(imports, "README.md", "exec"), {})


def test_readme_usage_builds_its_components() -> None:
    """The usage snippet, run with your pipeline's upstream components stood in by channels of their output types."""
    from tfx.types import Channel, standard_artifacts

    def upstream(**outputs: type) -> types.SimpleNamespace:
        return types.SimpleNamespace(outputs={key: Channel(type=t) for key, t in outputs.items()})

    namespace = {"example_gen": upstream(examples=standard_artifacts.Examples),
                 "schema_gen": upstream(schema=standard_artifacts.Schema),
                 "trainer": upstream(model=standard_artifacts.Model)}
    exec(compile(_readme_usage(), "README.md", "exec"), namespace)
    names = [type(c).__name__ for c in namespace["components"][3:]]
    assert names == ["RepresentativeDatasetGen", "Quantizer", "QuantizationEvaluator", "QuantizedModelPusher"]


# --- (e) numbers carry their date --------------------------------------------------------------------------------

def test_every_benchmark_section_has_a_command_and_a_date() -> None:
    text = (DOCS / "benchmarks.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    assert len(sections) >= 5
    for section in sections:
        title = section.splitlines()[0]
        assert re.search(r"^Date: \d{4}-\d{2}-\d{2}", section, re.M), f"benchmarks.md '{title}': no 'Date: '"
        assert re.search(r"Command|```bash", section), f"benchmarks.md '{title}': no command"


def test_measured_figures_are_dated() -> None:
    """A paragraph that reports a measurement ('measured', 'Measured') with numbers in it names its date
    (docs/benchmarks.md: per section, above)."""
    not_a_report = r"the measured degradation|degradation measured|measured on the evaluating host|measured outside Beam|measured: \["
    missing = []
    for path in [README, *sorted(DOCS.rglob("*.md"))]:
        if path.name == "benchmarks.md":
            continue
        text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
        for paragraph in re.split(r"\n\s*\n", text):
            flat = re.sub(not_a_report, "", " ".join(paragraph.split()))
            if (re.search(r"\b[Mm]easured\b", flat) and re.search(r"\d", flat)
                    and not re.search(r"\d{4}-\d{2}-\d{2}", flat)):
                missing.append(f"{_rel(path)}: {flat[:120]!r}")
    assert not missing, "measured figures without a date:\n" + "\n".join(missing)


def test_readme_quotes_no_benchmark_numbers() -> None:
    readme = README.read_text()
    assert not re.search(r"\d+(\.\d+)?\s?(x faster|x smaller|examples/s|ms\b|min \d+ s)", readme)


# --- drift ---------------------------------------------------------------------------------------------------------

def test_no_python_dash_m_pipelines() -> None:
    for path in [*DOC_FILES, REPO / "kubeflow" / "README.md"]:
        assert "python -m pipelines" not in path.read_text(), f"{_rel(path)}: the command is `quantgate` now"


def test_every_pipeline_named_is_one_the_cli_accepts() -> None:
    for path in DOC_FILES:
        for name in re.findall(r"--pipeline(?:\s+|=)([a-z][a-z0-9-]*)", path.read_text()):
            assert name in PIPELINES, f"{_rel(path)}: --pipeline {name} is not one of {sorted(PIPELINES)}"


def test_the_pipeline_table_lists_every_pipeline_and_the_default() -> None:
    index = (DOCS / "index.md").read_text()
    section = index.split("## Pipelines", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`([a-z][a-z0-9-]*)`", row.split("|")[1])}
    assert listed == set(PIPELINES), f"docs/index.md's pipeline table: {sorted(listed)} != {sorted(PIPELINES)}"
    (default_row,) = [row for row in rows if "the default" in row]
    assert f"`{DEFAULT_PIPELINE}`" in default_row


def test_one_kubeflow_guide() -> None:
    pointer = (REPO / "kubeflow" / "README.md").read_text()
    assert len(pointer.splitlines()) <= 3 and "docs/guides/kubeflow.md" in pointer
    marker = "## 5. Prove the compiled spec runs, without a cluster"  # tests/kubeflow/test_runner.py reads it
    holders = [_rel(p) for p in [*DOC_FILES, REPO / "kubeflow" / "README.md"] if marker in p.read_text()]
    assert holders == ["docs/guides/kubeflow.md"]


@pytest.mark.parametrize("page", ["CHANGELOG.md", "CONTRIBUTING.md"])
def test_changelog_and_contributing_exist(page: str) -> None:
    text = (REPO / page).read_text()
    if page == "CHANGELOG.md":
        assert re.search(r"^## \d{4}-\d{2}-\d{2}", text, re.M)
    else:
        # the unit tier's measured time, with the command and the date that produced it
        assert re.search(r"It takes [\d.]+ min .*\n?.*`time make\s+check` on \d{4}-\d{2}-\d{2}", text)
