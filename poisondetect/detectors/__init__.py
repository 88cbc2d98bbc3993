"""Detectors.  Each module in this package registers its detector classes with
:func:`poisondetect.detectors.base.register`; every module here (but ``base`` and
private ``_*`` ones) is imported on first use of the registry."""
from __future__ import annotations

import importlib
import pkgutil

from .base import Detector, default_detectors, get_detector, register, registry

_loaded = False


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name == "base" or mod.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{mod.name}")
    _loaded = True


__all__ = ["Detector", "register", "registry", "get_detector", "default_detectors"]
