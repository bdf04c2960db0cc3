"""The report's opening answer (temseg.analysis.answer), onset censoring, the still-improving
flag, the cosine schedule and the precision resolution: exact values on constructed tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from temseg.analysis import answer, contrast_trend, plateau
from temseg.config import TrainConfig, cpu_has_native_bf16, resolve_precision
from temseg.train import learning_rate

RFS = (44, 80, 120, 152)
SEEDS = (752, 2245, 140)


def trials_table(curve, *, seeds=SEEDS, rfs=RFS, noise=0.0, epochs=7, best_epoch=5, rng=0):
    """A finished-trials table as collect.load_runs gives it, dice = curve(rf) + seed noise."""
    gen = np.random.default_rng(rng)
    rows = []
    for s in seeds:
        offset = gen.normal(0, noise)
        for rf in rfs:
            rows.append(
                {
                    "run_name": f"c/N2-rf{rf}-s{s}",
                    "status": "FINISHED",
                    "dataset": "c0.06",
                    "contrast": 0.3,
                    "pixel_size_nm": 0.04,
                    "num_blocks": 2,
                    "pools": f"p{rf}",
                    "dilations": "1-1-1",
                    "strategy": "pooling",
                    "rf_px": rf,
                    "seed": s,
                    "epochs": epochs,
                    "best_epoch": best_epoch,
                    "test_hard_dice": float(curve(rf)) + offset + gen.normal(0, noise / 3),
                }
            )
    return pd.DataFrame(rows)


def answers_of(trials):
    fits = plateau.fit_plateaus(trials, n_boot=200, rng=0)
    return fits, answer.level_answers(trials, fits)


def test_rise_to_a_plateau_inside_the_grid_is_answered_with_its_numbers():
    # saturating curve: gain 0.10 from 44 px, 95 % reached at 44 * 20**0.3 = 108 px
    trials = trials_table(lambda rf: 0.80 - 0.10 * (rf / 44) ** (-1 / 0.3), noise=0.004)
    fits, ans = answers_of(trials)
    row = ans.iloc[0]
    assert row["verdict"] == plateau.RISES
    assert row["onset_censored"] == "none"
    assert row["n_seeds"] == 3 and row["n_seeds_gaining"] == 3
    assert row["gain_lo"] > 0.05 and row["gain"] == pytest.approx(0.10, abs=0.02)
    assert row["enough_rf_px"] == 120.0  # the smallest tested RF at or above the onset
    assert row["enough_rf_nm"] == pytest.approx(row["enough_rf_px"] * 0.04)
    s = row["sentence"]
    assert "rises with RF by +0.09" in s and "3 of 3 seeds gain" in s and "Enough: RF" in s


def test_still_rising_at_the_largest_rf_is_censored_above_without_a_number():
    trials = trials_table(lambda rf: 0.5 + 0.08 * np.log(rf / 44), noise=0.002)  # log-linear
    fits, ans = answers_of(trials)
    assert fits["onset_censored"].iloc[0] == "above"
    row = ans.iloc[0]
    # the fitted plateau is an extrapolation: the answer gives the observed gain, "at least"
    assert row["observed_gain"] == pytest.approx(0.08 * np.log(152 / 44), abs=0.005)
    assert row["observed_gain_lo"] > 0 and np.isnan(row["enough_rf_px"])
    s = row["sentence"]
    assert "still rising at the largest RF tested, 152 px (6.08 nm): a gain of at least +0.09" in s
    assert "no tested RF is enough" in s and "reached at" not in s


def test_step_at_the_second_rf_is_censored_below():
    trials = trials_table(lambda rf: 0.7 if rf == 44 else 0.8, noise=0.002)
    fits, ans = answers_of(trials)
    assert fits["onset_censored"].iloc[0] == "below"
    assert "reached by the second RF tested (80 px (3.20 nm)" in ans["sentence"].iloc[0]
    assert ans["enough_rf_px"].iloc[0] == 80.0


def test_flat_curve_says_no_detectable_dependence_and_what_could_be_resolved():
    trials = trials_table(lambda rf: 0.9, noise=0.01, rng=3)
    fits, ans = answers_of(trials)
    assert fits["verdict"].iloc[0] == plateau.FLAT
    s = ans["sentence"].iloc[0]
    assert "no detectable dependence on RF" in s and "are not resolvable" in s
    assert ans["resolvable_gain"].iloc[0] > 0


def test_censored_levels_never_enter_the_onset_trend():
    rows = []
    for i, (c, censored) in enumerate([(0.2, "none"), (0.3, "none"), (0.1, "above")]):
        rows.append(
            {
                "pixel_size_nm": 0.04,
                "num_blocks": 2,
                "strategy": "pooling",
                "contrast": c,
                "verdict": plateau.RISES,
                "onset_rf_nm": [4.0, 3.0, 99.0][i],
                "onset_censored": censored,
            }
        )
    trend = contrast_trend.onset_trend(pd.DataFrame(rows))
    assert trend["n_with_onset"].iloc[0] == 2
    # exact: two points (0.2, 4.0) and (0.3, 3.0)
    assert trend["slope"].iloc[0] == pytest.approx(np.log(3 / 4) / np.log(0.3 / 0.2))


def test_still_improving_flags_exactly_the_trials_whose_best_epoch_is_the_last():
    trials = trials_table(lambda rf: 0.8)
    trials.loc[[1, 4], "best_epoch"] = 7
    flagged = answer.still_improving(trials)
    assert list(flagged.index) == [1, 4]
    trials["run_id"] = [f"r{i}" for i in range(len(trials))]
    hist = pd.DataFrame(
        [
            ("r1", "val_hard_dice", e, v)
            for e, v in enumerate([0.5, 0.7, 0.69, 0.71, 0.7, 0.72, 0.725])
        ]
        + [("r4", "val_hard_dice", e, v) for e, v in enumerate([0.5, 0.6, 0.7])],
        columns=["run_id", "metric", "step", "value"],
    )
    gains = answer.still_improving(trials, hist)["last_epoch_gain"].tolist()
    assert gains == pytest.approx([0.005, 0.1])


def test_cosine_schedule_values_and_constant_default():
    cfg = TrainConfig(data="/d", num_blocks=2, pools=(2, 2), lr=2e-3, lr_schedule="cosine")
    # 100 steps: warm-up over steps 0-9 (2e-4 ... 2e-3), then cosine from step 10 to 100
    assert learning_rate(cfg, 0, 100) == pytest.approx(2e-4)
    assert learning_rate(cfg, 9, 100) == pytest.approx(2e-3)
    assert learning_rate(cfg, 10, 100) == pytest.approx(2e-3)
    assert learning_rate(cfg, 55, 100) == pytest.approx(1e-3)
    assert learning_rate(cfg, 100, 100) == pytest.approx(0.0)
    const = TrainConfig(data="/d", num_blocks=2, pools=(2, 2), lr=2e-3)
    assert {learning_rate(const, i, 10) for i in range(10)} == {2e-3}
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(data="/d", num_blocks=2, pools=(2, 2), lr_schedule="step")


def test_auto_precision_follows_the_hardware(tmp_path):
    amd = tmp_path / "avx2"
    amd.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    sapphire = tmp_path / "amx"
    sapphire.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    assert not cpu_has_native_bf16(str(amd))
    assert cpu_has_native_bf16(str(sapphire))
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))
    assert resolve_precision("fp32", gpus_per_trial=1) == "fp32"
    assert resolve_precision("bf16", gpus_per_trial=0) == "bf16"
    assert resolve_precision("auto", gpus_per_trial=0.25) == "bf16"
    assert resolve_precision("auto", gpus_per_trial=0) == (
        "bf16" if cpu_has_native_bf16() else "fp32"
    )


def test_a_dilation_series_is_answered_from_its_undilated_start_as_the_fit_is():
    # pools 2-2 at dilation 1 (44 px, tagged pooling), then dilated 2-2 networks with the
    # first block undilated (1-1-2: 60 px, 1-2-2: 76 px)
    trials = trials_table(lambda rf: 0.6 + 0.001 * rf, rfs=(44, 60, 76))
    trials["pools"] = "2-2"
    trials["dilations"] = trials["rf_px"].map({44: "1-1-1", 60: "1-1-2", 76: "1-2-2"})
    trials["strategy"] = np.where(trials["rf_px"] == 44, "pooling", "dilation")
    fits, ans = answers_of(trials)
    row = ans.set_index("strategy").loc["dilation"]
    assert row["n_seeds"] == 3  # every seed has the 44 px start and the 76 px end
    assert row["observed_gain"] == pytest.approx(0.001 * (76 - 44))
