"""infra/: the compose file and the Kubernetes manifests parse and agree on names, ports and variables."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import REPO

INFRA = REPO / "infra"
ENDPOINT_VARS = ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")
VAR = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def _compose() -> dict:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def _kustomization() -> dict:
    return yaml.safe_load((INFRA / "k8s" / "kustomization.yaml").read_text())


def _env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if "=" in line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def _manifests() -> list[dict]:
    """The resources kustomization.yaml lists, the ConfigMaps it generates (by name), and the Secrets it
    generates, as their ``.env.example`` files hold them (the files an operator copies and fills)."""
    kustomization = _kustomization()
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((INFRA / "k8s" / name).read_text()) if d]
    for generated in kustomization.get("configMapGenerator", []):
        docs.append({"kind": "ConfigMap", "metadata": {"name": generated["name"]}, "data": {}})
    for generated in kustomization.get("secretGenerator", []):
        data = {k: v for env in generated["envs"] for k, v in _env_file(INFRA / "k8s" / f"{env}.example").items()}
        docs.append({"kind": "Secret", "metadata": {"name": generated["name"]}, "stringData": data})
    return docs


def _image(name: str) -> str:
    """The image a manifest's ``image: name`` becomes through kustomization.yaml's ``images``."""
    for entry in _kustomization().get("images", []):
        if entry["name"] == name:
            return f"{entry['newName']}:{entry['newTag']}"
    return name


def _compose_ports(service: dict) -> set[int]:
    """Container ports a compose service listens on: published ones, and --port flags of its command."""
    ports = {int(str(p).split(":")[-1]) for p in service.get("ports", [])}
    ports |= {
        int(p) for p in re.findall(r"--(?:port|ray-client-server-port)[= ](\d+)", str(service.get("command", "")))
    }
    return ports


def _endpoint(value: str) -> tuple[str, int]:
    parsed = urlparse(value if "://" in value else f"tcp://{value}")  # RAY_ADDRESS is host:port
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
        if var not in ENDPOINT_VARS:
            continue
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
    """The -S overrides of the first `ragtune ci` call (the pull requests' CI profile)."""
    call = re.search(r"^\s*ragtune ci .*$", script.replace("\\\n", " "), re.M).group(0)
    return [o.strip("'\"") for o in re.findall(r"-S\s+('[^']*'|\"[^\"]*\")", call)]


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
    assert set(commands) == {"ragtune ci"}  # the whole protocol is the one tested command
    for gone in ("dvc exp run", "dvc pull", "ragtune gate", "| tee"):
        assert gone not in script, gone


def test_new_data_workflow_keeps_secrets_to_the_steps_that_need_them():
    workflow = _workflow()
    assert "secrets." not in json.dumps(workflow.get("env", {}))
    job = workflow["jobs"]["pipeline"]
    assert "secrets." not in json.dumps(job.get("env", {}))
    # pull requests read the secrets of `ragtune-pr` (read-only users), everything else those of `ragtune-main`,
    # an environment the repository protects to main: a branch's job cannot read the write credentials
    assert job["environment"] == "${{ github.event_name == 'pull_request' && 'ragtune-pr' || 'ragtune-main' }}"
    for step in job["steps"]:
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
    from components.config import ConfigError, load_params
    from flows.ci import JUDGE_ONLY, OverrideError, apply_overrides, judge_only_reason

    script = "\n".join(step.get("run", "") for step in _workflow()["jobs"]["pipeline"]["steps"])
    assert "judge_only" not in script  # not the workflow's to say: `ragtune ci` decides from the event
    overrides = _ci_overrides(script)
    assert len(overrides) >= 4 and judge_only_reason("pull_request", overrides) is not None
    assert "params/evaluation.yaml:experiment=ragtune-pr" in overrides  # the experiment its MLflow user may write
    shutil.copytree(REPO / "params", tmp_path / "params")
    assert sorted(apply_overrides(tmp_path, overrides)) == sorted(overrides)
    with pytest.raises(ConfigError, match="allow_few_groups"):  # the escape hatches never on a registering run
        load_params(tmp_path / "params")
    apply_overrides(tmp_path, [JUDGE_ONLY])  # what `ragtune ci` adds to any profile
    p = load_params(tmp_path / "params")
    assert p.evaluation.gate.judge_only and p.evaluation.max_questions == 24
    assert p.evaluation.gate.allow_few_groups and p.evaluation.gate.allow_unconfirmed  # 24 questions: too few groups
    assert p.finetune.adapters[0].max_steps == 10 and p.finetune.adapters[1].max_steps == 5
    with pytest.raises(OverrideError):  # DVC's (Hydra's) grammar: list items by index, not [0]
        apply_overrides(tmp_path, ["params/finetune.yaml:adapters[0].max_steps=10"])
    with pytest.raises(OverrideError):  # the first adapter takes max_steps from adapter_defaults: no such key
        apply_overrides(tmp_path, ["params/finetune.yaml:adapters.0.max_steps=10"])
    with pytest.raises(OverrideError):
        apply_overrides(tmp_path, ["params/evaluation.yaml:no_such_key=1"])


# --- one static check per defect of issue 14 (each would have caught it) ---------------------------

WORKFLOW = REPO / ".github" / "workflows" / "images.yml"
DEFAULT = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def _expand(text: str, env: dict[str, str]) -> str:
    """Compose's substitution: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` from ``env``; ``$$`` is ``$``."""

    def one(m: re.Match) -> str:
        name, kind, rest = m.groups()
        if name in env:
            return env[name]
        assert kind == "-", f"${{{name}}} has no default and is not set"
        return rest

    return DEFAULT.sub(one, text).replace("$$", "$")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pods(doc: dict) -> list[dict]:
    """The pod specs a manifest makes: a Deployment's or Job's template, each group of a RayCluster."""
    if doc["kind"] == "RayCluster":
        return [g["template"]["spec"] for g in [doc["spec"]["headGroupSpec"], *doc["spec"]["workerGroupSpecs"]]]
    if doc["kind"] in ("Deployment", "Job"):
        return [doc["spec"]["template"]["spec"]]
    return []


def _containers(doc: dict, init: bool = False) -> list[dict]:
    """The containers of a manifest's pods (and their init containers with ``init``)."""
    return [c for pod in _pods(doc) for c in [*pod["containers"], *(pod.get("initContainers", []) if init else [])]]


def _version() -> str:
    return re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)


