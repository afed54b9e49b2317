"""A real MLflow server refuses API calls from a host name outside ``--allowed-hosts``, while
``/health`` still answers it: the preflight calls the API, so it reports the refusal."""

from __future__ import annotations

import os
import urllib.request

import pytest

from flows.preflight import ServiceRefusedError, check_services
from tests.e2e.servers import mlflow_server


def test_the_preflight_sees_what_health_hides(tmp_path):
    with mlflow_server(tmp_path, dict(os.environ), extra=("--allowed-hosts", "mlflow,mlflow:*")) as url:
        port = url.rsplit(":", 1)[1]
        # the compose and Kubernetes clients' name is allowed (Host: mlflow:<port>) ...
        request = urllib.request.Request(
            f"{url}/api/2.0/mlflow/experiments/search?max_results=1", headers={"Host": f"mlflow:{port}"}
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
        # ... 127.0.0.1 is not: /health answers it, the API does not
        with urllib.request.urlopen(f"{url}/health", timeout=10) as resp:
            assert resp.status == 200
        with pytest.raises(ServiceRefusedError, match="403.*--allowed-hosts"):
            check_services({"MLFLOW_TRACKING_URI": url}, timeout=10)
