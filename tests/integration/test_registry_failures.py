"""The champion fails closed: failures injected between ``ragtune register`` and a real MLflow server.

A real ``mlflow server`` with basic auth (infra/mlflow/basic_auth.ini rendered as serve.py does), its
users created by infra/mlflow/users.py, and a small HTTP proxy in front of it that forwards every
request, except the registry lookup of the champion when a test tells it to answer that one with
a 503, a 403, a 404 that is not MLflow's, or a dropped connection. Each time the register stage must
exit 75 (a rerun may succeed) or 1 with one line, and the alias must stay where it was. Only MLflow's
own "not found" means there is no champion (the first registration of a new name).
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import mlflow
import pytest

from components.catalog import artifacts
from components.catalog.artifacts import BestFile
from tests.conftest import REPO, free_port
from tests.e2e.servers import mlflow_server
from tests.gate_project import edit_params, gate_project, recommend, register_here

pytestmark = pytest.mark.integration

ADMIN = {"MLFLOW_TRACKING_USERNAME": "ragtune-admin", "MLFLOW_TRACKING_PASSWORD": "admin-password-0123"}
PASSWORDS = {
    "RAGTUNE_WORKER_PASSWORD": "worker-password-0123",
    "RAGTUNE_CI_PASSWORD": "ci-password-0123",
    "RAGTUNE_CI_READONLY_PASSWORD": "readonly-password-0123",
}
LOOKUP = "/api/2.0/mlflow/registered-models/get"  # how register reads the champion's alias
ALIAS_MOVES = "/api/2.0/mlflow/registered-models/alias"


def _load(name: str, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Proxy:
    """Forwards every request to ``upstream``; ``fail[path] = action`` answers that path itself instead."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.fail: dict[str, str] = {}
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _any(self) -> None:
                path = self.path.split("?")[0]
                proxy.seen.append(f"{self.command} {path}")
                body = self._body()
                action = proxy.fail.get(path)
                if action == "reset":  # the connection drops without an answer
                    self.close_connection = True
                    return
                if action is not None:
                    status, _, text = action.partition(" ")
                    self.send_response(int(status))
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text.encode())
                    return
                upstream = http.client.HTTPConnection(proxy.upstream, timeout=120)
                skip = ("host", "connection", "transfer-encoding", "content-length")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            def _body(self) -> bytes:
                """The request's body, sent with a length or in chunks (requests chunks an empty file)."""
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                            pass
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()  # the CRLF after each chunk

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A basic-auth MLflow server (auth database: sqlite here, Postgres in infra/) with ragtune's users."""
    tmp = tmp_path_factory.mktemp("mlflow-auth")
    serve = _load("mlflow_serve", REPO / "infra" / "mlflow" / "serve.py")
    template = (REPO / "infra" / "mlflow" / "basic_auth.ini").read_text()
    (tmp / "auth.ini").write_text(serve.render(template, {"MLFLOW_AUTH_DATABASE_URI": f"sqlite:///{tmp / 'auth.db'}"}))
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(tmp / "auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN["MLFLOW_TRACKING_USERNAME"],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN["MLFLOW_TRACKING_PASSWORD"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    # the basic-auth app creates its database and admin first: on a loaded machine that can pass 2 minutes
    with mlflow_server(tmp, env, extra=("--app-name", "basic-auth"), start_s=600) as url:
        users = _load("mlflow_users", REPO / "infra" / "mlflow" / "users.py")
        with mock.patch.dict(os.environ, ADMIN):
            lines = users.apply(url, "ragtune", PASSWORDS)
        assert any("ragtune-ci-readonly: EDIT on experiment ragtune-pr " in line for line in lines), lines
        proxy = Proxy(url)
        try:
            yield {"url": url, "proxy": proxy}
        finally:
            proxy.close()


@pytest.fixture
def project(server, tmp_path, monkeypatch):
    """A project on the server (through the proxy, as the admin), fast failures (no client retries)."""
    for key, value in {**ADMIN, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["proxy"].url)
    server["proxy"].fail.clear()
    yield gate_project(tmp_path, monkeypatch)
    server["proxy"].fail.clear()
    mlflow.set_tracking_uri(None)


def _alias(server, name: str) -> str | None:
    """The champion's version, read by the admin straight from the server (not through the proxy)."""
    client = mlflow.MlflowClient(tracking_uri=server["url"])
    try:
        return client.get_registered_model(name).aliases.get("champion")
    except mlflow.exceptions.MlflowException as exc:
        assert exc.error_code == "RESOURCE_DOES_NOT_EXIST"
        return None


def _one_line(out: str, start: str) -> str:
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.startswith(start)]
    assert len(lines) == 1, out
    return lines[0]


