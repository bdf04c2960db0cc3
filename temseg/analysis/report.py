"""The sweep report: tables, fitted plateaus, the Fourier baseline and figures, as Markdown/HTML.

``write_report(experiment, tracking_uri, out_dir)`` reads one MLflow experiment (one run per
trial, see :mod:`temseg.analysis.collect`) and writes into ``out_dir``:

- ``trials.csv``: one row per trial (failed ones included); ``failed_trials.csv``;
- ``summary.csv``: mean/std/n over seeds per dataset x architecture;
- ``plateaus.csv``: the dice-vs-RF plateau fit per (dataset, contrast, N, strategy)
  (:mod:`temseg.analysis.plateau`), RF in px and nm with bootstrap intervals;
- ``recommendation.csv``: per dataset, the smallest-RF and the cheapest network whose dice
  is as good as the plateau (:mod:`temseg.analysis.recommend`); the report opens with it;
- ``onset_trend.csv``: onset RF against measured contrast per (pixel size, N, strategy);
- ``leave_one_level_out.csv``: the trend's prediction of each held-out level's onset against
  the Loos et al. (2024) heuristic;
- ``erf_fits.csv``: plateau fits of dice against the effective receptive field and RF
  (:mod:`temseg.analysis.erf`); ``erf_vs_rf.png``;
- ``fourier.csv``: the Fourier-filter baseline (:mod:`temseg.baseline`) per dataset;
- ``fn_overlap.csv``: false negatives of networks vs the Fourier filter (paper Figure 7);
- ``dice_vs_rf.png`` (paper Figures 2-4: one panel per contrast level, one curve per N and
  strategy), ``onset_vs_contrast.png``, ``examples_<dataset>.png`` (small / medium / large RF
  next to the Fourier filter, with false-negative maps);
- ``report.md`` and a self-contained ``report.html`` (figures embedded as base64).

The network part (predictions from the checkpoints logged as MLflow artifacts) needs torch,
``temseg.model`` and the patch stores; when any is missing the report is still written and
says what was left out and why. Matplotlib is used through its object API on an Agg canvas,
so no global backend is switched.

Dice everywhere is the pooled hard dice on the particle class: 2 sum(I) / (sum|X| + sum|Y|)
over every pixel of the split.
"""

from __future__ import annotations

import base64
import html
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from temseg import baseline
from temseg.analysis import answer, collect, plateau, recommend
from temseg.analysis import erf as analysis_erf

DICE_FORM = (
    "Dice is the pooled hard dice on the particle class, 2 sum(I) / (sum|X| + sum|Y|) over "
    "every pixel of the test split (argmax masks), the form the trainer logs; seed statistics "
    "are mean and sample std (ddof = 1) over seeds."
)
SUMMARY_COLUMNS = collect.SUMMARY_COLUMNS
PLATEAU_COLUMNS = [
    "dataset",
    "contrast",
    "pixel_size_nm",
    "num_blocks",
    "strategy",
    "plateau_dice",
    "plateau_dice_lo",
    "plateau_dice_hi",
    "gain",
    "gain_lo",
    "gain_hi",
    "onset_rf_px",
    "onset_rf_px_lo",
    "onset_rf_px_hi",
    "onset_rf_nm",
    "onset_rf_nm_lo",
    "onset_rf_nm_hi",
    "verdict",
    "observed_gain",
    "gain_se",
    "sigma",
    "sigma_source",
    "dof",
    "tau",
    "plateau_reached",
    "onset_censored",
    "n_trials",
    "n_rfs",
    "n_seeds",
    "rf_min_px",
    "rf_max_px",
    "rf_min_nm",
    "rf_max_nm",
    "note",
]
FOURIER_COLUMNS = [
    "dataset",
    "contrast",
    "pixel_size_nm",
    "patch_size",
    "band_inner_px",
    "band_outer_px",
    "band_inner_inv_nm",
    "band_outer_inv_nm",
    "n_test_patches",
    "fourier_dice",
    "status",
]
FN_COLUMNS = [
    "dataset",
    "contrast",
    "num_blocks",
    "strategy",
    "pools",
    "dilations",
    "rf_px",
    "rf_nm",
    "seed",
    "run_id",
    "n_patches",
    "network_dice",
    "fourier_dice",
    "fn_network_px",
    "fn_fourier_px",
    "fn_both_px",
    "fn_jaccard",
    "fn_network_missed_by_fourier",
]
FAILED_COLUMNS = [
    "run_name",
    "trial_key",
    "status",
    "dataset",
    "num_blocks",
    "pools",
    "dilations",
    "seed",
    "run_id",
    "error",
]
MAX_PATCHES = 32
N_COLORS = {2: "tab:blue", 3: "tab:orange", 4: "tab:green", 5: "tab:red", 1: "tab:purple"}


# --------------------------------------------------------------------------- loaders
# Small seams: tests replace these with in-memory stand-ins.


def _load_split(data_path: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Test images, masks and attributes of a patch store (``temseg.data.store``)."""
    if not data_path or not Path(data_path).exists():
        raise FileNotFoundError(f"patch store {data_path!r} not found")
    return baseline.load_test_split(data_path)


def _network_predictor(client: Any, run_id: str, tmp: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function (n, P, P) float -> (n, P, P) bool from a run's checkpoint artifact."""
    import torch

    from temseg.model import load_checkpoint

    path = collect.download_checkpoint(client, run_id, tmp / run_id)
    model, _ = load_checkpoint(path)

    @torch.no_grad()
    def predict(images: np.ndarray, batch: int = 8) -> np.ndarray:
        out = np.zeros(images.shape, dtype=bool)
        for i in range(0, len(images), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch], np.float32))
            logits = model(x[:, None])  # (B, 2, P, P)
            out[i : i + batch] = (logits[:, 1] > logits[:, 0]).numpy()
        return out

    return predict