def _mlflow_pin() -> str:
    return re.search(r"mlflow(?:\[auth\])?==([\d.]+)", (INFRA / "mlflow" / "Dockerfile").read_text()).group(1)


def test_mlflow_allows_the_host_names_its_clients_use():
    """MLflow >= 3.5 answers API calls only for hosts in --allowed-hosts (``/health`` answers anyone)."""
    services = _compose()["services"]
    allowed = re.search(r"--allowed-hosts (\S+)", services["mlflow"]["command"]).group(1).split(",")
    clients = [(s.get("environment") or {}).get("MLFLOW_TRACKING_URI") for s in services.values()]
    clients = [c for c in clients if c]
    assert clients, "no compose service is an MLflow client"
    for uri in [*clients, "http://127.0.0.1:5000", "http://localhost:5000"]:  # + the host's own client
        host, port = _endpoint(uri)
        assert host in allowed and f"{host}:{port}" in allowed, f"{uri}: not in --allowed-hosts {allowed}"
    docs = _manifests()
    endpoints = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "ragtune-endpoints")
    args = next(c for d in docs if d["metadata"]["name"] == "mlflow" for c in _containers(d))["args"]
    allowed = args[args.index("--allowed-hosts") + 1].split(",")
    host, port = _endpoint(endpoints["data"]["MLFLOW_TRACKING_URI"])
    assert host in allowed and f"{host}:{port}" in allowed


