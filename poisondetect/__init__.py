"""poisondetect: find poisoned and backdoored examples in instruction-tuning datasets."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import ConfigError, InputError, PoisonDetectError  # noqa: E402
from .types import DetectorResult, Evidence, Pairs  # noqa: E402


def scan(data, **kwargs):  # noqa: ANN001, ANN003, ANN201
    """Scan a dataset; see :func:`poisondetect.pipeline.scan`."""
    from .pipeline import scan as _scan
    return _scan(data, **kwargs)


__all__ = ["__version__", "scan", "Pairs", "Evidence", "DetectorResult",
           "InputError", "ConfigError", "PoisonDetectError"]
