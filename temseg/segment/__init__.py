"""Segment whole micrographs with a trained network: masks, particle tables, a small report.

The study ends at a recommended network (a sweep registers it as ``temseg-<dataset>`` with
alias ``recommended``); this package applies such a network, or one of the paper authors'
published ones, to whole images of any size and turns the masks into particle sizes
(:mod:`temseg.particles`).

Images go through the readers and the preprocessing of ``temseg ingest`` (negatives to 0,
x-ray removal, per-image standardization over the whole micrograph), one frame of a stack at
a time. The network then runs on tiles whose results are stitched with no seam.

Modules: :mod:`~temseg.segment.models` (loading networks and their pixel size),
:mod:`~temseg.segment.tiling` (pure tiling arithmetic), :mod:`~temseg.segment.predict`
(tiled inference), :mod:`~temseg.segment.images` (input checks, resampling),
:mod:`~temseg.segment.run` (the run: :func:`segment_images`), :mod:`~temseg.segment.registry`
(several networks: a registered model's seeds, ``auto``), :mod:`~temseg.segment.sizes` (size
statistics with bootstrap intervals), :mod:`~temseg.segment.calibration` (the per-image
boundary error measured on held-out data, which widens D50 / D90),
:mod:`~temseg.segment.guard` (the domain guard),
:mod:`~temseg.segment.truth` (comparison with true masks), :mod:`~temseg.segment.tables`
(the CSV tables) and :mod:`~temseg.segment.page` (the report page).
"""

from temseg.segment.models import MODEL_CARD, SegmentModel, load_model
from temseg.segment.predict import DEFAULT_BATCH, DEFAULT_TILE, predict_tiled, predict_whole
from temseg.segment.registry import load_models
from temseg.segment.run import (
    DEFAULT_MIN_DIAMETER_NM,
    SegmentOptions,
    SegmentResult,
    choose_auto,
    segment_images,
)
from temseg.segment.tiling import tile_margins, tile_spans

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_MIN_DIAMETER_NM",
    "DEFAULT_TILE",
    "MODEL_CARD",
    "SegmentModel",
    "SegmentOptions",
    "SegmentResult",
    "choose_auto",
    "load_model",
    "load_models",
    "predict_tiled",
    "predict_whole",
    "segment_images",
    "tile_margins",
    "tile_spans",
]
