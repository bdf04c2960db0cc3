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
import time
from pathlib import Path

import pytest

from tests.helpers import tiny_store

REPO = Path(__file__).resolve().parents[1]
GRID = [sys.executable, str(REPO / "sweeps" / "grid.py")]
SEARCH = [sys.executable, str(REPO / "sweeps" / "optuna_search.py")]
TEMSEG = [sys.executable, "-m", "temseg.cli"]
FACES = (GRID, SEARCH, [*TEMSEG, "grid"], [*TEMSEG, "search"])


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
    assert_refused(
        out,
        tmp_path,
        "unknown profile 'nightly'",
        "valid profiles: bench, demo, demo-v2, paper, smoke, validation, validation-v3",
    )


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
        (4, 0, "--cpus-per-trial 4 but the Ray cluster has 2 CPUs in all"),
        (1, 0.5, "--gpus-per-trial 0.5 but the Ray cluster has 0 GPUs"),
    ],
    ids=["too-many-cpus", "no-gpus"],  # the values themselves: BAD_VALUES (SweepConfig)
)
def test_resource_requests_checked_against_the_cluster(cpus, gpus, message):
    # the same check as above without starting a runtime: check_resources on given resources
    from temseg.sweep.runtime import ResourceError, check_resources

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


def test_no_test_only_flag_in_the_user_cli(tmp_path, stores):
    # fault injection lives in the tests (tests/fault_grid.py), not in the user's command line
    out = run_grid(
        tmp_path, "--profile", "smoke", "--data", stores["ok"], "--inject-fault", '{"epoch": 1}'
    )
    assert out.returncode == 2 and "unrecognized arguments: --inject-fault" in out.stderr
    helps = [subprocess.run([*cmd, "--help"], capture_output=True, text=True) for cmd in FACES]
    for h in helps:
        assert h.returncode == 0 and "inject" not in h.stdout.lower(), h.stdout


def test_address_where_no_cluster_listens(tmp_path, stores):
    # refused at once (a TCP probe) instead of ray.init retrying for minutes
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, nothing listens there
    args = ("--profile", "smoke", "--data", stores["ok"], "--address", f"127.0.0.1:{port}")
    out = run_grid(tmp_path, *args, timeout=60)
    assert_refused(out, tmp_path, f"no Ray cluster answers at --address 127.0.0.1:{port}")


# ------------------------------------------------- validation at load: no Ray, no MLflow, no data


def refused_at_load(cmd, tmp_path, *args, timeout=60):
    """Run a face with ``args``; it must exit 2 at once with one error line, touching nothing."""
    argv = [
        *cmd,
        *("--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}"),
        *("--storage-path", str(tmp_path / "ray"), "--report-dir", str(tmp_path / "report")),
        *map(str, args),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=os.environ)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0], out.stderr  # one line, no traceback
    assert "sweep:" not in out.stdout and "search " not in out.stdout
    assert not (tmp_path / "ray").exists() and not (tmp_path / "mlruns.db").exists()
    assert not (tmp_path / "report").exists()
    return lines[0]


BAD_VALUES = [
    (("--epochs", 0), "epochs must be >= 1, got 0"),
    (("--lr", -1), "lr must be > 0, got -1"),
    (("--lr", 0), "lr must be > 0, got 0"),
    (("--batch-size", 0), "batch_size must be >= 1, got 0"),
    (("--seeds", 5, 5), "seeds must be distinct values, got [5, 5] (5 repeated)"),
    (("--seeds", -3), "seeds must be >= 0, got [-3]"),
    (("--blocks", 0), "blocks must be >= 1"),
    (("--kernels", 1, 2), "kernels must be >= 2, got [1, 2]"),
    (("--pools", "2-2", "2-2"), "pools must be distinct values"),
    (("--pools", "x-y"), "pools: not a sequence of integers: 'x-y'"),
    (("--pools", "1-2"), "every max-pool kernel must be >= 2"),
    (("--dilations", "1-1"), "dilations '1-1' fits no N in blocks [2]"),
    (("--dilations", "1-0-1"), "dilations must be >= 1"),
    (("--cpus-per-trial", 0), "cpus_per_trial must be > 0, got 0"),
    (("--gpus-per-trial", -1), "gpus_per_trial must be >= 0, got -1"),
    (("--gpus-per-trial", 1.5), "gpus_per_trial must be <= 1 or whole, got 1.5"),
]


