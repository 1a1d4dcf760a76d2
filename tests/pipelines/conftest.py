"""A real MariaDB server for the MLMD-on-MySQL tests (the store Kubeflow uses).

The init system is not available here, so the server is started by hand: its own datadir, a free TCP port on
127.0.0.1, a socket in a temp dir, ``--user=root`` (the tests run as root). It is stopped by its pid at the end.
Debian's ``mariadb-server`` is installed with apt-get when ``mariadbd`` is missing; without apt the tests skip.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ..conftest import DemoRun

log = logging.getLogger(__name__)

MLMD_DATABASE = "mlmd"
MLMD_USER = "mlmd"
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class MariaDB:
    """A running MariaDB server that MLMD can reach over TCP as ``user`` (no password) on ``database``."""

    host: str
    port: int
    database: str
    user: str
    pid: int


def _mariadbd() -> str | None:
    for name in ("mariadbd", "mysqld"):
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
        if found:
            return found
    return None


def install_mariadb_server() -> str:
    """Returns the path of ``mariadbd``, installing Debian's ``mariadb-server`` with apt-get when it is missing."""
    found = _mariadbd()
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("MariaDB tests need mariadbd or apt-get to install mariadb-server; neither is available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    started = time.monotonic()
    log.info("mariadbd not found: installing mariadb-server with apt-get")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "mariadb-server"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    log.info("installed mariadb-server in %.0f s", time.monotonic() - started)
    found = _mariadbd()
    if found is None:
        raise RuntimeError("apt-get installed mariadb-server but no mariadbd is on the PATH or in /usr/sbin")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _client(socket_path: str, sql: str) -> subprocess.CompletedProcess:
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        raise RuntimeError("the mariadb client is missing (it comes with mariadb-server's dependencies)")
    return subprocess.run([client, "--no-defaults", f"--socket={socket_path}", "-uroot", "-e", sql],
                          capture_output=True, text=True)


def start_mariadb(workdir: str, mariadbd: str) -> tuple[MariaDB, subprocess.Popen]:
    """Initializes a datadir under ``workdir``, starts ``mariadbd`` on a free port and creates the MLMD database."""
    datadir, socket_path = os.path.join(workdir, "data"), os.path.join(workdir, "mysqld.sock")
    install_db = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if install_db is None:
        raise RuntimeError("mariadb-install-db is missing: reinstall mariadb-server")
    subprocess.run([install_db, "--no-defaults", f"--datadir={datadir}", "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen(
        [mariadbd, "--no-defaults", f"--datadir={datadir}", f"--port={port}", "--bind-address=127.0.0.1",
         f"--socket={socket_path}", f"--pid-file={os.path.join(workdir, 'mariadbd.pid')}", "--user=root",
         f"--log-error={os.path.join(workdir, 'error.log')}", "--skip-name-resolve"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while _client(socket_path, "SELECT 1").returncode != 0:
        if server.poll() is not None or time.monotonic() > deadline:
            stop_mariadb(server)
            raise RuntimeError(f"mariadbd did not come up on port {port}; see {workdir}/error.log")
        time.sleep(0.5)
    setup = (f"CREATE DATABASE {MLMD_DATABASE}; CREATE USER '{MLMD_USER}'@'127.0.0.1'; "
             f"GRANT ALL ON {MLMD_DATABASE}.* TO '{MLMD_USER}'@'127.0.0.1';")
    created = _client(socket_path, setup)
    if created.returncode != 0:
        stop_mariadb(server)
        raise RuntimeError(f"could not create the MLMD database: {created.stderr.strip()}")
    log.info("mariadbd pid %d listening on 127.0.0.1:%d", server.pid, port)
    return MariaDB("127.0.0.1", port, MLMD_DATABASE, MLMD_USER, server.pid), server


def stop_mariadb(server: subprocess.Popen) -> None:
    """Stops the server by its pid: SIGTERM (a clean shutdown), SIGKILL if it hangs."""
    server.terminate()
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """A MariaDB server for this test session, installed if needed, stopped at the end."""
    mariadbd = install_mariadb_server()
    info, server = start_mariadb(str(tmp_path_factory.mktemp("mariadb")), mariadbd)
    try:
        yield info
    finally:
        stop_mariadb(server)


def local_run(tmp_path_factory: pytest.TempPathFactory, pipeline: str, **pipeline_kwargs: object) -> DemoRun:
    """Runs the ``pipeline`` kind locally in a fresh home and opens its store (read it as the demo run is read)."""
    from quantgate.pipelines import lineage
    from quantgate.pipelines.kinds import pipeline_kind
    from quantgate.pipelines.local_runner import LocalRunConfig, LocalRunPaths, run_local

    paths = LocalRunPaths(home=str(tmp_path_factory.mktemp(pipeline)), pipeline_name=pipeline_kind(pipeline).pipeline_name)
    run_local(LocalRunConfig(paths=paths, pipeline=pipeline, pipeline_kwargs=pipeline_kwargs))
    return DemoRun(paths=paths, store=lineage.open_sqlite_store(paths.metadata_path))
