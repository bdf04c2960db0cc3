"""Bad input to sweeps/grid.py: each a clear error at start, before any trial is scheduled.

Every case runs the real command line and expects exit code 2, one ``grid.py: error: ...``
line on stderr naming the problem (no traceback), no "sweep:" line (printed just before the
trials are handed to Ray), no Ray results folder and no MLflow store written.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import tiny_store

REPO = Path(__file__).resolve().parents[1]
GRID = [sys.executable, str(REPO / "sweeps" / "grid.py")]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A valid 128 px store, a plain folder, a plain file and a Zarr group that is not ours."""
    import zarr

    root = tmp_path_factory.mktemp("stores")
    (root / "folder").mkdir()
    (root / "folder" / "notes.txt").write_text("not a patch store\n")
    (root / "file.zarr").write_text("not a directory\n")
    zarr.open_group(root / "foreign.zarr", mode="w", zarr_format=3).attrs["kind"] = "other"
    return {
        "ok": tiny_store(root / "discs128.zarr", size=128, n=(4, 2, 2)),
        "missing": root / "missing.zarr",
        "folder": root / "folder",
        "file": root / "file.zarr",
        "foreign": root / "foreign.zarr",
    }


def run_grid(tmp_path, *args, timeout=180):
    argv = [
        *GRID,
        *("--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}"),
        *("--storage-path", str(tmp_path / "ray"), "--report-dir", str(tmp_path / "report")),
        *map(str, args),
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=os.environ)


def assert_refused(out, tmp_path, *fragments):
    assert out.returncode == 2, out.stdout + out.stderr
    assert "grid.py: error: " in out.stderr, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    for fragment in fragments:
        assert str(fragment) in out.stderr, (fragment, out.stderr)
    assert "sweep:" not in out.stdout  # no trial was handed to Ray
    assert not (tmp_path / "ray").exists()
    assert not (tmp_path / "mlruns.db").exists()  # no experiment, no run
    assert not (tmp_path / "report").exists()


def test_unknown_profile(tmp_path):
    out = run_grid(tmp_path, "--profile", "nightly")
    assert_refused(out, tmp_path, "unknown profile 'nightly'", "valid profiles: demo, paper, smoke")


def test_empty_grid_after_rf_filtering(tmp_path, stores):
    # N = 2 with pools 8-8: RF 392 px, not below the 128 px patch
    out = run_grid(tmp_path, "--profile", "smoke", "--data", stores["ok"], "--pools", "8-8")
    assert_refused(
        out, tmp_path, "empty grid", "['8-8']", "RF below the 128 px patch", stores["ok"]
    )


def test_empty_grid_of_the_synthetic_series_generates_nothing(tmp_path):
    # the smoke profile's synthetic series has 128 px patches; refused before any is generated
    out = run_grid(tmp_path, "--profile", "smoke", "--pools", "8-8")
    assert_refused(out, tmp_path, "empty grid", "128 px", "the smoke profile's synthetic series")
    assert "datasets: synthetic" not in out.stdout


def test_pools_for_another_block_count(tmp_path, stores):
    args = ("--profile", "smoke", "--data", stores["ok"], "--blocks", "3", "--pools", "4-4")
    out = run_grid(tmp_path, *args)
    assert_refused(out, tmp_path, "no pool sequence in ['4-4'] fits blocks [3]")


def test_pool_sequence_that_does_not_divide_the_patch(tmp_path, stores):
    out = run_grid(tmp_path, "--profile", "smoke", "--data", stores["ok"], "--pools", "2-2", "3-3")
    assert_refused(out, tmp_path, "['3-3'] do not divide the 128 px patch", stores["ok"])


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("missing", "no such patch store"),
        ("folder", "not a temseg patch store"),
        ("file", "not a temseg patch store (a file, not a Zarr directory)"),
        ("foreign", "not a temseg patch store (no temseg_format attribute)"),
    ],
    ids=["missing", "plain-folder", "file", "foreign-zarr"],
)
def test_missing_or_non_temseg_store(tmp_path, stores, store, message):
    out = run_grid(tmp_path, "--profile", "smoke", "--data", stores["ok"], stores[store])
    assert_refused(out, tmp_path, f"{stores[store]}: {message}")


def test_gpus_per_trial_the_cluster_cannot_satisfy(tmp_path, stores):
    # a local runtime (1 CPU) is started to learn the cluster's resources, then refused
    args = ("--profile", "smoke", "--data", stores["ok"], "--num-cpus", 1)
    out = run_grid(tmp_path, *args, "--gpus-per-trial", 64)
    assert_refused(out, tmp_path, "--gpus-per-trial 64.0 but the Ray cluster has", "no trial")


@pytest.mark.parametrize(
    ("cpus", "gpus", "message"),
    [
        (1, 1.5, "--gpus-per-trial above 1 must be whole, got 1.5"),
        (1, -1, "--gpus-per-trial must be >= 0"),
        (0, 0, "--cpus-per-trial must be > 0"),
        (4, 0, "--cpus-per-trial 4 but the Ray cluster has 2 CPUs in all"),
        (1, 0.5, "--gpus-per-trial 0.5 but the Ray cluster has 0 GPUs"),
    ],
    ids=["fractional-gpus-above-1", "negative-gpus", "zero-cpus", "too-many-cpus", "no-gpus"],
)
def test_resource_requests_checked_against_the_cluster(cpus, gpus, message):
    # the same check as above without starting a runtime: check_resources on given resources
    from temseg.tune import ResourceError, check_resources

    with pytest.raises(ResourceError, match=re.escape(message)):
        check_resources(cpus, gpus, {"CPU": 2.0})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--data-seed", "-1"), "argument --data-seed: must be >= 0, got -1"),
        (("--data-seed", "x"), "argument --data-seed: expected an integer >= 0, got 'x'"),
        (("--data-seed", "3", "--data", "s.zarr"), "--data-seed sets the seed of the synthetic"),
    ],
    ids=["negative", "not-an-integer", "with-data"],
)
def test_bad_data_seed(tmp_path, args, message):
    out = run_grid(tmp_path, "--profile", "smoke", *args)
    assert_refused(out, tmp_path, message)
    assert "datasets: synthetic" not in out.stdout


def test_malformed_fault_injection_is_refused(tmp_path, stores):
    # the hidden, test-only --inject-fault flag validates its JSON like any other argument
    out = run_grid(
        tmp_path, "--profile", "smoke", "--data", stores["ok"], "--inject-fault", '{"epoch": 1}'
    )
    assert out.returncode == 2
    assert "--inject-fault: expected a JSON object with keys epoch, times, marker_dir" in out.stderr


def test_address_where_no_cluster_listens(tmp_path, stores):
    # refused at once (a TCP probe) instead of ray.init retrying for minutes
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, nothing listens there
    args = ("--profile", "smoke", "--data", stores["ok"], "--address", f"127.0.0.1:{port}")
    out = run_grid(tmp_path, *args, timeout=60)
    assert_refused(out, tmp_path, f"no Ray cluster answers at --address 127.0.0.1:{port}")
