"""The recorded benchmark table, replayed searches, warm start and the grid comparison.

Fast and pure: no Ray, no training. Tables are built here by hand (exact values) or from a
formula (a 13-network table shaped like sweeps/bench.yaml's); the MLflow export reads a real
SQLite store written with MlflowClient.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from temseg.receptive_field import Architecture, format_seq
from temseg.sweep.search import Outcome, Proposer, SearchSpace, incumbent_to_reach
from temseg.sweep.search.replay import (
    ASHA,
    STRATEGIES,
    Settings,
    bench,
    hyperband_rungs,
    replay,
    space_of,
    train_seed_for,
)
from temseg.sweep.search.table import (
    COLUMNS,
    TableError,
    export_table,
    load_table,
    sig6,
    write_table,
)

REPO = Path(__file__).resolve().parents[1]

A = Architecture(2, (2, 2))  # 44 px
B = Architecture(2, (2, 4))  # 64 px
C = Architecture(2, (4, 4))  # 120 px

# (arch, seed) -> (val per epoch, test per epoch, seconds per epoch); 3 epochs, seeds 1 and 2
HAND = {
    (A, 1): ([0.5, 0.6, 0.6], [0.4, 0.55, 0.58], [1.0] * 3),  # tie at 3: best epoch 2 -> 0.55
    (A, 2): ([0.5, 0.7, 0.65], [0.45, 0.6, 0.62], [1.25] * 3),  # best 2 -> 0.6
    (B, 1): ([0.6, 0.7, 0.8], [0.5, 0.7, 0.75], [1.5] * 3),  # best 3 -> 0.75
    (B, 2): ([0.55, 0.75, 0.72], [0.5, 0.72, 0.8], [1.75] * 3),  # best 2 -> 0.72
    (C, 1): ([0.65, 0.78, 0.79], [0.6, 0.7, 0.74], [2.0] * 3),  # best 3 -> 0.74
    (C, 2): ([0.6, 0.8, 0.7], [0.6, 0.76, 0.7], [2.25] * 3),  # best 2 -> 0.76
}


def rows_of(curves: dict) -> list[dict]:
    rows = []
    for (arch, seed), (val, test, secs) in curves.items():
        for e, (v, t, s) in enumerate(zip(val, test, secs, strict=True), start=1):
            rows.append(
                {
                    "arch": arch.name,
                    "num_blocks": arch.num_blocks,
                    "pools": format_seq(arch.pools),
                    "dilations": format_seq(arch.dilations),
                    "rf_px": arch.rf_px,
                    "n_params": arch.n_params,
                    "seed": seed,
                    "epoch": e,
                    "val_hard_dice": v,
                    "test_hard_dice": t,
                    "seconds": s,
                }
            )
    return rows


@pytest.fixture
def hand(tmp_path):
    return load_table(write_table(rows_of(HAND), tmp_path / "hand.csv"))


def bench_like_curves() -> dict:
    """13 networks (sweeps/bench.yaml's) x 3 seeds x 6 epochs from a formula, no randomness."""
    from temseg.sweep.space import architectures as grid_archs
    from temseg.sweep.profile import load_profile

    archs = grid_archs(load_profile("bench", {}), 192)
    assert len(archs) == 13
    curves = {}
    for i, arch in enumerate(archs):
        plateau = 0.8 - 0.2 * math.exp(-arch.rf_px / 50) + 0.01 * math.sin(7 * i)
        for j, seed in enumerate((752, 2245, 140)):
            off = 0.02 * math.sin(3 * i + 5 * j)
            val = [plateau * (1 - 0.5 * math.exp(-e / 1.5)) + off for e in range(1, 7)]
            val = [sig6(v + 0.01 * math.cos(11 * i + 13 * j + 17 * e)) for e, v in enumerate(val)]
            test = [sig6(v - 0.05 + 0.01 * math.sin(i + j + e)) for e, v in enumerate(val)]
            secs = [sig6(5 + arch.num_blocks + 0.25 * ((i + j + e) % 4)) for e in range(6)]
            curves[arch, seed] = (val, test, secs)
    return curves


@pytest.fixture(scope="module")
def bench13(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "table.csv"
    return load_table(write_table(rows_of(bench_like_curves()), path))


# ---------------------------------------------------------------------------- the table


def test_hand_table_best_and_compute(hand):
    assert hand.architectures == (A, B, C)
    assert hand.seeds == (1, 2) and hand.max_epochs == 3
    assert hand.curve(A, 1).best_epoch() == 2  # a tie keeps the earliest epoch (train's ">")
    finals = {k: hand.final_test(*k) for k in HAND}
    assert finals == {
        (A, 1): 0.55,
        (A, 2): 0.6,
        (B, 1): 0.75,
        (B, 2): 0.72,
        (C, 1): 0.74,
        (C, 2): 0.76,
    }
    assert hand.seed_mean(A) == 0.575 and hand.seed_mean(B) == 0.735
    assert hand.grid_best == (C, 0.75)
    assert hand.grid_trial_epochs == 18  # 3 architectures x 2 seeds x 3 epochs
    assert hand.grid_seconds == 29.25
    assert hand.patch_size == 128
    assert hand.grid_order() == [A, B, C]


def test_bench_profile_order_and_patch(bench13):
    from temseg.sweep.space import architectures as grid_archs
    from temseg.sweep.profile import load_profile

    assert bench13.patch_size == 192  # the profile's patch, found from the table alone
    assert bench13.grid_order() == grid_archs(load_profile("bench", {}), 192)
    # the replay's space is the live search's on the bench profile
    from temseg.sweep.search import SearchConfig, space_for

    assert space_of(bench13) == space_for(load_profile("bench", {}), SearchConfig(), 192)
    assert len(space_of(bench13).architectures()) == 13


def test_write_table_is_compact_and_stable(tmp_path):
    rows = rows_of({(A, 1): ([0.61336392489], [0.5], [7.056080731])})
    path = write_table(rows, tmp_path / "t.csv")
    assert path.read_text() == (
        ",".join(COLUMNS) + "\nN2-p2.2-d1.1.1,2,2-2,1-1-1,44,8074,1,1,0.613364,0.5,7.05608\n"
    )


def test_load_table_errors_name_file_and_line(tmp_path):
    good = write_table(rows_of(HAND), tmp_path / "good.csv").read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([good[0].replace(",seconds", "")] + good[1:]) + "\n")
    with pytest.raises(TableError, match=r"bad\.csv, line 1: missing column\(s\) \['seconds'\]"):
        load_table(bad)
    lines = list(good)
    lines[3] = lines[3].replace("0.6,", "zero,", 1)
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(TableError, match=r"bad\.csv, line 4: bad value 'zero'"):
        load_table(bad)
    drop = good.index(
        next(ln for ln in good if ln.startswith("N2-p2.4-d1.1.1,2,2-4,1-1-1,64,8074,1,1,"))
    )
    lines = good[:drop] + good[drop + 1 :]  # B seed 1 loses epoch 1
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        TableError, match=r"bad\.csv: N2-p2\.4-d1\.1\.1 seed 1 lacks epoch\(s\) \[1\]"
    ):
        load_table(bad)
    lines = list(good)
    lines[1] = lines[1].replace("N2-p2.2-d1.1.1", "N2-p4.4-d1.1.1", 1)
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(TableError, match=r"line 2: arch 'N2-p4.4-d1.1.1' does not match"):
        load_table(bad)
    with pytest.raises(TableError, match="no such table file"):
        load_table(tmp_path / "absent.csv")


