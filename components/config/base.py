"""What every config model shares: strict, frozen, no defaults (the values live in ``params/``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A params file is missing, unreadable or holds an invalid value."""


class Strict(BaseModel):
    """A config section: unknown keys are refused, and the object cannot be changed after loading.

    Fields carry constraints but no defaults: every value comes from ``params/*.yaml``
    (tests/unit/test_config.py fails on a field with a default).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


def with_defaults(defaults: dict, variants: list) -> list:
    """Each variant as the shared ``defaults`` overlaid with its own keys (a variant shows only its delta).

    The overlay is one level deep: a key the variant gives replaces the default's value whole.
    Anything that is not a mapping is passed through, for the validator to name.
    """
    if not isinstance(defaults, dict) or not isinstance(variants, list):
        return variants
    return [{**defaults, **v} if isinstance(v, dict) else v for v in variants]
