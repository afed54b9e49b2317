"""Fail fast when a configured server does not answer, instead of hanging in a client's retries.

MLflow's and Prefect's clients retry an unreachable server for minutes; one short request to each
configured server before a run turns that into a clear error naming the variable and the URL.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlparse

DEFAULT_TIMEOUT_S = 3.0


class ServiceUnreachableError(RuntimeError):
    """A server named by an environment variable did not answer."""


def _http_health(variable: str, url: str, timeout: float) -> None:
    health = url.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout):  # noqa: S310 - URL from the operator's own env
            return
    except urllib.error.HTTPError:
        return  # it answered (401 behind authentication, 404 on an older server): it is up
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceUnreachableError(
            f"{variable}={url} is set but {health} did not answer within {timeout:.0f} s ({reason}). "
            f"Start that server, fix {variable}, or unset it to use the local default."
        ) from exc


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
    """Check every server configured in ``env``; return the ones checked.

    ``MLFLOW_TRACKING_URI`` and ``PREFECT_API_URL`` (when http/https) get ``GET <url>/health``;
    ``RAY_ADDRESS`` (``host:port`` or ``ray://host:port``) gets a TCP connect.

    Raises:
        ServiceUnreachableError: one of them did not answer within ``timeout`` seconds.
    """
    checked = []
    for variable in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        url = env.get(variable, "")
        if urlparse(url).scheme in ("http", "https"):
            _http_health(variable, url, timeout)
            checked.append(variable)
    ray = env.get("RAY_ADDRESS", "")
    if ray and ray not in ("auto", "local"):
        _tcp("RAY_ADDRESS", ray, timeout)
        checked.append("RAY_ADDRESS")
    return checked


def preflight() -> None:
    """Exit 3 (the command's exit code) with a clear message when a configured server does not answer."""
    import os

    from flows.common import EXIT_UNREACHABLE, fail

    try:
        check_services(os.environ)
    except ServiceUnreachableError as exc:
        raise fail(str(exc), EXIT_UNREACHABLE) from exc
