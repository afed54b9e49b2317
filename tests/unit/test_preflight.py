"""An unreachable MLflow, Prefect or Ray server is a clear error within seconds, not a hang."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from flows.preflight import ServiceUnreachableError, check_services


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLFLOW_TRACKING_URI", "http://127.0.0.1:{port}"),
        ("PREFECT_API_URL", "http://127.0.0.1:{port}/api"),
        ("RAY_ADDRESS", "127.0.0.1:{port}"),
    ],
)
def test_closed_port_fails_fast_naming_the_variable_and_url(variable, value):
    url = value.format(port=_closed_port())
    start = time.monotonic()
    with pytest.raises(ServiceUnreachableError) as err:
        check_services({variable: url}, timeout=2.0)
    assert time.monotonic() - start < 10
    assert variable in str(err.value) and url in str(err.value)


def test_unset_or_local_settings_are_not_checked():
    assert check_services({"MLFLOW_TRACKING_URI": "sqlite:///x.db", "RAY_ADDRESS": "auto"}) == []


def test_a_server_that_answers_passes_even_behind_authentication():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/api/health" else 401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        env = {"PREFECT_API_URL": f"{base}/api", "MLFLOW_TRACKING_URI": base}
        assert check_services(env) == ["MLFLOW_TRACKING_URI", "PREFECT_API_URL"]
    finally:
        server.shutdown()
        server.server_close()
