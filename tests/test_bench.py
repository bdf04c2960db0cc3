"""The benchmark scripts run and say what they must.

``scripts/bench_train.py`` at toy sizes (the real measurement is minutes; here only that it
runs the same way and prints its ratio and correctness lines), and ``scripts/bench_packing.py``
without a GPU (it must refuse clearly, status 2) plus its planning on CPU.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import tiny_store

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"


def run(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def load(script: str):
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), SCRIPTS / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOY = (
    *("--device", "cpu", "--blocks", "2", "--pools", "2-2", "--patch-size", "64"),
    *("--batch-size", "4", "--patches", "2", "--steps", "2", "--rounds", "2"),
    *("--warmup", "1", "--threads", "1"),
)


def test_bench_train_prints_ratio_throughput_and_correctness():
    # fp32 on purpose: the exact-agreement tolerance below is fp32's (bf16 is the default)
    res = run("bench_train.py", *TOY, "--precision", "fp32")
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    ratio = [line for line in out.splitlines() if "ratio" in line]
    assert len(ratio) == 1, out
    assert re.search(
        r"ratio temseg / reference .*median \d+\.\d+x, IQR \d+\.\d+-\d+\.\d+, "
        r"min-max \d+\.\d+-\d+\.\d+ over 2 rounds",
        ratio[0],
    ), ratio[0]
    check = [line for line in out.splitlines() if line.startswith("correctness temseg vs plain")]
    assert len(check) == 1 and check[0].endswith(": OK"), out
    assert "tol 2e-05" in check[0]  # the stated fp32 tolerance
    for name in ("reference", "temseg"):  # s/step, patches/s, megapixels/s
        assert re.search(rf"^{name}\s+\d+\.\d+\s+\d+\.\d+\s+\d+\.\d+$", out, re.M), out
    assert "8074 parameters, RF 44 px" in out
    assert out.count("round ") == 2
    assert "forward fp32, channels-last" in out


def test_bench_train_bf16_step_is_checked_against_fp32_with_bf16_tolerance():
    # bf16 autocast, on CPU as on CUDA, checked against the fp32 plain step
    res = run("bench_train.py", *TOY, "--precision", "bf16")
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "forward bf16 autocast, channels-last" in out
    check = [line for line in out.splitlines() if line.startswith("correctness temseg vs plain")]
    assert len(check) == 1 and check[0].endswith(": OK"), out
    assert "(tol 0.01)" in check[0] and "hard dice diff" in check[0]
    assert re.search(r"ratio temseg / reference .*median \d+\.\d+x", out), out


def test_bench_train_default_is_what_a_sweep_trains_on_this_machine():
    from temseg.config import resolve_precision

    res = run("bench_train.py", *TOY)
    assert res.returncode == 0, res.stdout + res.stderr
    expected = resolve_precision("auto", gpus_per_trial=0)
    forward = "bf16 autocast" if expected == "bf16" else "fp32"
    assert f"forward {forward}, channels-last" in res.stdout


def test_bench_train_refuses_pools_that_do_not_divide_the_patch():
    res = run("bench_train.py", "--patch-size", "64", "--pools", "3-3")
    assert res.returncode == 2
    assert "divisible" in res.stderr or "divide" in res.stderr, res.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_bench_packing_without_gpu_says_so_and_exits_2():
    res = run("bench_packing.py", timeout=60)
    assert res.returncode == 2
    assert "needs a CUDA GPU" in res.stderr and "nothing was run" in res.stderr
    assert res.stdout == ""


def test_bench_packing_help():
    res = run("bench_packing.py", "--help", timeout=60)
    assert res.returncode == 0
    assert "--fractions" in res.stdout and "status 2" in res.stdout


def test_bench_packing_plans_the_real_grid_at_a_gpu_fraction(tmp_path):
    bp = load("bench_packing.py")
    store = str(tiny_store(tmp_path / "s.zarr", size=64))
    kw = dict(
        blocks=2,
        epochs=3,
        batch_size=32,
        cpus_per_trial=2,
        tracking_uri="sqlite:////tmp/x.db",
        experiment_id="1",
    )
    # at 64 px only pools 2-2 (RF 44 px) fit, so the grid is one architecture x the seeds
    trials = bp.plan_trials(store, fraction=0.25, n_trials=3, seeds=(752, 2245, 140), **kw)
    assert [t["train"]["seed"] for t in trials] == [752, 2245, 140]
    assert all(t["train"]["gpu_fraction"] == 0.25 for t in trials)
    assert all(t["train"]["device"] == "cuda" and t["train"]["pools"] == [2, 2] for t in trials)
    assert all(t["meta"]["gpus_per_trial"] == 0.25 for t in trials)
    assert len({t["meta"]["trial_key"] for t in trials}) == 3
    with pytest.raises(ValueError, match="fewer than --trials 4"):
        bp.plan_trials(store, fraction=0.25, n_trials=4, seeds=(752, 2245, 140), **kw)


def test_bench_packing_helpers():
    bp = load("bench_packing.py")
    assert bp.parse_compute_apps("1234, 1520\n77, [N/A]\nno data\n") == {1234: 1520.0}
    assert bp.parse_used_total("100\n250\n") == 350.0
    assert bp.parse_used_total("") is None
    assert bp.expected_concurrency(0.25, 16, 2) == 4
    assert bp.expected_concurrency(0.25, 4, 2) == 2  # CPUs limit it
    assert bp.expected_concurrency(1.0, 16, 2) == 1
    assert bp.expected_concurrency(1 / 3, 16, 2) == 3