def test_every_ray_token_comes_with_token_mode():
    """A Ray client with RAY_AUTH_TOKEN but no RAY_AUTH_MODE=token never sends the token."""
    for name, service in _compose()["services"].items():
        env = service.get("environment") or {}
        if "RAY_AUTH_TOKEN" in env:
            assert env.get("RAY_AUTH_MODE") == "token", f"compose {name}: RAY_AUTH_TOKEN without RAY_AUTH_MODE=token"
    docs = _manifests()
    configmaps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
    for doc in docs:
        for c in _containers(doc):  # Ray nodes and Ray clients (those given a RAY_ADDRESS)
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            for ref in c.get("envFrom", []):
                if "configMapRef" in ref:
                    env.update(configmaps[ref["configMapRef"]["name"]])
                if "secretRef" in ref:
                    env.update(secrets[ref["secretRef"]["name"]])
            if "RAY_AUTH_TOKEN" in env and (doc["kind"] == "RayCluster" or "RAY_ADDRESS" in env):
                assert env.get("RAY_AUTH_MODE") == "token", f"{doc['metadata']['name']}/{c['name']}: no token mode"


def test_compose_publishes_ports_on_loopback_unless_told_otherwise():
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            published = _expand(str(port), {})
            assert published.count(":") == 2 and published.startswith("127.0.0.1:"), f"{name}: {port}"
            assert _expand(str(port), {"RAGTUNE_BIND_ADDRESS": "0.0.0.0"}).startswith("0.0.0.0:")


def test_mlflow_auth_database_is_postgres_through_the_ini_file(tmp_path, monkeypatch):
    """MLflow reads the auth database only from the ini; the image renders it from the environment."""
    serve = _load("mlflow_serve", INFRA / "mlflow" / "serve.py")
    # MLflow's own reader of the ini (the module alone: the auth package wants Flask-WTF at import)
    mlflow_dir = Path(importlib.util.find_spec("mlflow").submodule_search_locations[0])
    read_auth_config = _load("mlflow_auth_config", mlflow_dir / "server" / "auth" / "config.py").read_auth_config
    services = _compose()["services"]
    dockerfile = (INFRA / "mlflow" / "Dockerfile").read_text()
    assert "ENTRYPOINT" in dockerfile and "mlflow-serve" in dockerfile and "basic_auth.ini" in dockerfile
    assert not services["mlflow"]["command"].startswith("mlflow"), "arguments of serve.py, not a command"
    compose_env = {k: _expand(str(v), {"POSTGRES_PASSWORD": "pw", "AWS_SECRET_ACCESS_KEY": "k",
                   "MLFLOW_FLASK_SERVER_SECRET_KEY": "s", "RAGTUNE_ADMIN_PASSWORD": "p"})
                   for k, v in services["mlflow"]["environment"].items()}  # fmt: skip
    secret = next(d for d in _manifests() if d["metadata"]["name"] == "ragtune-secrets")["stringData"]
    k8s_template = next(d for d in _manifests() if d["metadata"]["name"] == "mlflow-basic-auth")["data"]
    for template, env in (
        ((INFRA / "mlflow" / "basic_auth.ini").read_text(), compose_env),
        (k8s_template["basic_auth.ini"], secret),
    ):
        (tmp_path / "auth.ini").write_text(serve.render(template, env))
        monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(tmp_path / "auth.ini"))
        config = read_auth_config()
        assert config.database_uri.startswith("postgresql://") and config.database_uri.endswith("/mlflow_auth")
    assert "mlflow_auth" in (INFRA / "k8s" / "postgres-init.sql").read_text()
    assert compose_env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "p"  # no admin password in a file


IMMUTABLE_TAG = re.compile(r"sha-[0-9a-f]{12}|sha-set-with-kustomize-edit-set-image")  # a commit; or the placeholder


