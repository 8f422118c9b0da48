"""Front ends in several processes sharing the gRPC and REST ports, in front of one model pool.

Python serves one request at a time per process (the GIL), and a gRPC or HTTP request costs
more CPU in its transport than in the scheduler.  ``FrontendProcesses`` starts N spawned
processes that each bind the same gRPC and REST ports with SO_REUSEPORT (the kernel spreads
new connections over them) and run the ordinary front ends on a ``RemoteCore``; every
request crosses one pipe to this process, whose one ``ServingCore`` (scheduler, versions,
model workers) serves them all, so a model is loaded once however many front ends there are.
A front-end process holds no model and loads no TensorFlow runtime (only its protobuf
modules, ``serving.frontend_process``); it decodes nothing (the model process decodes against
the version it pins) and refuses low classes at its own door (event-loop lag, in-flight
limit).

This process reserves the ports first (a port another program holds fails here, with the
same message as in-process front ends), keeps them bound until it stops, and is the only
process that reacts to SIGINT/SIGTERM: front ends ignore them, drain on ``("drain",)`` and
stop on ``("stop", grace_s)`` after their in-flight requests are answered (or the grace ends).
Connections are balanced per connection, not per request: a client on one gRPC channel talks
to one front end.  A front end that exits is replaced (up to ``max_respawns`` times); its
clients' connections break and reconnect to the others meanwhile.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from serving.config import ServerConfig
from serving.core import ServingCore
from serving.frontend_link import CoreLink
from serving.frontend_process import frontend_main

_LOG = logging.getLogger(__name__)
START_TIMEOUT_S = 120.0  # a front end imports grpc and the TF Serving protos


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` (0: a free port) so that only SO_REUSEPORT sockets may share it.

    Args:
        host: the interface.
        port: the port, 0 for any free one.

    Returns:
        The bound (not listening) socket; close it to give the port back.

    Raises:
        OSError: the port is in use or not an address of this machine.
    """
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))  # no SO_REUSEPORT: fails while anyone else listens there
        port = probe.getsockname()[1]
    finally:
        probe.close()
    keeper = socket.socket(probe.family, socket.SOCK_STREAM)
    keeper.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    keeper.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        keeper.bind((host, port))
    except OSError:
        keeper.close()
        raise
    return keeper


class FrontendProcesses:
    """N front-end processes on shared ports, serving through this process's core.

    Args:
        core: the started serving core.
        config: the server settings (host, ports, ``frontend_processes``).
    """

    def __init__(self, core: ServingCore, config: ServerConfig, max_respawns: int = 10) -> None:
        self._core = core
        self._config = config
        self._context = multiprocessing.get_context("spawn")
        self._keepers: List[socket.socket] = []
        self._processes: List[Any] = []
        self.links: List[CoreLink] = []
        self._ports: Tuple[int, Optional[int]] = (0, None)
        self._lock = threading.Lock()
        self._stopping = False
        self._respawns_left = max_respawns
        self.respawns = 0

    def start(self) -> Tuple[int, Optional[int]]:
        """Reserve the ports, start the processes and wait until each one listens.

        Returns:
            ``(grpc port, REST port or None)``.

        Raises:
            OSError: a port cannot be bound, or a front end failed to start (all are stopped).
        """
        config = self._config
        try:
            grpc_port = self._reserve(config.grpc_port, "gRPC")
            rest_port = None if config.rest_port is None else self._reserve(config.rest_port, "REST")
            self._ports = (grpc_port, rest_port)
            for index in range(config.frontend_processes):
                process, link = self._spawn(index)
                self._processes.append(process)
                self.links.append(link)
            for link in self.links:
                self._await_start(link)
        except BaseException:
            self.stop(0.0)
            raise
        _LOG.info("%d front-end processes share gRPC %d and REST %s (pids %s)", len(self.links),
                  grpc_port, rest_port, self.pids())
        return grpc_port, rest_port

    def _reserve(self, port: int, what: str) -> int:
        try:
            keeper = reserve_port(self._config.host, port)
        except OSError as err:
            raise OSError(f"cannot bind the {what} port {self._config.host}:{port}: "
                          f"{err.strerror or err}") from None
        self._keepers.append(keeper)
        return keeper.getsockname()[1]

    def _spawn(self, index: int) -> Tuple[Any, CoreLink]:
        parent, child = self._context.Pipe()
        grpc_port, rest_port = self._ports
        process = self._context.Process(
            target=frontend_main, name=f"frontend-{index}", daemon=True,
            args=(child, pickle.dumps(self._config), grpc_port, rest_port,
                  logging.getLogger().level))
        process.start()
        child.close()
        return process, CoreLink(self._core, parent, index, on_exit=self._on_exit)

    def _on_exit(self, index: int) -> None:
        with self._lock:
            if self._stopping:
                return
            if self._respawns_left <= 0:
                _LOG.error("front-end process %d exited and is not replaced", index)
                return
            self._respawns_left -= 1
        threading.Thread(target=self._respawn, args=(index,), name=f"frontend-respawn-{index}",
                         daemon=True).start()

    def _respawn(self, index: int) -> None:
        """Replace a front end that exited (its clients reconnect to the others meanwhile)."""
        _LOG.error("front-end process %d exited; starting a replacement", index)
        with self._lock:
            old_process, old_link = self._processes[index], self.links[index]
        old_link.close()
        old_process.join(timeout=5.0)
        process, link = self._spawn(index)
        try:
            self._await_start(link)
        except OSError as err:  # logged; the port is still served by the other front ends
            _LOG.error("replacement front end %d did not start: %s", index, err)
            process.kill()
            link.close()
            return
        with self._lock:
            if not self._stopping:
                self._processes[index], self.links[index] = process, link
                self.respawns += 1
                return
        link.send_control(("stop", 0.0))  # stopped while starting: not kept
        process.join(timeout=10.0)
        link.close()

    def _await_start(self, link: CoreLink) -> None:
        if not link.control_event.wait(START_TIMEOUT_S):
            raise OSError(f"front-end process {link.index} did not start in {START_TIMEOUT_S:.0f}s")
        event = link.control[0]
        if event[0] != "started":
            detail = event[1] if len(event) > 1 else "it exited"
            raise OSError(f"front-end process {link.index} failed to start: {detail}")

    def pids(self) -> List[Optional[int]]:
        """Process ids of the front ends."""
        return [p.pid for p in self._processes]

    def request_counts(self) -> Dict[int, int]:
        """Predicts each front end has sent, by index."""
        return {link.index: link.requests for link in self.links}

    def drain(self) -> None:
        """Tell every front end to refuse new requests (readiness false)."""
        for link in self.links:
            link.send_control(("drain",))

    def stop(self, grace_s: float) -> None:
        """Stop the front ends (in-flight requests get ``grace_s``) and release the ports."""
        with self._lock:
            self._stopping = True
        for link in self.links:
            link.send_control(("stop", grace_s))
        end = time.monotonic() + grace_s + 10.0
        for process in self._processes:
            process.join(timeout=max(0.1, end - time.monotonic()))
            if process.is_alive():
                _LOG.warning("front-end process %s did not stop; killing it", process.pid)
                process.kill()
                process.join(timeout=5.0)
        for link in self.links:
            link.close()
        for keeper in self._keepers:
            keeper.close()
        self._processes, self.links, self._keepers = [], [], []
