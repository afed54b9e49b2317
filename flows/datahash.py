"""DVC's view of the raw data: its current hash and the one the last ``ingest`` recorded."""

from __future__ import annotations

from pathlib import Path

RAW_STAGE = "ingest"


def _raw_dep(repo, root: Path):
    from components.config import load_params

    raw = load_params(root / "params").data.paths.raw
    stage = repo.stage.collect(f"{root / 'dvc.yaml'}:{RAW_STAGE}")[0]
    for dep in stage.deps:
        if dep.def_path == raw:
            return dep
    raise LookupError(f"dvc.yaml: stage {RAW_STAGE!r} does not depend on {raw}")


def raw_data_hash(root: Path | str) -> str:
    """DVC's md5 of the raw data folder as it is now (``<md5>.dir``), computed by DVC itself.

    Raises:
        FileNotFoundError: the raw data folder does not exist.
    """
    from dvc.repo import Repo

    root = Path(root).resolve()
    with Repo(str(root)) as repo:
        dep = _raw_dep(repo, root)
        if not dep.exists:
            raise FileNotFoundError(f"{dep.fs_path} does not exist: `dvc pull` or `ragtune data add` first")
        return str(dep.get_hash().value)


def recorded_raw_hash(root: Path | str) -> str | None:
    """The hash of the raw data that the last ``ingest`` ran on (from dvc.lock); None if it never ran."""
    from dvc.repo import Repo

    root = Path(root).resolve()
    if not (root / "dvc.lock").is_file():
        return None
    with Repo(str(root)) as repo:
        dep = _raw_dep(repo, root)
        return str(dep.hash_info.value) if dep.hash_info and dep.hash_info.value else None
