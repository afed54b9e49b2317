"""The isolated Ray node (``isolated_ray``, tests/conftest.py) runs the project but not the driver's files.

The node's mount namespace covers ``/tmp`` and pytest's base temp, then binds back what the node
runs: a checkout (and its venv) under ``/tmp`` must still start, while the driver's files beside it
stay out of sight. The second test runs the first from a copy of this checkout under ``/tmp``, with
a venv of its own there, as a fresh ``git clone /tmp/x`` would have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import REPO, require_mount_namespace
from tests.e2e.private_tmp import private_tmp_command
from tests.e2e.servers import BIN


def test_the_private_view_binds_back_what_is_kept_and_covers_what_is_hidden(tmp_path):
    """Under ``/tmp``: a kept folder shows (a hidden one inside it does not), a folder beside it and
    pytest's own do not; a needed folder that lies inside a hidden one stops the command, named."""
    require_mount_namespace()
    root = Path(tempfile.mkdtemp(prefix="ragtune-view-", dir="/tmp"))
    try:
        keep, beside = root / "checkout", root / "beside"
        private = keep / "private"
        for folder in (keep, private, beside, tmp_path):
            folder.mkdir(exist_ok=True)
            (folder / "f").write_text("driver\n", encoding="utf-8")
        look = 'test -f "$1/f" && test ! -e "$2/f" && test ! -e "$3" && test ! -e "$4"'
        paths = [str(p) for p in (keep, private, beside, tmp_path)]
        with private_tmp_command(["sh", "-c", look, "sh", *paths], [keep], [private, tmp_path]) as cmd:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        with private_tmp_command(["true"], [keep, private], [private]) as cmd:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 3 and f"private tmp: needed {private} is hidden" in done.stderr, done.stderr
        assert all((p / "f").is_file() for p in (keep, private, beside, tmp_path))  # the driver's view is untouched
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_isolated_node_runs_the_checkout_but_cannot_see_the_driver_files(isolated_ray, tmp_path, tmp_path_factory):
    import ray

    secret = tmp_path / "driver-only.txt"
    secret.write_text("only the driver reads this\n", encoding="utf-8")
    with tempfile.NamedTemporaryFile(prefix="ragtune-driver-") as in_tmp:  # in the machine's temp dir
        driver_side = [str(secret), str(tmp_path_factory.getbasetemp()), in_tmp.name]
        ray.init(address=isolated_ray)

        @ray.remote(num_cpus=0)
        def look(paths: list[str]) -> tuple[str, str, list[bool]]:
            import components

            return components.__file__, sys.executable, [os.path.exists(p) for p in paths]

        code, python, seen = ray.get(look.remote(driver_side))
        assert all(Path(p).exists() for p in driver_side)  # the driver sees them all
    assert dict(zip(driver_side, seen, strict=True)) == dict.fromkeys(driver_side, False)  # the node none
    assert Path(code).is_relative_to(REPO) and python == sys.executable  # it runs this checkout, this venv


def _copy_checkout(dest: Path) -> None:
    """The files of this checkout that git would ship (tracked, and new ones not ignored), as they are now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():  # a tracked file deleted in the work tree is not there
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)


def _venv_in(checkout: Path) -> Path:
    """``checkout/.venv`` that runs this venv's packages (a ``.pth`` to its site-packages, ``ray`` pointed at
    its own python) but not this checkout's code: a fresh venv's place, in seconds, not a 3 GB copy."""
    import site

    venv = checkout / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site_dir,) = venv.glob("lib/python*/site-packages")
    (site_dir / "ragtune-parent-venv.pth").write_text("".join(f"{p}\n" for p in site.getsitepackages()))
    _, body = (BIN / "ray").read_text(encoding="utf-8").split("\n", 1)
    (venv / "bin" / "ray").write_text(f"#!{venv / 'bin' / 'python'}\n{body}", encoding="utf-8")
    (venv / "bin" / "ray").chmod(0o755)
    return venv


def test_the_isolated_node_starts_from_a_checkout_under_tmp(tmp_path):
    require_mount_namespace()
    checkout = Path(tempfile.mkdtemp(prefix="ragtune-checkout-", dir="/tmp"))
    try:
        _copy_checkout(checkout)
        venv = _venv_in(checkout)
        first = test_the_isolated_node_runs_the_checkout_but_cannot_see_the_driver_files.__name__
        first = f"{Path(__file__).relative_to(REPO).as_posix()}::{first}"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["RAGTUNE_REQUIRE_MOUNT_NS"] = "1"  # the run below must not skip
        cmd = [str(venv / "bin" / "python"), "-m", "pytest", first, "-q", "-p", "no:cacheprovider"]
        done = subprocess.run(
            [*cmd, f"--basetemp={tmp_path / 'inner'}"],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-6000:] + done.stderr[-3000:]
    finally:
        shutil.rmtree(checkout, ignore_errors=True)
