"""Apache Flink for quantgate's pipelines, through Beam's portable runner: the job server (Beam's Flink runner with an
embedded Flink cluster, resolved from Maven Central into a cache outside the repository), a pool of Python SDK
workers, and the Beam args that point every Beam component of a run at them.

``make flink-job-server`` (or ``fetch_job_server``) resolves ``pipelines/flink_job_server/pom.xml`` with Maven and
checks every jar against ``jars.sha256``. ``flink_session`` starts the job server and the worker pool for one run
and stops both after it; ``flink_beam_args`` is what a run on a Flink cluster that already exists needs (a session
cluster's job server, workers from the quantgate image: see docs/guides/runners.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Package data (pyproject.toml), so an installed quantgate fetches the same pinned job server.
JOB_SERVER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flink_job_server")
JOB_SERVER_POM = os.path.join(JOB_SERVER_DIR, "pom.xml")
JOB_SERVER_SHA256 = os.path.join(JOB_SERVER_DIR, "jars.sha256")
# Beam's Flink runner 2.62.0 on Flink 1.19 (the pom says why not 2.60's own jar).
JOB_SERVER_VERSION = "beam-2.62.0-flink-1.19"
JOB_SERVER_MAIN = "org.apache.beam.runners.flink.FlinkJobServerDriver"
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "quantgate", f"flink-job-server-{JOB_SERVER_VERSION}")
# The worker pool and the job server take this long at most to accept connections (a cold JVM: about 10 s here).
STARTUP_TIMEOUT_S = 120.0


class FlinkError(RuntimeError):
    """The Flink job server or the worker pool could not be fetched or started: a one-line reason and the fix."""


def job_server_cache() -> str:
    """Where the job server's jars live: ``QUANTGATE_FLINK_JOB_SERVER`` or ``~/.cache/quantgate/...``."""
    return os.environ.get("QUANTGATE_FLINK_JOB_SERVER", DEFAULT_CACHE)


def _pinned_digests() -> dict[str, str]:
    with open(JOB_SERVER_SHA256) as f:
        return {name: digest for digest, name in (line.split() for line in f if line.strip())}


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_job_server(cache: str) -> list[str]:
    """The problems of the jars in ``cache`` against ``jars.sha256`` (missing, extra, changed); empty when it holds
    exactly the pinned jars."""
    pinned = _pinned_digests()
    present = {name for name in os.listdir(cache) if name.endswith(".jar")} if os.path.isdir(cache) else set()
    problems = [f"missing {name}" for name in sorted(set(pinned) - present)]
    problems += [f"not pinned {name}" for name in sorted(present - set(pinned))]
    problems += [f"sha256 differs: {name}" for name in sorted(present & set(pinned))
                 if _file_sha256(os.path.join(cache, name)) != pinned[name]]
    return problems


def fetch_job_server(cache: str | None = None) -> str:
    """Resolves the job server's jars with Maven into ``cache`` (once: a verified cache is reused) and returns it.

    The jars land in a sibling folder first and replace ``cache`` only once every sha256 matches, so an interrupted
    or tampered download never leaves a cache that looks complete.
    """
    cache = cache or job_server_cache()
    if not verify_job_server(cache):
        return cache
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FlinkError("Maven (mvn) is not on PATH: install it (apt-get install maven) and re-run "
                         "`make flink-job-server`")
    staging = cache + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    log.info("fetching the Flink job server (%s) into %s", JOB_SERVER_VERSION, cache)
    result = subprocess.run([mvn, "-q", "-B", "-f", JOB_SERVER_POM, "dependency:copy-dependencies",
                             f"-DoutputDirectory={staging}"], capture_output=True, text=True)
    if result.returncode != 0:
        raise FlinkError(f"mvn could not resolve {JOB_SERVER_POM} (exit {result.returncode}): "
                         f"{(result.stdout + result.stderr).strip().splitlines()[-1:]}")
    problems = verify_job_server(staging)
    if problems:
        raise FlinkError(f"the resolved job server does not match {JOB_SERVER_SHA256}: {problems[:5]}; if the pom "
                         "changed on purpose, regenerate the pins (cd the folder; sha256sum *.jar)")
    shutil.rmtree(cache, ignore_errors=True)
    os.replace(staging, cache)
    return cache


