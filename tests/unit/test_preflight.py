"""An unreachable MLflow, Prefect or Ray server is a clear error within seconds, not a hang."""

from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from flows.preflight import ServiceRefusedError, ServiceUnreachableError, check_services
from tests.conftest import free_port


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLFLOW_TRACKING_URI", "http://127.0.0.1:{port}"),
        ("PREFECT_API_URL", "http://127.0.0.1:{port}/api"),
        ("RAY_ADDRESS", "127.0.0.1:{port}"),
    ],
)
def test_closed_port_fails_fast_naming_the_variable_and_url(variable, value):
    url = value.format(port=free_port())  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ServiceUnreachableError) as err:
        check_services({variable: url}, timeout=2.0)
    assert time.monotonic() - start < 10
    assert variable in str(err.value) and url in str(err.value)


def test_a_ray_client_address_is_refused_with_what_to_set_instead():
    """Ray Train and Tune need a driver on a cluster node (or the Jobs API), not Ray Client."""
    with pytest.raises(ServiceRefusedError, match=r"RAY_ADDRESS=ray://head:10001.*RAY_ADDRESS=auto.*ray job submit"):
        check_services({"RAY_ADDRESS": "ray://head:10001"}, timeout=2.0)


def test_unset_or_local_settings_are_not_checked():
    assert check_services({"MLFLOW_TRACKING_URI": "sqlite:///x.db", "RAY_ADDRESS": "auto"}) == []


class FakeServers(BaseHTTPRequestHandler):
    """MLflow and Prefect as a client meets them: liveness open to all, the API behind auth and MLflow's host check."""

    allowed_host = ""
    auth = "Basic " + base64.b64encode(b"admin:secret").decode()

    def _api(self, status_ok: bool) -> None:
        if self.path.endswith("/health"):
            self.send_response(200)
        elif self.path.startswith("/api/2.0/mlflow/") and self.headers["Host"] != self.allowed_host:
            self.send_response(403)  # what MLflow >= 3.5 answers a host outside --allowed-hosts
            self.end_headers()
            self.wfile.write(b"Invalid Host header - possible DNS rebinding attack detected")
            return
        elif self.headers.get("Authorization") != self.auth:
            self.send_response(401)
        else:
            self.send_response(200 if status_ok else 500)
        self.end_headers()

    def do_GET(self):  # noqa: N802 - http.server's name
        self._api(self.path.startswith("/api/2.0/mlflow/experiments/search") or self.path.endswith("/health"))

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._api(self.path == "/api/flows/filter")

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    server = HTTPServer(("127.0.0.1", 0), FakeServers)
    FakeServers.allowed_host = f"127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def test_servers_pass_when_their_real_api_answers_with_the_credentials(fake_server):
    base = f"http://127.0.0.1:{fake_server}"
    env = {
        "MLFLOW_TRACKING_URI": base,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": "secret",
        "PREFECT_API_URL": f"{base}/api",
        "PREFECT_API_AUTH_STRING": "admin:secret",
    }
    assert check_services(env) == ["MLFLOW_TRACKING_URI", "PREFECT_API_URL"]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MLFLOW_TRACKING_URI": "http://127.0.0.1:{port}"}, "MLFLOW_TRACKING_USERNAME"),
        (  # /health answers this host name; every API call refuses it
            {"MLFLOW_TRACKING_URI": "http://localhost:{port}", "MLFLOW_TRACKING_USERNAME": "admin"},
            "--allowed-hosts",
        ),
        ({"PREFECT_API_URL": "http://127.0.0.1:{port}/api"}, "PREFECT_API_AUTH_STRING"),
        ({"PREFECT_API_URL": "http://127.0.0.1:{port}/api", "PREFECT_API_AUTH_STRING": "admin:wrong"}, "401"),
    ],
    ids=["mlflow-no-credentials", "mlflow-host-not-allowed", "prefect-no-auth-string", "prefect-wrong-auth"],
)
def test_a_server_whose_api_refuses_the_client_is_a_config_error_even_if_health_answers(fake_server, env, says):
    env = {k: v.format(port=fake_server) for k, v in env.items()}
    with pytest.raises(ServiceRefusedError) as err:
        check_services(env, timeout=2.0)
    assert says in str(err.value)


def test_a_ray_token_without_token_mode_is_refused():
    with pytest.raises(ServiceRefusedError, match="RAY_AUTH_MODE=token"):
        check_services({"RAY_AUTH_TOKEN": "abc"})
    assert check_services({"RAY_AUTH_TOKEN": "abc", "RAY_AUTH_MODE": "token"}) == []
