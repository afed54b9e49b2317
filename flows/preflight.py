"""Fail fast when a configured server does not answer, instead of hanging in a client's retries.

MLflow's and Prefect's clients retry an unreachable server for minutes; one short call of each
configured server's real API before a run turns that into a clear error naming the variable and
the URL. A liveness URL alone is not enough: MLflow answers ``/health`` to a client whose host
name it refuses (``--allowed-hosts``) on every API call.
"""

from __future__ import annotations

import base64
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlparse

DEFAULT_TIMEOUT_S = 3.0


class ServiceUnreachableError(RuntimeError):
    """A server named by an environment variable did not answer."""


class ServiceRefusedError(RuntimeError):
    """A server answered, but refused the real API call a run makes: a configuration to fix."""


def _request(variable: str, url: str, timeout: float, data: bytes | None = None, headers: dict | None = None) -> None:
    """One request; unreachable and refused (4xx/5xx) each raise their error, naming ``variable``."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 - URL from the operator's own env
            return
    except urllib.error.HTTPError as exc:
        body = exc.read(300).decode("utf-8", "replace").strip()
        raise ServiceRefusedError(
            f"{variable} is set, but {url} answered {exc.code} {exc.reason}: {body or '(no body)'}. "
            f"{_hint(variable, exc.code)}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceUnreachableError(
            f"{variable} is set but {url} did not answer within {timeout:.0f} s ({reason}). "
            f"Start that server, fix {variable}, or unset it to use the local default."
        ) from exc


def _hint(variable: str, code: int) -> str:
    if variable == "MLFLOW_TRACKING_URI" and code == 401:
        return "Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (the server uses basic auth)."
    if variable == "MLFLOW_TRACKING_URI" and code == 403:
        return "A 403 with 'Invalid Host header': add this host name to the server's --allowed-hosts."
    if variable == "PREFECT_API_URL" and code == 401:
        return "Set PREFECT_API_AUTH_STRING to the server's PREFECT_SERVER_API_AUTH_STRING."
    return "Check the server's logs."


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _mlflow(url: str, env: Mapping[str, str], timeout: float) -> None:
    """Search one experiment: the call a run makes first, through auth and the host check."""
    headers = {}
    if env.get("MLFLOW_TRACKING_TOKEN"):
        headers = {"Authorization": f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"}
    elif env.get("MLFLOW_TRACKING_USERNAME"):
        headers = _basic(env["MLFLOW_TRACKING_USERNAME"], env.get("MLFLOW_TRACKING_PASSWORD", ""))
    api = url.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    _request("MLFLOW_TRACKING_URI", api, timeout, headers=headers)


def _prefect(url: str, env: Mapping[str, str], timeout: float) -> None:
    """``/health``, then read one flow: the database and the auth string are in the path."""
    headers = {"Content-Type": "application/json"}
    if env.get("PREFECT_API_KEY"):
        headers["Authorization"] = f"Bearer {env['PREFECT_API_KEY']}"
    elif env.get("PREFECT_API_AUTH_STRING"):
        user, _, password = env["PREFECT_API_AUTH_STRING"].partition(":")
        headers.update(_basic(user, password))
    _request("PREFECT_API_URL", url.rstrip("/") + "/health", timeout, headers=headers)
    _request("PREFECT_API_URL", url.rstrip("/") + "/flows/filter", timeout, data=b'{"limit": 1}', headers=headers)


def _tcp(variable: str, address: str, timeout: float) -> None:
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    host, port = parsed.hostname, parsed.port
    if not host or not port:
        return  # e.g. `auto`: Ray resolves it itself
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise ServiceUnreachableError(
            f"{variable}={address} is set but nothing listens on {host}:{port} ({exc}). "
            f"Start the Ray head, fix {variable}, or unset it to run Ray locally."
        ) from exc


def check_services(env: Mapping[str, str], timeout: float = DEFAULT_TIMEOUT_S) -> list[str]:
    """Check every server configured in ``env`` with a call of its real API; return the ones checked.

    ``MLFLOW_TRACKING_URI`` (http/https) gets an experiment search with the tracking credentials,
    ``PREFECT_API_URL`` ``/health`` and a flow query with the auth string, ``RAY_ADDRESS``
    (``host:port``) a TCP connect; a Ray token without ``RAY_AUTH_MODE=token`` is refused (Ray
    would not send it), and so is a Ray Client address (``ray://``: Ray Train and Tune need a
    driver on a cluster node or the Jobs API).

    Raises:
        ServiceUnreachableError: one of them did not answer within ``timeout`` seconds.
        ServiceRefusedError: one answered with an error: credentials, allowed hosts, auth mode.
    """
    checked = []
    for variable, check in (("MLFLOW_TRACKING_URI", _mlflow), ("PREFECT_API_URL", _prefect)):
        url = env.get(variable, "")
        if urlparse(url).scheme in ("http", "https"):
            check(url, env, timeout)
            checked.append(variable)
    ray = env.get("RAY_ADDRESS", "")
    if env.get("RAY_AUTH_TOKEN") and env.get("RAY_AUTH_MODE", "").lower() != "token":
        raise ServiceRefusedError("RAY_AUTH_TOKEN is set without RAY_AUTH_MODE=token: Ray would not send it. Set both.")
    if ray.startswith("ray://"):
        raise ServiceRefusedError(
            f"RAY_ADDRESS={ray}: Ray Client (ray://) does not run Ray Train or Tune reliably; run the pipeline on "
            "a cluster node (RAY_ADDRESS=auto or host:6379) or submit it with `ray job submit` (docs/scale-out.md)"
        )
    if ray and ray not in ("auto", "local"):
        _tcp("RAY_ADDRESS", ray, timeout)
        checked.append("RAY_ADDRESS")
    return checked


def preflight() -> None:
    """Exit 3 with a clear message when a configured server does not answer, 2 when it refuses."""
    import os

    from flows.common import EXIT_CONFIG, EXIT_UNREACHABLE, fail

    try:
        check_services(os.environ)
    except ServiceUnreachableError as exc:
        raise fail(str(exc), EXIT_UNREACHABLE) from exc
    except ServiceRefusedError as exc:
        raise fail(str(exc), EXIT_CONFIG) from exc