def test_images_come_from_the_registry_the_workflow_pushes_to_pinned_to_a_commit():
    """Every ragtune image is built by the images workflow and referenced by the commit it was built from:
    a moving tag (a version every push overwrites) would let the worker and the Ray nodes run different code."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["image"]
    built = {m["name"]: m for m in job["strategy"]["matrix"]["include"]}
    assert workflow["permissions"]["packages"] == "write"
    script = "\n".join(str(step.get("run", "")) + str(step.get("with", "")) for step in job["steps"])
    assert "ghcr.io/${owner}/${{ matrix.name }}" in script and "push': True" in script
    tags = next(s["run"] for s in job["steps"] if s.get("id") == "meta")
    assert re.findall(r"tags=(.+?)\" >>", tags) == ["ghcr.io/${owner}/${{ matrix.name }}:sha-${GITHUB_SHA::12}"]
    ours = []
    for name, service in _compose()["services"].items():
        if "build" in service:
            image = service["image"]
            assert re.search(r":\$\{RAGTUNE_IMAGE_TAG:\?[^}]+\}$", image), f"compose {name}: {image} has a default tag"
            ours.append((f"compose {name}", _expand(image, {"RAGTUNE_IMAGE_TAG": "sha-0123456789ab"})))
    for doc in _manifests():
        for c in _containers(doc, init=True):
            if "ragtune" in c["image"]:
                assert ":" not in c["image"], f"{doc['metadata']['name']}: {c['image']} bypasses kustomization.yaml"
                ours.append((doc["metadata"]["name"], _image(c["image"])))
    assert len(ours) >= 12
    for where, image in ours:
        assert image.startswith("ghcr.io/"), f"{where}: {image} is a local tag no cluster can pull"
        repo, tag = image.rsplit("/", 1)[1].split(":")
        assert repo in built, f"{where}: {image} is not built by {WORKFLOW.name}"
        assert IMMUTABLE_TAG.fullmatch(tag), f"{where}: {image} is not pinned to a commit"


def test_cpu_images_take_torch_from_the_cpu_index_and_a_gpu_variant_exists():
    dockerfile = (INFRA / "Dockerfile").read_text()
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dockerfile
    assert 'make install TORCH_INDEX="$TORCH_INDEX"' in dockerfile
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"pip install .*--index-url \$\(TORCH_INDEX\).*\$\(TORCH_SPEC\)", makefile)
    built = {
        m["name"]: m for m in yaml.safe_load(WORKFLOW.read_text())["jobs"]["image"]["strategy"]["matrix"]["include"]
    }
    assert "whl/cpu" in built["ragtune"]["build-args"]
    assert "whl/cu" in built["ragtune-gpu"]["build-args"]
    new_data = (REPO / ".github" / "workflows" / "new-data.yml").read_text()
    assert "make install TORCH_INDEX=https://download.pytorch.org/whl/cpu" in new_data
    ray = next(d for d in _manifests() if d["kind"] == "RayCluster")
    gpu = [g for g in ray["spec"]["workerGroupSpecs"] if "num-gpus" in g["rayStartParams"]]
    assert gpu and _image(gpu[0]["template"]["spec"]["containers"][0]["image"]).split(":")[0].endswith("/ragtune-gpu")


def test_kuberay_login_shells_find_ray():
    """KubeRay runs ``bash -lc``: Debian's /etc/profile resets PATH, then sources /etc/profile.d/*.sh."""
    dockerfile = (INFRA / "Dockerfile").read_text()
    venv_bin = re.search(r"ENV PATH=(\S+?):\$PATH", dockerfile).group(1)
    profile = re.search(r"echo '(export PATH=[^']+)' > (/etc/profile\.d/\S+\.sh)", dockerfile)
    assert profile, "the image must put its venv on PATH for login shells"
    assert profile.group(1) == f"export PATH={venv_bin}:$PATH"


def test_the_docker_context_leaves_host_state_out():
    """``COPY . /app`` must not bake the host's .venv (and its install stamp), secrets or local stores."""
    patterns = [
        line.strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(
            fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.removeprefix("**/")) for p in prefixes for pat in patterns
        )

    for path in (".venv/bin/python", ".venv/.installed", "infra/.env", "mlruns.db", "mlartifacts/1/a/model.bin",
                 "data/models/base/model.safetensors", "components/__pycache__/x.pyc", ".git/config",
                 ".git/objects/ab/cdef", ".dvc/config.local", ".dvc/cache/files/md5/ab/cd", ".dvc/tmp/lock",
                 ".mypy_cache/x", ".cache/huggingface/x", "data/scratch/drill/index",
                 "infra/k8s/secrets.env"):  # fmt: skip
        assert ignored(path), f"{path} would be copied into the image"
    for path in ("pyproject.toml", "Makefile", "components/io.py", "flows/cli.py", "params/data.yaml",
                 "dvc.yaml", "data/demo/qa.jsonl", "infra/Dockerfile", "infra/scripts/worker-start.sh",
                 "infra/k8s/check-secrets.sh", ".dvc/config", "infra/k8s/secrets.env.example"):  # fmt: skip
        assert not ignored(path), f"{path} is needed in the image"