FAILURES = [  # what the proxy answers to the champion's lookup, the exit code, words of the line
    ("503 upstream unavailable", 75, "503"),
    ("403 Permission denied", 1, "Permission denied"),
    ("404 <html>no such page</html>", 1, "404"),  # a proxy's 404, not MLflow's "no such model"
    ("reset", 75, "Connection aborted"),
]


def test_only_mlflows_not_found_means_no_champion_every_other_failure_leaves_the_alias(server, project, capsys):
    name = f"qa-{os.getpid()}-failures"
    edit_params(project, registry__name=name)
    assert _alias(server, name) is None  # MLflow's own "not found": no such model, so no champion
    register_bundle_direct(server, project, name)
    assert _alias(server, name) == "1"
    proxy = server["proxy"]
    for answer, exit_code, words in FAILURES:
        proxy.fail[LOOKUP] = answer
        proxy.seen.clear()
        code, out = register_here(capsys)
        line = _one_line(out, "gate: cannot judge base+none")
        assert code == exit_code and words in line and f"{name}@champion stays where it was" in line, (answer, out)
        assert _alias(server, name) == "1" and not any(ALIAS_MOVES in seen for seen in proxy.seen), answer
    proxy.fail.clear()
    os.environ["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{free_port()}"  # refused: nothing listens
    code, out = register_here(capsys)
    line = _one_line(out, "gate: cannot judge base+none")
    assert code == 75 and "Connection refused" in line, out
    assert _alias(server, name) == "1"


def test_the_read_only_user_cannot_write_and_the_ci_user_can(server, project, capsys, monkeypatch):
    """users.py's accounts: the pull requests' user reads and its first write ends the run with one line
    (exit 1: a refusal, not worth a retry); main's CI user may move the alias."""
    name = f"qa-{os.getpid()}-users"
    edit_params(project, registry__name=name)
    register_bundle_direct(server, project, name)
    recommend(project, "lora-r8-qv+none")  # a cell that passes the gate would be registered: it never gets there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["url"])
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ragtune-ci-readonly")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORDS["RAGTUNE_CI_READONLY_PASSWORD"])
    from components import tracking

    assert str(tracking.alias_version(name, "champion").version) == "1"  # it reads the champion
    code, out = register_here(capsys)
    line = _one_line(out, "gate: cannot judge lora-r8-qv+none")
    assert code == 1 and "403" in line and "Permission denied" in line, out
    with pytest.raises(tracking.RegistryError, match="403"):
        tracking.move_alias(name, "champion", "1", expected="1")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ragtune-ci")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORDS["RAGTUNE_CI_PASSWORD"])
    tracking.move_alias(name, "champion", "1", expected="1")  # EDIT on registered models: it may
    assert _alias(server, name) == "1"


def register_bundle_direct(server, project, name: str) -> None:
    """``name``'s first champion, as the admin, straight to the server: a version of the project's first cell
    run, never loaded (every failure here comes before the gate would load it), so nothing is uploaded."""
    client = mlflow.MlflowClient(tracking_uri=server["url"])
    with mock.patch.dict(os.environ, ADMIN):
        run = artifacts.read(BestFile, project / "data/metrics/best.json").ranking[0].run_id
        client.create_registered_model(name)
        version = client.create_model_version(name, f"runs:/{run}/model", run_id=run, tags={"ragtune.cell": "x"})
        client.set_registered_model_alias(name, "champion", version.version)
