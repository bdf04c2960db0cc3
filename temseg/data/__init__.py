"""The data layer: patch stores, microscope readers, preprocessing, the synthetic generator.

Importing ``temseg.data`` is cheap (the CLI imports it for ``--help``); the names below load
their modules (numpy, zarr, torch) on first use.

- :func:`temseg.data.store.write_store`, ``open_store``, ``read_attrs``, ``load_split``
- :func:`temseg.data.ingest.ingest`: real files -> store
- :func:`temseg.data.synth.make_synthetic_store`, ``make_contrast_series``
- :class:`temseg.data.dataset.PatchDataset`: torch Dataset with dihedral expansion
- :func:`temseg.data.augment.dihedral`
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "PatchDataset": "temseg.data.dataset",
    "StoreError": "temseg.data.store",
    "write_store": "temseg.data.store",
    "open_store": "temseg.data.store",
    "read_attrs": "temseg.data.store",
    "load_split": "temseg.data.store",
    "ingest": "temseg.data.ingest",
    "make_synthetic_store": "temseg.data.synth",
    "make_contrast_series": "temseg.data.synth",
    "PRESETS": "temseg.data.synth",
    "dihedral": "temseg.data.augment",
    "read_image": "temseg.data.readers",
    "preprocess": "temseg.data.preprocess",
    "measure_contrast": "temseg.data.contrast",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'temseg.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
