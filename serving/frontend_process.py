"""The entry point of a front-end process (``serving.frontends``), and what keeps it small.

A front end needs TensorFlow's and TF Serving's protobuf modules, which live inside the
``tensorflow`` package; importing them the ordinary way runs ``tensorflow/__init__`` and loads
the whole TensorFlow runtime (hundreds of MB and seconds of start-up per process) that a front
end never calls.  ``tensorflow_protos_only`` registers a bare ``tensorflow`` package whose
path is the real one, so ``tensorflow.core.*`` proto modules (whose ``__init__`` files are
empty) import without the runtime.  This module imports nothing but the standard library at
the top, so that the spawned process can install that package before anything else loads.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import signal
import sys
import types
from typing import Any, Optional


def tensorflow_protos_only() -> bool:
    """Make ``tensorflow.core`` proto modules importable without TensorFlow's runtime.

    Returns:
        False when ``tensorflow`` was already imported (nothing to do), else True.

    Raises:
        ImportError: TensorFlow is not installed.
    """
    if "tensorflow" in sys.modules:
        return False
    spec = importlib.util.find_spec("tensorflow")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the tensorflow package is not installed")
    package = types.ModuleType("tensorflow", "TensorFlow's protobuf modules only (front end)")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["tensorflow"] = package
    return True


def frontend_main(conn: Any, config_bytes: bytes, grpc_port: int, rest_port: Optional[int],
                  log_level: int) -> None:
    """Serve gRPC and REST on the shared ports until told to stop or the model process ends.

    Args:
        conn: the pipe to the model process.
        config_bytes: the pickled ``ServerConfig`` (unpickled after the protos-only package
            is in place).
        grpc_port: the reserved gRPC port.
        rest_port: the reserved REST port, or None.
        log_level: the model process's logging level.
    """
    tensorflow_protos_only()
    from core.process import set_up_process

    set_up_process()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the model process coordinates shutdown
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from serving.frontend_link import RemoteCore
    from serving.grpc_service import GrpcFrontend
    from serving.rest_service import RestFrontend

    config = pickle.loads(config_bytes)
    core = RemoteCore(config, conn)
    grpc_frontend = GrpcFrontend(core, config.host, grpc_port, config.limits.max_body_bytes,
                                 reuse_port=True)  # type: ignore[arg-type]
    rest_frontend = None
    try:
        grpc_frontend.start()
        if rest_port is not None:
            rest_frontend = RestFrontend(core, config.host, rest_port,  # type: ignore[arg-type]
                                         reuse_port=True)
            rest_frontend.start()
    except (OSError, RuntimeError) as err:
        core.notify("failed", f"{type(err).__name__}: {err}")
        grpc_frontend.stop(0.0)
        return
    core.notify("started", os.getpid())
    core.stop_requested.wait()
    grpc_frontend.stop(core.stop_grace_s)
    if rest_frontend is not None:
        rest_frontend.stop()
    conn.close()
