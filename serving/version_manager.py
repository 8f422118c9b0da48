"""Version manager: polls base paths, loads and warms up new versions, swaps, releases old ones.

One manager thread polls every model's base path (``poll_interval_s``), loads the versions
its policy wants (newest first), replays their warmup requests, and only then makes them
visible: requests resolve a version under a lock, so the swap is atomic.  A request pins its
version (``acquire`` -> ``ServableHandle``) until it is answered; a version leaving the policy
is unloaded only once another wanted version is available and its last request has finished.
A new version is loaded only once its files are stable: the fingerprint of every file
(``serving.version_scan``) must be the same on two polls in a row, so a version whose data
files are still being written is not loaded yet.  A version that fails to load is reported
(status END with the error, a log line, a metric) and retried once any of its files changes;
the current version keeps serving.  A version with an entry resolving outside the base path
is refused (END, FAILED_PRECONDITION) and never loaded.  The records of versions that are gone
from disk and no longer loaded are dropped, so the manager holds nothing per past version.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import grpc
from tensorflow.core.protobuf import meta_graph_pb2

from serving.config import ModelConfig
from serving.errors import ServingError, invalid_argument, not_found
from serving.metrics import ServingMetrics
from serving.signatures import (LoadError, SignatureSpec, check_contract, read_signature_defs,
                                servable_specs)
from serving.version_scan import Fingerprint, VersionScanner, aspired_versions, inside
from serving.workers import WorkerPool

_LOG = logging.getLogger(__name__)

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclasses.dataclass
class VersionRecord:
    """What the manager knows of one version (the fields of TF Serving's ModelVersionStatus)."""

    version: int
    path: str
    state: str = START
    error_code: grpc.StatusCode = grpc.StatusCode.OK
    error_message: str = ""
    defs: Dict[str, meta_graph_pb2.SignatureDef] = dataclasses.field(default_factory=dict)
    specs: Dict[str, SignatureSpec] = dataclasses.field(default_factory=dict)
    refs: int = 0
    fingerprint: Fingerprint = ()


class ServableHandle:
    """A pinned version: it stays loaded until ``release`` (idempotent)."""

    def __init__(self, manager: "VersionManager", model: str, record: VersionRecord) -> None:
        self.model = model
        self.version = record.version
        self.specs: Mapping[str, SignatureSpec] = record.specs
        self.defs: Mapping[str, meta_graph_pb2.SignatureDef] = record.defs
        self._manager = manager
        self._record = record
        self._released = False

    def release(self) -> None:
        """Unpin the version."""
        if not self._released:
            self._released = True
            self._manager._release(self._record)


# (servable id, path, signature specs) -> None; raises LoadError.  Replays warmup requests.
WarmupFn = Callable[[Tuple[str, int], str, Mapping[str, SignatureSpec]], None]


class VersionManager:
    """Keeps the wanted versions of each model loaded in a worker pool.

    Args:
        models: the configured models.
        pool: the model workers that load versions.
        metrics: load counts, failures, available versions.
        poll_interval_s: seconds between scans of the base paths.
        warmup: replays a version's warmup requests (None: no warmup).
    """

    def __init__(self, models: Sequence[ModelConfig], pool: WorkerPool, metrics: ServingMetrics,
                 poll_interval_s: float, warmup: Optional[WarmupFn] = None) -> None:
        self._configs = {m.name: m for m in models}
        self._pool = pool
        self._metrics = metrics
        self._interval = poll_interval_s
        self._warmup = warmup
        self._cond = threading.Condition()
        self._records: Dict[str, Dict[int, VersionRecord]] = {m.name: {} for m in models}
        self._scanners = {m.name: VersionScanner(m.base_path) for m in models}
        # fingerprints seen on the last poll of versions waiting for their files to settle
        self._settling: Dict[str, Dict[int, Fingerprint]] = {m.name: {} for m in models}
        self._labels: Dict[str, Dict[str, int]] = {m.name: m.labels for m in models}
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._unloaders: List[threading.Thread] = []

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Load what is on disk now (blocking), then keep polling in the background.

        New versions need the same fingerprint on two polls, so a second poll follows the
        first after a short settling pause when any version is waiting.
        """
        self.poll_once()
        if any(self._settling.values()) and not self._stop.wait(min(self._interval, 0.5)):
            self.poll_once()
        self._thread = threading.Thread(target=self._loop, name="version-manager", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop polling and wait (bounded) for pending unloads."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        for thread in list(self._unloaders):
            thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll_once()
            except Exception:  # the poller must survive anything a file system does
                _LOG.exception("polling model base paths failed")
                self._metrics.errors.inc("version_manager")

    # ---- polling, loading, unloading --------------------------------------------------------
    def poll_once(self) -> None:
        """Scan every base path once, load wanted versions and release unwanted ones."""
        with self._poll_lock:
            for config in self._configs.values():
                if self._stop.is_set():
                    return
                self._reconcile(config)

    def _reconcile(self, config: ModelConfig) -> None:
        scanner = self._scanners[config.name]
        scanner.forget_missing()
        on_disk = scanner.list_versions()
        records = self._records[config.name]
        settling = self._settling[config.name]
        for version in [v for v in settling if v not in on_disk]:
            del settling[version]
        with self._cond:
            for version in [v for v, r in records.items()
                            if v not in on_disk and r.state == END and r.refs == 0]:
                del records[version]  # gone from disk and released: nothing kept per version
        candidates = []
        fingerprints: Dict[int, Fingerprint] = {}
        for version, path in on_disk.items():
            record = records.get(version)
            if record is not None and record.state != END:
                candidates.append(version)  # loading, serving or leaving: nothing to check
                continue
            files = scanner.scan(path)
            if files.outside:
                settling.pop(version, None)
                self._refuse(config.name, version, path, files.fingerprint,
                             f"{files.outside[0]} resolves outside the base path "
                             f"{config.base_path}; the version is not served")
                continue
            if record is not None and record.error_code != grpc.StatusCode.OK \
                    and record.fingerprint == files.fingerprint:
                continue  # failed before and unchanged since
            loaded_before = record is not None and record.error_code == grpc.StatusCode.OK \
                and record.fingerprint == files.fingerprint
            if not loaded_before and settling.get(version) != files.fingerprint:
                settling[version] = files.fingerprint  # new or still changing: wait a poll
                continue
            settling.pop(version, None)
            fingerprints[version] = files.fingerprint
            candidates.append(version)
        wanted = aspired_versions(config.version_policy, candidates)
        for version in sorted(wanted, reverse=True):
            record = records.get(version)
            if (record is None or record.state == END) and version in fingerprints:
                if self._stop.is_set():
                    return
                self._load(config, version, on_disk[version], fingerprints[version])
        with self._cond:
            available = {v for v, r in records.items() if r.state == AVAILABLE}
            if not available & wanted:
                return  # availability first: keep whatever serves until a wanted one does
            leaving = [records[v] for v in sorted(available - wanted)]
            for record in leaving:
                record.state = UNLOADING
            self._metrics.available.set(len(available) - len(leaving), config.name)
        for record in leaving:
            _LOG.info("model %s: unloading version %d", config.name, record.version)
            thread = threading.Thread(target=self._unload, args=(config.name, record),
                                      name=f"unload-{config.name}-{record.version}", daemon=True)
            self._unloaders = [t for t in self._unloaders if t.is_alive()] + [thread]
            thread.start()

    def _refuse(self, model: str, version: int, path: str, fingerprint: Fingerprint,
                message: str) -> None:
        """Record a version that must not be loaded (END, FAILED_PRECONDITION); logged once."""
        with self._cond:
            record = self._records[model].get(version)
            if record is not None and record.error_message == message \
                    and record.fingerprint == fingerprint:
                return
            if record is not None and record.state != END:
                return  # loaded before its files changed: the unload path handles it
            self._records[model][version] = VersionRecord(
                version=version, path=path, state=END,
                error_code=grpc.StatusCode.FAILED_PRECONDITION, error_message=message,
                fingerprint=fingerprint)
        self._metrics.load_failures.inc(model)

    def _load(self, config: ModelConfig, version: int, path: str,
              fingerprint: Fingerprint) -> None:
        record = VersionRecord(version=version, path=path, state=LOADING,
                               fingerprint=fingerprint)
        with self._cond:
            self._records[config.name][version] = record
        servable = (config.name, version)
        started = time.monotonic()
        loaded = False
        try:
            if not inside(config.base_path, path):
                raise LoadError(f"{path} is outside the base path {config.base_path}")
            record.defs = read_signature_defs(path)
            record.specs = servable_specs(record.defs)
            if config.check_contract:
                check_contract(record.specs)
            self._pool.load(servable, path)
            loaded = True
            if self._warmup is not None:
                self._warmup(servable, path, record.specs)
        except Exception as err:  # any failure is this version's load error: logged, counted
            if isinstance(err, ServingError):
                message = err.message
            elif isinstance(err, LoadError):
                message = str(err)
            else:
                _LOG.exception("model %s: unexpected error loading version %d", config.name, version)
                message = f"{type(err).__name__}: {err}"
            if loaded:
                self._pool.unload(servable)
            with self._cond:
                record.state = END
                record.error_code = grpc.StatusCode.UNKNOWN
                record.error_message = message
            self._metrics.load_failures.inc(config.name)
            _LOG.error("model %s: version %d failed to load and is not served: %s",
                       config.name, version, message)
            return
        with self._cond:
            record.state = AVAILABLE
            count = sum(1 for r in self._records[config.name].values() if r.state == AVAILABLE)
        self._metrics.loads.inc(config.name)
        self._metrics.available.set(count, config.name)
        _LOG.info("model %s: version %d is available (loaded in %.2fs)", config.name, version,
                  time.monotonic() - started)

    def _unload(self, model: str, record: VersionRecord) -> None:
        with self._cond:
            while record.refs > 0 and not self._stop.is_set():
                self._cond.wait(timeout=0.1)
        self._pool.unload((model, record.version))
        with self._cond:
            record.state = END
        _LOG.info("model %s: version %d released", model, record.version)

    def _release(self, record: VersionRecord) -> None:
        with self._cond:
            record.refs -= 1
            if record.refs == 0:
                self._cond.notify_all()

    # ---- requests ---------------------------------------------------------------------------
    def acquire(self, model: str, version: Optional[int] = None,
                label: Optional[str] = None) -> ServableHandle:
        """Pin the version a request is served by.

        Args:
            model: the model name.
            version: a specific version, or None.
            label: a version label, or None (ignored when ``version`` is given).

        Returns:
            A handle; call ``release`` once the request is answered.

        Raises:
            ServingError: NOT_FOUND (unknown model or version not available), INVALID_ARGUMENT
                (unknown label), with TF Serving's messages.
        """
        with self._cond:
            records = self._records.get(model)
            if records is None:
                raise not_found(f"Servable not found for request: Latest({model})")
            if version is None and label:
                version = self._labels[model].get(label)
                if version is None:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
            if version is None:
                available = [r for r in records.values() if r.state == AVAILABLE]
                if not available:
                    raise not_found(f"Servable not found for request: Latest({model})")
                record = max(available, key=lambda r: r.version)
            else:
                record = records.get(version)
                if record is None or record.state != AVAILABLE:
                    raise not_found(f"Servable not found for request: Specific({model}, {version})")
            record.refs += 1
        return ServableHandle(self, model, record)

    def set_labels(self, model: str, labels: Mapping[str, int]) -> None:
        """Replace the version labels of ``model`` (labels may only name available versions).

        Raises:
            ServingError: NOT_FOUND for an unknown model, FAILED_PRECONDITION when a label
                names a version that is not available.
        """
        with self._cond:
            records = self._records.get(model)
            if records is None:
                raise not_found(f"unknown model '{model}'")
            for label, version in labels.items():
                record = records.get(version)
                if record is None or record.state != AVAILABLE:
                    raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                                       f"label '{label}' names version {version} of '{model}', "
                                       "which is not available")
            self._labels[model] = dict(labels)

    def status(self, model: str, version: Optional[int] = None) -> List[VersionRecord]:
        """Copies of the version records of ``model`` (newest first).

        Raises:
            ServingError: NOT_FOUND for an unknown model, a model with no versions yet, or an
                unknown version.
        """
        with self._cond:
            records = self._records.get(model)
            if not records:
                raise not_found(f"Could not find any versions of model {model}")
            if version is not None:
                if version not in records:
                    raise not_found(f"Could not find version {version} of model {model}")
                chosen = [records[version]]
            else:
                chosen = sorted(records.values(), key=lambda r: r.version, reverse=True)
            return [dataclasses.replace(r) for r in chosen]

    def ready(self) -> bool:
        """Whether every model has at least one available version."""
        with self._cond:
            return all(any(r.state == AVAILABLE for r in records.values())
                       for records in self._records.values())

    def model_names(self) -> List[str]:
        """The configured model names."""
        return list(self._configs)
