"""infra/: the compose file and the Kubernetes manifests parse and agree on names, ports and variables."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import REPO

INFRA = REPO / "infra"
ENDPOINT_VARS = ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS", "MLFLOW_S3_ENDPOINT_URL")
VAR = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def _compose() -> dict:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def _manifests() -> list[dict]:
    docs = []
    for path in sorted((INFRA / "k8s").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _compose_ports(service: dict) -> set[int]:
    """Container ports a compose service listens on: published ones, and --port flags of its command."""
    ports = {int(str(p).split(":")[-1]) for p in service.get("ports", [])}
    ports |= {
        int(p) for p in re.findall(r"--(?:port|ray-client-server-port)[= ](\d+)", str(service.get("command", "")))
    }
    return ports


def _endpoint(value: str) -> tuple[str, int]:
    parsed = urlparse(value)
    assert parsed.hostname and parsed.port, f"{value!r} names no host:port"
    return parsed.hostname, parsed.port


def test_compose_endpoints_point_at_services_and_ports_it_defines():
    services = _compose()["services"]
    ports = {name: _compose_ports(s) for name, s in services.items()}
    checked = 0
    for name, service in services.items():
        for var, value in (service.get("environment") or {}).items():
            if var in ENDPOINT_VARS:
                host, port = _endpoint(str(value))
                assert host in services, f"{name}: {var}={value} names no service"
                assert port in ports[host], f"{name}: {var}={value}, but {host} listens on {sorted(ports[host])}"
                checked += 1
        for dep in service.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
    assert checked >= 4
    assert "--app-name basic-auth" in services["mlflow"]["command"]
    assert "postgresql://" in services["mlflow"]["command"] and "s3://" in services["mlflow"]["command"]
    assert services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql")


def test_compose_variables_are_documented_in_env_example():
    example = {line.split("=", 1)[0] for line in (INFRA / "env.example").read_text().splitlines() if "=" in line}
    used = set(VAR.findall((INFRA / "compose.yaml").read_text()))
    assert used <= example, f"not in infra/env.example: {sorted(used - example)}"


def test_compose_images_match_the_pinned_versions():
    services = _compose()["services"]
    prefect_version = yaml.safe_load((REPO / "prefect.yaml").read_text())["prefect-version"]
    assert services["prefect-server"]["image"].startswith(f"prefecthq/prefect:{prefect_version}-")
    mlflow_pin = re.search(r"mlflow==([\d.]+)", (INFRA / "mlflow" / "Dockerfile").read_text()).group(1)
    assert services["mlflow"]["image"].endswith(f":{mlflow_pin}")
    for name in ("prefect-worker", "ray-head", "ray-worker"):
        assert services[name]["image"] == services["ray-head"]["image"], "Ray nodes and the driver share one image"


def test_manifests_endpoints_point_at_services_and_ports_they_define():
    docs = _manifests()
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "RayCluster"} <= kinds
    service_ports: dict[str, set[int]] = {}
    for d in docs:
        if d["kind"] == "Service":
            service_ports[d["metadata"]["name"]] = {p["port"] for p in d["spec"]["ports"]}
        if d["kind"] == "RayCluster":  # KubeRay creates <name>-head-svc with the head container's ports
            head = d["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
            service_ports[f"{d['metadata']['name']}-head-svc"] = {p["containerPort"] for p in head["ports"]}
    external = {"postgres", "minio", "prefect-server"}  # run by their own charts; see infra/README.md
    endpoints = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "ragtune-endpoints")
    for var, value in endpoints["data"].items():
        host, port = _endpoint(value)
        if host in external:
            continue
        assert host in service_ports, f"{var}={value} names no Service"
        assert port in service_ports[host], f"{var}={value}, but {host} exposes {sorted(service_ports[host])}"
    mlflow_port = _endpoint(endpoints["data"]["MLFLOW_TRACKING_URI"])[1]
    mlflow = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlflow")
    container = mlflow["spec"]["template"]["spec"]["containers"][0]
    assert mlflow_port in {p["containerPort"] for p in container["ports"]}
    assert "basic-auth" in container["args"]


@pytest.mark.parametrize("path", sorted((INFRA / "k8s").rglob("*.yaml")), ids=lambda p: p.name)
def test_manifest_references_resolve(path: Path):
    docs = _manifests()
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    text = path.read_text()
    for kind, ref in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
        for name in re.findall(ref + r": \{name: ([\w-]+)", text):
            assert (kind, name) in names, f"{path.name}: {ref} to unknown {kind} {name}"
    for name in re.findall(r"(?:configMapRef|secretRef): \{name: ([\w-]+)", text):
        assert ("ConfigMap", name) in names or ("Secret", name) in names
    pool = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"][0]["work_pool"]["name"]
    if "prefect worker start" in text or '"worker", "start"' in text:
        assert pool in text, "the worker must poll the work pool of prefect.yaml"


def _workflow() -> dict:
    return yaml.safe_load((REPO / ".github" / "workflows" / "new-data.yml").read_text())


def _ci_overrides(script: str) -> list[str]:
    """The -S overrides of the `ragtune ci` call, with the shell variable the step sets filled in."""
    call = script[script.index("ragtune ci") :].replace("\\\n", " ")
    return [o.strip("'\"").replace("${JUDGE_ONLY}", "true") for o in re.findall(r"-S\s+('[^']*'|\"[^\"]*\")", call)]


def test_new_data_workflow_only_calls_ragtune_ci_with_pipefail_history_and_identity():
    workflow = _workflow()
    on = workflow[True]  # YAML 1.1 reads the key `on` as True
    for event in ("push", "pull_request"):
        assert set(on[event]["paths"]) == {"data/*.dvc", "params/**"}
    assert workflow["defaults"]["run"]["shell"] == "bash"  # GitHub adds -eo pipefail only for an explicit bash
    steps = workflow["jobs"]["pipeline"]["steps"]
    assert all(step.get("shell", "bash") == "bash" for step in steps)
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # full history
    script = "\n".join(step.get("run", "") for step in steps)
    assert "git config --global user.name" in script and "git config --global user.email" in script
    commands = re.findall(r"\bragtune [a-z-]+", script.replace('"ragtune CI"', ""))
    assert commands == ["ragtune ci"]  # the whole protocol is the one tested command
    for gone in ("dvc exp run", "dvc pull", "ragtune gate", "| tee"):
        assert gone not in script, gone


def test_new_data_workflow_keeps_secrets_to_the_steps_that_need_them():
    workflow = _workflow()
    assert "secrets." not in json.dumps(workflow.get("env", {}))
    for step in workflow["jobs"]["pipeline"]["steps"]:
        secrets = set(re.findall(r"secrets\.(\w+)", json.dumps(step.get("env", {}))))
        if "ragtune ci" in step.get("run", ""):
            assert secrets == {
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                *(f"MLFLOW_TRACKING_{k}" for k in ("URI", "USERNAME", "PASSWORD")),
            }
        elif "dvc remote add" in step.get("run", ""):
            assert secrets == {"DVC_REMOTE_URL", "DVC_REMOTE_ENDPOINT_URL"}
        else:
            assert not secrets and "secrets." not in json.dumps(step), step.get("name")


def test_new_data_workflow_overrides_are_valid_for_dvc_and_the_params(tmp_path):
    from components.config import load_params
    from flows.ci import OverrideError, apply_overrides

    script = "\n".join(step.get("run", "") for step in _workflow()["jobs"]["pipeline"]["steps"])
    overrides = _ci_overrides(script)
    assert len(overrides) >= 4 and "params/evaluation.yaml:gate.judge_only=true" in overrides
    shutil.copytree(REPO / "params", tmp_path / "params")
    assert sorted(apply_overrides(tmp_path, overrides)) == sorted(overrides)
    p = load_params(tmp_path / "params")
    assert p.evaluation.gate.judge_only and p.evaluation.max_questions == 24
    assert p.finetune.adapters[0].max_steps == 10 and p.finetune.adapters[1].max_steps == 5
    with pytest.raises(OverrideError):  # DVC's (Hydra's) grammar: list items by index, not [0]
        apply_overrides(tmp_path, ["params/finetune.yaml:adapters[0].max_steps=10"])
    with pytest.raises(OverrideError):  # the first adapter takes max_steps from adapter_defaults: no such key
        apply_overrides(tmp_path, ["params/finetune.yaml:adapters.0.max_steps=10"])
    with pytest.raises(OverrideError):
        apply_overrides(tmp_path, ["params/evaluation.yaml:no_such_key=1"])
