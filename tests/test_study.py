"""``temseg study``: a folder of micrographs to a registered network, masks and sizes; bad
folders refused before anything is written; the plan and its estimate."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from temseg.cli import main
from temseg.data.readers import read_raw, write_calibrated_tiff
from temseg.data.synth import write_micrograph
from temseg.study.inputs import find_inputs, resample_onto
from temseg.study.page import dice_interval
from temseg.study.plan import (
    CPU_GFLOPS_PER_TRIAL,
    STARTUP_S,
    TRIAL_S,
    choose_profile,
    estimate_seconds,
    format_duration,
    planned_patches,
    trial_gflop,
)

SIZE = 256  # tiny micrographs: 4 patches of 128 px (the smoke profile's patch)


def micrographs(folder, n=6, *, seed=0, **knobs):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_micrograph(
            folder / f"m{i}.tif", preset="hr-2.2nm", contrast=0.1, seed=seed, index=i,
            image_size=SIZE, **knobs,
        )
    return folder


def run(args, capsys):
    rc = main(args)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def study(*args, timeout=600):
    """The command as a user runs it, in its own process (Ray pickles the driver's state)."""
    return subprocess.run(
        [sys.executable, "-m", "temseg.cli", "study", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
    )


def _runs(uri):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("temseg-study-imgs")
    return client.search_runs([exp.experiment_id]), client


@pytest.mark.slow
def test_study_end_to_end_then_again_trains_nothing(tmp_path):
    imgs = micrographs(tmp_path / "imgs")
    more = tmp_path / "more"
    more.mkdir()
    write_micrograph(more / "new.tif", preset="hr-2.2nm", contrast=0.1, seed=5, image_size=SIZE)
    (more / "new_mask.tif").unlink()  # an image to segment only
    out = tmp_path / "study"
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    args = [imgs, "--out", out, "--profile", "smoke", "--flat-field", "--tracking-uri", uri,
            "--segment-folder", more]
    proc = study(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "estimated time:" in proc.stdout
    from temseg.data.store import read_attrs

    attrs = read_attrs(out / "imgs.zarr")
    assert attrs["preprocessing"]["flat_field"] is True
    assert sorted(attrs["sources"]) == [f"m{i}.tif" for i in range(6)]
    runs, client = _runs(uri)
    parents = [r for r in runs if r.data.tags.get("temseg.kind") == "grid"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(trials) == 2
    mv = client.get_model_version_by_alias("temseg-imgs", "recommended")
    assert mv.tags["temseg.flat_field"] == "True"  # segment applies what the model trained with
    assert (out / "report" / "report.html").is_file()
    for i in range(6):
        mask = read_raw(out / "segmented" / f"m{i}_mask.tif")
        assert mask.data.shape == (1, SIZE, SIZE) and mask.pixel_size_yx_nm == (0.02, 0.02)
    assert (out / "segmented-more" / "new_mask.tif").is_file()
    sizes = pd.read_csv(out / "sizes.csv")
    # per image, the six pooled ("all"), then the image segmented only
    assert sizes["image"].tolist() == [f"m{i}" for i in range(6)] + ["all", "new"]
    assert sizes["trained_on"].tolist() == ["yes (with its mask)"] * 7 + ["no"]
    page = (out / "index.html").read_text()
    assert page.index("Recommended network: N=2 pools ") < page.index("Particle sizes")
    assert "flat field: on (--flat-field)" in (out / "study.md").read_text()
    assert "flat field on (as the network was trained)" in (
        out / "segmented" / "index.html"
    ).read_text()

    # the same command again: the store is reused, every trial is found, nothing trained
    before = {r.info.run_id: r.info.end_time for r in trials}
    proc = study(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, _ = _runs(uri)
    assert len(runs) == 3
    assert {r.info.run_id: r.info.end_time for r in runs if r.info.run_id in before} == before


def test_bad_folders_exit_2_naming_the_file(tmp_path, capsys):
    out = tmp_path / "out"

    def refused(folder, *extra):
        rc, _, err = run(["study", str(folder), "--out", str(out), "--profile", "smoke",
                          *extra], capsys)
        assert rc == 2 and not out.exists()
        assert len(err.strip().splitlines()) == 1
        return err

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no image files" in refused(empty)
    lonely = micrographs(tmp_path / "lonely", n=1)
    (lonely / "m0_mask.tif").unlink()
    assert f"{lonely / 'm0.tif'}: no mask found" in refused(lonely)
    orphan = micrographs(tmp_path / "orphan", n=2)
    (orphan / "m1.tif").unlink()
    assert f"{orphan / 'm1_mask.tif'}: mask without an image" in refused(orphan)
    mixed = micrographs(tmp_path / "mixed", n=2)
    write_micrograph(mixed / "m2.tif", preset="hr-2.2nm", contrast=0.1, seed=0, index=2,
                     image_size=SIZE, pixel_size_nm=0.04)
    err = refused(mixed)
    assert f"{mixed / 'm2.tif'}: pixel size 0.04 x 0.04 nm differs" in err
    assert "--resample" in err
    broken = micrographs(tmp_path / "broken", n=2)
    (broken / "m1.tif").write_bytes(b"not a tiff")
    assert f"{broken / 'm1.tif'}: unreadable" in refused(broken)
    assert "--data: a study makes its own store" in refused(micrographs(tmp_path / "ok", n=1),
                                                           "--data", "x.zarr")


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    imgs = micrographs(tmp_path / "imgs", n=3)
    out = tmp_path / "out"
    rc, stdout, err = run(["study", str(imgs), "--out", str(out), "--profile", "smoke",
                           "--dry-run"], capsys)
    assert rc == 0, err
    assert "3 image/mask pairs" in stdout and "0.02 nm/px; flat field off" in stdout
    assert "profile: smoke (given by --profile); 2 trials of 2 epochs on 128 px patches " \
        "(train/val/test 8/1/3)" in stdout
    assert "estimated time:" in stdout and "2 trials" in stdout
    assert not out.exists()


def test_mixed_pixel_sizes_resampled_onto_the_finest(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, px, side in (("a", 0.02, 64), ("b", 0.04, 32)):
        image = rng.poisson(100, (side, side)).astype(np.float32)
        write_calibrated_tiff(folder / f"{name}.tif", image, px)
        mask = np.zeros((side, side), np.uint8)
        mask[: side // 2] = 1
        write_calibrated_tiff(folder / f"{name}_mask.tif", mask, px)
    inputs = find_inputs(folder, resample=True)
    assert inputs.odd_one().name == "b" and inputs.pixel_size_nm == 0.02
    done = resample_onto(inputs, tmp_path / "resampled")
    assert [(m.name, m.shape, m.pixel_size_nm) for m in done.pairs] == [
        ("a", (64, 64), 0.02),
        ("b", (64, 64), 0.02),
    ]
    assert done.odd_one() is None
    mask_b = read_raw(tmp_path / "resampled" / "b_mask.tif").data[0]
    assert set(np.unique(mask_b)) == {0, 1} and mask_b[:32].all() and not mask_b[32:].any()


def test_profile_for_the_machine():
    assert choose_profile("bench", address="h:6379", gpus_per_trial=1)[0] == "bench"
    assert choose_profile(None, address="h:6379", gpus_per_trial=None)[0] == "paper"
    assert choose_profile(None, address=None, gpus_per_trial=0.25)[0] == "paper"
    import torch

    expected = "paper" if torch.cuda.is_available() else "demo"
    assert choose_profile(None, address=None, gpus_per_trial=None)[0] == expected


def test_estimate_reproduces_its_calibration():
    """The demo profile's 24 trials on its stores (24 / 16 / 32 patches of 192 px per level),
    2 at a time: the 11 min 59 s the constants were calibrated on."""
    from temseg.sweep.profile import load_profile
    from temseg.sweep.space import plan_trials
    from temseg.trial import Dataset

    cfg = load_profile("demo")
    datasets = [Dataset(f"/d{c}", f"d{c}", 0.04, 192, c) for c in (0.09, 0.2)]
    trials = plan_trials(cfg, datasets)
    patches = {"train": 24, "val": 16, "test": 32}
    seconds = estimate_seconds(trials, patches, 192, concurrent=2)
    assert len(trials) == 24 and abs(seconds - 719) < 5
    from temseg.receptive_field import Architecture, forward_flops

    # N=2 pools 2-2: 6 epochs x (3 x 8 x 24 train + 16 val) + 8 x 32 test patch passes
    one = trial_gflop(trials[0].train, patches, 192)
    assert one == pytest.approx(3808 * forward_flops(Architecture(2, (2, 2)), 192) / 1e9)
    assert estimate_seconds(trials[:1], patches, 192, concurrent=8) == pytest.approx(
        STARTUP_S + TRIAL_S + one / CPU_GFLOPS_PER_TRIAL, rel=1e-12
    )
    assert [format_duration(s) for s in (45, 719, 12000, 400000)] == [
        "45 s", "12 min", "3.3 h", "4.6 days"
    ]


def test_planned_patches_and_dice_interval():
    assert planned_patches([(1, 256, 256), (2, 300, 520)], 128, (0.7, 0.1, 0.2)) == {
        "train": 14, "val": 2, "test": 4
    }
    mean, lo, hi = dice_interval([0.8])
    assert mean == 0.8 and math.isnan(lo) and math.isnan(hi)
