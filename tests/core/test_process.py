"""Process set-up: the environment every entry point needs, library output routed to a log."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from core.process import PROCESS_ENV, child_env
from tests.conftest import REPO_ROOT


def test_child_env_keeps_user_values_and_adds_the_rest():
    env = child_env({"TF_CPP_MIN_LOG_LEVEL": "0", "PATH": "/bin"}, EXTRA="1")
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "0" and env["PATH"] == "/bin" and env["EXTRA"] == "1"
    assert env["TF_USE_LEGACY_KERAS"] == PROCESS_ENV["TF_USE_LEGACY_KERAS"]


def test_library_output_goes_to_the_log_and_the_command_keeps_the_terminal(tmp_path):
    log = tmp_path / "logs" / "run.log"
    script = textwrap.dedent(f"""
        import logging, os, sys, warnings
        from core.process import route_library_output
        terminal = route_library_output({str(log)!r})
        os.write(2, b"C++ level noise\\n")
        logging.getLogger("absl").warning("library warning")
        warnings.warn("a FutureWarning of some library", FutureWarning)
        print("python stderr noise", file=sys.stderr)
        print("stage progress")
        print("recsys run: error: the one line", file=terminal)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                            env=child_env(PYTHONPATH=str(REPO_ROOT)), check=True, timeout=60)
    assert result.stdout == "stage progress\n"
    assert result.stderr == "recsys run: error: the one line\n"
    logged = log.read_text()
    for noise in ("C++ level noise", "library warning", "a FutureWarning of some library", "python stderr noise"):
        assert noise in logged
