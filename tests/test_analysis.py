"""Analysis layer: plateau fits, MLflow collection, seed aggregates, the report and its CLI.

The MLflow store is a real SQLite store in a temporary folder, filled through MLflow's own
API with the schema the sweep writes (temseg.tracking); no trainer, model or patch store is
needed: the report's data and checkpoint loaders are replaced by in-memory stand-ins where a
test needs them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from temseg import baseline
from temseg.analysis import collect, contrast_trend, plateau, report
from temseg.analysis.plateau import FALLS, FLAT, RISES, UNDETERMINED, fit_plateau
from temseg.receptive_field import pool_sequences, receptive_field

REPO = Path(__file__).resolve().parents[1]
N2_RFS = sorted({receptive_field(p) for p in pool_sequences(2)})  # 44 ... 392 px, 9 values


def saturating(rf, plateau_dice, gain, tau):
    rf = np.asarray(rf, dtype=float)
    return plateau_dice - gain * (rf / rf.min()) ** (-1 / tau)


def synthetic_trials(plateau_dice, gain, tau, *, n_seeds=5, sigma=0.006, rng=0, rfs=N2_RFS):
    gen = np.random.default_rng(rng)
    rf = np.tile(rfs, n_seeds).astype(float)
    seeds = np.repeat(np.arange(n_seeds), len(rfs))
    dice = saturating(rf, plateau_dice, gain, tau) + gen.normal(0, sigma, rf.size)
    return rf, dice, seeds


# --------------------------------------------------------------------------- plateau fits


def test_noiseless_curve_recovered_exactly():
    rf = np.array([44.0, 120.0, 232.0, 392.0])
    fit = fit_plateau(rf, saturating(rf, 0.8, 0.1, 0.5), n_boot=0)
    assert fit.plateau_dice == pytest.approx(0.8, abs=1e-6)
    assert fit.gain == pytest.approx(0.1, abs=1e-6)
    assert fit.tau == pytest.approx(0.5, rel=1e-3)
    assert fit.onset_rf_px == pytest.approx(44 * 20**0.5, rel=1e-3)  # 95% of the gain
    assert fit.verdict == RISES


@pytest.mark.parametrize(
    "truth",
    [
        (0.79, 0.06, 0.6),  # the paper's 5 nm HR shape: ~0.73 -> ~0.79, plateau mid-grid
        (0.87, 0.10, 0.35),  # demo C = 0.06 shape: steep rise, early plateau
    ],
)
def test_fit_recovers_known_parameters_from_noisy_curves(truth):
    plateau_dice, gain, tau = truth
    rf, dice, seeds = synthetic_trials(*truth, rng=1)
    fit = fit_plateau(rf, dice, seeds, rng=0)
    onset = 44 * 20**tau
    assert fit.verdict == RISES
    assert fit.plateau_dice == pytest.approx(plateau_dice, abs=0.005)
    assert fit.gain == pytest.approx(gain, abs=0.01)
    assert fit.onset_rf_px == pytest.approx(onset, rel=0.35)
    assert fit.onset_rf_px_lo < fit.onset_rf_px < fit.onset_rf_px_hi
    assert fit.gain_lo < fit.gain < fit.gain_hi
    # seeds are paired blocks: dof of the additive RF + seed model, (9 - 1) x (5 - 1)
    assert fit.sigma_source == "seeds" and fit.dof == (len(N2_RFS) - 1) * (5 - 1)


def test_seed_offsets_shared_by_every_rf_are_not_noise_in_the_gain():
    # dice = curve + a per-seed offset (a seed that trains badly does so at every RF) + small
    # noise: the gain is resolved, and sigma is the small noise, not the offsets' spread
    rf = np.tile([44.0, 80.0, 104.0, 120.0], 3)
    seeds = np.repeat([752, 2245, 140], 4)
    offsets = np.repeat([0.0, -0.08, 0.05], 4)
    noise = np.array([1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0]) * 0.004
    dice = saturating(rf, 0.70, 0.08, 0.4) + offsets + noise
    fit = fit_plateau(rf, dice, seeds, rng=0)
    assert fit.verdict == RISES
    assert fit.dof == (4 - 1) * (3 - 1)
    assert fit.sigma < 0.01  # the offsets (sd 0.065) are not in it


def test_flat_curve_gives_no_rf_dependence():
    rf, dice, seeds = synthetic_trials(0.97, 0.0, 0.5, sigma=0.004, rng=3)
    fit = fit_plateau(rf, dice, seeds, rng=0)
    assert fit.verdict == FLAT
    assert math.isnan(fit.onset_rf_px)
    assert fit.plateau_dice == pytest.approx(dice.mean())
    assert fit.gain_lo <= 0 <= fit.gain_hi


def test_flat_verdict_in_most_seeds():
    verdicts = [
        fit_plateau(*synthetic_trials(0.97, 0.0, 0.5, sigma=0.004, rng=k), rng=k).verdict
        for k in range(20)
    ]
    assert verdicts.count(FLAT) >= 16


def test_interval_covers_truth_in_most_seeds():
    truth = (0.79, 0.06, 0.6)
    hits = {"plateau": 0, "gain": 0, "onset": 0}
    for k in range(20):
        fit = fit_plateau(*synthetic_trials(*truth, rng=100 + k), rng=k)
        hits["plateau"] += fit.plateau_dice_lo <= truth[0] <= fit.plateau_dice_hi
        hits["gain"] += fit.gain_lo <= truth[1] <= fit.gain_hi
        hits["onset"] += fit.onset_rf_px_lo <= 44 * 20 ** truth[2] <= fit.onset_rf_px_hi
    # 95% percentile intervals from 5 resampled seeds run a little narrow; most must cover.
    assert hits["plateau"] >= 14 and hits["gain"] >= 14 and hits["onset"] >= 12, hits


def test_falling_curve():
    # the paper's low-resolution data: dice drops slightly at large RF (blocky edges)
    rf, dice, seeds = synthetic_trials(0.963, -0.011, 0.5, sigma=0.002, rng=4)
    assert fit_plateau(rf, dice, seeds, rng=0).verdict == FALLS


def test_same_rng_same_interval():
    data = synthetic_trials(0.79, 0.06, 0.6, rng=5)
    a, b = fit_plateau(*data, rng=7), fit_plateau(*data, rng=7)
    assert a == b


def test_demo_scale_four_rfs_one_seed():
    # SPEC.md section 4, one seed, C = 0.06: 0.77 / 0.87 / 0.85 at RF 44 / 120 / 232 px
    rf = [44, 120, 232, 392]
    fit = fit_plateau(rf, [0.77, 0.87, 0.85, 0.86], [752] * 4)
    assert fit.verdict == UNDETERMINED  # one seed cannot separate a rise from seed noise
    assert fit.sigma_source == "residual" and fit.dof == 1
    assert math.isnan(fit.gain_lo) and math.isnan(fit.onset_rf_px_lo)
    assert np.isfinite(fit.plateau_dice) and fit.observed_gain == pytest.approx(0.09)
    assert "seed" in fit.note


def test_too_few_rfs():
    fit = fit_plateau([44, 392], [0.7, 0.8])
    assert fit.verdict == UNDETERMINED and math.isnan(fit.plateau_dice)
    assert fit.observed_gain == pytest.approx(0.1)
    three = fit_plateau([44, 120, 392], [0.7, 0.78, 0.8])
    assert three.verdict == UNDETERMINED and three.sigma_source == "none"
    with pytest.raises(ValueError, match="values"):
        fit_plateau([44, 120], [0.7])


def _trial_table(rows):
    cols = [
        "dataset",
        "contrast",
        "pixel_size_nm",
        "num_blocks",
        "pools",
        "dilations",
        "rf_px",
        "seed",
        "test_hard_dice",
        "status",
    ]
    return pd.DataFrame(rows, columns=cols)


def test_fit_plateaus_groups_by_strategy():
    rows = []
    for seed in range(3):
        for pools in [(2, 2), (4, 4), (8, 8), (2, 8)]:
            rf = receptive_field(pools)
            rows.append(
                (
                    "a",
                    0.1,
                    0.02,
                    2,
                    "-".join(map(str, pools)),
                    "1-1-1",
                    rf,
                    seed,
                    0.9 - 0.05 * 44 / rf + 0.001 * seed,
                    "FINISHED",
                )
            )
        for d in (2, 4):
            rf = receptive_field((2, 2), (d,) * 3)
            rows.append(
                (
                    "a",
                    0.1,
                    0.02,
                    2,
                    "2-2",
                    f"{d}-{d}-{d}",
                    rf,
                    seed,
                    0.9 - 0.05 * 44 / rf + 0.001 * seed,
                    "FINISHED",
                )
            )
    rows.append(("a", 0.1, 0.02, 2, "8-8", "1-1-1", 392, 9, np.nan, "FAILED"))
    out = plateau.fit_plateaus(_trial_table(rows), n_boot=200)
    by = out.set_index("strategy")
    assert by.loc["pooling", "n_trials"] == 12  # the failed trial is left out
    # the dilation series starts from the undilated 2-2 network (paper Figure 4)
    assert by.loc["dilation", "n_trials"] == 9 and by.loc["dilation", "rf_min_px"] == 44
    assert by.loc["pooling", "onset_rf_nm"] == pytest.approx(
        by.loc["pooling", "onset_rf_px"] * 0.02, nan_ok=True
    )
    # 0.9 - 0.05 * 44 / rf still rises at 392 px: its onset is censored, not a number
    assert by.loc["pooling", "onset_censored"] == "above"
    assert math.isnan(by.loc["pooling", "onset_rf_px"])


def test_onset_trend_recovers_power_law():
    contrast = np.array([0.02, 0.04, 0.08, 0.16])
    onset_nm = 10.0 * contrast**-0.5
    table = pd.DataFrame(
        {
            "dataset": [f"c{c}" for c in contrast],
            "contrast": contrast,
            "num_blocks": 2,
            "strategy": "pooling",
            "verdict": RISES,
            "onset_rf_nm": onset_nm,
        }
    )
    flat = table.iloc[[0]].assign(dataset="hi", contrast=0.5, verdict=FLAT, onset_rf_nm=np.nan)
    trend = contrast_trend.onset_trend(pd.concat([table, flat])).iloc[0]
    assert trend["slope"] == pytest.approx(-0.5)
    assert trend["intercept"] == pytest.approx(math.log(10.0))
    assert (trend["n_with_onset"], trend["n_flat"]) == (4, 1)
    assert trend["direction"] == "onset falls as contrast rises"


# --------------------------------------------------------------------------- MLflow store

HR_ARCHS = [((2, 2), (1, 1, 1)), ((4, 4), (1, 1, 1)), ((8, 8), (1, 1, 1))]
SEEDS = (752, 2245, 140)
DATASETS = {  # name: (contrast, pixel size, plateau, gain)
    "hr-lo": (0.03, 0.02, 0.80, 0.08),
    "hr-hi": (0.20, 0.02, 0.95, 0.01),
    "lr": (0.50, 0.1243, 0.97, 0.0),
}


def true_dice(dataset: str, rf_px: int, seed: int) -> float:
    _, _, p, g = DATASETS[dataset]
    return p - g * (rf_px / 44) ** -2.0 + 0.002 * SEEDS.index(seed)


def _log_trial(client, exp_id, dataset, pools, dilations, seed, *, status="FINISHED", key=None):
    from mlflow.entities import Metric, Param

    contrast, pixel, _, _ = DATASETS[dataset]
    rf = receptive_field(pools, dilations)
    arch = f"N{len(pools)}-p{'.'.join(map(str, pools))}-d{'.'.join(map(str, dilations))}"
    strategy = "pooling" if set(dilations) == {1} else "dilation"
    run = client.create_run(
        exp_id,
        run_name=f"{dataset}/{arch}-s{seed}",
        tags={
            "temseg.trial_key": key or f"{dataset}/{arch}-s{seed}",
            "temseg.search": "grid",
            "temseg.strategy": strategy,
        },
    )
    params = {
        "dataset": dataset,
        "data_path": f"/stores/{dataset}.zarr",
        "contrast": contrast,
        "pixel_size_nm": pixel,
        "num_blocks": len(pools),
        "pools": "-".join(map(str, pools)),
        "dilations": "-".join(map(str, dilations)),
        "seed": seed,
        "epochs": 3,
        "lr": 1e-3,
        "batch_size": 8,
        "rf_px": rf,
        "rf_nm": rf * pixel,
        "n_params": 8074,
    }
    now = int(time.time() * 1000)
    dice = true_dice(dataset, rf, seed)
    metrics = [Metric("val_hard_dice", dice - 0.1 / (e + 1), now, e) for e in range(3)]
    metrics += [Metric("train_loss", 1.0 / (e + 1), now, e) for e in range(3)]
    if status == "FINISHED":
        metrics += [
            Metric("test_hard_dice", dice, now, 0),
            Metric("test_soft_dice", dice - 0.01, now, 0),
            Metric("best_epoch", 2, now, 0),
        ]
    client.log_batch(
        run.info.run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()]
    )
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite MLflow store with a small sweep: 3 contrast levels x 3 RFs x 3 seeds, a
    dilation series, a retried trial (FAILED then FINISHED) and a trial that failed."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("sweep", artifact_location=str(root / "artifacts"))
    for dataset in DATASETS:
        for pools, dilations in HR_ARCHS:
            for seed in SEEDS:
                if (dataset, pools, seed) == ("hr-hi", (8, 8), 140):
                    _log_trial(client, exp, dataset, pools, dilations, seed, status="FAILED")
                    continue
                if (dataset, pools, seed) == ("hr-lo", (8, 8), 140):  # retried by Ray
                    _log_trial(client, exp, dataset, pools, dilations, seed, status="FAILED")
                _log_trial(client, exp, dataset, pools, dilations, seed)
    for seed in SEEDS:
        _log_trial(client, exp, "hr-lo", (2, 2), (2, 2, 2), seed)
    failed_only = client.create_experiment("all-failed", artifact_location=str(root / "a2"))
    _log_trial(client, failed_only, "hr-lo", (2, 2), (1, 1, 1), 752, status="FAILED")
    return uri


def test_default_tracking_uri_is_the_project_db():
    assert collect.default_tracking_uri() == f"sqlite:///{REPO / 'mlruns.db'}"


def test_load_runs_one_typed_row_per_trial(store):
    trials = collect.load_runs("sweep", store)
    assert len(trials) == 3 * 3 * 3 + 3  # the retried trial appears once
    assert str(trials["num_blocks"].dtype) == "Int64" and trials["contrast"].dtype == float
    retried = trials[trials["trial_key"] == "hr-lo/N2-p8.8-d1.1.1-s140"]
    assert len(retried) == 1 and retried["status"].iloc[0] == "FINISHED"
    failed = collect.failed(trials)
    assert failed["run_name"].tolist() == ["hr-hi/N2-p8.8-d1.1.1-s140"]
    assert failed["test_hard_dice"].isna().all()
    dil = trials[trials["dilations"] == "2-2-2"]
    assert set(dil["strategy"]) == {"dilation"} and set(dil["rf_px"]) == {
        receptive_field((2, 2), (2, 2, 2))
    }
    row = trials[
        (trials["dataset"] == "hr-lo") & (trials["pools"] == "4-4") & (trials["seed"] == 752)
    ]
    assert row["test_hard_dice"].iloc[0] == pytest.approx(true_dice("hr-lo", 120, 752))
    assert row["rf_nm"].iloc[0] == pytest.approx(2.4)


def test_aggregate_seeds_mean_std_n(store):
    agg = collect.aggregate_seeds(collect.load_runs("sweep", store))
    cell = agg[
        (agg["dataset"] == "hr-lo") & (agg["pools"] == "2-2") & (agg["dilations"] == "1-1-1")
    ]
    values = [true_dice("hr-lo", 44, s) for s in SEEDS]
    assert cell["n_seeds"].iloc[0] == 3
    assert cell["test_hard_dice_mean"].iloc[0] == pytest.approx(np.mean(values))
    assert cell["test_hard_dice_std"].iloc[0] == pytest.approx(np.std(values, ddof=1))
    broken = agg[(agg["dataset"] == "hr-hi") & (agg["pools"] == "8-8")].iloc[0]
    assert (broken["n_seeds"], broken["n_failed"]) == (2, 1)


def test_load_histories(store):
    trials = collect.load_runs("sweep", store).head(2)
    hist = collect.load_histories(trials, store, metrics=("val_hard_dice",))
    assert len(hist) == 6 and hist["step"].tolist()[:3] == [0, 1, 2]


def test_errors_are_clear(store, tmp_path):
    with pytest.raises(ValueError, match="not found.*sweep"):
        collect.load_runs("nope", store)
    missing = tmp_path / "none.db"
    with pytest.raises(FileNotFoundError, match="no MLflow database"):
        collect.load_runs("sweep", f"sqlite:///{missing}")
    assert not missing.exists()  # reading never creates a store
    with pytest.raises(ValueError, match="none finished"):
        report.write_report("all-failed", store, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- report


def _columns(path: Path) -> list[str]:
    return pd.read_csv(path).columns.tolist()


def test_report_via_cli_without_stores_or_checkpoints(store, tmp_path, capsys):
    from temseg.cli import main

    out = tmp_path / "report"
    assert (
        main(
            [
                "report",
                "--experiment",
                "sweep",
                "--tracking-uri",
                store,
                "--out",
                str(out),
                "--n-boot",
                "200",
            ]
        )
        == 0
    )
    for name in (
        "summary.csv",
        "plateaus.csv",
        "fourier.csv",
        "fn_overlap.csv",
        "data_sources.csv",
        "onset_trend.csv",
        "failed_trials.csv",
        "trials.csv",
        "dice_vs_rf.png",
        "onset_vs_contrast.png",
        "report.md",
        "report.html",
    ):
        assert (out / name).is_file(), name
    summary_cols = {
        "dataset",
        "contrast",
        "num_blocks",
        "pools",
        "dilations",
        "rf_px",
        "rf_nm",
        "n_params",
        "n_seeds",
        "test_hard_dice_mean",
        "test_hard_dice_std",
    }
    assert summary_cols <= set(_columns(out / "summary.csv"))
    plateau_cols = {
        "dataset",
        "contrast",
        "num_blocks",
        "strategy",
        "plateau_dice",
        "gain",
        "onset_rf_px",
        "onset_rf_nm",
        "plateau_dice_lo",
        "plateau_dice_hi",
        "gain_lo",
        "gain_hi",
        "onset_rf_nm_lo",
        "onset_rf_nm_hi",
        "verdict",
    }
    assert plateau_cols <= set(_columns(out / "plateaus.csv"))
    assert set(report.FOURIER_COLUMNS) == set(_columns(out / "fourier.csv"))
    fourier = pd.read_csv(out / "fourier.csv").set_index("dataset")
    assert fourier.loc["lr", "status"].startswith("not applicable")
    assert fourier.loc["hr-lo", "status"].startswith("store unavailable")
    sources = pd.read_csv(out / "data_sources.csv")
    assert sources["source"].str.startswith("store not read (").all() and len(sources) == 3
    plateaus = pd.read_csv(out / "plateaus.csv")
    assert len(plateaus) == 4  # 3 pooling series + the hr-lo dilation series
    md = (out / "report.md").read_text()
    assert "hr-hi/N2-p8.8-d1.1.1-s140" in md  # failed trial listed
    assert "pooled hard dice" in md and "no network predictions" in md
    html_text = (out / "report.html").read_text()
    assert html_text.count("data:image/png;base64,") == 2 and 'src="http' not in html_text
    assert "report written" in capsys.readouterr().out


def test_cli_errors_exit_2(store, tmp_path, capsys):
    from temseg.cli import main

    assert (
        main(
            [
                "report",
                "--experiment",
                "nope",
                "--tracking-uri",
                store,
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "not found" in capsys.readouterr().err
    uri = f"sqlite:///{tmp_path / 'missing.db'}"
    assert (
        main(
            ["report", "--experiment", "sweep", "--tracking-uri", uri, "--out", str(tmp_path / "o")]
        )
        == 2
    )
    assert "no MLflow database" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_report_with_data_and_networks(store, tmp_path, monkeypatch):
    """Stores and checkpoints replaced by stand-ins: the Fourier baseline, the FN overlap and
    the example figures run end to end. Every HR 'network' is the Fourier filter itself, so
    its false negatives coincide exactly (Jaccard 1); the LR checkpoint is 'missing'."""
    from test_baseline import fringed_disc

    def load_split(data_path):
        name = Path(data_path).stem
        pairs = [fringed_disc(size=128, radius_px=30 + 5 * s, rng=s) for s in range(3)]
        images = np.stack([p[0] for p in pairs])
        masks = np.stack([p[1] for p in pairs]).astype(np.uint8)
        return images, masks, {"pixel_size_nm": DATASETS[name][1], "patch_size": 128}

    def network_predictor(client, run_id, tmp):
        pixel = float(client.get_run(run_id).data.params["pixel_size_nm"])
        if not baseline.fourier_applicable(pixel):
            raise FileNotFoundError("checkpoint/model.pt not logged")
        return lambda images: baseline.fourier_segment_batch(images, pixel)

    monkeypatch.setattr(report, "_load_split", load_split)
    monkeypatch.setattr(report, "_network_predictor", network_predictor)
    out = report.write_report("sweep", store, tmp_path / "r", n_boot=100, max_patches=2)
    assert out == (tmp_path / "r").resolve()
    fourier = pd.read_csv(out / "fourier.csv").set_index("dataset")
    assert fourier.loc["hr-lo", "status"] == "ok" and fourier.loc["hr-lo", "fourier_dice"] > 0.85
    assert (fourier.loc["hr-lo", "band_inner_px"], fourier.loc["hr-lo", "band_outer_px"]) == (
        10,
        14,
    )
    assert fourier.loc["lr", "status"].startswith("not applicable")
    fn = pd.read_csv(out / "fn_overlap.csv")
    assert set(fn["dataset"]) == {"hr-lo", "hr-hi"} and len(fn) == 6
    assert np.allclose(fn["fn_jaccard"], 1.0) and np.allclose(
        fn["network_dice"], fn["fourier_dice"]
    )
    assert set(fn["n_patches"]) == {2} and set(
        fn.groupby("dataset")["seed"].unique().map(tuple)
    ) == {(140,), (752,)}
    for name in ("hr-lo", "hr-hi"):
        assert (out / f"examples_{name}.png").stat().st_size > 10_000
    assert not (out / "examples_lr.png").exists()
    md = (out / "report.md").read_text()
    assert "lr: 3 of 3 network(s) not evaluated" in md and "checkpoint/model.pt" in md
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 4
