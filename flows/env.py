"""Environment every ragtune process runs with: offline model hubs, no usage statistics.

Imported by the CLI and by the tests' conftest; it imports nothing heavy.
"""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
}


def set_offline_defaults() -> None:
    """Set each of :data:`OFFLINE_ENV` unless the caller's environment already sets it."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