@pytest.mark.parametrize(("args", "message"), BAD_VALUES, ids=lambda v: " ".join(map(str, v)))
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_grid_refuses_bad_values_at_load(tmp_path, args, message, dry_run):
    extra = ("--dry-run",) if dry_run else ()
    line = refused_at_load(GRID, tmp_path, "--profile", "smoke", *args, *extra)
    assert line.startswith("grid.py: error: command line (profile smoke): SweepConfig: ")
    assert message in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--lr", -1), "SweepConfig: lr must be > 0, got -1"),
        (("--seed", 1, 1), "SearchConfig: seeds must be distinct values, got [1, 1]"),
        (("--max-epochs", 0), "SearchConfig: max_epochs must be >= 1, got 0"),
        (("--trials", 0), "SearchConfig: trials must be >= 1, got 0"),
        (("--dilation-choices", 0, 1), "dilation_choices must be >= 1, got [0, 1]"),
        (("--tolerance", 1), "SearchConfig: tolerance must lie in [0, 1), got 1.0"),
    ],
    ids=["lr", "sampler-seeds", "max-epochs", "trials", "dilation-choices", "tolerance"],
)
def test_search_refuses_bad_values_at_load(tmp_path, args, message):
    line = refused_at_load(SEARCH, tmp_path, "--profile", "smoke", *args)
    assert line.startswith("optuna_search.py: error: ") and message in line


def test_search_refuses_an_unreachable_address_at_once(tmp_path):
    # the same TCP probe as the grid's, before Ray starts: ray.init would retry for minutes
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, nothing listens there
    t0 = time.monotonic()
    args = ("--profile", "smoke", "--address", f"127.0.0.1:{port}")
    line = refused_at_load(SEARCH, tmp_path, *args, timeout=30)
    assert time.monotonic() - t0 < 30
    assert f"no Ray cluster answers at --address 127.0.0.1:{port}" in line
    # the search checks its space on the profile's synthetic series before anything starts
    line = refused_at_load(SEARCH, tmp_path, "--profile", "smoke", "--pools", "8-8")
    assert "empty search space" in line and "the smoke profile's synthetic series" in line


def test_profile_errors_name_the_profile_file(tmp_path, monkeypatch):
    from temseg.config import ConfigError
    from temseg.sweep import profile as sweep

    (tmp_path / "bad.yaml").write_text("epochs: 0\n")
    (tmp_path / "nested.yaml").write_text("synthetic: {images: 4, imgaes: 5}\n")
    monkeypatch.setattr(sweep, "PROFILES_DIR", tmp_path)
    with pytest.raises(ConfigError, match=r"bad\.yaml: SweepConfig: epochs must be >= 1, got 0"):
        sweep.load_profile("bad")
    # nested dataclasses go through from_dict as well: unknown keys refused with their path
    with pytest.raises(ConfigError, match=r"SweepConfig\.synthetic: SyntheticData: unknown key"):
        sweep.load_profile("nested")


def test_from_dict_checks_nested_dataclasses():
    from temseg.config import ConfigError, from_dict, to_dict
    from temseg.sweep.profile import SweepConfig, SyntheticData

    cfg = from_dict(SweepConfig, {"synthetic": {"seed": 3, "contrasts": [0.1]}})
    assert cfg.synthetic == SyntheticData(seed=3, contrasts=(0.1,))
    assert from_dict(SweepConfig, to_dict(cfg)) == cfg  # round trip through plain dicts
    with pytest.raises(ConfigError, match=r"SweepConfig\.synthetic: SyntheticData: seed must be"):
        from_dict(SweepConfig, {"synthetic": {"seed": -1}})
    with pytest.raises(ConfigError, match=r"SyntheticData\.images: expected an integer"):
        from_dict(SweepConfig, {"synthetic": {"images": "many"}})
    with pytest.raises(ConfigError, match=r"SweepConfig\.synthetic: expected a mapping"):
        from_dict(SweepConfig, {"synthetic": 3})


@pytest.mark.parametrize("profile", ["smoke", "demo", "paper"])
def test_temseg_grid_and_sweeps_grid_print_the_same_table(profile):
    def dry(cmd):
        out = subprocess.run(
            [*cmd, "--profile", profile, "--dry-run", "--precision", "fp32"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    table = dry(GRID)
    assert "trials (" in table and table == dry([*TEMSEG, "grid"])
    assert dry(SEARCH) == dry([*TEMSEG, "search"])


def test_search_space_is_the_profiles_grid():
    # --compare-grid compares like with like: the search explores the grid's architectures
    from temseg.sweep.search import SearchConfig, space_for
    from temseg.sweep.profile import load_profile
    from temseg.sweep.space import architectures

    for name, patch in (("smoke", 128), ("demo", 192), ("paper", 512)):
        cfg = load_profile(name)
        space = space_for(cfg, SearchConfig(), patch)
        assert sorted(space.architectures(), key=repr) == sorted(
            architectures(cfg, patch), key=repr
        ), name
    demo = space_for(load_profile("demo"), SearchConfig(), 192)
    assert {a.pools for a in demo.architectures()} == {(2, 2), (4, 2), (2, 8), (4, 4)}
    # per-level dilation choices: the structured space over the profile's pool sequences
    dilated = space_for(load_profile("smoke"), SearchConfig(dilation_choices=(1, 2)), 128)
    assert {a.pools for a in dilated.architectures()} == {(2, 2), (4, 4)}
    assert {d for a in dilated.architectures() for d in a.dilations} == {1, 2}
