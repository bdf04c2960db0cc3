"""The report's text: Markdown and HTML documents, tables and findings in words."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from temseg.analysis import contrast_trend
from temseg.analysis.collect import ARCH_KEYS
from temseg.analysis.columns import DICE_FORM, ReportTables
from temseg.analysis.evaluate import clip_text
from temseg.analysis.markup import Doc, display_table, fmt_value, interval_text


def findings(
    plateaus: pd.DataFrame,
    trend: pd.DataFrame,
    fourier: pd.DataFrame,
    fn: pd.DataFrame,
    summary: pd.DataFrame,
) -> list[str]:
    out = []
    keys = list(contrast_trend.TREND_KEYS)
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


def held_out_lines(held_out: pd.DataFrame) -> list[str]:
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


def build_doc(
    experiment: str,
    uri: str,
    tables: ReportTables,
    figures: list[tuple[Path, str]],
    notes: list[str],
) -> Doc:
    """The report of ``experiment`` (read from ``uri``): its tables, figures and notes."""
    t = tables
    doc = Doc()
    n_done = int((t.trials["status"] == "FINISHED").sum())
    doc.h(1, f"temseg report: {experiment}")
    doc.p(
        f"Tracking URI `{uri}`; generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        f"{len(t.trials)} trial(s): {n_done} finished, {len(t.failed)} without a test dice "
        f"(listed below); {t.summary['dataset'].nunique()} dataset(s), "
        f"{len(t.summary)} dataset x architecture cell(s)."
    )
    doc.p(DICE_FORM)

    _answer_section(doc, t.answers, t.improving, t.recommendation, n_done)
    _sources_section(doc, t.sources)
    doc.h(2, "Findings")
    doc.ul(
        findings(t.plateaus, t.trend, t.fourier, t.fn, t.summary)
        or ["(too few levels to compare)"]
    )
    doc.h(2, "Figures")
    for path, caption in figures:
        doc.img(path, caption)
    _plateau_section(doc, t.plateaus, t.trend, t.held_out, t.erf_fits)
    _aggregate_section(doc, t.summary, t.fourier, t.fn, t.failed, notes)
    return doc


def _sources_section(doc: Doc, sources: pd.DataFrame | None) -> None:
    """What made each dataset's images, and what the authors' real-data networks say of
    that source: the answer above holds for real micrographs only as far as that goes."""
    if sources is None or not len(sources):
        return
    doc.h(2, "What the images are")
    doc.p(
        "The answer above is about these images. How far it carries to real micrographs "
        "depends on how real they look; temseg measures that with the paper authors' five "
        "networks trained on real 5 nm Au (`temseg realism`; real test dice 0.72-0.78), "
        "docs/physics.md (data_sources.csv)."
    )
    view = sources.assign(contrast=sources["contrast"].map(lambda v: fmt_value(v, 3)))
    doc.table(view.rename(columns={"realism": "what the real-data networks say"}))


def _answer_section(
    doc: Doc,
    answers: pd.DataFrame,
    improving: pd.DataFrame,
    recommendation: pd.DataFrame,
    n_done: int,
) -> None:
    """The recommendation, the answer per level, and whether trials were still improving."""
    doc.h(2, "Recommendation: which network to use")
    rec = recommendation
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
        "from a bootstrap over whole seeds and, where every trial logged its per-test-image "
        "counts, over the test images too (each sentence says which); where dice still rises "
        "at the largest RF the "
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



def _plateau_section(
    doc: Doc,
    plateaus: pd.DataFrame,
    trend: pd.DataFrame,
    held_out: pd.DataFrame,
    erf_fits: pd.DataFrame,
) -> None:
    """The plateau fits, the onset trend, its held-out test and dice against the ERF."""
    doc.h(2, "Plateau fits")
    doc.p(
        "Model per (dataset, N, strategy): d(RF) = plateau - gain * (RF / RF_min)^(-1/tau), an "
        "exponential approach in log RF; onset = RF where 95% of the gain is reached = "
        "RF_min * 20^tau. Intervals: 2.5-97.5 percentiles of a bootstrap over seeds (whole "
        "seeds resampled; needs >= 3 seeds per RF) and, where every trial of the fit logged "
        "its per-test-image pixel counts, over the test images jointly (one draw of the "
        "dataset's test images per resample, applied to every trial; dice recomputed from "
        "the drawn images): column 'interval over'. Trials logged before temseg recorded "
        "those counts keep the seed-only interval, which counts the training seeds but not "
        "which images happened to be in the test set. Verdict: a rise (or fall) when |gain| > "
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
                interval_text(*v, 3)
                for v in plateaus[["plateau_dice", "plateau_dice_lo", "plateau_dice_hi"]].to_numpy()
            ],
            "gain": [
                interval_text(*v, 3) for v in plateaus[["gain", "gain_lo", "gain_hi"]].to_numpy()
            ],
            "onset (nm)": [
                interval_text(*v, 2)
                for v in plateaus[["onset_rf_nm", "onset_rf_nm_lo", "onset_rf_nm_hi"]].to_numpy()
            ],
            "onset (px)": plateaus["onset_rf_px"].map(
                lambda v: f"{v:.0f}" if np.isfinite(v) else ""
            ),
            "RF range (nm)": [
                f"{a:.2f}-{b:.2f}" for a, b in plateaus[["rf_min_nm", "rf_max_nm"]].to_numpy()
            ],
            "observed gain": plateaus["observed_gain"].map(lambda v: fmt_value(v, 3)),
            "interval over": plateaus["interval_over"],
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
    doc.table(display_table(trend, {"slope": 2, "slope_se": 2, "intercept": 2, "p_value": 3}))

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
    doc.ul(held_out_lines(held_out))

    doc.h(3, "Dice against the effective receptive field")
    doc.p(
        "The plateau model fitted with the ERF diameter (2 x erf95_px, per trial) in place of "
        "the RF, on the same trials; the residual sd sqrt(SSE / (n - 3)) of the two fits says "
        "which coordinate dice follows more tightly (erf_fits.csv)."
    )
    if len(erf_fits):
        doc.ul(list(erf_fits["sentence"]))
    else:
        doc.p("No ERF fit: no run has ERF metrics.")



def _aggregate_section(
    doc: Doc,
    summary: pd.DataFrame,
    fourier: pd.DataFrame,
    fn: pd.DataFrame,
    failed: pd.DataFrame,
    notes: list[str],
) -> None:
    """Seed aggregates, the Fourier baseline, false negatives, failed trials, notes, files."""
    doc.h(2, "Seed aggregates")
    view = summary.assign(
        dice=[
            fmt_value(m, 3) + (f" +- {s:.3f}" if np.isfinite(s) else "")
            for m, s in summary[["test_hard_dice_mean", "test_hard_dice_std"]].to_numpy()
        ]
    )[[k for k in ARCH_KEYS if k != "pixel_size_nm"] + ["n_seeds", "n_failed", "dice"]]
    doc.table(display_table(view, {"contrast": 3, "rf_nm": 2}))

    doc.h(2, "Fourier-filter baseline")
    doc.p(
        "FFT of each test patch, keep the annulus around Au {111} (4.25 nm^-1) and {200} "
        "(4.90 nm^-1) widened by 0.5 nm^-1 each side (38-55 FFT px at 0.02 nm/px and 512 px, "
        "the authors' band), inverse FFT, magnitude, Gaussian blur sigma 9 px, Otsu threshold "
        "per patch. Not applicable where the band lies above Nyquist."
    )
    doc.table(
        display_table(
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
    doc.table(display_table(fn.drop(columns=["run_id"]), {"contrast": 3, "rf_nm": 2}))

    doc.h(2, "Failed trials")
    shown = failed.assign(error=failed["error"].fillna("").map(lambda e: clip_text(str(e), 200)))
    doc.table(display_table(shown))
    doc.h(2, "Notes")
    doc.ul(notes or ["nothing was left out."])
    doc.p(
        "Files: recommendation.csv, answers.csv, summary.csv, plateaus.csv, onset_trend.csv, "
        "leave_one_level_out.csv, erf_fits.csv, "
        "fourier.csv, fn_overlap.csv, trials.csv, failed_trials.csv, the PNG figures, "
        "report.md, report.html."
    )
