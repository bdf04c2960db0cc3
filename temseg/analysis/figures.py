"""The report's figures (matplotlib, Agg): dice against RF, onset against contrast, ERF, examples."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from temseg import baseline
from temseg.analysis import collect, contrast_trend, plateau
from temseg.analysis import erf_fits as analysis_erf
from temseg.analysis.evaluate import DatasetEval

N_COLORS = {2: "tab:blue", 3: "tab:orange", 4: "tab:green", 5: "tab:red", 1: "tab:purple"}


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


def plot_dice_vs_rf(
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


def plot_onset_vs_contrast(plateaus: pd.DataFrame, trend: pd.DataFrame, path: Path) -> None:
    """Dice gain (left) and plateau onset with the power-law trend (right) against measured
    contrast, one series per (pixel size, N, strategy)."""
    fig = _figure(10, 4.0)
    ax_gain, ax_onset = fig.subplots(1, 2)
    pixel_sizes = sorted(plateaus["pixel_size_nm"].unique())
    for key, g in plateaus.groupby(list(contrast_trend.TREND_KEYS)):
        pixel_size, n_blocks, strategy = key
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
        _draw_onsets(ax_onset, g, color=color, marker=marker, label=label)
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
    _label_onset_axes(ax_gain, ax_onset)
    fig.savefig(path, dpi=110)


def _draw_onsets(ax, g: pd.DataFrame, *, color: str, marker: str, label: str) -> None:
    """One series' onsets: with bootstrap bars where dice rises, open markers where the fit
    has no verdict, a note where the onset lies beyond the largest RF, and the smallest RF
    where dice shows no dependence on RF."""
    rises = g[np.isfinite(g["onset_rf_nm"]) & (g["gain"] > 0)]
    sure = rises[rises["verdict"] == plateau.RISES]
    unsure = rises[rises["verdict"] != plateau.RISES]
    lo = (sure["onset_rf_nm"] - sure["onset_rf_nm_lo"]).clip(lower=0).fillna(0)
    hi = (sure["onset_rf_nm_hi"] - sure["onset_rf_nm"]).clip(lower=0).fillna(0)
    if len(sure):
        ax.errorbar(
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
        ax.plot(
            unsure["contrast"],
            unsure["onset_rf_nm"],
            color=color,
            marker=marker,
            mfc="none",
            ls="none",
            label=f"{label}: point estimate, no verdict",
        )
    for r in rises[~rises["plateau_reached"].astype(bool)].itertuples():
        ax.annotate(
            "beyond largest RF", (r.contrast, r.onset_rf_nm), xytext=(4, 4),
            textcoords="offset points", fontsize=7, color=color,
        )  # fmt: skip
    flat = g[g["verdict"] == plateau.FLAT]
    if len(flat):
        ax.plot(
            flat["contrast"],
            flat["rf_min_nm"],
            color=color,
            marker="v",
            ls="none",
            label=f"{label}: no detectable dependence (onset <= smallest RF)",
        )


def _label_onset_axes(ax_gain, ax_onset) -> None:
    """Labels, titles, log scales (where something is drawn), grids and legends."""
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


def plot_erf_vs_rf(trials: pd.DataFrame, path: Path) -> bool:
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


def plot_examples(ds: DatasetEval, fn_rows: pd.DataFrame, path: Path) -> bool:
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
