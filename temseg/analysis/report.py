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
  (:mod:`temseg.analysis.erf_fits`); ``erf_vs_rf.png``;
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

Layout: this module reads the experiment and orchestrates (:func:`write_report`, and the
readers of stores and checkpoints it passes on); :mod:`temseg.analysis.evaluate` runs the
Fourier baseline and the networks on each test split, :mod:`temseg.analysis.figures` draws,
:mod:`temseg.analysis.document` writes the Markdown/HTML, :mod:`temseg.analysis.columns`
holds the CSV column orders.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from temseg import baseline
from temseg.analysis import (
    answer,
    collect,
    contrast_trend,
    onset_prediction,
    plateau,
    provenance,
    recommend,
)
from temseg.analysis import erf_fits as analysis_erf
from temseg.analysis.columns import (  # noqa: F401  (the report's CSV columns, re-exported)
    DICE_FORM,
    FAILED_COLUMNS,
    FN_COLUMNS,
    FOURIER_COLUMNS,
    PLATEAU_COLUMNS,
    SUMMARY_COLUMNS,
    ReportTables,
)
from temseg.analysis.document import build_doc
from temseg.analysis.evaluate import (
    MAX_PATCHES,
    DatasetEval,
    evaluate_fourier,
    evaluate_networks,
)
from temseg.analysis.figures import (
    plot_dice_vs_rf,
    plot_erf_vs_rf,
    plot_examples,
    plot_onset_vs_contrast,
)

# --------------------------------------------------------------------------- loaders
# Small seams: tests replace these with in-memory stand-ins; write_report passes them on.


def _load_split(data_path: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Test images, masks and attributes of a patch store (``temseg.data.store``)."""
    if not data_path or not Path(data_path).exists():
        raise FileNotFoundError(f"patch store {data_path!r} not found")
    return baseline.load_test_split(data_path)


def _read_attrs(data_path: str) -> dict[str, Any]:
    """A patch store's attributes (its provenance: generator, simulation or sources)."""
    from temseg.data.store import read_attrs

    return read_attrs(data_path)


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


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "dataset"


def _evaluate_datasets(
    client: Any,
    trials: pd.DataFrame,
    done: pd.DataFrame,
    networks: bool,
    max_patches: int | None,
    notes: list[str],
) -> tuple[list[DatasetEval], pd.DataFrame, pd.DataFrame]:
    """Per dataset, the Fourier baseline and (``networks``) the networks' false negatives."""
    levels = done.drop_duplicates("dataset").sort_values(["contrast", "dataset"])
    evals = [
        DatasetEval(str(r.dataset), float(r.contrast), float(r.pixel_size_nm), str(r.data_path))
        for r in levels.itertuples()
    ]
    fn_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="temseg-report-") as tmp:
        for ds in evals:
            evaluate_fourier(ds, max_patches, notes, load_split=_load_split)
            if networks:
                fn_rows += evaluate_networks(
                    client, trials, ds, max_patches, Path(tmp), notes, predictor=_network_predictor
                )
    if not networks:
        notes.append(
            "network evaluation switched off: no false-negative overlap, examples "
            "show the Fourier filter only."
        )
    fourier = pd.DataFrame([ds.fourier_row for ds in evals], columns=FOURIER_COLUMNS)
    fn = pd.DataFrame(fn_rows, columns=FN_COLUMNS)
    return evals, fourier, fn


def _plot_figures(
    out: Path, tables: ReportTables, evals: list[DatasetEval], notes: list[str]
) -> list[tuple[Path, str]]:
    """Draw the report's figures into ``out``; each PNG with its caption (what could not be
    drawn is said in ``notes``)."""
    t = tables
    figures: list[tuple[Path, str]] = []
    plot_dice_vs_rf(t.summary, t.plateaus, t.fourier, out / "dice_vs_rf.png")
    figures.append(
        (
            out / "dice_vs_rf.png",
            "Test dice vs receptive field in nm, one panel per "
            "contrast level (as the paper's Figures 2-4).",
        )
    )
    plot_onset_vs_contrast(t.plateaus, t.trend, out / "onset_vs_contrast.png")
    figures.append(
        (out / "onset_vs_contrast.png", "Dice gain and plateau onset against measured contrast.")
    )
    if plot_erf_vs_rf(t.trials, out / "erf_vs_rf.png"):
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
        if plot_examples(ds, t.fn, path):
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
    return figures + examples


def _reportable_trials(experiment: str, client) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every trial of ``experiment`` and the finished ones; ValueError when none finished."""
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
    return trials, done


def _tables(
    client,
    trials: pd.DataFrame,
    done: pd.DataFrame,
    networks: bool,
    max_patches: int | None,
    n_boot: int,
    rng: int,
    notes: list[str],
) -> tuple[ReportTables, list[DatasetEval]]:
    """Every table of the report (fits, answers, recommendation, baseline, network
    evaluation) and the per-dataset evaluations the example figures draw."""
    summary = collect.aggregate_seeds(trials)[SUMMARY_COLUMNS]
    images = collect.load_test_images(done, client=client)
    plateaus = plateau.fit_plateaus(trials, n_boot=n_boot, rng=rng, images=images)
    plateaus = plateaus[PLATEAU_COLUMNS]
    improving = answer.still_improving(trials)
    if len(improving):
        histories = collect.load_histories(improving, metrics=["val_hard_dice"], client=client)
        improving = answer.still_improving(trials, histories)
    evals, fourier, fn = _evaluate_datasets(client, trials, done, networks, max_patches, notes)
    tables = ReportTables(
        trials=trials,
        failed=collect.failed(trials)[FAILED_COLUMNS],
        summary=summary,
        plateaus=plateaus,
        recommendation=recommend.recommend(done, plateaus),
        answers=answer.level_answers(done, plateaus, images),
        held_out=onset_prediction.leave_one_level_out(
            plateaus, onset_prediction.object_sizes(done)
        ),
        trend=contrast_trend.onset_trend(plateaus),
        erf_fits=analysis_erf.erf_fits(done, rng=rng),
        fourier=fourier,
        fn=fn,
        improving=improving,
        sources=provenance.data_sources(done, _read_attrs),
    )
    return tables, evals


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
    trials, done = _reportable_trials(experiment, client)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    tables, evals = _tables(client, trials, done, networks, max_patches, n_boot, rng, notes)
    for name, table in tables.csvs().items():
        table.to_csv(out / f"{name}.csv", index=False)
    figures = _plot_figures(out, tables, evals, notes)
    doc = build_doc(experiment, client.tracking_uri, tables, figures, notes)
    (out / "report.md").write_text(doc.markdown(), encoding="utf-8")
    (out / "report.html").write_text(doc.html(f"temseg report: {experiment}"), encoding="utf-8")
    return out
