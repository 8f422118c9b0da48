"""REST hardening against a real server: JSON content types only, a header deadline, and the
``serve`` command's start-up failures (one line, a distinct exit code) and ``--help``."""

from __future__ import annotations

import argparse
import http.client as http_client
import json
import socket
import time

import pytest

from serving.cli import EXIT_BIND, EXIT_CODES, main, register
from serving.config import LimitsConfig
from tests.serving.conftest import MODEL, make_config

BODY = json.dumps({"instances": ["u1"]}).encode()


def _post(port: int, headers: dict) -> int:
    connection = http_client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", f"/v1/models/{MODEL}:predict", body=BODY, headers=headers)
        response = connection.getresponse()
        payload = json.loads(response.read())
        assert response.status == 200 or set(payload) == {"error"}
        return response.status
    finally:
        connection.close()


@pytest.mark.parametrize("content_type, status", [
    (None, 200),  # no header at all (http.client sends none)
    ("application/json", 200),
    ("application/json; charset=utf-8", 200),
    ("application/vnd.api+json", 200),
    ("application/x-www-form-urlencoded", 200),  # `curl -d` without -H, as TF Serving's docs
    ("text/plain", 415),
    ("application/xml", 415),
    ("multipart/form-data; boundary=x", 415),
    ("application/octet-stream", 415),
])
def test_only_json_content_types_are_accepted(base_path, start_server, content_type,
                                              status) -> None:
    server = start_server(make_config(base_path))
    headers = {} if content_type is None else {"Content-Type": content_type}
    assert _post(server.ports.rest, headers) == status


def test_a_client_trickling_headers_is_disconnected(base_path, start_server) -> None:
    limits = LimitsConfig(max_body_bytes=64 * 1024, header_timeout_s=0.5)
    server = start_server(make_config(base_path, limits=limits))
    port = server.ports.rest
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    started = time.monotonic()
    closed_after = None
    try:
        sock.sendall(f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\n".encode())
        for index in range(40):  # one header line every 0.1 s: never idle, never done
            time.sleep(0.1)
            try:
                sock.sendall(f"X-Trickle-{index}: a\r\n".encode())
            except OSError:
                closed_after = time.monotonic() - started
                break
            sock.setblocking(False)
            try:
                if sock.recv(1) == b"":
                    closed_after = time.monotonic() - started
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed_after = time.monotonic() - started
                break
            finally:
                sock.setblocking(True)
    finally:
        sock.close()
    assert closed_after is not None and closed_after < 3.0, closed_after
    assert _post(port, {"Content-Type": "application/json"}) == 200  # others are unaffected


def test_serve_help_shows_the_default_limits_and_exit_codes() -> None:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command")
    register(subparsers)
    text = " ".join(subparsers.choices["serve"].format_help().split())
    limits = LimitsConfig()
    for flag, default in [("--max-body-bytes", limits.max_body_bytes),
                          ("--max-json-depth", limits.max_json_depth),
                          ("--max-tensor-elements", limits.max_tensor_elements),
                          ("--header-timeout-s", limits.header_timeout_s),
                          ("--idle-timeout-s", limits.idle_timeout_s),
                          ("--rest-api-timeout-ms", 30000), ("--drain-grace-s", 10.0)]:
        section = text[text.rindex(flag + " "):]  # the option list, not the usage line
        assert f"(default: {default})" in section[:400], flag
    for code in EXIT_CODES:
        assert f" {code} " in text[text.index("exit codes:"):]


@pytest.mark.parametrize("which", ["--grpc-port", "--rest-port"])
def test_a_port_in_use_is_one_line_and_its_own_exit_code(base_path, capsys, which) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    ports = {"--grpc-port": "0", "--rest-port": "0", which: str(port)}
    try:
        code = main(["serve", "--model-base-path", base_path, "--poll-interval-s", "0.1",
                     *[part for flag, value in ports.items() for part in (flag, value)]])
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert code == EXIT_BIND
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"127.0.0.1:{port}" in err and ("gRPC" if which == "--grpc-port" else "REST") in err