def test_ray_is_recent_enough_for_token_auth():
    from importlib.metadata import version

    from packaging.requirements import Requirement
    from packaging.version import Version

    text = (REPO / "pyproject.toml").read_text()
    req = Requirement(re.search(r'"(ray\[[^"]+)"', text).group(1))
    assert not req.specifier.contains("2.51.9") and req.specifier.contains("2.52.0"), req
    assert req.specifier.contains(version("ray")), f"installed ray {version('ray')} outside {req}"
    ray = next(d for d in _manifests() if d["kind"] == "RayCluster")
    assert req.specifier.contains(ray["spec"]["rayVersion"]) and Version(ray["spec"]["rayVersion"]) >= Version("2.52")


# --- issue 22: a worker that runs the pipeline, code that travels, pods that refuse placeholders -------


def _secret_refs(container: dict) -> dict[str, tuple[str, str]]:
    """A container's variables set from a Secret: name -> (secret, key)."""
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def _secrets_used(container: dict) -> set[tuple[str, str]]:
    """The Secrets a container reads: (secret, key) for each secretKeyRef, (secret, "*") for each secretRef."""
    used = set(_secret_refs(container).values())
    return used | {(r["secretRef"]["name"], "*") for r in container.get("envFrom", []) if "secretRef" in r}


