"""The Optuna architecture search: space, proposals, costs, reports, and end to end on Ray.

Pure parts (space, proposer, FLOPs, Pareto front, grid comparison) run without Ray in seconds;
two end-to-end tests run sweeps/optuna_search.py on a local Ray runtime into a SQLite MLflow
store: a multi-objective smoke search compared with a (small, real) grid experiment, and a
search whose driver is killed and then resumed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from temseg.receptive_field import Architecture, valid_architectures
from temseg.sweep.search import (
    CONSTRAINT,
    Proposer,
    SearchSpace,
    forward_flops,
    incumbent_to_reach,
    pareto_front,
    propose_sequence,
    cheapest_within,
    train_gflop,
)
from tests.helpers import experiment_runs, tiny_store

REPO = Path(__file__).resolve().parents[1]
SEARCH = [sys.executable, str(REPO / "sweeps" / "optuna_search.py")]


def fake_result(arch: Architecture, *, epochs: int = 4) -> dict:
    """A deterministic stand-in for training: dice peaks at RF 150 px."""
    dice = 1 - abs(arch.rf_px - 150) / 600
    return {"best_val_hard_dice": dice, "epoch": epochs, "test_hard_dice": dice - 0.01}


def assert_valid(arch: Architecture, space: SearchSpace) -> None:
    assert arch.num_blocks in space.blocks
    assert len(arch.pools) == arch.num_blocks
    assert len(arch.dilations) == arch.num_blocks + 1
    assert set(arch.pools) <= set(space.kernels)
    assert set(arch.dilations) <= set(space.dilations or (1,))
    assert arch.rf_px < space.patch_size
    prod = 1
    for p in arch.pools:
        prod *= p
    assert space.patch_size % prod == 0


# ---------------------------------------------------------------------------- space, proposals


def test_space_is_the_papers_grid_at_512_px():
    # 9 + 14 + 7 = 30 pooling architectures (SPEC.md section 3), the same set as the grid's
    space = SearchSpace((2, 3, 4), (2, 4, 8), 512)
    assert space.architectures() == valid_architectures()


@pytest.mark.parametrize(
    "space",
    [
        SearchSpace((2, 3, 4), (2, 4, 8), 512),
        SearchSpace((2, 3, 4), (2, 4, 8), 128, dilations=(1, 2, 4)),  # mostly infeasible
        SearchSpace((2, 3), (2, 3, 4), 96),  # 3 never divides 96 twice over with 4s
    ],
    ids=["paper-512", "dilated-128", "odd-kernels-96"],
)
def test_space_never_proposes_an_invalid_architecture(space):
    proposer = Proposer(space, "dice", "flops", max_epochs=4)
    # remember=False: outcomes are told but not remembered, so every proposal is a fresh ask
    seen = propose_sequence(proposer, fake_result, n=60, seed=7, remember=False, n_startup_trials=5)
    assert len(seen) == 60
    for arch in seen:
        assert_valid(arch, space)


def test_infeasible_proposals_are_told_as_constraint_violations():
    space = SearchSpace((2, 3, 4), (2, 4, 8), 128, dilations=(1, 2, 4))
    proposer = Proposer(space, "dice", "flops", max_epochs=4)
    study = proposer.create_study(0, n_startup_trials=5)
    for _ in range(10):
        trial, arch = proposer.propose(study, known={})
        proposer.tell(study, trial, arch, proposer.outcome(arch, fake_result(arch)))
    kinds = [t.user_attrs["proposal"] for t in study.trials]
    assert kinds.count("new") == 10 and "rejected" in kinds
    for t in study.trials:
        feasible = t.user_attrs["proposal"] != "rejected"
        assert (t.constraints[CONSTRAINT] <= 0) == feasible


@pytest.mark.parametrize("objective", ["dice", "dice-per-cost"])
def test_same_seed_gives_the_same_sequence_of_proposals(objective):
    proposer = Proposer(SearchSpace((2, 3, 4), (2, 4, 8), 512), objective, "flops", max_epochs=4)
    a = propose_sequence(proposer, fake_result, n=12, seed=3, n_startup_trials=4)
    b = propose_sequence(proposer, fake_result, n=12, seed=3, n_startup_trials=4)
    c = propose_sequence(proposer, fake_result, n=12, seed=4, n_startup_trials=4)
    assert [x.name for x in a] == [x.name for x in b]
    assert a != c
    assert len(set(a)) == 12  # never the same architecture twice


def test_a_small_space_is_exhausted_without_repeats():
    space = SearchSpace((2,), (2, 4), 128)  # 2-2, 2-4, 4-2, 4-4: RF 44..120 px
    proposer = Proposer(space, "dice", "flops", max_epochs=4)
    seen = propose_sequence(proposer, fake_result, n=10, seed=0)
    assert sorted(a.name for a in seen) == sorted(a.name for a in space.architectures())
    assert len(seen) == 4


def test_outcomes_complete_pruned_failed():
    arch = Architecture(2, (4, 4), (1, 1, 1))
    proposer = Proposer(SearchSpace((2,), (2, 4), 128), "dice-per-cost", "params", max_epochs=4)
    done = proposer.outcome(arch, fake_result(arch))
    assert done.state == "complete" and done.values == (
        fake_result(arch)["best_val_hard_dice"],
        8074.0,
    )
    stopped = proposer.outcome(arch, {"best_val_hard_dice": 0.3, "epoch": 1}, history=[(1, 0.3)])
    assert stopped.state == "pruned" and stopped.intermediate == ((1, 0.3),)
    assert proposer.outcome(arch, {"epoch": 2}, error=True).state == "failed"
    # the trainable's skip path reports the run's final metrics (no running best)
    reused = proposer.outcome(arch, {"val_hard_dice": 0.7, "test_hard_dice": 0.69, "epoch": 4})
    assert reused.state == "complete" and reused.values[0] == 0.7


def test_a_proposal_becomes_the_grids_trial_dict():
    from temseg.sweep.search import TrialFactory
    from temseg.sweep.profile import SweepConfig
    from temseg.sweep.space import build_trials
    from temseg.trial import Dataset

    ds = Dataset("/data/discs128.zarr", "discs128", 0.02, 128, 1.5)
    cfg = SweepConfig(profile="smoke", seeds=(752,), epochs=2, lr=1e-3, batch_size=8)
    arch = Architecture(2, (4, 2), (1, 1, 1))
    factory = TrialFactory(cfg, ds, "sqlite:////tmp/x.db", "7", "discs128/optuna-dice-s0")
    mine = factory(arch)
    grid_cfg = SweepConfig(
        profile="smoke",
        seeds=(752,),
        epochs=2,
        lr=1e-3,
        batch_size=8,
        blocks=(2,),
        pools=("4-2",),
        dilation_variants=False,
    )
    (grid,) = build_trials(grid_cfg, [ds], tracking_uri="sqlite:////tmp/x.db", experiment_id="7")
    assert mine["train"] == grid["train"] and set(mine) == set(grid) == {"train", "meta"}
    assert set(mine["meta"]) == set(grid["meta"])
    for key in ("run_name", "params", "tracking_uri", "experiment_id", "gpus_per_trial"):
        assert mine["meta"][key] == grid["meta"][key], key
    # its own MLflow run: another key, tagged with the search method and the study
    assert mine["meta"]["trial_key"] != grid["meta"]["trial_key"]
    assert mine["meta"]["tags"] == {
        **grid["meta"]["tags"],
        "temseg.search": "optuna",
        "temseg.study": "discs128/optuna-dice-s0",
    }


def test_search_config_rejects_bad_values():
    from temseg.config import ConfigError
    from temseg.sweep.search import search_config

    assert search_config({"objective": None, "trials": 5}).trials == 5
    with pytest.raises(ConfigError, match="objective must be one of"):
        search_config({"objective": "dice-per-watt"})
    with pytest.raises(ConfigError, match="unknown key"):
        search_config({"trails": 5})


# ---------------------------------------------------------------------------- costs


@pytest.mark.parametrize(
    "arch,patch",
    [
        (Architecture(2, (2, 2), (1, 1, 1)), 128),
        (Architecture(2, (4, 4), (1, 1, 2)), 128),
        (Architecture(3, (2, 4, 2), (1, 1, 1, 1)), 64),
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_forward_flops_match_torchs_flop_counter(arch, patch):
    # independent count: torch.utils.flop_counter on the real network (2 FLOPs per MAC)
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from temseg.model import ResidualUNet

    net = ResidualUNet(arch.num_blocks, arch.pools, arch.dilations).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 1, patch, patch))
    assert forward_flops(arch, patch) == counter.get_total_flops()


def test_golden_flops():
    # N=2 pools 2-2 at 128 px: 61,865,984 forward FLOPs (= torch's count above); x3 to train
    assert forward_flops(Architecture(2, (2, 2), (1, 1, 1)), 128) == 61_865_984
    assert train_gflop(Architecture(2, (2, 2), (1, 1, 1)), 128) == pytest.approx(0.185597952)


# ---------------------------------------------------------------------------- reports


def test_pareto_front_and_recommendation():
    rows = [
        {"a": "big", "dice": 0.900, "cost": 3.0, "rf": 392},
        {"a": "mid", "dice": 0.895, "cost": 1.0, "rf": 120},
        {"a": "tie", "dice": 0.890, "cost": 1.0, "rf": 80},  # dominated by mid
        {"a": "small", "dice": 0.800, "cost": 0.5, "rf": 44},
        {"a": "worse", "dice": 0.850, "cost": 2.0, "rf": 232},  # dominated by mid
    ]
    assert [r["a"] for r in pareto_front(rows, dice="dice", cost="cost")] == ["small", "mid", "big"]
    assert cheapest_within(rows, dice="dice", cost="cost", tolerance=0.01)["a"] == "mid"
    assert cheapest_within(rows, dice="dice", cost="cost", tolerance=0.0)["a"] == "big"
    assert cheapest_within(rows, dice="dice", cost="cost", tolerance=0.2)["a"] == "small"
    assert cheapest_within([], dice="dice", cost="cost") is None


def test_the_search_total_counts_every_trial_and_falls_back_to_run_durations():
    # runs without recorded epoch seconds (made before epoch_seconds existed): their part of
    # [start, end]; a target never reached gives the whole search's totals
    rows = [
        {"run_id": "a", "start_ms": 0, "end_ms": 4_000},
        {"run_id": "b", "start_ms": 1_000, "end_ms": 5_000},
        {"run_id": "c", "start_ms": 4_500, "end_ms": 6_000},
    ]
    rows = [{**r, "status": "stopped", "epochs": 1, "best_val_dice": 0.9} for r in rows]
    events = [
        (2_000, "a", 1, 0.5),
        (3_000, "b", 1, 0.9),
        (4_000, "a", 2, 0.95),
        (6_000, "c", 1, 0.99),
    ]
    never = incumbent_to_reach(rows, events, math.inf, max_epochs=2)
    assert (
        never["reached"],
        never["trial_epochs"],
        never["trial_seconds"],
        never["wall_seconds"],
    ) == (False, 4, 9.5, 6.0)


# ---------------------------------------------------------------------------- end to end on Ray


@pytest.fixture(scope="module")
def store128(tmp_path_factory):
    return tiny_store(tmp_path_factory.mktemp("data") / "discs128.zarr", size=128, n=(4, 2, 2))


# Ray saves the experiment state (trials, searcher) at most every 10 s by default; every
# second here, so the killed driver below leaves a recent state to restore
ENV = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"}


def search(*args, timeout=240):
    return subprocess.run(
        [*SEARCH, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def search_args(tmp_path, store, uri, *extra):
    return (
        "--profile",
        "smoke",
        "--data",
        store,
        "--tracking-uri",
        uri,
        "--experiment",
        "s",
        "--storage-path",
        tmp_path / "ray",
        "--report-dir",
        tmp_path / "report",
        "--num-cpus",
        2,
        *extra,
    )


def study_runs(uri, experiment="s"):
    return experiment_runs(uri, experiment)


def fake_grid(uri, store, tmp_path, values):
    """A finished grid experiment 'g' written through the grid's own trial table and tracking.

    ``values``: pools -> per-epoch val dice (one seed, 2 epochs).
    """
    from temseg.receptive_field import format_seq
    from temseg.sweep.datasets import open_datasets
    from temseg.sweep.profile import SweepConfig
    from temseg.sweep.space import build_trials
    from temseg.tracking import TrialRun, ensure_experiment
    from temseg.trial import RayTrial

    exp = ensure_experiment(uri, "g")
    cfg = SweepConfig(
        profile="smoke",
        blocks=(2,),
        pools=tuple(values),
        dilation_variants=False,
        seeds=(752,),
        epochs=2,
    )
    work = tmp_path / "gridwork"
    work.mkdir()
    (work / "best.pt").write_bytes(b"x")
    (work / "config.json").write_text("{}")
    for t in build_trials(cfg, open_datasets([str(store)]), tracking_uri=uri, experiment_id=exp):
        run = TrialRun.for_trial(RayTrial.decode(t))
        curve = values[format_seq(RayTrial.decode(t).train.pools)]
        for epoch, v in enumerate(curve, 1):
            run.log_epoch({"epoch": epoch, "val_hard_dice": v, "train_loss": 0.5})
        run.finish({"test_hard_dice": max(curve), "test_soft_dice": 0.1, "best_epoch": 2}, work)


@pytest.mark.slow
def test_smoke_search_end_to_end_into_sqlite(tmp_path, store128):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    # a grid whose best mean val dice (0.004) the search reaches with its first epoch
    fake_grid(uri, store128, tmp_path, {"2-2": [0.001, 0.002], "4-4": [0.003, 0.004]})
    out = search(
        *search_args(
            tmp_path,
            store128,
            uri,
            "--trials",
            3,
            "--objective",
            "dice-per-cost",
            "--seed",
            5,
            "--compare-grid",
            "g",
        )
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Pareto front" in out.stdout and "receptive field of" in out.stdout
    assert "The grid's best on this dataset was N=2 pools 4-4 dilations 1-1-1" in out.stdout

    client, runs = study_runs(uri)
    assert 1 <= len(runs) <= 3
    archs = [(r.data.params["pools"], r.data.params["dilations"]) for r in runs]
    assert len(set(archs)) == len(runs)  # one run per architecture
    for r in runs:
        assert r.data.tags["temseg.search"] == "optuna"
        assert r.data.tags["temseg.study"] == "discs128/optuna-dice-per-flops-s5"
        assert int(r.data.params["rf_px"]) < 128 and r.data.params["num_blocks"] == "2"
        assert r.info.status in ("FINISHED", "KILLED"), r.info.status  # KILLED = ASHA stopped it
        steps = sorted(m.step for m in client.get_metric_history(r.info.run_id, "val_hard_dice"))
        assert steps == list(range(1, len(steps) + 1))
        if r.info.status == "FINISHED":
            assert steps == [1, 2] and "test_hard_dice" in r.data.metrics

    summary = json.loads(next((tmp_path / "report").rglob("summary.json")).read_text())
    assert summary["objective"] == "dice-per-cost" and summary["trained"] == len(runs)
    rec = summary["recommended"]
    assert rec is not None and rec in summary["pareto_front"]
    c = summary["comparison"]
    assert c["reached"] and c["grid"]["trial_epochs"] == 4
    assert c["trial_epochs"] >= 1
    assert c["fraction_trial_epochs"] == pytest.approx(c["trial_epochs"] / 4)
    assert summary["answer"] in out.stdout

    # the same study again without --resume is refused before Ray starts or anything trains
    again = search(
        *search_args(
            tmp_path, store128, uri, "--trials", 3, "--objective", "dice-per-cost", "--seed", 5
        )
    )
    assert again.returncode == 2 and "--resume" in again.stderr
    assert len(study_runs(uri)[1]) == len(runs)


@pytest.mark.slow
def test_killed_search_resumes_where_it_stopped(tmp_path, store128):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    args = search_args(
        tmp_path,
        store128,
        uri,
        "--trials",
        2,
        "--max-epochs",
        2,
        "--max-concurrent",
        1,
        "--seed",
        11,
    )
    proc = subprocess.Popen(
        [*SEARCH, *map(str, args)],
        stdout=subprocess.PIPE,
        env=ENV,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("[1/2]"):
                time.sleep(2)  # let Ray save the state with the first trial ended
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the runtime it started
        proc.wait(timeout=30)
    assert any(line.startswith("[1/2]") for line in seen), "".join(seen)
    client, before = study_runs(uri)
    first = [r for r in before if r.info.status in ("FINISHED", "KILLED")]
    assert first, [r.info.status for r in before]

    out = search(*args, "--resume")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming search" in out.stdout
    if "1 trials already trained" in out.stdout:
        assert "[1/2]" not in out.stdout  # counting goes on where the killed driver was
    else:  # state saved before the first trial ended: it reruns, finds its finished run
        assert "reused" in out.stdout

    client, runs = study_runs(uri)
    assert len(runs) == 2  # the budget holds across the restart, and is used up
    keys = [r.data.tags["temseg.trial_key"] for r in runs]
    assert len(set(keys)) == len(runs)  # one run per trial, none opened twice
    archs = [r.data.params["pools"] for r in runs]
    assert len(set(archs)) == len(runs)  # the resumed searcher did not propose a trained one again
    for r in first:  # trained before the kill: not trained again
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "val_hard_dice")]
        assert sorted(steps) == sorted(set(steps))
    for r in runs:
        assert r.info.status in ("FINISHED", "KILLED"), r.info.status