# ---------------------------------------------------------------------------- MLflow export


def _log_run(client, exp_id, arch, seed, curve, *, epochs=None, tags=None, finish=True):
    run = client.create_run(exp_id, run_name=f"ds/{arch.name}-s{seed}", tags=tags or {})
    rid = run.info.run_id
    params = {
        "dataset": "ds",
        "num_blocks": arch.num_blocks,
        "pools": format_seq(arch.pools),
        "dilations": format_seq(arch.dilations),
        "seed": seed,
        "epochs": epochs or len(curve[0]),
        "rf_px": arch.rf_px,
        "n_params": arch.n_params,
    }
    for k, v in params.items():
        client.log_param(rid, k, v)
    val, test, secs = curve
    for e, v in enumerate(val, 1):
        client.log_metric(rid, "val_hard_dice", v, step=e)
    for e, v in enumerate(test, 1):
        client.log_metric(rid, "epoch_test_hard_dice", v, step=e)
    for e, v in enumerate(secs, 1):
        client.log_metric(rid, "epoch_seconds", v, step=e)
    best = max(range(len(val)), key=lambda i: (val[i], -i))
    client.log_metric(rid, "test_hard_dice", test[min(best, len(test) - 1)], step=0)
    client.log_metric(rid, "best_val_hard_dice", val[best], step=0)
    if finish:
        client.set_terminated(rid, "FINISHED")
    return rid


