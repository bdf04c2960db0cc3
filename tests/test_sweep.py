"""sweeps/grid.py end to end: real local Ray runtime, real MLflow stores (SQLite and server)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import experiment_runs, tiny_store

REPO = Path(__file__).resolve().parents[1]
GRID = [sys.executable, str(REPO / "sweeps" / "grid.py")]
EPOCH_METRICS = ("train_loss", "val_loss", "train_hard_dice", "val_hard_dice", "val_soft_dice")
PARAMS = (
    "dataset",
    "contrast",
    "pixel_size_nm",
    "num_blocks",
    "pools",
    "dilations",
    "seed",
    "epochs",
    "lr",
    "batch_size",
    "rf_px",
    "rf_nm",
    "n_params",
)


@pytest.fixture(scope="module")
def store128(tmp_path_factory):
    return tiny_store(tmp_path_factory.mktemp("data") / "discs128.zarr", size=128, n=(4, 2, 2))


def grid(*args, env=None, timeout=300):
    return subprocess.run(
        [*GRID, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def sweep_args(tmp_path, store, uri, *extra):
    return (
        "--profile",
        "smoke",
        "--data",
        store,
        "--tracking-uri",
        uri,
        "--experiment",
        "t",
        "--storage-path",
        tmp_path / "ray",
        "--report-dir",
        tmp_path / "report",
        "--num-cpus",
        2,
        *extra,
    )


def runs_of(uri, experiment="t"):
    return experiment_runs(uri, experiment)


def assert_complete(uri, n_runs, epochs):
    client, runs = runs_of(uri)
    assert len(runs) == n_runs
    keys = [r.data.tags["temseg.trial_key"] for r in runs]
    assert len(set(keys)) == n_runs  # exactly one run per trial
    for r in runs:
        assert r.info.status == "FINISHED"
        assert set(PARAMS) <= set(r.data.params)
        for m in EPOCH_METRICS:
            hist = client.get_metric_history(r.info.run_id, m)
            assert sorted(h.step for h in hist) == list(range(1, epochs + 1)), (r.info.run_name, m)
        for m in ("test_hard_dice", "test_soft_dice", "best_epoch"):
            assert m in r.data.metrics
        arts = {a.path for a in client.list_artifacts(r.info.run_id, "checkpoint")}
        assert arts == {"checkpoint/best.pt", "checkpoint/config.json"}
    return runs


def test_dry_run_prints_the_table_and_runs_nothing(tmp_path):
    out = grid("--profile", "paper", "--dry-run", "--storage-path", tmp_path / "ray")
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("hr-5nm")]
    # per dataset: the 30 pooling architectures + dilation variants d = 2, 4, 8 (N=2) and
    # d = 2, 4 (N=3); d = 1 is the pool-2 network already in the grid
    assert len(rows) == 4 * 35
    assert "700 trials" in out.stdout  # x 5 seeds
    assert not (tmp_path / "ray").exists()


def test_smoke_sweep_into_sqlite(tmp_path, store128):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    out = grid(*sweep_args(tmp_path, store128, uri))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[2/2] done" in out.stdout and "mlflow ui --backend-store-uri" in out.stdout
    runs = assert_complete(uri, n_runs=2, epochs=2)
    names = sorted(r.info.run_name for r in runs)
    assert names == ["discs128/N2-p2.2-d1.1.1-s752", "discs128/N2-p4.4-d1.1.1-s752"]
    p = next(r for r in runs if r.data.params["pools"] == "4-4").data.params
    assert (p["rf_px"], p["rf_nm"], p["n_params"], p["dilations"]) == (
        "120",
        "2.4",
        "8074",
        "1-1-1",
    )
    # running the same sweep again trains nothing and duplicates nothing
    again = grid(*sweep_args(tmp_path, store128, uri))
    assert again.returncode == 0, again.stderr
    assert_complete(uri, n_runs=2, epochs=2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        # no job-runner processes (they leave a store in /dev/shm behind)
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start")
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_smoke_sweep_against_an_mlflow_server(tmp_path, store128, mlflow_server):
    out = grid(*sweep_args(tmp_path, store128, mlflow_server))
    assert out.returncode == 0, out.stdout + out.stderr
    assert_complete(mlflow_server, n_runs=2, epochs=2)


def test_unreachable_mlflow_server_fails_before_any_trial(tmp_path, store128):
    out = grid(*sweep_args(tmp_path, store128, f"http://127.0.0.1:{free_port()}"))
    assert out.returncode == 2
    assert "unreachable" in out.stderr
    assert not (tmp_path / "ray").exists()


def test_gpus_per_trial_without_gpus_is_a_clear_error(tmp_path, store128):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    out = grid(*sweep_args(tmp_path, store128, uri, "--gpus-per-trial", 0.25))
    assert out.returncode == 2
    assert "--gpus-per-trial 0.25 but the Ray cluster has 0 GPUs" in out.stderr


def test_killed_driver_resumes_with_exactly_one_run_per_trial(tmp_path, store128):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    args = sweep_args(
        tmp_path, store128, uri, "--seeds", 752, 2245, 140, "--epochs", 3, "--num-cpus", 1
    )
    proc = subprocess.Popen(
        [*GRID, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("[2/6] done"):
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the runtime it started
        proc.wait(timeout=30)
    assert any(line.startswith("[2/6] done") for line in seen), "".join(seen)
    out = grid(*args, "--resume")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming sweep" in out.stdout
    assert_complete(uri, n_runs=6, epochs=3)
