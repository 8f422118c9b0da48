"""Stage progress of a running pipeline, read from ML Metadata.

A background thread polls the run's MLMD store (its own read-only use of the SQLite file) and
prints one line when a component's execution starts and one when it ends (completed, cached or
failed), with its duration. It reads what the orchestrator records, so it needs no hooks in TFX
and keeps working whatever the components do to Python logging.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Callable, Dict, Optional, Set

from ml_metadata import errors as mlmd_errors
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

_STATE = metadata_store_pb2.Execution.State
_ENDED = {_STATE.COMPLETE: "done", _STATE.CACHED: "cached", _STATE.FAILED: "FAILED", _STATE.CANCELED: "canceled"}


class StageProgress:
    """Prints `[pipeline i/N] node ...` lines for the executions of one pipeline run."""

    def __init__(
        self,
        metadata_path: str,
        pipeline_name: str,
        total: int,
        interval_s: float = 1.0,
        emit: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self._path = metadata_path
        self._prefix = f"{pipeline_name}."
        self._total = total
        self._interval = interval_s
        self._emit = emit
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._known: Set[int] = set()
        self._started: Dict[int, float] = {}
        self._ended: Set[int] = set()
        self._done = 0
        self._store: Optional[metadata_store.MetadataStore] = None

    def __enter__(self) -> "StageProgress":
        self._known = {execution_id for execution_id, _, _ in self._executions()}
        self._ended = set(self._known)
        self._thread = threading.Thread(target=self._loop, name="stage-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._poll()

    def _connect(self) -> metadata_store.MetadataStore:
        if self._store is None:
            config = metadata_store_pb2.ConnectionConfig()
            config.sqlite.filename_uri = self._path
            config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
            self._store = metadata_store.MetadataStore(config)
        return self._store

    def _executions(self):
        """(execution id, node id, state) of every execution of this pipeline's nodes."""
        store = self._connect()
        rows = []
        for context in store.get_contexts_by_type("node"):
            if context.name.startswith(self._prefix):
                node = context.name[len(self._prefix):]
                rows += [(e.id, node, e.last_known_state) for e in store.get_executions_by_context(context.id)]
        return rows

    def _poll(self) -> None:
        try:
            rows = self._executions()
        except (mlmd_errors.StatusError, sqlite3.Error) as err:
            # The orchestrator holds the SQLite write lock for a moment: read again next tick.
            if "locked" not in str(err).lower() and "busy" not in str(err).lower():
                raise
            return
        for execution_id, node, state in sorted(rows):
            if execution_id not in self._known:
                self._known.add(execution_id)
                self._started[execution_id] = time.time()
                if state not in _ENDED:
                    self._emit(f"[pipeline {self._done + 1:2d}/{self._total}] {node} ...")
            if state in _ENDED and execution_id not in self._ended:
                self._ended.add(execution_id)
                self._done += 1
                took = time.time() - self._started.get(execution_id, time.time())
                self._emit(f"[pipeline {self._done:2d}/{self._total}] {node} {_ENDED[state]} ({took:.1f}s)")

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._poll()

