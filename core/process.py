"""Process set-up shared by every entry point: Keras 2 for TF-MOT/TFRS, quiet library output.

`set_up_process` must run before TensorFlow is first imported (it only sets environment
variables, which every child process, Beam workers included, inherits). `child_env` is the
environment for subprocesses started explicitly. `route_library_output` sends what libraries
print (TensorFlow's C++ log, absl, Beam, Python warnings) to a log file, keeping a handle on the
terminal for the command's own messages.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Dict, Mapping, Optional, TextIO

PROCESS_ENV = {
    "TF_USE_LEGACY_KERAS": "1",  # Keras 2 (tf-keras): TF-MOT and TFRS need it
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow's C++ INFO and WARNING lines off
}


def set_up_process() -> None:
    """Sets `PROCESS_ENV` in this process (values already set by the user are kept)."""
    for key, value in PROCESS_ENV.items():
        os.environ.setdefault(key, value)


def child_env(base: Optional[Mapping[str, str]] = None, **extra: str) -> Dict[str, str]:
    """The environment for a subprocess: `base` (default: this process's) + `PROCESS_ENV` + `extra`."""
    env = dict(os.environ if base is None else base)
    for key, value in PROCESS_ENV.items():
        env.setdefault(key, value)
    env.update(extra)
    return env


def route_library_output(log_path: str) -> TextIO:
    """Sends every library's output to `log_path`; returns a stream on the original terminal.

    File descriptor 2 (TensorFlow's and gRPC's C++ logs), `sys.stderr`, Python logging (absl,
    TFX, Beam) and warnings all go to the log file (appended). The command's own progress goes
    to stdout as before; its error messages must be written to the returned stream.

    Args:
      log_path: the log file (its folder is created).

    Returns:
      A text stream on the terminal's standard error.
    """
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setStream(sys.stderr)
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    return terminal