def test_export_table_round_trips_an_mlflow_store(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("bench")
    curves = {
        (C, 2): ([0.61336392489, 0.7], [0.5, 0.654321987], [7.056080731, 6.5]),
        (A, 2): ([0.4, 0.5], [0.3, 0.4], [1.0, 2.0]),
        (A, 1): ([0.45, 0.55], [0.35, 0.45], [1.5, 2.5]),
    }
    for (arch, seed), curve in curves.items():
        _log_run(client, exp, arch, seed, curve)
    _log_run(client, exp, B, 1, curves[A, 1], finish=False)  # still running: not in the table
    _log_run(client, exp, B, 2, curves[A, 1], tags={"temseg.search": "optuna"})  # a search's

    rows = export_table(uri, "bench")
    path = write_table(rows, tmp_path / "table.csv")
    assert (
        path.read_text()
        == "\n".join(
            [
                ",".join(COLUMNS),
                "N2-p2.2-d1.1.1,2,2-2,1-1-1,44,8074,1,1,0.45,0.35,1.5",
                "N2-p2.2-d1.1.1,2,2-2,1-1-1,44,8074,1,2,0.55,0.45,2.5",
                "N2-p2.2-d1.1.1,2,2-2,1-1-1,44,8074,2,1,0.4,0.3,1",
                "N2-p2.2-d1.1.1,2,2-2,1-1-1,44,8074,2,2,0.5,0.4,2",
                "N2-p4.4-d1.1.1,2,4-4,1-1-1,120,8074,2,1,0.613364,0.5,7.05608",
                "N2-p4.4-d1.1.1,2,4-4,1-1-1,120,8074,2,2,0.7,0.654322,6.5",
            ]
        )
        + "\n"
    )
    assert rows[-1]["test_hard_dice"] == 0.654322  # rows hold what the file holds
    # C lacks seed 1: the export is faithful, the loader refuses the incomplete grid
    with pytest.raises(TableError, match="N2-p4.4-d1.1.1 has no rows for seed 1"):
        load_table(path)

    # a run without its per-epoch test dice (no record_test) is refused, by name
    bad = client.create_experiment("no-record-test")
    rid = _log_run(client, bad, A, 1, ([0.4, 0.5], [0.3], [1.0, 2.0]))
    with pytest.raises(ValueError, match=rf"run {rid} .*'epoch_test_hard_dice' lacks epoch"):
        export_table(uri, "no-record-test")
    with pytest.raises(ValueError, match="experiment 'nope' not found"):
        export_table(uri, "nope")


# ---------------------------------------------------------------------------- replay


def test_grid_replay_costs_exactly_the_grid(hand):
    settings = Settings.live(hand)
    searches = [replay(hand, "grid", s, settings) for s in range(len(hand.seeds))]
    assert [train_seed_for(hand, s) for s in range(2)] == [1, 2]
    assert sum(s.trial_epochs for s in searches) == hand.grid_trial_epochs == 18
    assert math.fsum(x for s in searches for x in s.seconds) == hand.grid_seconds == 29.25
    first, second = searches
    # seed 1: A (val 0.6, test 0.55), then B (0.8, 0.75 >= 0.74): hit after 6 epochs, 7.5 s;
    # C (0.79) does not beat B, so B stays the recommendation
    assert [t.arch for t in first.trials] == [A, B, C]
    assert (first.hit_epochs, first.hit_seconds, first.incumbent.arch) == (6, 7.5, B)
    # seed 2: B's test is 0.72 < 0.74; C (val 0.8) hits with 0.76 after 9 epochs
    assert (second.hit_epochs, second.hit_seconds, second.incumbent.arch) == (9, 15.75, C)

    summary = bench(hand, [0, 1], strategies=["grid"])
    (grid,) = summary["strategies"]
    assert grid["median_share"] == sig6((6 / 18 + 9 / 18) / 2)
    assert grid["median_share_seconds"] == sig6((7.5 / 29.25 + 15.75 / 29.25) / 2)
    assert (grid["hit_rate"], grid["match_rate"], grid["misses"]) == (1.0, 0.5, 0)
    assert summary["grid_best"] == {"arch": "N2-p4.4-d1.1.1", "rf_px": 120, "seed_mean_test": 0.75}
    assert summary["table"]["trial_epochs"] == 18 and summary["table"]["seconds"] == 29.25


def test_a_miss_counts_its_whole_compute(tmp_path):
    # A has the best validation dice but the worse test dice: once trained first, it stays the
    # incumbent and the grid's best (B, test 0.7) is never recommended
    curves = {
        (A, 1): ([0.8, 0.9], [0.4, 0.5], [1.0, 1.0]),
        (B, 1): ([0.7, 0.8], [0.6, 0.7], [2.0, 2.0]),
    }
    table = load_table(write_table(rows_of(curves), tmp_path / "miss.csv"))
    assert table.grid_best == (B, 0.7) and table.grid_order() == [A, B]
    s = replay(table, "grid", 0, Settings.live(table))
    assert not s.hit and s.incumbent.arch == A and (s.trial_epochs, s.total_seconds) == (4, 6.0)
    (grid,) = bench(table, [0], strategies=["grid"])["strategies"]
    assert (grid["median_share"], grid["median_share_seconds"], grid["misses"]) == (1.0, 1.0, 1)
    assert (grid["hit_rate"], grid["match_rate"], grid["final_within_rate"]) == (0.0, 0.0, 0.0)


def test_asha_is_rays_rule():
    # Ray's own example (ray.tune.schedulers.async_hyperband._Bracket): grace 1, max 10, rf 2
    asha = ASHA(1, 10, 2)
    assert asha.keep_going(1, 1, 2.0) and asha.keep_going(2, 1, 4.0)
    assert not asha.keep_going(3, 1, 1.0)  # below the rung's cutoff, 3.0
    assert ASHA(1, 6, 3).milestones == [1, 3]  # the live search's default at 6 epochs
    assert hyperband_rungs(1, 6, 3) == [1, 3]
    assert ASHA(2, 8, 2).milestones == [2, 4]


@pytest.mark.parametrize("strategy", ["random", "tpe+asha", "tpe+hyperband", "random+asha"])
def test_replay_is_deterministic_per_search_seed(bench13, strategy):
    settings = Settings.live(bench13)

    def trace(seed):
        s = replay(bench13, strategy, seed, settings)
        return [(t.arch.name, t.epochs) for t in s.trials], s.hit_epochs, s.seconds

    assert trace(3) == trace(3)
    if strategy.startswith("random"):
        assert len({tuple(trace(seed)[0]) for seed in range(4)}) > 1


def test_early_stopping_strategies_stop_at_their_rungs(bench13):
    settings = Settings.live(bench13)
    assert (settings.grace, settings.reduction_factor, settings.n_startup_trials) == (1, 3, 4)
    for strategy in ("tpe+asha", "random+asha", "tpe+hyperband"):
        s = replay(bench13, strategy, 0, settings)
        assert {t.epochs for t in s.trials} <= {1, 3, 6}
        assert any(t.epochs < 6 for t in s.trials)
        assert len({t.arch for t in s.trials}) == len(s.trials)  # never one twice
    full = replay(bench13, "random", 0, settings)
    assert sorted(t.arch.name for t in full.trials) == sorted(a.name for a in bench13.architectures)
    assert full.trial_epochs == 13 * 6


def test_script_output_is_the_same_byte_for_byte(bench13, tmp_path, capsys):
    sys.path.insert(0, str(REPO / "scripts"))
    import bench_search

    outs = []
    for jobs in (1, 2):
        out = tmp_path / f"j{jobs}"
        out.mkdir()
        rc = bench_search.main(
            [
                "--table",
                bench13.path,
                "--search-seeds",
                "3",
                "--strategies",
                "grid",
                "random",
                "tpe+asha",
                "--jobs",
                str(jobs),
                "--out-json",
                str(out / "r.json"),
                "--out-md",
                str(out / "r.md"),
            ]
        )
        assert rc == 0
        outs.append((capsys.readouterr().out, (out / "r.json").read_bytes()))
    assert outs[0] == outs[1]
    stdout, raw = outs[0]
    result = json.loads(raw)
    assert [r["strategy"] for r in result["strategies"]] == ["grid", "random", "tpe+asha"]
    for r in result["strategies"]:
        assert {"strategy", "median_share", "iqr", "match_rate", "hit_rate"} <= set(r)
    assert result["strategies"][2]["rungs"] == [1, 3]
    assert (tmp_path / "j1" / "r.md").read_text() == stdout
    assert "| tpe+asha |" in stdout and "Spearman" in stdout
    assert bench_search.main(["--table", str(tmp_path / "none.csv")]) == 2
    assert bench_search.main(["--table", bench13.path, "--strategies", "bogus"]) == 2


def test_strategies_listed():
    assert STRATEGIES[:4] == ("grid", "random", "tpe", "tpe+asha")


# ---------------------------------------------------------------------------- warm start


def test_warm_start_tells_finished_runs_without_training_them():
    import optuna

    from temseg.sweep.search import warm_outcomes

    space = SearchSpace((2,), (2, 4), 128, dilation_sets=((1, 1, 1), (1, 2, 2)))
    proposer = Proposer(space, "dice", "flops", max_epochs=4)
    archs = space.architectures()
    assert len(archs) == 6  # 2-2, 2-4, 4-2, 4-4 undilated; 2-2, 2-4 ... with 1-2-2 below 128
    rows = [
        {"num_blocks": 2, "pools": "4-4", "dilations": "1-1-1", "epochs": 4},
        {"num_blocks": 2, "pools": "2-2", "dilations": "1-2-2", "epochs": 4},
        {"num_blocks": 2, "pools": "4-4", "dilations": "1-1-1", "epochs": 4},  # a second run
        {"num_blocks": 2, "pools": "2-4", "dilations": "1-1-1", "epochs": 2},  # other epochs
        {"num_blocks": 2, "pools": "8-8", "dilations": "1-1-1", "epochs": 4},  # RF >= 128
    ]
    for i, r in enumerate(rows):
        r.update(best_val_dice=0.5 + i / 10, test_hard_dice=0.4 + i / 10)
    warm, used, skipped = warm_outcomes(proposer, rows, 4)
    four, dilated = Architecture(2, (4, 4)), Architecture(2, (2, 2), (1, 2, 2))
    assert warm == {
        four: Outcome("complete", (0.5,), (), 4),
        dilated: Outcome("complete", (0.6,), (), 4),
    }
    assert used == rows[:2]
    assert skipped == {
        "a second run of one architecture": 1,
        "not trained for 4 epochs": 1,
        "outside the search space": 1,
    }

    study = proposer.create_study(0, n_startup_trials=2)
    known = proposer.warm_start(study, warm)
    assert known == warm
    told = study.trials
    assert [t.state for t in told] == [optuna.trial.TrialState.COMPLETE] * 2
    assert [t.user_attrs["proposal"] for t in told] == ["warm-start"] * 2
    assert {t.user_attrs["architecture"]: t.values for t in told} == {
        four.name: [0.5],
        dilated.name: [0.6],
    }
    assert told[0].params == {"num_blocks": 2, "pool_0": 2, "pool_1": 2, "dilations_n2": "1-2-2"}
    # the search goes on: every other architecture once, the told ones never
    proposed = []
    while len(known) < proposer.size:
        got = proposer.propose(study, known=known)
        assert got is not None
        trial, arch = got
        proposed.append(arch)
        outcome = proposer.outcome(arch, {"best_val_hard_dice": 0.3, "epoch": 4})
        proposer.tell(study, trial, arch, outcome)
        known[arch] = outcome
    assert set(proposed) == set(archs) - {four, dilated} and len(proposed) == 4
    new = [t for t in study.trials if t.user_attrs.get("proposal") == "new"]
    assert {t.user_attrs["architecture"] for t in new} == {a.name for a in proposed}


def test_warm_start_rows_read_finished_runs_of_the_dataset_and_seed(tmp_path):
    from mlflow.tracking import MlflowClient

    from temseg.sweep.search import warm_start_rows

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("old")
    curve = ([0.4, 0.6], [0.3, 0.5], [1.0, 1.0])
    keep = _log_run(client, exp, A, 752, curve)
    _log_run(client, exp, B, 2245, curve)  # another training seed
    _log_run(client, exp, C, 752, curve, finish=False)  # not finished
    client.log_param(keep, "rf_nm", 0.88)  # collect.run_row reads these
    client.log_param(keep, "pixel_size_nm", 0.02)
    rows = warm_start_rows(uri, "old", "ds", 752)
    assert [(r["pools"], r["epochs"], r["best_val_dice"], r["test_hard_dice"]) for r in rows] == [
        ("2-2", 2, 0.6, 0.5)
    ]
    assert rows[0]["epoch_seconds"] == {1: 1.0, 2: 1.0}
    assert warm_start_rows(uri, "old", "other-ds", 752) == []
    with pytest.raises(ValueError, match="experiment 'nope' not found"):
        warm_start_rows(uri, "nope", "ds", 752)


def test_bad_warm_start_experiment_exits_2_before_ray(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from temseg.sweep.cli import search_main

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    MlflowClient(uri).create_experiment("old")
    rc = search_main(
        [
            "--profile",
            "smoke",
            "--tracking-uri",
            uri,
            "--storage-path",
            str(tmp_path / "ray"),
            "--warm-start",
            "nope",
        ],
        project_dir=tmp_path,
    )
    err = capsys.readouterr().err
    assert rc == 2 and "experiment 'nope' not found" in err, err
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    assert not (tmp_path / "data").exists()  # nothing made before the refusal


# ---------------------------------------------------------------------------- --compare-grid


def test_compare_grid_counts_as_the_replay_does(hand):
    """A sequential live search (rows, events) is accounted exactly as its replay."""
    settings = Settings.live(hand)
    s = replay(hand, "grid", 1, settings)  # seed 2: A, B, C; hit with C after 9 epochs
    rows, events, t = [], [], 0
    for i, trial in enumerate(s.trials):
        curve = hand.curve(trial.arch, s.train_seed)
        start = t
        for e in range(1, trial.epochs + 1):
            t += int(curve.seconds[e - 1] * 1000)
            events.append((t, f"r{i}", e, curve.val[e - 1]))
        rows.append(
            {
                "run_id": f"r{i}",
                "start_ms": start,
                "end_ms": t,
                "status": "finished",
                "epochs": trial.epochs,
                "best_val_dice": trial.best_val,
                "test_hard_dice": trial.test,
                "epoch_seconds": dict(enumerate(curve.seconds[: trial.epochs], 1)),
            }
        )
    _, mean = hand.grid_best
    r = incumbent_to_reach(rows, events, mean - 0.01, max_epochs=3)
    assert (r["reached"], r["run_id"], r["trial_epochs"], r["trial_seconds"]) == (
        True,
        "r2",
        s.hit_epochs,
        s.hit_seconds,
    )
    assert (s.hit_epochs, s.hit_seconds) == (9, 15.75)
    # a trial stopped early never becomes the incumbent, however high its dice
    rows[1] = {**rows[1], "status": "stopped", "epochs": 1, "best_val_dice": 0.99}
    r = incumbent_to_reach(rows, events, mean - 0.01, max_epochs=3)
    assert r["run_id"] == "r2"


def test_grid_summary_best_and_seconds_as_the_table_defines_them(tmp_path):
    from mlflow.tracking import MlflowClient

    from temseg.sweep.search import grid_summary

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("g")
    # A: the best validation dice, B: the best test dice (the table's grid best)
    _log_run(client, exp, A, 1, ([0.8, 0.9], [0.4, 0.5], [1.0, 1.0]))
    _log_run(client, exp, B, 1, ([0.7, 0.8], [0.6, 0.7], [2.0, 2.0]))
    g = grid_summary(uri, "g", "ds")
    assert g["best"]["name"] == B.name and g["best"]["test_dice_mean"] == 0.7
    assert (g["trial_epochs"], g["trial_seconds"], g["seconds_from"]) == (4, 6.0, "epoch_seconds")


def test_the_committed_table_reproduces_the_committed_replay():
    # docs/bench/strategies.json came from `scripts/bench_search.py --table docs/bench/table.csv
    # --search-seeds 30`; the strategies without TPE replay in seconds, so their committed
    # numbers are checked exactly here (the TPE ones take minutes; their determinism is tested
    # above on a smaller table)
    from temseg.sweep.search.replay import bench
    from temseg.sweep.search.table import load_table

    committed = json.loads((REPO / "docs" / "bench" / "strategies.json").read_text())
    table = load_table(REPO / "docs" / "bench" / "table.csv")
    fast = ["grid", "random", "random+asha"]
    again = bench(table, range(30), strategies=fast)
    assert (
        again["grid_best"]
        == committed["grid_best"]
        == {
            "arch": "N3-p2.2.2-d1.2.2.2",
            "rf_px": 176,
            "seed_mean_test": 0.847943,
        }
    )
    by_name = {s["strategy"]: s for s in committed["strategies"]}
    for s in again["strategies"]:
        assert s == by_name[s["strategy"]], s["strategy"]
    assert by_name["tpe+asha"]["median_share"] <= 0.2  # the target, measured
