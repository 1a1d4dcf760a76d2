"""pyproject.toml declares every third-party distribution the package's code imports.

Every ``import`` / ``from ... import`` (absolute, at any depth: lazy imports in functions count) of every .py file under
components/, pipelines/ and quantgate/ is mapped to the installed distribution that ships it; each must be declared
in ``[project] dependencies`` or an extra of ``[project.optional-dependencies]``. The demo data writers
(``DEMO_MODULES``: pipelines/data.py and pipelines/*_data.py, which fetch the example data sets) may import what only
the ``demo`` extra declares; nothing else may, since the Kubeflow image and a plain ``pip install quantgate`` do not
install that extra. Imports in an ``except ImportError`` handler are fallbacks for the import they replace, which is
checked (e.g. ``litert_quantizer``, the new name of ``ai_edge_quantizer``).
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib.metadata
import os
import re
import sys

import tomllib
from packaging.requirements import Requirement

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_FOLDERS = ("components", "pipelines", "quantgate")
FIRST_PARTY = {"quantgate", "__future__"}
DEMO_EXTRA = "demo"
# Repository-relative paths (fnmatch patterns) of the modules only the demo needs.
DEMO_MODULES = ("pipelines/data.py", "pipelines/*_data.py")


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them (``tf_keras`` == ``tf-keras``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, set[str]]:
    """Normalized distribution name -> where pyproject.toml declares it: ``"core"`` and/or the extras' names."""
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    where: dict[str, set[str]] = {}
    groups = {"core": project.get("dependencies", []), **project.get("optional-dependencies", {})}
    for group, requirements in groups.items():
        for text in requirements:
            name = normalize(Requirement(text).name)
            if name != "quantgate":  # an extra may include another: quantgate[dask]
                where.setdefault(name, set()).add(group)
    return where


def source_files() -> list[str]:
    paths = []
    for folder in SOURCE_FOLDERS:
        for root, dirs, files in os.walk(os.path.join(REPO, folder)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            paths += [os.path.join(root, name) for name in files if name.endswith(".py")]
    return sorted(paths)


def is_demo_module(path: str) -> bool:
    relative = os.path.relpath(path, REPO).replace(os.sep, "/")
    return any(fnmatch.fnmatchcase(relative, pattern) for pattern in DEMO_MODULES)


def _import_fallbacks(tree: ast.Module) -> set[int]:
    """ids of the import nodes inside ``except ImportError`` / ``except ModuleNotFoundError`` handlers."""
    fallback = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            caught = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            if any(isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError") for t in caught):
                fallback |= {id(n) for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)}
    return fallback


def imported_modules(path: str) -> set[str]:
    """The dotted third-party names ``path`` imports (``from a.b import c`` gives ``a.b.c``: ``c`` may be a module)."""
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    skip = _import_fallbacks(tree)
    names = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"}
    return {name for name in names
            if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] not in FIRST_PARTY}


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def _files(distribution: str) -> frozenset[str]:
    return frozenset(str(path) for path in importlib.metadata.distribution(distribution).files or ())


def distributions_of(module: str) -> set[str]:
    """The normalized names of the installed distributions that ship ``module``: by its top-level package
    (``importlib.metadata.packages_distributions``) and, when several ship that package (the ``google`` namespace;
    ``tfx``, split between tfx and ml-pipelines-sdk), by the one whose files hold the longest prefix of its path."""
    parts = module.split(".")
    candidates = _packages_distributions().get(parts[0], [])
    if len(set(map(normalize, candidates))) > 1:
        for depth in range(len(parts), 1, -1):
            prefix = "/".join(parts[:depth])
            owners = [d for d in candidates
                      if any(f.startswith(prefix + "/") or f.startswith(prefix + ".") for f in _files(d))]
            if owners:
                return set(map(normalize, owners))
    return set(map(normalize, candidates))


def test_the_demo_modules_exist() -> None:
    demo = [p for p in source_files() if is_demo_module(p)]
    assert any(p.endswith(os.path.join("pipelines", "data.py")) for p in demo)
    assert len(demo) >= 2


def test_the_distribution_mapping_resolves_namespaces_and_split_packages() -> None:
    assert distributions_of("google.protobuf.message") == {"protobuf"}
    assert distributions_of("google_crc32c") == {"google-crc32c"}
    assert distributions_of("tfx.dsl.components.base.base_executor") == {"ml-pipelines-sdk"}
    assert distributions_of("tfx.components.pusher.executor") == {"tfx"}
    assert distributions_of("sklearn.datasets.load_digits") == {"scikit-learn"}


def test_every_imported_distribution_is_declared() -> None:
    where = declared()
    users: dict[str, dict[str, set[str]]] = {}  # distribution -> {"demo"/"code": the files importing it}
    unknown = []
    for path in source_files():
        kind = "demo" if is_demo_module(path) else "code"
        for module in imported_modules(path):
            distributions = distributions_of(module)
            if not distributions:
                unknown.append(f"{os.path.relpath(path, REPO)}: {module}")
                continue
            if distributions & set(where):  # several owners (namespace folders): one declared is enough
                distributions &= set(where)
            for distribution in distributions:
                users.setdefault(distribution, {}).setdefault(kind, set()).add(os.path.relpath(path, REPO))
    assert not unknown, f"imports that no installed distribution provides: {unknown}"

    problems = []
    for distribution, by_kind in sorted(users.items()):
        groups = where.get(distribution, set())
        if not groups:
            problems.append(f"{distribution} (imported by {sorted(set().union(*by_kind.values()))}) is not declared")
        elif "code" in by_kind and not groups - {DEMO_EXTRA}:
            problems.append(f"{distribution} is only in the {DEMO_EXTRA!r} extra, but {sorted(by_kind['code'])} "
                            "(not demo data writers) import it: declare it in dependencies")
        elif "code" not in by_kind and not groups & {"core", DEMO_EXTRA}:
            problems.append(f"{distribution}, imported only by the demo data writers {sorted(by_kind['demo'])}, "
                            f"must be in dependencies or the {DEMO_EXTRA!r} extra, not {sorted(groups)}")
    assert not problems, "pyproject.toml [project]:\n" + "\n".join(problems)


def test_the_demo_extra_holds_only_what_the_demo_data_writers_import() -> None:
    """Each distribution of the ``demo`` extra is imported by a demo data writer, and by no other module (which
    would need it in dependencies)."""
    where = declared()
    demo_only = {name for name, groups in where.items() if DEMO_EXTRA in groups and "core" not in groups}
    assert demo_only, f"pyproject.toml has no {DEMO_EXTRA!r} extra"
    demo_imports, code_imports = set(), set()
    for path in source_files():
        found = set().union(*map(distributions_of, imported_modules(path)))
        (demo_imports if is_demo_module(path) else code_imports).update(found)
    assert demo_only <= demo_imports, f"{sorted(demo_only - demo_imports)}: in the demo extra, imported by no demo module"
    assert not demo_only & code_imports
