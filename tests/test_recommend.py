"""The recommendation: per-dataset picks (synthetic tables, exact picks), the Loos et al.
heuristic, the leave-one-level-out trend check, ``temseg recommend`` (real MLflow SQLite and
real Zarr stores), the report's Recommendation / ERF sections."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from temseg.analysis import erf_fits as analysis_erf
from temseg.analysis import onset_prediction, plateau, recommend
from temseg.analysis.plateau import FLAT, RISES, UNDETERMINED
from temseg.data.store import write_store
from temseg.receptive_field import receptive_field
from tests.helpers import disc_patches

# --------------------------------------------------------------------------- synthetic tables

NETS = {  # network -> (num_blocks, pools, dilations)
    "2-2": (2, "2-2", "1-1-1"),
    "4-4": (2, "4-4", "1-1-1"),
    "8-8": (2, "8-8", "1-1-1"),
    "2-2-2": (3, "2-2-2", "1-1-1-1"),
}


def trials_of(dataset: str, means: dict[str, float], contrast=0.1, pixel=0.02) -> pd.DataFrame:
    rows = []
    for net, mean in means.items():
        n, pools, dil = NETS[net]
        for seed, offset in zip((752, 2245, 140), (-0.001, 0.0, 0.001), strict=True):
            rows.append(
                dict(
                    dataset=dataset,
                    contrast=contrast,
                    pixel_size_nm=pixel,
                    num_blocks=n,
                    pools=pools,
                    dilations=dil,
                    rf_px=receptive_field([int(p) for p in pools.split("-")]),
                    seed=seed,
                    status="FINISHED",
                    test_hard_dice=mean + offset,
                )
            )
    return pd.DataFrame(rows)


def fit_row(dataset, verdict, plateau_dice, lo, hi, *, censored="none", onset_px=math.nan, n=2):
    return dict(
        dataset=dataset,
        contrast=0.1,
        pixel_size_nm=0.02,
        num_blocks=n,
        strategy="pooling",
        verdict=verdict,
        onset_censored=censored if verdict == RISES else "",
        plateau_dice=plateau_dice,
        plateau_dice_lo=lo,
        plateau_dice_hi=hi,
        onset_rf_px=onset_px,
    )


def test_recommend_picks_the_smallest_rf_and_the_cheapest_network_exactly():
    trials = pd.concat(
        [
            # plateau 0.80 [0.79, 0.81]: 4-4 (0.795), 8-8 (0.80) and N=3 2-2-2 (0.805) qualify
            trials_of("a", {"2-2": 0.70, "4-4": 0.795, "8-8": 0.80, "2-2-2": 0.805}),
            # no detectable dependence, mean 0.90 [0.89, 0.91]: every RF qualifies, also
            # 2-2 whose seed mean lies below the interval of the overall mean
            trials_of("b", {"2-2": 0.885, "4-4": 0.905, "8-8": 0.91}),
            # still rising at the largest RF: nothing tested reaches the plateau
            trials_of("c", {"2-2": 0.60, "4-4": 0.70, "8-8": 0.80}),
            trials_of("d", {"2-2": 0.60, "4-4": 0.61, "8-8": 0.62}),
            # a rise without an interval (fewer than 3 seeds in the fit): RFs >= onset 100 px
            trials_of("e", {"2-2": 0.60, "4-4": 0.70, "8-8": 0.71}),
            # approaching the plateau from below: no mean in [0.79, 0.81]; RFs >= onset 150
            trials_of("f", {"2-2": 0.60, "4-4": 0.70, "8-8": 0.78}),
        ]
    )
    fits = pd.DataFrame(
        [
            fit_row("a", RISES, 0.80, 0.79, 0.81, onset_px=150.0),
            fit_row("b", FLAT, 0.90, 0.89, 0.91),
            fit_row("c", RISES, 0.95, 0.85, 1.05, censored="above"),
            fit_row("d", UNDETERMINED, math.nan, math.nan, math.nan),
            fit_row("e", RISES, 0.71, math.nan, math.nan, onset_px=100.0),
            fit_row("f", RISES, 0.80, 0.79, 0.81, onset_px=150.0),
        ]
    )
    rec = recommend.recommend(trials, fits).set_index("dataset")
    assert rec["status"].to_dict() == {
        "a": "plateau",
        "b": "flat",
        "c": "above",
        "d": "undetermined",
        "e": "onset",
        "f": "onset",
    }
    a = rec.loc["a"]
    assert a["n_candidates"] == 3
    # smallest RF among the qualifying: N=3 pools 2-2-2 (Eq. 1: 96 px), though it has
    # 32730 parameters; cheapest: N=2 (8074), and of 4-4 and 8-8 the one with fewer FLOPs
    assert (a["smallest_rf_network"], a["smallest_rf_px"]) == ("N3-p2.2.2-d1.1.1.1", 96.0)
    assert a["smallest_rf_nm"] == pytest.approx(96 * 0.02)
    assert a["smallest_rf_dice_mean"] == pytest.approx(0.805)
    assert a["smallest_rf_dice_std"] == pytest.approx(0.001)
    assert (a["cheapest_network"], a["cheapest_rf_px"], a["cheapest_n_params"]) == (
        "N2-p8.8-d1.1.1",
        392.0,
        8074,
    )
    assert a["cheapest_mflop_per_px"] == pytest.approx(recommend.mflop_per_px(2, (8, 8), (1, 1, 1)))
    assert recommend.mflop_per_px(2, (8, 8), (1, 1, 1)) < recommend.mflop_per_px(
        2, (4, 4), (1, 1, 1)
    )
    b = rec.loc["b"]
    assert (b["smallest_rf_network"], b["cheapest_network"]) == ("N2-p2.2-d1.1.1", "N2-p8.8-d1.1.1")
    assert (b["n_candidates"], b["smallest_rf_dice_mean"]) == (3, pytest.approx(0.885))
    assert "the smallest RF tested is as good as any tested" in b["sentence"]
    c = rec.loc["c"]
    assert c["smallest_rf_network"] == c["cheapest_network"] == "N2-p8.8-d1.1.1"
    assert "nothing tested reaches a plateau" in c["sentence"]
    d = rec.loc["d"]
    assert d["smallest_rf_network"] == "" and d["n_candidates"] == 0
    assert "no recommendation" in d["sentence"]
    e = rec.loc["e"]
    assert (e["smallest_rf_network"], e["cheapest_network"]) == ("N2-p4.4-d1.1.1", "N2-p8.8-d1.1.1")
    f = rec.loc["f"]
    assert (f["smallest_rf_network"], f["n_candidates"]) == ("N2-p8.8-d1.1.1", 1)
    assert f["sentence"].count("no seed-mean dice reaches the plateau's 95% interval") == 1
    assert list(rec.reset_index().columns) == recommend.RECOMMENDATION_COLUMNS


@pytest.mark.parametrize(
    ("size", "contrast", "expected"),
    [(2.2, 0.5, 2.2), (2.2, 0.1, 2.2), (2.2, 0.04, 5.5), (5.0, 0.02, 25.0), (5.0, 0.0, math.nan)],
)
def test_loos_heuristic_exact_values(size, contrast, expected):
    got = onset_prediction.heuristic_rf_nm(size, contrast)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, rel=1e-12)
    assert math.isnan(onset_prediction.heuristic_rf_nm(math.nan, 0.2))


def trend_table() -> pd.DataFrame:
    """Onsets on an exact power law, onset_nm = 2 contrast^-0.5 (N=2 pooling), plus a level
    still rising at the largest RF and a flat one; N=3: two measured levels only."""
    rows = []
    for c in (0.05, 0.1, 0.2, 0.4):
        rows.append((2, f"c{c}", c, RISES, "none", 2 * c**-0.5))
    rows.append((2, "c0.02", 0.02, RISES, "above", math.nan))
    rows.append((2, "c0.8", 0.8, FLAT, "", math.nan))
    rows.append((3, "c0.05", 0.05, RISES, "none", 3.0))
    rows.append((3, "c0.2", 0.2, RISES, "none", 2.0))
    return pd.DataFrame(
        [
            dict(
                pixel_size_nm=0.02,
                num_blocks=n,
                strategy="pooling",
                dataset=name,
                contrast=c,
                verdict=v,
                onset_censored=cens,
                onset_rf_nm=onset,
            )
            for n, name, c, v, cens, onset in rows
        ]
    )


def test_leave_one_level_out_recovers_an_exact_power_law():
    loo = onset_prediction.leave_one_level_out(trend_table(), {f"c{c}": 2.0 for c in (0.05, 0.1, 0.2)})
    two = loo[loo["num_blocks"] == 2].set_index("dataset")
    scored = two[two["status"] == "scored"]
    assert sorted(scored.index) == ["c0.05", "c0.1", "c0.2", "c0.4"]
    # each measured level predicted by the other three lies on the same line: no error
    np.testing.assert_allclose(scored["trend_error_nm"], 0.0, atol=1e-9)
    np.testing.assert_allclose(scored["predicted_nm"], scored["onset_nm"], rtol=1e-12)
    assert scored.loc["c0.1", "predicted_nm_lo"] == pytest.approx(2 * 0.1**-0.5, rel=1e-9)
    # heuristic: object 2 nm; contrast >= 0.1 -> 2 nm, 0.05 -> 2 x 0.1 / 0.05 = 4 nm
    assert scored.loc["c0.05", "heuristic_nm"] == pytest.approx(4.0)
    assert scored.loc["c0.05", "heuristic_error_nm"] == pytest.approx(4.0 - 2 * 0.05**-0.5)
    assert scored.loc["c0.05", "heuristic_error_px"] == pytest.approx((4.0 - 2 * 0.05**-0.5) / 0.02)
    assert scored.loc["c0.2", "heuristic_nm"] == 2.0
    assert math.isnan(scored.loc["c0.4", "heuristic_nm"])  # object size unknown
    # the censored and the flat level are predicted but cannot be scored
    assert two.loc["c0.02", "status"] == "no measured onset (above)"
    assert two.loc["c0.02", "predicted_nm"] == pytest.approx(2 * 0.02**-0.5, rel=1e-9)
    assert two.loc["c0.8", "status"] == "no measured onset (no detectable dependence)"
    # N=3: without one of its two measured levels the trend is undetermined
    three = loo[loo["num_blocks"] == 3]
    assert all(s.startswith("trend undetermined: 1 of 1 level(s)") for s in three["status"])
    assert three["predicted_nm"].isna().all()
    # a group of one level: holding it out leaves nothing to fit
    one = trend_table().iloc[[0]].assign(num_blocks=4)
    (status,) = onset_prediction.leave_one_level_out(one)["status"]
    assert status.startswith("trend undetermined: 0 of 0 level(s)")


def test_trend_fit_with_two_levels_has_no_interval_and_censored_levels_stay_out():
    table = trend_table()
    two_levels = onset_prediction.fit_trend(table[table["num_blocks"] == 3])
    onset, lo, hi = two_levels.predict(0.1)
    # the line through (0.05, 3) and (0.2, 2) in log-log, at the geometric middle 0.1
    assert onset == pytest.approx(math.sqrt(6.0), rel=1e-12) and math.isnan(lo)
    full = onset_prediction.fit_trend(table[table["num_blocks"] == 2])
    assert (full.n_with_onset, full.n_censored_above, full.n_flat) == (4, 1, 1)
    assert full.slope == pytest.approx(-0.5) and math.exp(full.intercept) == pytest.approx(2.0)


# --------------------------------------------------------------------------- ERF fits


def test_dice_against_erf_tracks_it_exactly_when_dice_is_a_function_of_erf():
    rows = []
    for rf, (d1, d2, d3) in {44: (20, 24, 28), 120: (40, 50, 60), 392: (70, 90, 110)}.items():
        for seed, d in zip((1, 2, 3), (d1, d2, d3), strict=True):
            rows.append(
                dict(
                    dataset="x",
                    contrast=0.1,
                    pixel_size_nm=0.02,
                    num_blocks=2,
                    pools={44: "2-2", 120: "4-4", 392: "8-8"}[rf],
                    dilations="1-1-1",
                    rf_px=rf,
                    seed=seed,
                    status="FINISHED",
                    erf95_px=d / 2,
                    # dice is the plateau model of the ERF diameter d: exact in ERF
                    test_hard_dice=0.9 - 0.2 * (d / 20) ** -1.0,
                )
            )
    trials = pd.DataFrame(rows)
    fit = analysis_erf.erf_fits(trials).iloc[0]
    assert fit["n_trials"] == 9 and fit["tracks"] == "erf"
    assert fit["sigma_erf"] == pytest.approx(0.0, abs=1e-6) and fit["sigma_rf"] > 0.005
    # ERF proportional to RF: the same fit up to the scale of x, so the same residual
    prop = trials.assign(erf95_px=trials["rf_px"] / 4)
    same = analysis_erf.erf_fits(prop).iloc[0]
    assert same["tracks"] == "equally"
    assert same["sigma_erf"] == pytest.approx(same["sigma_rf"], rel=1e-6)
    # runs logged before the ERF existed: counted, no comparison
    old = analysis_erf.erf_fits(trials.assign(erf95_px=np.nan)).iloc[0]
    assert (old["n_trials"], old["n_without_erf"], old["tracks"]) == (0, 9, "undetermined")
    assert "no trial has ERF metrics" in old["sentence"]


# --------------------------------------------------------------------------- CLI and report

SEEDS = (752, 2245, 140)
ARCHS = ((2, 2), (4, 4), (8, 4), (8, 8))  # Eq. 1: 44, 120, 232, 392 px
LEVELS = {  # dataset -> (contrast, onset in px of an exact plateau curve, or None: flat)
    "lo": (0.05, 300.0),
    "mid": (0.1, 200.0),
    "hi": (0.2, 4 * 200.0 / 6),
}


def _dice(rf: float, onset_px: float | None, seed: int) -> float:
    offset = 0.002 * SEEDS.index(seed)
    if onset_px is None:
        return 0.9 + offset
    tau = math.log(onset_px / 44) / math.log(20)
    return 0.85 - 0.1 * (rf / 44) ** (-1 / tau) + offset


def _log_experiment(client, name, levels, *, pixel=0.02, erf=True):
    from mlflow.entities import Metric, Param

    exp = client.create_experiment(name)
    now = int(time.time() * 1000)
    for dataset, (contrast, onset) in levels.items():
        for pools in ARCHS:
            rf = receptive_field(pools)
            for seed in SEEDS:
                run = client.create_run(exp, run_name=f"{dataset}/{pools}-s{seed}")
                params = dict(
                    dataset=dataset,
                    data_path=f"/absent/{dataset}.zarr",
                    contrast=contrast,
                    pixel_size_nm=pixel,
                    num_blocks=2,
                    pools="-".join(map(str, pools)),
                    dilations="1-1-1",
                    seed=seed,
                    epochs=3,
                    rf_px=rf,
                    rf_exact_max_px=rf,
                    n_params=8074,
                )
                dice = _dice(rf, onset, seed)
                metrics = [
                    Metric("test_hard_dice", dice, now, 0),
                    Metric("test_soft_dice", dice, now, 0),
                    Metric("best_epoch", 2, now, 0),
                ]
                if erf and dataset != "hi":  # "hi": runs logged before the ERF existed
                    metrics += [Metric("erf95_px", rf / 5 + SEEDS.index(seed), now, 0)]
                client.log_batch(
                    run.info.run_id,
                    metrics=metrics,
                    params=[Param(k, str(v)) for k, v in params.items()],
                )
                client.set_terminated(run.info.run_id, "FINISHED")


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    client = MlflowClient(uri)
    _log_experiment(client, "trend", LEVELS)
    _log_experiment(client, "flat", {"f1": (0.05, None), "f2": (0.2, None)})
    return uri


def new_store(path, *, contrast=0.1, pixel=0.02, diameter=2.2):
    rng = np.random.default_rng(0)
    splits = {}
    for name, n in (("train", 2), ("val", 1), ("test", 1)):
        images, masks = disc_patches(n, 32, rng)
        splits[name] = (images, masks, np.zeros(n, dtype=np.int32))
    attrs = {
        "pixel_size_nm": pixel,
        "kind": "synthetic",
        "contrast": contrast,
        "sources": ["discs"],
        "preprocessing": {"note": "test discs"},
        "generator": {"preset": "test", "diameter_nm": diameter},
    }
    return write_store(path, splits, attrs)


def run_cli(capsys, *argv):
    from temseg.cli import main

    code = main(["recommend", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_recommend_cli_predicts_the_rf_from_the_trend(mlflow_uri, tmp_path, capsys):
    store = new_store(tmp_path / "new.zarr")
    code, out, err = run_cli(
        capsys, store, "--experiment", "trend", "--tracking-uri", mlflow_uri, "--n-boot", 0
    )
    assert code == 0, err
    # onsets 300 / 200 / 133.3 px at contrast 0.05 / 0.1 / 0.2 lie on one power law; at 0.1
    # the trend gives back 200 px = 4.00 nm
    assert "predicted RF:  4.00 nm (200 px)" in out
    assert "contrast:      0.1000" in out
    # heuristic: contrast 0.1 >= 0.1, so the object size, 2.2 nm (110 px)
    assert "heuristic:     RF 2.20 nm (110 px)" in out
    assert "object size:   2.2 nm (the generator's particle diameter)" in out
    low = new_store(tmp_path / "low.zarr", contrast=0.02)
    code, out, _ = run_cli(
        capsys, low, "--experiment", "trend", "--tracking-uri", mlflow_uri, "--n-boot", 0,
        "--object-size-nm", 5,
    )  # fmt: skip
    assert code == 0
    assert "heuristic:     RF 25.00 nm (1250 px)" in out  # 5 x 0.1 / 0.02
    assert "an extrapolation" in out


def test_recommend_cli_exit_codes_and_messages(mlflow_uri, tmp_path, capsys):
    store = new_store(tmp_path / "new.zarr")
    # undetermined trend: every level is flat
    code, out, err = run_cli(
        capsys, store, "--experiment", "flat", "--tracking-uri", mlflow_uri, "--n-boot", 0
    )
    assert code == 3 and out.startswith("store:")
    assert "cannot: the trend is undetermined (N=2 pooling at 0.02 nm/px: 0 of 2 level(s)" in err
    assert "2 with no detectable dependence" in err
    # another sampling: no level to compare with
    other = new_store(tmp_path / "other.zarr", pixel=0.1243)
    code, _, err = run_cli(capsys, other, "--experiment", "trend", "--tracking-uri", mlflow_uri)
    assert code == 3 and "has no levels at 0.1243 nm/px" in err
    # bad input: exit 2, one message naming the file or field
    missing = tmp_path / "nope.zarr"
    code, out, err = run_cli(capsys, missing, "--experiment", "trend", "--tracking-uri", mlflow_uri)
    assert code == 2 and out == "" and f"patch store {missing} not found" in err
    code, out, err = run_cli(capsys, store, "--experiment", "nope", "--tracking-uri", mlflow_uri)
    assert code == 2 and "experiment 'nope' not found" in err and "'trend'" in err
    not_a_store = tmp_path / "plain"
    not_a_store.mkdir()
    code, _, err = run_cli(
        capsys, not_a_store, "--experiment", "trend", "--tracking-uri", mlflow_uri
    )
    assert code == 2 and str(not_a_store) in err
    empty = new_store(tmp_path / "empty.zarr", contrast=None)
    code, _, err = run_cli(capsys, empty, "--experiment", "trend", "--tracking-uri", mlflow_uri)
    assert code == 2 and "attribute 'contrast' is None" in err


def test_report_opens_with_the_recommendation_and_compares_erf(mlflow_uri, tmp_path):
    from temseg.analysis import report

    out = report.write_report("trend", mlflow_uri, tmp_path / "r", networks=False, n_boot=0)
    md = (out / "report.md").read_text()
    assert md.index("## Recommendation") < md.index("## Answer")
    rec = pd.read_csv(out / "recommendation.csv").set_index("dataset")
    assert list(rec.reset_index().columns) == recommend.RECOMMENDATION_COLUMNS
    assert set(rec.index) == {"lo", "mid", "hi"}
    # onsets 300 / 200 / 133 px: "lo" approaches its plateau from below at 392 px
    assert rec.loc["lo", "status"] == "onset" and rec.loc["lo", "smallest_rf_px"] == 392
    loo = pd.read_csv(out / "leave_one_level_out.csv").set_index("dataset")
    # each level predicted from the other two (a line through 2 points): exact
    np.testing.assert_allclose(loo["trend_error_px"], 0.0, atol=0.5)
    assert "Predicting the RF a level needs" in md and "trend RMS error" in md
    erf = pd.read_csv(out / "erf_fits.csv").set_index("dataset")
    assert erf.loc["hi", "n_without_erf"] == 12 and erf.loc["hi", "tracks"] == "undetermined"
    assert erf.loc["lo", "n_trials"] == 12
    assert (out / "erf_vs_rf.png").exists() and "Dice against the effective receptive field" in md
    assert plateau.RISES in set(pd.read_csv(out / "plateaus.csv")["verdict"])