@dataclass(frozen=True)
class FlinkSettings:
    """A Flink run: ``parallelism`` (Flink's, per operator) and ``sdk_workers`` (Python SDK worker processes the
    pool may start; each runs bundles of any stage)."""

    parallelism: int = 2
    sdk_workers: int = 2

    def __post_init__(self) -> None:
        for name in ("parallelism", "sdk_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"FlinkSettings.{name} must be >= 1, got {getattr(self, name)}")


def flink_beam_args(job_endpoint: str, worker_pool: str, settings: FlinkSettings,
                    worker_image: str = "quantgate-local") -> list[str]:
    """Beam args for a run on the Flink job server at ``job_endpoint`` with Python workers from the pool at
    ``worker_pool`` (``EXTERNAL`` environment).

    ``--sdk_container_image`` names what the workers run (the quantgate image on a cluster; this environment for a
    local pool). Beam does not start it for an ``EXTERNAL`` environment, but TFX reads it as "the workers have the
    code already" and builds and stages no sdist of itself.
    """
    return ["--runner=PortableRunner", f"--job_endpoint={job_endpoint}", "--environment_type=EXTERNAL",
            f"--environment_config={worker_pool}", f"--parallelism={settings.parallelism}",
            f"--sdk_worker_parallelism={settings.sdk_workers}", f"--sdk_container_image={worker_image}"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, what: str, log_path: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FlinkError(f"the {what} exited with {process.returncode} before it listened on port {port}; "
                             f"see {log_path}")
        with contextlib.suppress(OSError), socket.create_connection(("localhost", port), timeout=1):
            return
        time.sleep(0.2)
    raise FlinkError(f"the {what} did not listen on port {port} within {STARTUP_TIMEOUT_S:.0f} s; see {log_path}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def flink_session(settings: FlinkSettings, log_dir: str, cache: str | None = None) -> Iterator[list[str]]:
    """Starts the job server (an embedded Flink cluster, ``--flink-master=[local]``) and a Python worker pool, yields
    the Beam args of a run on them, and stops both when the block ends (whatever way it ends).

    Their output goes to ``log_dir`` (``flink-job-server.log``, ``flink-worker-pool.log``). The job server needs
    the fetched jars (``fetch_job_server``) and ``java`` (17) on PATH.
    """
    cache = cache or job_server_cache()
    problems = verify_job_server(cache)
    if problems:
        raise FlinkError(f"the Flink job server in {cache} is not fetched or not the pinned one ({problems[0]}, ...):"
                         " run `make flink-job-server`")
    java = shutil.which("java")
    if java is None:
        raise FlinkError("java is not on PATH: the Flink job server needs a Java 17 runtime")
    os.makedirs(log_dir, exist_ok=True)
    job_port, artifact_port, expansion_port, pool_port = (_free_port() for _ in range(4))
    server_log = os.path.join(log_dir, "flink-job-server.log")
    pool_log = os.path.join(log_dir, "flink-worker-pool.log")
    with open(server_log, "ab") as server_out, open(pool_log, "ab") as pool_out:
        server = subprocess.Popen(
            [java, "-Dorg.slf4j.simpleLogger.defaultLogLevel=info", "-cp", os.path.join(cache, "*"), JOB_SERVER_MAIN,
             "--flink-master=[local]", f"--job-port={job_port}", f"--artifact-port={artifact_port}",
             f"--expansion-port={expansion_port}"],
            stdout=server_out, stderr=subprocess.STDOUT)
        pool = None
        try:
            # The workers are this interpreter's environment: the same quantgate, TFX and Beam as the launcher. The
            # pool starts each worker as `python -c ...`, found on PATH: this interpreter's folder goes first.
            path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
            pool = subprocess.Popen(
                [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={pool_port}"],
                stdout=pool_out, stderr=subprocess.STDOUT,
                env={**os.environ, "PATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"})
            _wait_for_port(job_port, server, "Flink job server", server_log)
            _wait_for_port(pool_port, pool, "Python worker pool", pool_log)
            log.info("Flink job server on localhost:%d, Python worker pool on localhost:%d (parallelism %d)",
                     job_port, pool_port, settings.parallelism)
            yield flink_beam_args(f"localhost:{job_port}", f"localhost:{pool_port}", settings)
        finally:
            if pool is not None:
                _stop(pool)
            _stop(server)