# --------------------------------------------------------------------------- evaluation


@dataclass
class _DatasetEval:
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


def _evaluate_fourier(ds: _DatasetEval, max_patches: int | None, notes: list[str]) -> None:
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
        images, masks, attrs = _load_split(ds.data_path)
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


def _fn_runs(trials: pd.DataFrame, dataset: str) -> pd.DataFrame:
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


def _evaluate_networks(
    client: Any,
    trials: pd.DataFrame,
    ds: _DatasetEval,
    max_patches: int | None,
    tmp: Path,
    notes: list[str],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if ds.images is None:
        return rows
    images = ds.images[:max_patches] if max_patches else ds.images
    truth = ds.masks[: len(images)]
    runs = _fn_runs(trials, ds.name)
    failures = []
    for run in runs.itertuples():
        try:
            predict = _network_predictor(client, run.run_id, tmp)
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
            f"first error: {_clip(failures[0][1], 300)}. Their example segmentations and "
            "false-negative overlap are left out."
        )
    return rows


# --------------------------------------------------------------------------- figures


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _log_axis(axis: Any) -> None:
    """Log scale with plain tick labels at 1, 2, 5 x 10^k (no 2x10^0 notation)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _curve(row: pd.Series, rf_px: np.ndarray) -> np.ndarray:
    if row["verdict"] == plateau.FLAT:
        return np.full(rf_px.shape, row["plateau_dice"])
    if not np.isfinite(row["tau"]):
        return np.full(rf_px.shape, np.nan)
    return row["plateau_dice"] - row["gain"] * (rf_px / row["rf_min_px"]) ** (-1 / row["tau"])


def _series(summary: pd.DataFrame) -> dict[tuple[str, int, str], pd.DataFrame]:
    out = {}
    for (dataset, n_blocks), group in summary.groupby(["dataset", "num_blocks"]):
        for strategy, members in plateau._strategy_members(group).items():
            out[(dataset, int(n_blocks), strategy)] = members.sort_values("rf_px")
    return out


def _plot_dice_vs_rf(
    summary: pd.DataFrame, plateaus: pd.DataFrame, fourier: pd.DataFrame, path: Path
) -> None:
    levels = (
        summary[["dataset", "contrast", "pixel_size_nm"]]
        .drop_duplicates("dataset")
        .sort_values(["contrast", "dataset"])
    )
    n = len(levels)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _figure(4.2 * ncols, 3.4 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    series = _series(summary)
    for ax, level in zip(axes.flat, levels.itertuples(), strict=False):
        for (dataset, n_blocks, strategy), s in sorted(series.items()):
            if dataset != level.dataset:
                continue
            color = N_COLORS.get(n_blocks, "black")
            style = "-" if strategy == "pooling" else "--"
            marker = "o" if strategy == "pooling" else "s"
            std = s["test_hard_dice_std"].astype(float).fillna(0.0)
            ax.errorbar(
                s["rf_nm"],
                s["test_hard_dice_mean"],
                yerr=std,
                color=color,
                marker=marker,
                ls="none",
                ms=4,
                capsize=2,
                label=f"N={n_blocks} {strategy}",
            )
            fit = plateaus[
                (plateaus["dataset"] == dataset)
                & (plateaus["num_blocks"] == n_blocks)
                & (plateaus["strategy"] == strategy)
            ]
            if len(fit):
                row = fit.iloc[0]
                rf = np.geomspace(s["rf_px"].min(), s["rf_px"].max(), 100).astype(float)
                ax.plot(rf * level.pixel_size_nm, _curve(row, rf), color=color, ls=style, lw=1.2)
                if np.isfinite(row["onset_rf_nm"]) and row["plateau_reached"]:
                    ax.axvline(row["onset_rf_nm"], color=color, ls=":", lw=0.8)
        ff = fourier[(fourier["dataset"] == level.dataset) & np.isfinite(fourier["fourier_dice"])]
        if len(ff):
            ax.axhline(
                ff["fourier_dice"].iloc[0], color="0.4", ls=":", lw=1.2, label="Fourier filter"
            )
        ax.set_xscale("log")
        _log_axis(ax.xaxis)
        ax.set_title(
            f"{level.dataset}\ncontrast {level.contrast:.3g}, {level.pixel_size_nm:.4g} nm/px",
            fontsize=9,
        )
        ax.set_xlabel("receptive field (nm)")
        ax.grid(alpha=0.3, which="both")
    for ax in axes[:, 0]:
        ax.set_ylabel("test hard dice (pooled)")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    by_label: dict[str, Any] = {}
    for ax in list(axes.flat)[:n]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            by_label.setdefault(label, handle)
    fig.legend(
        list(by_label.values()),
        list(by_label.keys()),
        loc="outside lower center",
        ncols=min(len(by_label), 5),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(
        "Test dice vs receptive field (mean +- std over seeds; lines: plateau fits, "
        "dotted verticals: 95% onset)",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)


def _plot_onset_vs_contrast(plateaus: pd.DataFrame, trend: pd.DataFrame, path: Path) -> None:
    fig = _figure(10, 4.0)
    ax_gain, ax_onset = fig.subplots(1, 2)
    pixel_sizes = sorted(plateaus["pixel_size_nm"].unique())
    for (pixel_size, n_blocks, strategy), g in plateaus.groupby(list(plateau.TREND_KEYS)):
        g = g.sort_values("contrast")
        color = N_COLORS.get(int(n_blocks), "black")
        style = "-" if strategy == "pooling" else "--"
        label = f"N={n_blocks} {strategy}"
        if len(pixel_sizes) > 1:  # one marker per sampling; strategy in the line style
            marker = "oDP^*"[pixel_sizes.index(pixel_size) % 5]
            label += f", {pixel_size:g} nm/px"
        else:
            marker = "o" if strategy == "pooling" else "s"
        ax_gain.plot(
            g["contrast"], g["observed_gain"], color=color, marker=marker, ls=style, label=label
        )
        rises = g[np.isfinite(g["onset_rf_nm"]) & (g["gain"] > 0)]
        sure = rises[rises["verdict"] == plateau.RISES]
        unsure = rises[rises["verdict"] != plateau.RISES]
        lo = (sure["onset_rf_nm"] - sure["onset_rf_nm_lo"]).clip(lower=0).fillna(0)
        hi = (sure["onset_rf_nm_hi"] - sure["onset_rf_nm"]).clip(lower=0).fillna(0)
        if len(sure):
            ax_onset.errorbar(
                sure["contrast"],
                sure["onset_rf_nm"],
                yerr=[lo, hi],
                color=color,
                marker=marker,
                ls="none",
                capsize=2,
                label=f"{label}: rises",
            )
        if len(unsure):
            ax_onset.plot(
                unsure["contrast"],
                unsure["onset_rf_nm"],
                color=color,
                marker=marker,
                mfc="none",
                ls="none",
                label=f"{label}: point estimate, no verdict",
            )
        for r in rises[~rises["plateau_reached"].astype(bool)].itertuples():
            ax_onset.annotate(
                "beyond largest RF", (r.contrast, r.onset_rf_nm), xytext=(4, 4),
                textcoords="offset points", fontsize=7, color=color,
            )  # fmt: skip
        flat = g[g["verdict"] == plateau.FLAT]
        if len(flat):
            ax_onset.plot(
                flat["contrast"],
                flat["rf_min_nm"],
                color=color,
                marker="v",
                ls="none",
                label=f"{label}: no detectable dependence (onset <= smallest RF)",
            )
        t = trend[
            (trend["pixel_size_nm"] == pixel_size)
            & (trend["num_blocks"] == n_blocks)
            & (trend["strategy"] == strategy)
        ]
        if len(t) and np.isfinite(t["slope"].iloc[0]):
            c = np.geomspace(g["contrast"].min(), g["contrast"].max(), 50)
            ax_onset.plot(
                c,
                np.exp(t["intercept"].iloc[0]) * c ** t["slope"].iloc[0],
                color=color,
                ls=style,
                lw=1,
            )
    ax_gain.axhline(0, color="0.5", lw=0.8)
    ax_gain.set_xlabel("measured contrast")
    ax_gain.set_ylabel("dice gain, largest - smallest RF")
    ax_gain.set_title("Gain from receptive field", fontsize=10)
    # log axes only where something positive is drawn (an empty panel cannot be log-scaled)
    log_axes = []
    if ax_gain.has_data():
        ax_gain.set_xscale("log")
        log_axes.append(ax_gain.xaxis)
    if ax_onset.has_data():
        ax_onset.set_xscale("log")
        ax_onset.set_yscale("log")
        log_axes += [ax_onset.xaxis, ax_onset.yaxis]
    for axis in log_axes:
        _log_axis(axis)
    ax_onset.set_xlabel("measured contrast")
    ax_onset.set_ylabel("onset RF, 95% of gain (nm)")
    ax_onset.set_title("Plateau onset (bars: bootstrap 95%; lines: power-law trend)", fontsize=10)
    for ax in (ax_gain, ax_onset):
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)


def _plot_erf_vs_rf(trials: pd.DataFrame, path: Path) -> bool:
    """ERF diameter (2 x erf95_px) of every trial against its RF (Eq. 1), one panel per
    contrast level, with the identity line and each network's exact maximum reach."""
    done = collect.finished(trials)
    done = done.assign(erf_d=analysis_erf.erf_diameter(done))
    done = done[np.isfinite(done["erf_d"]) & (done["erf_d"] > 0)]
    if done.empty:
        return False
    levels = done.drop_duplicates("dataset").sort_values(["contrast", "dataset"])
    n = len(levels)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _figure(4.2 * ncols, 3.6 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, level in zip(axes.flat, levels.itertuples(), strict=False):
        d = done[done["dataset"] == level.dataset]
        for (n_blocks, strategy), g in d.groupby(["num_blocks", "strategy"]):
            ax.plot(
                g["rf_px"].astype(float),
                g["erf_d"],
                color=N_COLORS.get(int(n_blocks), "black"),
                marker="o" if strategy == "pooling" else "s",
                ls="none",
                ms=4,
                alpha=0.8,
                label=f"N={n_blocks} {strategy}",
            )
        exact = d[["rf_px", "rf_exact_max_px"]].dropna().drop_duplicates()
        if len(exact):
            ax.plot(
                exact["rf_px"].astype(float),
                exact["rf_exact_max_px"].astype(float),
                color="0.3",
                marker="_",
                ms=12,
                ls="none",
                label="exact max reach",
            )
        rf = d["rf_px"].astype(float)
        lim = np.array([min(rf.min(), d["erf_d"].min()) * 0.8, rf.max() * 1.25])
        ax.plot(lim, lim, color="0.6", ls="--", lw=0.8, label="ERF diameter = RF")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _log_axis(ax.xaxis)
        _log_axis(ax.yaxis)
        ax.set_title(f"{level.dataset}\ncontrast {level.contrast:.3g}", fontsize=9)
        ax.set_xlabel("receptive field, Eq. 1 (px)")
        ax.set_ylabel("ERF diameter, 2 x r95 (px)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(
        "Effective receptive field (95% of the input-gradient mass, Luo et al. 2016) "
        "against the theoretical RF",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    return True


def _plot_examples(ds: _DatasetEval, fn_rows: pd.DataFrame, path: Path) -> bool:
    """Image, truth, Fourier and small / medium / large RF networks on one test patch."""
    rows = fn_rows[fn_rows["dataset"] == ds.name].sort_values("rf_px")
    if ds.images is None or len(ds.images) == 0 or (ds.fourier is None and rows.empty):
        return False
    picks = []
    if len(rows):
        idx = sorted({0, (len(rows) - 1) // 2, len(rows) - 1})
        picks = [rows.iloc[i] for i in idx]
    n_sub = len(ds.fourier) if ds.fourier is not None else len(ds.images)
    if picks:
        n_sub = min(n_sub, len(ds.predictions[picks[0]["run_id"]]))
    k = int(np.argmax(ds.masks[:n_sub].reshape(n_sub, -1).sum(axis=1)))
    image, truth = ds.images[k], ds.masks[k]
    panels = [("Fourier filter", ds.fourier[k] if ds.fourier is not None else None)]
    for r in picks:
        title = f"N={r['num_blocks']}, RF {r['rf_nm']:.2f} nm"
        panels.append((title, ds.predictions[r["run_id"]][k]))
    ncols = 2 + len(panels)
    fig = _figure(2.3 * ncols, 5.0)
    axes = fig.subplots(2, ncols, squeeze=False)
    lo, hi = np.percentile(image, [1, 99])
    axes[0, 0].imshow(image, cmap="gray", vmin=lo, vmax=hi)
    axes[0, 0].set_title("image", fontsize=8)
    axes[0, 1].imshow(truth, cmap="gray")
    axes[0, 1].set_title("ground truth", fontsize=8)
    axes[1, 0].imshow(image, cmap="gray", vmin=lo, vmax=hi)
    axes[1, 0].contour(truth, levels=[0.5], colors="yellow", linewidths=0.6)
    axes[1, 0].set_title("truth outline", fontsize=8)
    axes[1, 1].axis("off")
    axes[1, 1].text(
        0.05, 0.5, "row 2: false negatives\n(particle missed) in red", fontsize=8, va="center"
    )
    for j, (title, mask) in enumerate(panels, start=2):
        if mask is None:
            axes[0, j].text(0.5, 0.5, "not applicable", ha="center", va="center", fontsize=8)
            axes[1, j].axis("off")
        else:
            axes[0, j].imshow(mask, cmap="gray")
            fn = truth & ~mask
            rgb = np.stack([truth * 0.35 + fn * 0.65, truth * 0.35, truth * 0.35], axis=-1)
            axes[1, j].imshow(rgb)
            d = baseline.pooled_dice(mask, truth)
            axes[1, j].set_title(f"FN {int(fn.sum())} px", fontsize=8)
            title = f"{title}\ndice {d:.3f}"
        axes[0, j].set_title(title, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{ds.name}: test patch {k} (contrast {ds.contrast:.3g})", fontsize=10)
    fig.savefig(path, dpi=100)
    return True


# --------------------------------------------------------------------------- documents


def _fmt_value(v: Any, decimals: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.{decimals}f}"
    return str(v)


def _display(df: pd.DataFrame, decimals: dict[str, int] | None = None) -> pd.DataFrame:
    decimals = decimals or {}
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        d = decimals.get(col, 3)
        out[col] = [_fmt_value(v, d) for v in df[col]]
    return out.reset_index(drop=True)


def _interval(v: float, lo: float, hi: float, decimals: int) -> str:
    if not np.isfinite(v):
        return ""
    s = f"{v:.{decimals}f}"
    if np.isfinite(lo) and np.isfinite(hi):
        s += f" [{lo:.{decimals}f}, {hi:.{decimals}f}]"
    return s


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(none)_"
    cells = [[str(c).replace("|", "\\|") for c in df.columns]]
    cells += [
        [" ".join(str(v).split()).replace("|", "\\|") for v in row]
        for row in df.itertuples(index=False)
    ]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(lines)


class _Doc:
    """A report as blocks, rendered to Markdown and to self-contained HTML."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, Any]] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append((f"h{level}", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: list[str]) -> None:
        if items:
            self.blocks.append(("ul", items))

    def table(self, df: pd.DataFrame) -> None:
        self.blocks.append(("table", df))

    def img(self, path: Path, caption: str) -> None:
        self.blocks.append(("img", (path, caption)))

    def markdown(self) -> str:
        out = []
        for kind, x in self.blocks:
            if kind.startswith("h"):
                out.append("#" * int(kind[1]) + " " + x)
            elif kind == "p":
                out.append(x)
            elif kind == "ul":
                out.append("\n".join(f"- {i}" for i in x))
            elif kind == "table":
                out.append(_md_table(x))
            elif kind == "img":
                out.append(f"![{x[1]}]({x[0].name})\n\n_{x[1]}_")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        def inline(text: str) -> str:
            text = html.escape(text)
            text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
            return re.sub(r"`(.+?)`", r"<code>\1</code>", text)

        body = []
        for kind, x in self.blocks:
            if kind.startswith("h"):
                body.append(f"<{kind}>{inline(x)}</{kind}>")
            elif kind == "p":
                body.append(f"<p>{inline(x)}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in x) + "</ul>")
            elif kind == "table":
                body.append(
                    "<p><i>(none)</i></p>"
                    if x.empty
                    else x.to_html(index=False, escape=True, border=0, classes="t")
                )
            elif kind == "img":
                data = base64.b64encode(x[0].read_bytes()).decode("ascii")
                body.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(x[1])}">'
                    f"<figcaption>{inline(x[1])}</figcaption></figure>"
                )
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;"
            "padding:0 1em;color:#222;line-height:1.45}"
            "table.t{border-collapse:collapse;font-size:12px;margin:0.5em 0 1.5em}"
            "table.t th,table.t td{border:1px solid #ccc;padding:2px 6px;text-align:right}"
            "table.t th{background:#f0f0f0}img{max-width:100%}"
            "figcaption{font-size:12px;color:#555}code{background:#f4f4f4;padding:0 3px}"
        )
        return (
            f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{style}</style></head><body>\n"
            + "\n".join(body)
            + "\n</body></html>\n"
        )


def _findings(
    plateaus: pd.DataFrame,
    trend: pd.DataFrame,
    fourier: pd.DataFrame,
    fn: pd.DataFrame,
    summary: pd.DataFrame,
) -> list[str]:
    out = []
    keys = list(plateau.TREND_KEYS)
    for (pixel_size, n_blocks, strategy), g in plateaus.groupby(keys):
        g = g[np.isfinite(g["contrast"])].sort_values("contrast")
        if len(g) < 2:
            continue
        low, high = g.iloc[0], g.iloc[-1]
        if np.isfinite(low["observed_gain"]) and np.isfinite(high["observed_gain"]):
            if max(low["observed_gain"], high["observed_gain"]) <= 0:
                comparison = "no gain at either level (dice does not rise with RF)"
            elif low["observed_gain"] > high["observed_gain"]:
                comparison = "larger at low contrast"
            else:
                comparison = "not larger at low contrast"
            out.append(
                f"N={n_blocks} {strategy} at {pixel_size:g} nm/px: dice gain from the smallest "
                "to the largest RF is "
                f"{low['observed_gain']:+.3f} at the lowest contrast ({low['contrast']:.3g}, "
                f"{low['dataset']}) and {high['observed_gain']:+.3f} at the highest "
                f"({high['contrast']:.3g}, {high['dataset']}): "
                f"{comparison}. Verdicts: "
                f"{low['verdict']} / {high['verdict']}."
            )
    for t in trend.itertuples():
        left_out = (
            f"{t.n_flat} level(s) with no detectable dependence, {t.n_censored_above} still "
            f"rising at the largest RF (onset above the grid), {t.n_censored_below} reaching "
            "the plateau by the second RF (onset below the grid resolution), left out."
        )
        if np.isfinite(t.slope):
            extra = f", SE {t.slope_se:.2f}, p = {t.p_value:.3g}" if np.isfinite(t.p_value) else ""
            out.append(
                f"N={t.num_blocks} {t.strategy} at {t.pixel_size_nm:g} nm/px: onset RF ~ "
                f"contrast^{t.slope:.2f}{extra} over the {t.n_with_onset} level(s) with a "
                f"rise and an onset inside the tested RFs: {t.direction}; {left_out}"
            )
        else:
            out.append(
                f"N={t.num_blocks} {t.strategy} at {t.pixel_size_nm:g} nm/px: onset trend "
                f"undetermined: {t.n_with_onset} of {t.n_levels} level(s) have a measured "
                f"onset (2 needed); {left_out}"
            )
    for r in fourier[np.isfinite(fourier["fourier_dice"])].itertuples():
        best = summary[summary["dataset"] == r.dataset]["test_hard_dice_mean"].max()
        out.append(
            f"{r.dataset}: Fourier filter dice {r.fourier_dice:.3f}; best network "
            f"(seed mean) {best:.3f}."
        )
    if not fn.empty and "fn_jaccard" in fn:
        for dataset, g in fn.groupby("dataset"):
            g = g[np.isfinite(g["fn_jaccard"].astype(float))].sort_values("rf_px")
            if len(g) >= 2:
                first, last = g.iloc[0], g.iloc[-1]
                closest = first["fn_jaccard"] >= g["fn_jaccard"].max()
                out.append(
                    f"{dataset}: false negatives vs Fourier filter, Jaccard "
                    f"{first['fn_jaccard']:.2f} at RF {first['rf_nm']:.2f} nm and "
                    f"{last['fn_jaccard']:.2f} at {last['rf_nm']:.2f} nm: the smallest RF is "
                    f"{'' if closest else 'not '}the closest to the Fourier filter."
                )
    return out


def _held_out_lines(held_out: pd.DataFrame) -> list[str]:
    """One line per held-out level: the trend's prediction and the heuristic's, with errors,
    or plainly why there is no number."""
    if held_out.empty:
        return ["(no plateau fit: nothing to hold out)"]
    out = []
    for r in held_out.itertuples():
        head = f"{r.dataset} (contrast {r.contrast:.3g}), N={r.num_blocks} {r.strategy}: "
        px = r.pixel_size_nm
        measured = (
            f"measured onset {r.onset_nm:.2f} nm ({r.onset_nm / px:.0f} px)"
            if np.isfinite(r.onset_nm)
            else f"no measured onset ({r.onset_censored or 'no rise'})"
        )
        if r.status.startswith("trend undetermined"):
            trend = (
                "the trend without this level is undetermined (" + r.status.split(": ", 1)[1] + ")"
            )
        else:
            band = (
                f" [{r.predicted_nm_lo:.2f}, {r.predicted_nm_hi:.2f}]"
                if np.isfinite(r.predicted_nm_lo)
                else " (no interval: 2 levels)"
            )
            trend = f"trend predicts {r.predicted_nm:.2f} nm{band}"
            if np.isfinite(r.trend_error_nm):
                trend += f", error {r.trend_error_nm:+.2f} nm ({r.trend_error_px:+.0f} px)"
        if np.isfinite(r.heuristic_nm):
            heur = f"heuristic {r.heuristic_nm:.2f} nm (object {r.object_size_nm:g} nm)"
            if np.isfinite(r.heuristic_error_nm):
                heur += f", error {r.heuristic_error_nm:+.2f} nm ({r.heuristic_error_px:+.0f} px)"
        else:
            heur = "heuristic: object size unknown"
        out.append(f"{head}{measured}; {trend}; {heur}.")
    scored = held_out[held_out["status"] == "scored"]
    if len(scored):
        t = float(np.sqrt(np.mean(scored["trend_error_nm"] ** 2)))
        h_ok = scored[np.isfinite(scored["heuristic_error_nm"])]
        line = f"Over {len(scored)} scored level(s): trend RMS error {t:.2f} nm"
        if len(h_ok):
            h = float(np.sqrt(np.mean(h_ok["heuristic_error_nm"] ** 2)))
            line += f", heuristic RMS error {h:.2f} nm over {len(h_ok)}"
        out.append(line + ".")
    else:
        out.append(
            "No level could be scored: a held-out level needs a measured onset and the "
            "other levels a determined trend."
        )
    return out


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "dataset"


def write_report(
    experiment: str,
    tracking_uri: str | None = None,
    out_dir: str | Path = "report",
    *,
    networks: bool = True,
    max_patches: int | None = MAX_PATCHES,
    n_boot: int = plateau.N_BOOT,
    rng: int = 0,
) -> Path:
    """Write the sweep report of one MLflow experiment into ``out_dir``; returns ``out_dir``.

    Parameters
    ----------
    experiment
        MLflow experiment name (one run per trial).
    tracking_uri
        ``sqlite:///<absolute path>`` or ``http(s)://...``; ``None`` means the project's
        ``sqlite:///<repo>/mlruns.db``.
    out_dir
        Folder for the CSVs, PNGs, ``report.md`` and ``report.html`` (created).
    networks
        Evaluate checkpoints (false-negative overlap, example segmentations). Off, or without
        torch / ``temseg.model`` / the stores, those parts are left out and the report says so.
    max_patches
        Test patches per dataset for the network evaluation (the Fourier dice uses them all).
    n_boot, rng
        Bootstrap resamples and seed of the plateau intervals.

    Raises
    ------
    FileNotFoundError
        The SQLite tracking database does not exist.
    ValueError
        Unknown experiment, or no finished run with a test dice; nothing is written then.
    """
    client = collect.client_for(tracking_uri)
    trials = collect.load_runs(experiment, client=client)
    if trials.empty:
        raise ValueError(f"experiment {experiment!r} at {client.tracking_uri} has no runs")
    done = collect.finished(trials)
    if done.empty:
        counts = trials["status"].value_counts().to_dict()
        raise ValueError(
            f"experiment {experiment!r} has {len(trials)} trial(s) ({counts}) but none "
            "finished with a test_hard_dice metric: nothing to report"
        )
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    summary = collect.aggregate_seeds(trials)[SUMMARY_COLUMNS]
    plateaus = plateau.fit_plateaus(trials, n_boot=n_boot, rng=rng)[PLATEAU_COLUMNS]
    answers = answer.level_answers(done, plateaus)
    improving = answer.still_improving(trials)
    if len(improving):
        histories = collect.load_histories(improving, metrics=["val_hard_dice"], client=client)
        improving = answer.still_improving(trials, histories)
    trend = plateau.onset_trend(plateaus)
    erf_fits = analysis_erf.erf_fits(done, rng=rng)
    recommendation = recommend.recommend(done, plateaus)
    held_out = recommend.leave_one_level_out(plateaus, recommend.object_sizes(done))
    failed = collect.failed(trials)[FAILED_COLUMNS]

    levels = done.drop_duplicates("dataset").sort_values(["contrast", "dataset"])
    evals = [
        _DatasetEval(str(r.dataset), float(r.contrast), float(r.pixel_size_nm), str(r.data_path))
        for r in levels.itertuples()
    ]
    fn_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="temseg-report-") as tmp:
        for ds in evals:
            _evaluate_fourier(ds, max_patches, notes)
            if networks:
                fn_rows += _evaluate_networks(client, trials, ds, max_patches, Path(tmp), notes)
    if not networks:
        notes.append(
            "network evaluation switched off: no false-negative overlap, examples "
            "show the Fourier filter only."
        )
    fourier = pd.DataFrame([ds.fourier_row for ds in evals], columns=FOURIER_COLUMNS)
    fn = pd.DataFrame(fn_rows, columns=FN_COLUMNS)

    trials.drop(columns=["start_time"]).to_csv(out / "trials.csv", index=False)
    failed.to_csv(out / "failed_trials.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    plateaus.to_csv(out / "plateaus.csv", index=False)
    recommendation.to_csv(out / "recommendation.csv", index=False)
    answers.to_csv(out / "answers.csv", index=False)
    held_out.to_csv(out / "leave_one_level_out.csv", index=False)
    trend.to_csv(out / "onset_trend.csv", index=False)
    erf_fits.to_csv(out / "erf_fits.csv", index=False)
    fourier.to_csv(out / "fourier.csv", index=False)
    fn.to_csv(out / "fn_overlap.csv", index=False)

    figures: list[tuple[Path, str]] = []
    _plot_dice_vs_rf(summary, plateaus, fourier, out / "dice_vs_rf.png")
    figures.append(
        (
            out / "dice_vs_rf.png",
            "Test dice vs receptive field in nm, one panel per "
            "contrast level (as the paper's Figures 2-4).",
        )
    )
    _plot_onset_vs_contrast(plateaus, trend, out / "onset_vs_contrast.png")
    figures.append(
        (out / "onset_vs_contrast.png", "Dice gain and plateau onset against measured contrast.")
    )
    if _plot_erf_vs_rf(trials, out / "erf_vs_rf.png"):
        figures.append(
            (
                out / "erf_vs_rf.png",
                "Effective receptive field (diameter of the disc holding 95% of the "
                "input-gradient mass at the patch centre) against the RF of Eq. 1, per trial; "
                "bars: the exact maximum reach.",
            )
        )
    else:
        notes.append(
            "no run has effective-receptive-field metrics (erf95_px; runs logged before "
            "temseg measured them): no ERF figure or ERF fit."
        )
    examples = []
    for ds in evals:
        path = out / f"examples_{_safe_name(ds.name)}.png"
        if _plot_examples(ds, fn, path):
            examples.append(
                (
                    path,
                    f"{ds.name}: small / medium / large RF next to the Fourier "
                    "filter (paper Figures 6-7).",
                )
            )
    if not any(ds.predictions for ds in evals):
        notes.append(
            "no network predictions were available: example figures show the Fourier "
            "filter only and fn_overlap.csv is empty."
        )

    doc = _build_doc(
        experiment,
        client.tracking_uri,
        answers,
        improving,
        trials,
        summary,
        plateaus,
        trend,
        fourier,
        fn,
        failed,
        figures + examples,
        notes,
        erf_fits=erf_fits,
        recommendation=recommendation,
        held_out=held_out,
    )
    (out / "report.md").write_text(doc.markdown(), encoding="utf-8")
    (out / "report.html").write_text(doc.html(f"temseg report: {experiment}"), encoding="utf-8")
    return out


def _build_doc(
    experiment: str,
    uri: str,
    answers: pd.DataFrame,
    improving: pd.DataFrame,
    trials: pd.DataFrame,
    summary: pd.DataFrame,
    plateaus: pd.DataFrame,
    trend: pd.DataFrame,
    fourier: pd.DataFrame,
    fn: pd.DataFrame,
    failed: pd.DataFrame,
    figures: list[tuple[Path, str]],
    notes: list[str],
    *,
    erf_fits: pd.DataFrame | None = None,
    recommendation: pd.DataFrame | None = None,
    held_out: pd.DataFrame | None = None,
) -> _Doc:
    doc = _Doc()
    n_done = int((trials["status"] == "FINISHED").sum())
    doc.h(1, f"temseg report: {experiment}")
    doc.p(
        f"Tracking URI `{uri}`; generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        f"{len(trials)} trial(s): {n_done} finished, {len(failed)} without a test dice "
        f"(listed below); {summary['dataset'].nunique()} dataset(s), "
        f"{len(summary)} dataset x architecture cell(s)."
    )
    doc.p(DICE_FORM)

    doc.h(2, "Recommendation: which network to use")
    rec = recommendation if recommendation is not None else pd.DataFrame()
    doc.ul(list(rec["sentence"]) if len(rec) else ["(no plateau fit: no recommendation)"])
    doc.p(
        "Per dataset, the networks whose seed-mean test dice lies within (or above) the 95% "
        "interval of the dataset's highest fitted plateau are as good as the plateau; of "
        "them, the one with the smallest RF (Eq. 1) and the cheapest (fewest parameters, then "
        "fewest forward FLOPs per pixel). Dice: seed mean +- sd. recommendation.csv."
    )

    doc.h(2, "Answer: which receptive field is enough")
    doc.ul(list(answers["sentence"]) or ["(no plateau fit: too few RFs or trials)"])
    doc.p(
        "Gain: the plateau fit's dice at the plateau minus at the smallest RF, 95% interval "
        "from a bootstrap over whole seeds; where dice still rises at the largest RF the "
        "fitted plateau is an extrapolation and the answer gives the observed gain (largest "
        "minus smallest RF, seed mean and bootstrap interval) as a lower bound. Seeds: per "
        "seed, dice at the largest minus the smallest RF. Enough: the smallest tested RF at "
        "or above the fitted onset (95% of the gain); none while dice is still rising. "
        "The recommendation above asks less: a seed-mean dice within the plateau's 95% "
        "interval, so its smallest RF can lie below the onset's 'enough' RF (both are "
        "statements of these seeds, not of the true curve)."
    )
    if len(improving):
        gains = improving["last_epoch_gain"].astype(float).dropna()
        spread = (
            f"; their last epoch added {gains.min():+.4f} to {gains.max():+.4f} validation "
            f"dice (median {gains.median():+.4f}): a few thousandths at the end of a decayed "
            "learning rate is convergence, more is a trend"
            if len(gains)
            else ""
        )
        doc.p(
            f"**Best epoch = last epoch: {len(improving)} of {n_done} finished trial(s)**"
            f"{spread}. If the gains are large, raise --epochs. Trials (best/epochs, last "
            "epoch's gain): "
            + ", ".join(
                f"{r.run_name} ({int(r.best_epoch)}/{int(r.epochs)}"
                + (f", {r.last_epoch_gain:+.4f}" if np.isfinite(r.last_epoch_gain) else "")
                + ")"
                for r in improving.itertuples()
            )
            + "."
        )
    else:
        doc.p("Convergence: every finished trial had its best validation epoch before its last.")

    doc.h(2, "Findings")
    doc.ul(_findings(plateaus, trend, fourier, fn, summary) or ["(too few levels to compare)"])

    doc.h(2, "Figures")
    for path, caption in figures:
        doc.img(path, caption)

    doc.h(2, "Plateau fits")
    doc.p(
        "Model per (dataset, N, strategy): d(RF) = plateau - gain * (RF / RF_min)^(-1/tau), an "
        "exponential approach in log RF; onset = RF where 95% of the gain is reached = "
        "RF_min * 20^tau. Intervals: 2.5-97.5 percentiles of a bootstrap over seeds (whole "
        "seeds resampled; needs >= 3 seeds per RF). Verdict: a rise (or fall) when |gain| > "
        "t(0.975, dof) x SE(gain), SE from the seed noise of an additive RF + seed model (seeds "
        "are paired: a seed's shared offset cancels between RFs; the fit residual with one "
        "seed), and the bootstrap interval of the gain excludes 0; **no detectable "
        "dependence** when not (needs replicate seeds); **undetermined** without a noise "
        "estimate or with one seed and a gain not separable from the residual. "
        "`observed_gain` is the plain mean dice at the largest minus the smallest RF."
    )
    view = pd.DataFrame(
        {
            "dataset": plateaus["dataset"],
            "contrast": plateaus["contrast"].map("{:.3g}".format),
            "N": plateaus["num_blocks"],
            "strategy": plateaus["strategy"],
            "plateau dice": [
                _interval(*v, 3)
                for v in plateaus[["plateau_dice", "plateau_dice_lo", "plateau_dice_hi"]].to_numpy()
            ],
            "gain": [_interval(*v, 3) for v in plateaus[["gain", "gain_lo", "gain_hi"]].to_numpy()],
            "onset (nm)": [
                _interval(*v, 2)
                for v in plateaus[["onset_rf_nm", "onset_rf_nm_lo", "onset_rf_nm_hi"]].to_numpy()
            ],
            "onset (px)": plateaus["onset_rf_px"].map(
                lambda v: f"{v:.0f}" if np.isfinite(v) else ""
            ),
            "RF range (nm)": [
                f"{a:.2f}-{b:.2f}" for a, b in plateaus[["rf_min_nm", "rf_max_nm"]].to_numpy()
            ],
            "observed gain": plateaus["observed_gain"].map(lambda v: _fmt_value(v, 3)),
            "verdict": plateaus["verdict"],
            "note": plateaus["note"],
        }
    )
    doc.table(view)
    doc.h(3, "Onset against contrast")
    doc.p(
        "ln(onset_nm) = intercept + slope * ln(contrast), least squares over the levels "
        "with an onset; slope < 0: the onset falls as contrast rises."
    )
    doc.table(_display(trend, {"slope": 2, "slope_se": 2, "intercept": 2, "p_value": 3}))

    doc.h(3, "Predicting the RF a level needs: onset trend vs the Loos et al. heuristic")
    doc.p(
        "Each contrast level is held out in turn, the onset-vs-contrast trend is fitted on "
        "the other levels and predicts the held-out level's onset (95% prediction interval); "
        "the heuristic of Loos et al. 2024 (J. Med. Imaging 11, 054004: RF = object size when "
        "the contrast is >= 0.1, else object size x 0.1 / contrast; object size from the "
        "store's generator, contrast: temseg's contrast score, not necessarily the scale on "
        "which Loos et al. set 0.1) predicts it too. Errors are predicted - measured onset; "
        "only levels whose onset lies inside the tested RFs can be scored "
        "(leave_one_level_out.csv)."
    )
    doc.ul(_held_out_lines(held_out if held_out is not None else pd.DataFrame()))

    doc.h(3, "Dice against the effective receptive field")
    doc.p(
        "The plateau model fitted with the ERF diameter (2 x erf95_px, per trial) in place of "
        "the RF, on the same trials; the residual sd sqrt(SSE / (n - 3)) of the two fits says "
        "which coordinate dice follows more tightly (erf_fits.csv)."
    )
    if erf_fits is not None and len(erf_fits):
        doc.ul(list(erf_fits["sentence"]))
    else:
        doc.p("No ERF fit: no run has ERF metrics.")

    doc.h(2, "Seed aggregates")
    view = summary.assign(
        dice=[
            _fmt_value(m, 3) + (f" +- {s:.3f}" if np.isfinite(s) else "")
            for m, s in summary[["test_hard_dice_mean", "test_hard_dice_std"]].to_numpy()
        ]
    )[
        [
            "dataset",
            "contrast",
            "strategy",
            "num_blocks",
            "pools",
            "dilations",
            "rf_px",
            "rf_nm",
            "n_params",
            "n_seeds",
            "n_failed",
            "dice",
        ]
    ]
    doc.table(_display(view, {"contrast": 3, "rf_nm": 2}))

    doc.h(2, "Fourier-filter baseline")
    doc.p(
        "FFT of each test patch, keep the annulus around Au {111} (4.25 nm^-1) and {200} "
        "(4.90 nm^-1) widened by 0.5 nm^-1 each side (38-55 FFT px at 0.02 nm/px and 512 px, "
        "the authors' band), inverse FFT, magnitude, Gaussian blur sigma 9 px, Otsu threshold "
        "per patch. Not applicable where the band lies above Nyquist."
    )
    doc.table(
        _display(
            fourier,
            {"contrast": 3, "pixel_size_nm": 4, "band_inner_inv_nm": 2, "band_outer_inv_nm": 2},
        )
    )
    doc.h(3, "False negatives: networks vs Fourier filter (paper Figure 7)")
    doc.p(
        "Pooling networks of the smallest N, one seed (the smallest that every RF has), on "
        "the first test patches (fn_overlap.csv: n_patches). "
        "fn_jaccard = |FN_net and FN_fourier| / |FN_net or FN_fourier|; "
        "fn_network_missed_by_fourier = share of the network's misses the filter also misses."
    )
    doc.table(_display(fn.drop(columns=["run_id"]), {"contrast": 3, "rf_nm": 2}))

    doc.h(2, "Failed trials")
    shown = failed.assign(error=failed["error"].fillna("").map(lambda e: _clip(str(e), 200)))
    doc.table(_display(shown))
    doc.h(2, "Notes")
    doc.ul(notes or ["nothing was left out."])
    doc.p(
        "Files: recommendation.csv, answers.csv, summary.csv, plateaus.csv, onset_trend.csv, "
        "leave_one_level_out.csv, erf_fits.csv, "
        "fourier.csv, fn_overlap.csv, trials.csv, failed_trials.csv, the PNG figures, "
        "report.md, report.html."
    )
    return doc
