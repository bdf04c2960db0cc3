"""Column orders of the report's CSV files and the tables themselves (shared by the report
and its renderers)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from temseg.analysis import collect

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
    "interval_over",
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


@dataclass(frozen=True)
class ReportTables:
    """The tables of one report: written as CSV, drawn and rendered (one value for the
    figures and the document instead of a dozen arguments)."""

    trials: pd.DataFrame  # every trial, failed ones included
    failed: pd.DataFrame  # FAILED_COLUMNS
    summary: pd.DataFrame  # SUMMARY_COLUMNS
    plateaus: pd.DataFrame  # PLATEAU_COLUMNS
    recommendation: pd.DataFrame
    answers: pd.DataFrame
    held_out: pd.DataFrame  # leave-one-level-out predictions
    trend: pd.DataFrame  # onset against measured contrast
    erf_fits: pd.DataFrame
    fourier: pd.DataFrame  # FOURIER_COLUMNS
    fn: pd.DataFrame  # FN_COLUMNS
    improving: pd.DataFrame  # trials whose best epoch was their last (no CSV)
    sources: pd.DataFrame | None = None  # what made each dataset (provenance.SOURCE_COLUMNS)

    def csvs(self) -> dict[str, pd.DataFrame]:
        """Each CSV file's stem and its table."""
        return {
            "trials": self.trials.drop(columns=["start_time"]),
            "failed_trials": self.failed,
            "summary": self.summary,
            "plateaus": self.plateaus,
            "recommendation": self.recommendation,
            "answers": self.answers,
            "leave_one_level_out": self.held_out,
            "onset_trend": self.trend,
            "erf_fits": self.erf_fits,
            "fourier": self.fourier,
            "fn_overlap": self.fn,
        } | ({} if self.sources is None else {"data_sources": self.sources})
