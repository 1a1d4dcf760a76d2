"""Opening an ML Metadata store for lineage questions: a SQLite file, or MySQL / MariaDB (as Kubeflow's)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2


class LineageError(Exception):
    """A lineage question MLMD cannot answer (bad id, empty store, unreachable database): a one-line message."""


def open_sqlite_store(path: str, *, read_only: bool = False) -> metadata_store.MetadataStore:
    """Opens an existing SQLite MLMD file (read/write unless ``read_only``); refuses a missing file rather than
    creating an empty store."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no ML Metadata store at {path}: pass the metadata.sqlite of a pipeline run")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    modes = metadata_store_pb2.SqliteMetadataSourceConfig
    config.sqlite.connection_mode = modes.READONLY if read_only else modes.READWRITE
    return metadata_store.MetadataStore(config)


@dataclass(frozen=True)
class MySQLConfig:
    """Where a MySQL / MariaDB MLMD store lives (what Kubeflow's MLMD uses)."""

    host: str
    database: str
    user: str
    port: int = 3306
    password: str = field(default="", repr=False)  # kept out of reprs, hence out of logs and tracebacks

    def connection_config(self) -> metadata_store_pb2.ConnectionConfig:
        config = metadata_store_pb2.ConnectionConfig()
        config.mysql.host, config.mysql.port = self.host, self.port
        config.mysql.database, config.mysql.user = self.database, self.user
        if self.password:
            config.mysql.password = self.password
        return config


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    # MLMD's C++ layer logs connection failures straight to file descriptor 2 (glog), around the Python
    # exception we turn into a one-line message; silence the descriptor while connecting.
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_mysql_store(mysql: MySQLConfig) -> metadata_store.MetadataStore:
    """Connects to a MySQL / MariaDB MLMD store; an unreachable server is a ``LineageError``."""
    try:
        with _quiet_native_stderr():
            return metadata_store.MetadataStore(mysql.connection_config())
    except RuntimeError as error:
        detail = str(error).split(":")[0].strip() or "connection failed"  # the rest is empty errno fields
        raise LineageError(f"cannot reach MLMD on MySQL {mysql.user}@{mysql.host}:{mysql.port}/{mysql.database} "
                           f"({detail}); check that the server runs and the database and user exist") from error


