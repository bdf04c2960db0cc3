"""Fractional GPUs on logical GPUs: a local Ray runtime that declares one GPU packs
``1 / --gpus-per-trial`` trials on it, shown by the trial runs' own start and end times in
MLflow; ``--device cpu`` (a flag a user can type) trains them on the CPU. A runtime whose
torch cannot use CUDA refuses GPU trials at start unless ``--device cpu``."""

from __future__ import annotations

import pytest

from tests.helpers import experiment_runs, tiny_store
from tests.test_sweep import grid

SEEDS = (1, 2, 3, 4)


@pytest.fixture(scope="module")
def store64(tmp_path_factory):
    return tiny_store(tmp_path_factory.mktemp("data") / "discs64.zarr", size=64, n=(8, 2, 2))


def grid_args(tmp_path, store, experiment, *extra):
    return (
        "--profile", "smoke", "--data", store, "--pools", "2-2", "--seeds", *SEEDS,
        "--epochs", 2, "--precision", "fp32",
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}", "--experiment", experiment,
        "--storage-path", tmp_path / "ray", "--report-dir", tmp_path / experiment,
        "--num-cpus", 4, "--num-gpus", 1, "--cpus-per-trial", 1, *extra,
    )  # fmt: skip


def most_at_once(runs) -> int:
    """The largest number of runs whose [start, end] intervals hold one instant."""
    events = sorted(
        [(r.info.start_time, 1) for r in runs] + [(r.info.end_time, -1) for r in runs],
        key=lambda e: (e[0], e[1]),  # an end before a start at the same millisecond
    )
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


@pytest.mark.slow
@pytest.mark.parametrize(("share", "at_once"), [(0.25, 4), (0.5, 2)])
def test_gpu_shares_pack_trials_on_one_logical_gpu(tmp_path, store64, share, at_once):
    experiment = f"gpu{share}"
    out = grid(
        *grid_args(tmp_path, store64, experiment, "--gpus-per-trial", share, "--device", "cpu")
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{share:g} GPU per trial" in out.stdout and "/ 1 GPUs" in out.stdout
    _, runs = experiment_runs(f"sqlite:///{tmp_path / 'mlruns.db'}", experiment)
    assert len(runs) == len(SEEDS) and {r.info.status for r in runs} == {"FINISHED"}
    assert most_at_once(runs) == at_once, [(r.info.start_time, r.info.end_time) for r in runs]


def test_gpu_trials_with_a_torch_that_cannot_use_cuda_fail_at_start(tmp_path, store64):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this torch can use CUDA")
    out = grid(*grid_args(tmp_path, store64, "nocuda", "--gpus-per-trial", 0.25))
    assert out.returncode == 2
    line = out.stderr.strip().splitlines()[-1]  # the lines before it are Ray's own
    assert line.startswith("grid.py: error: --gpus-per-trial 0.25 gives every trial a GPU")
    assert "pass --device cpu" in line
    assert not list((tmp_path / "ray").glob("nocuda_*/*"))  # no trial was started


def test_device_cuda_without_gpus_per_trial_is_refused_at_load():
    out = grid("--profile", "smoke", "--dry-run", "--device", "cuda")
    assert out.returncode == 2
    assert "device cuda needs gpus_per_trial > 0" in out.stderr
