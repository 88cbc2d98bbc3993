"""Detectors.  Each module in this package registers its detector classes with
:func:`poisondetect.detectors.base.register`; every module here (but ``base`` and
private ``_*`` ones) is imported on first use of the registry (:func:`load_all`)."""
from __future__ import annotations

from .base import Detector, MergeableDetector, default_detectors, get_detector, load_all, register, registry

__all__ = ["Detector", "MergeableDetector", "register", "registry", "get_detector", "default_detectors", "load_all"]
