"""Local Hugging Face ``evaluate`` modules, loaded by path (the hub is not reachable)."""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path(__file__).parent


def load_metric(name: str):
    """Load the evaluate module in ``components/metrics/<name>/``.

    Raises:
        FileNotFoundError: no such module folder.
    """
    import evaluate

    folder = METRICS_DIR / name
    if not (folder / f"{name}.py").is_file():
        raise FileNotFoundError(f"no evaluate module {name!r} in {METRICS_DIR}")
    return evaluate.load(str(folder))
