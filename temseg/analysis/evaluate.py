"""Inference for the report: the Fourier-filter baseline and the networks on each test split.

The readers (a store's test split, a network from its MLflow checkpoint) are passed in, so
:mod:`temseg.analysis.report` keeps them as seams that tests replace with in-memory stand-ins.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from temseg import baseline
from temseg.analysis import collect

MAX_PATCHES = 32


@dataclass
class DatasetEval:
    """What the report knows about one dataset's test split."""

    name: str
    contrast: float
    pixel_size_nm: float
    data_path: str
    images: np.ndarray | None = None
    masks: np.ndarray | None = None
    fourier: np.ndarray | None = None  # Fourier masks of the first patches (FN subset)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # run_id -> masks
    fourier_row: dict[str, Any] = field(default_factory=dict)


def evaluate_fourier(
    ds: DatasetEval,
    max_patches: int | None,
    notes: list[str],
    *,
    load_split: Callable[[str], tuple[np.ndarray, np.ndarray, dict[str, Any]]],
) -> None:
    row = {
        "dataset": ds.name,
        "contrast": ds.contrast,
        "pixel_size_nm": ds.pixel_size_nm,
        "patch_size": np.nan,
        "band_inner_px": np.nan,
        "band_outer_px": np.nan,
        "band_inner_inv_nm": np.nan,
        "band_outer_inv_nm": np.nan,
        "n_test_patches": 0,
        "fourier_dice": np.nan,
        "status": "",
    }
    ds.fourier_row = row
    if math.isfinite(ds.pixel_size_nm) and not baseline.fourier_applicable(ds.pixel_size_nm):
        row["status"] = "not applicable: band above Nyquist"
        notes.append(
            f"{ds.name}: Fourier baseline not applicable at {ds.pixel_size_nm} nm/px "
            "(Au fringes above Nyquist)."
        )
    try:
        images, masks, attrs = load_split(ds.data_path)
    except Exception as exc:  # the data layer may be absent or the store moved
        row["status"] = row["status"] or f"store unavailable: {exc}"
        notes.append(f"{ds.name}: test split not read ({exc}); no Fourier dice or examples.")
        return
    pixel_size = float(attrs.get("pixel_size_nm", ds.pixel_size_nm))
    ds.pixel_size_nm = pixel_size if math.isfinite(pixel_size) else ds.pixel_size_nm
    row["pixel_size_nm"] = ds.pixel_size_nm
    row["patch_size"] = int(images.shape[-1]) if images.ndim == 3 else np.nan
    row["n_test_patches"] = int(len(images))
    ds.images, ds.masks = images, masks.astype(bool)
    try:
        band = baseline.fourier_band(ds.pixel_size_nm, int(images.shape[-1]))
    except ValueError:
        row["status"] = "not applicable: band above Nyquist"
        return
    row.update(
        band_inner_px=band.inner_px,
        band_outer_px=band.outer_px,
        band_inner_inv_nm=band.inner_inv_nm,
        band_outer_inv_nm=band.outer_inv_nm,
    )
    if len(images) == 0:
        row["status"] = "empty test split"
        return
    pred = baseline.fourier_segment_batch(images, ds.pixel_size_nm)
    row["fourier_dice"] = baseline.pooled_dice(pred, ds.masks)
    row["status"] = "ok"
    ds.fourier = pred[:max_patches] if max_patches else pred


def fn_runs(trials: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Runs whose false negatives are compared: the pooling series of the smallest N, as the
    paper's Figure 7 uses three 2-block networks; one run per RF, of the smallest seed that
    every RF has (else each RF's smallest seed), so the networks differ only in RF."""
    ok = collect.finished(trials)
    ok = ok[ok["dataset"] == dataset]
    ok = ok[ok["dilations"].map(lambda d: set(str(d).split("-")) <= {"1"})]
    if ok.empty:
        return ok
    ok = ok[ok["num_blocks"] == ok["num_blocks"].min()]
    seeds_by_rf = ok.groupby("rf_px")["seed"].agg(set)
    common = set.intersection(*seeds_by_rf)
    picks = []
    for rf, seeds in seeds_by_rf.items():
        seed = min(common) if common else min(seeds)
        picks.append(ok[(ok["rf_px"] == rf) & (ok["seed"] == seed)].iloc[:1])
    return pd.concat(picks).sort_values("rf_px")


def evaluate_networks(
    client: Any,
    trials: pd.DataFrame,
    ds: DatasetEval,
    max_patches: int | None,
    tmp: Path,
    notes: list[str],
    *,
    predictor: Callable[[Any, str, Path], Callable[[np.ndarray], np.ndarray]],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if ds.images is None:
        return rows
    images = ds.images[:max_patches] if max_patches else ds.images
    truth = ds.masks[: len(images)]
    runs = fn_runs(trials, ds.name)
    failures = []
    for run in runs.itertuples():
        try:
            predict = predictor(client, run.run_id, tmp)
            pred = np.asarray(predict(images)).astype(bool)
            if pred.shape != images.shape:
                raise ValueError(f"prediction shape {pred.shape} != images {images.shape}")
        except Exception as exc:  # no torch, no temseg.model, missing or stale artifact
            failures.append((run.run_name or run.run_id, f"{type(exc).__name__}: {exc}"))
            continue
        ds.predictions[run.run_id] = pred
        row = {
            "dataset": ds.name,
            "contrast": ds.contrast,
            "num_blocks": int(run.num_blocks),
            "strategy": "pooling",
            "pools": run.pools,
            "dilations": run.dilations,
            "rf_px": int(run.rf_px),
            "rf_nm": float(run.rf_px) * ds.pixel_size_nm,
            "seed": int(run.seed),
            "run_id": run.run_id,
            "n_patches": int(len(images)),
            "network_dice": baseline.pooled_dice(pred, truth),
        }
        if ds.fourier is not None:
            row["fourier_dice"] = baseline.pooled_dice(ds.fourier, truth)
            row.update(baseline.false_negative_overlap(pred, ds.fourier, truth))
        rows.append(row)
    if failures:
        names = ", ".join(name for name, _ in failures)
        notes.append(
            f"{ds.name}: {len(failures)} of {len(runs)} network(s) not evaluated ({names}); "
            f"first error: {clip_text(failures[0][1], 300)}. Their example segmentations and "
            "false-negative overlap are left out."
        )
    return rows


def clip_text(text: str, n: int) -> str:
    """``text`` on one line, cut to ``n`` characters (an error message in a note or a table)."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."
