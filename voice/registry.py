"""Resolve classes and factories named by dotted path (``package.module:attribute``).

This is how voice reaches telephony without importing it statically: the server names the
transport factories in configuration, as pyannote's config.yaml names its pipeline class.
"""

from __future__ import annotations

import importlib
from typing import Any

from voice.errors import ConfigError


def resolve(path: str) -> Any:
    """The object at ``module:attribute``.

    Raises:
        ConfigError: the path is malformed or names nothing importable.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{path!r} is not a dotted path", hint="use 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} for {path!r}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError as exc:
        raise ConfigError(f"{module_name!r} has no attribute {attribute!r}") from exc