def test_every_pod_refuses_placeholder_secrets_before_it_starts():
    """Secrets generated from the example files unchanged (CHANGE-ME) must not start a service on them."""
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "infra/k8s/*.env" in ignored  # the filled-in copies never go to git
    kustomization = _kustomization()
    generated = {g["name"]: g["files"] for g in kustomization["configMapGenerator"]}
    assert generated["ragtune-check-secrets"] == ["check-secrets.sh"]
    secrets = [d for d in _manifests() if d["kind"] == "Secret"]
    assert any("CHANGE-ME" in json.dumps(d["stringData"]) for d in secrets)  # the placeholders it guards against
    pods = [(d["metadata"]["name"], pod) for d in _manifests() for pod in _pods(d)]
    assert len(pods) >= 8  # mlflow, the worker, the three init Jobs, the Ray head and two worker groups
    for name, pod in pods:
        first = (pod.get("initContainers") or [{}])[0]
        assert first.get("name") == "check-secrets", f"{name}: no placeholder check before it starts"
        assert first["command"] == ["sh", "/checks/check-secrets.sh"]
        mounts = {m["name"]: m["mountPath"] for m in first["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes[next(n for n, m in mounts.items() if m == "/checks")]["configMap"]["name"] == (
            "ragtune-check-secrets"
        )
        checked = _secrets_used(first)
        for c in pod["containers"]:
            for secret, key in _secrets_used(c):
                assert (secret, key) in checked or (secret, "*") in checked, f"{name}/{c['name']}: {secret}.{key}"


def test_pods_run_unprivileged_and_ray_has_shared_memory():
    dockerfile = (INFRA / "Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root"), "the image must not run as root"
    for doc in _manifests():
        for pod in _pods(doc):
            context = pod.get("securityContext", {})
            assert context.get("runAsNonRoot") is True and context.get("runAsUser", 0) != 0, doc["metadata"]["name"]
    ray = next(d for d in _manifests() if d["kind"] == "RayCluster")
    worker = next(d for d in _manifests() if d["metadata"]["name"] == "prefect-worker" and d["kind"] == "Deployment")
    for pod in [*_pods(ray), *_pods(worker)]:  # each runs a Ray node: its object store needs /dev/shm
        shm = {m["name"] for c in pod["containers"] for m in c.get("volumeMounts", []) if m["mountPath"] == "/dev/shm"}
        assert shm and all(v["emptyDir"]["medium"] == "Memory" for v in pod["volumes"] if v["name"] in shm)
    for name in ("prefect-worker", "ray-head", "ray-worker"):
        assert _compose()["services"][name]["shm_size"]


def test_the_worker_keeps_its_checkout_on_a_volume_and_runs_as_the_pipelines_mlflow_user():
    docs = _manifests()
    worker = next(d for d in docs if d["metadata"]["name"] == "prefect-worker" and d["kind"] == "Deployment")
    (pod,) = _pods(worker)
    (container,) = pod["containers"]
    assert container["command"] == ["/app/infra/scripts/worker-start.sh"]
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] in claims)
    assert ("PersistentVolumeClaim", claims[next(iter(claims))]) in {(d["kind"], d["metadata"]["name"]) for d in docs}
    configmaps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
    env: dict = {}
    for ref in container["envFrom"]:
        env.update(
            configmaps[ref["configMapRef"]["name"]] if "configMapRef" in ref else secrets[ref["secretRef"]["name"]]
        )
    assert env["RAGTUNE_ROOT"].startswith(mount + "/")  # the checkout lives on the volume
    assert env["MLFLOW_TRACKING_USERNAME"] == "ragtune-worker" and "ragtune-secrets" not in json.dumps(
        container["envFrom"]
    ), "the worker gets the pipeline's MLflow user and only the secret keys it uses, never the admin"
    assert env["RAGTUNE_DVC_REMOTE_URL"].startswith("s3://") and env["RAY_ADDRESS"].endswith(":6379")
    service = _compose()["services"]["prefect-worker"]
    assert service["entrypoint"] == ["/app/infra/scripts/worker-start.sh"]
    assert any(v.startswith("worker-data:") for v in service["volumes"]) and "worker-data" in _compose()["volumes"]
    environment = service["environment"]
    assert environment["MLFLOW_TRACKING_USERNAME"] == "ragtune-worker"
    assert environment["RAGTUNE_ROOT"].startswith("/srv/") and environment["RAGTUNE_DVC_REMOTE_URL"].startswith("s3://")
    for name in ("ray-head", "ray-worker"):
        assert _compose()["services"][name]["environment"]["MLFLOW_TRACKING_USERNAME"] == "ragtune-worker"


def test_mlflow_users_take_their_passwords_from_the_variables_users_py_reads():
    """One variable per MLflow user (infra/mlflow/users.py) across env.example, compose and the manifests: the
    server's admin from RAGTUNE_ADMIN_*, the pods log in as ragtune-worker with the password users.py sets."""
    users = _load("mlflow_users", INFRA / "mlflow" / "users.py")
    passwords = {**users.WRITERS, users.READONLY[0]: users.READONLY[1]}  # user -> the variable of its password
    admin = {"MLFLOW_TRACKING_USERNAME": "RAGTUNE_ADMIN_USERNAME", "MLFLOW_TRACKING_PASSWORD": "RAGTUNE_ADMIN_PASSWORD"}
    example = _env_file(INFRA / "env.example")
    assert {*passwords.values(), *admin.values()} <= set(example)
    services = _compose()["services"]
    mlflow_env = services["mlflow"]["environment"]
    assert VAR.findall(mlflow_env["MLFLOW_AUTH_ADMIN_USERNAME"]) == [admin["MLFLOW_TRACKING_USERNAME"]]
    assert VAR.findall(mlflow_env["MLFLOW_AUTH_ADMIN_PASSWORD"]) == [admin["MLFLOW_TRACKING_PASSWORD"]]
    for name in ("prefect-worker", "ray-head", "ray-worker"):
        env = services[name]["environment"]
        assert env["MLFLOW_TRACKING_USERNAME"] == "ragtune-worker", name
        assert VAR.findall(env["MLFLOW_TRACKING_PASSWORD"]) == [passwords["ragtune-worker"]], name
    docs = _manifests()
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
    job = next(d for d in docs if d["metadata"]["name"] == "ragtune-init-mlflow-users")
    (container,) = _containers(job)
    assert container["command"][:2] == ["python", "/usr/local/bin/mlflow-users"]
    assert "COPY users.py /usr/local/bin/mlflow-users" in (INFRA / "mlflow" / "Dockerfile").read_text()
    refs = _secret_refs(container)
    for secret, key in refs.values():
        assert key in secrets[secret], f"the users Job reads {secret}.{key}, which the Secret does not hold"
    assert {v: refs[k] for k, v in admin.items()} == {v: ("ragtune-secrets", v) for v in admin.values()}
    mlflow = next(c for d in docs if d["metadata"]["name"] == "mlflow" for c in _containers(d))
    server = _secret_refs(mlflow)
    assert [server["MLFLOW_AUTH_ADMIN_USERNAME"], server["MLFLOW_AUTH_ADMIN_PASSWORD"]] == [refs[k] for k in admin]
    # ragtune-worker's password is the one the worker and the Ray pods log in with (their Secret), not a copy
    worker = secrets["ragtune-mlflow-worker"]
    assert worker["MLFLOW_TRACKING_USERNAME"] == "ragtune-worker" in users.WRITERS
    assert refs[passwords["ragtune-worker"]] == ("ragtune-mlflow-worker", "MLFLOW_TRACKING_PASSWORD")
    for user, variable in passwords.items():
        if user != "ragtune-worker":
            assert refs[variable] == ("ragtune-secrets", variable), user


def test_no_ray_client_address_anywhere_and_one_bucket_for_runs_and_the_dvc_remote():
    """Ray Train and Tune need a driver on a node (or the Jobs API): nothing points at ray:// any more."""
    for path in [*INFRA.rglob("*.yaml"), INFRA / "env.example"]:
        settings = "\n".join(line.split("#")[0] for line in path.read_text().splitlines())  # comments may name it
        assert "ray://" not in settings, path
    endpoints = next(d for d in _manifests() if d["metadata"]["name"] == "ragtune-endpoints")["data"]
    compose_env = _compose()["services"]["prefect-worker"]["environment"]
    for env in (endpoints, compose_env):
        buckets = {urlparse(env[k]).netloc for k in ("RAGTUNE_STORAGE_URI", "RAGTUNE_DVC_REMOTE_URL")}
        assert buckets == {"ragtune"}
    buckets_job = next(d for d in _manifests() if d["metadata"]["name"] == "ragtune-init-buckets")
    args = " ".join(_containers(buckets_job)[0]["args"])
    assert (
        "store/mlflow" in args
        and "store/ragtune" in args
        and "store/ragtune" in _compose()["services"]["minio-init"]["entrypoint"]
    )


def test_the_databases_come_from_one_script_for_compose_and_kubernetes():
    generated = {g["name"]: g["files"] for g in _kustomization()["configMapGenerator"]}
    assert generated["ragtune-postgres-init"] == ["init.sql=postgres-init.sql"]
    mounts = _compose()["services"]["postgres"]["volumes"]
    assert any(v.startswith("./k8s/postgres-init.sql:/docker-entrypoint-initdb.d/") for v in mounts)
    job = next(d for d in _manifests() if d["metadata"]["name"] == "ragtune-init-databases")
    assert _containers(job)[0]["command"][-1] == "/sql/init.sql"
    sql = (INFRA / "k8s" / "postgres-init.sql").read_text()
    for database in ("mlflow", "mlflow_auth", "prefect"):
        assert f"WHERE datname = '{database}')\\gexec" in sql  # created only when absent: safe to run again


def test_the_dvc_remote_takes_its_endpoint_and_keys_from_the_environment():
    config = (REPO / ".dvc" / "config").read_text()
    remote = re.search(r"\['remote \"store\"'\]\n((?:\s+.*\n?)+)", config).group(1)
    assert "url = s3://" in remote
    for key in ("endpointurl", "access_key_id", "secret_access_key"):
        assert key not in remote, f"{key} belongs in the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)"
