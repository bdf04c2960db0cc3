"""temseg segment: seamless tiles, particle tables, synthetic micrographs, the authors' network,
pixel-size refusal, and a registered model through a real MLflow SQLite store."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from temseg.cli import main
from temseg.data.preprocess import preprocess
from temseg.data.readers import read_mask, read_raw, write_calibrated_tiff
from temseg.model import ResidualUNet, save_checkpoint
from temseg.particles import particle_table, remove_specks, summarize
from temseg.segment import predict_tiled, predict_whole, tile_margins, tile_spans

torch.set_num_threads(2)


def random_net(pools, seed=0) -> ResidualUNet:
    torch.manual_seed(seed)
    return ResidualUNet(len(pools), pools).eval().to(memory_format=torch.channels_last)


# ---------------------------------------------------------------------------- tiles


@pytest.mark.parametrize(
    "pools, tile", [((2, 2), 256), ((4, 4), 384)]
)  # several interior tiles per axis
def test_tiled_equals_whole_image_on_1024(pools, tile):
    image = np.random.default_rng(1).standard_normal((1024, 1024)).astype(np.float32)
    net = random_net(pools)
    whole = predict_whole(net, image, logits=True)
    tiled = predict_tiled(net, image, tile=tile, batch_size=3, logits=True)
    assert 0.01 < (whole > 0).mean() < 0.99  # both classes present: the comparison means something
    assert np.array_equal(predict_tiled(net, image, tile=tile, batch_size=3), whole > 0)
    assert np.abs(tiled - whole).max() <= 1e-4  # float rounding of batched kernels at most
    # the margin is needed: with half of it, interior tile edges show in the mask
    p = math.prod(pools)
    half = tuple(m // 2 // p * p for m in tile_margins(pools))
    short = predict_tiled(net, image, tile=tile, batch_size=3, margins=half)
    assert (short != (whole > 0)).sum() > 0


def test_tile_spans_cover_the_axis_with_enough_context():
    before, after = 80, 80
    spans = tile_spans(2048, tile=512, margins=(before, after), multiple=16)
    kept = [k for _, _, k0, k1 in spans for k in range(k0, k1)]
    assert kept == list(range(2048))
    for start, stop, k0, k1 in spans:
        assert stop - start == 512 and start % 16 == 0
        assert start == 0 or k0 - start >= before
        assert stop == 2048 or stop - k1 >= after
    with pytest.raises(ValueError, match="--tile >= 176"):
        tile_spans(2048, tile=160, margins=(before, after), multiple=16)


def test_margins_are_the_exact_reach_rounded_to_the_pools():
    # pools 2-2: reach 44 px everywhere, 21-22 px each side -> 24 (multiple of 4);
    # 4-4: 116-132 px, up to 73 px after a pixel -> 80; 8-8: up to ~210 -> 256
    assert tile_margins((2, 2)) == (24, 24)
    assert tile_margins((4, 4)) == (80, 80)
    assert tile_margins((8, 8)) == (256, 256)


# ---------------------------------------------------------------------------- particles


def test_particle_table_one_row_per_8_connected_component():
    m = np.zeros((20, 30), np.uint8)
    m[2:5, 2:6] = 1  # 12 px
    m[5, 6] = 1  # touches the block diagonally only: same 8-connected particle (13 px)
    m[10:15, 10:15] = 1  # 25 px
    m[0:2, 25:28] = 1  # 6 px on the top edge
    m[19, 0] = 1  # 1 px in a corner
    px = 0.0213
    t = particle_table(m, px, image="a", frame=3)
    assert len(t) == 4  # 4-connectivity would give 5
    assert t["area_px"].tolist() == [6, 13, 25, 1]  # labels in raster order
    assert t["touches_border"].tolist() == [True, False, False, True]
    assert (t["image"] == "a").all() and (t["frame"] == 3).all()
    for r in t.itertuples():
        assert r.area_nm2 == r.area_px * px**2
        assert r.diameter_nm == 2 * math.sqrt(r.area_nm2 / math.pi)
    square = t.iloc[2]
    assert square["centroid_x_nm"] == pytest.approx(12 * px)
    assert square["centroid_y_nm"] == pytest.approx(12 * px)
    # scikit-image (0.26) takes the Feret diameter over its marching-squares outline of the
    # pixels: sqrt(5**2 + 4**2) px for a 5 x 5 square
    assert square["feret_max_nm"] == pytest.approx(math.sqrt(41) * px, rel=1e-9)
    s = summarize(t)
    assert (s["count"], s["count_interior"]) == (4, 2)
    d = sorted(2 * math.sqrt(a * px**2 / math.pi) for a in (13, 25))
    assert s["diameter_median_nm"] == pytest.approx(sum(d) / 2)


def test_synthetic_true_mask_matches_the_generators_particles(tmp_path):
    out = tmp_path / "m.tif"
    assert (
        main(["synth-image", str(out), "--preset", "hr-2.2nm", "--size", "1024", "--seed", "5"])
        == 0
    )
    raw = read_raw(out)
    assert raw.pixel_size_yx_nm == (0.02, 0.02)  # the calibration segment reads
    mask = read_mask(tmp_path / "m_mask.tif")[0]
    table = particle_table(mask, 0.02)
    gen = pd.read_csv(tmp_path / "m_particles.csv")
    inner, gen_inner = table[~table["touches_border"]], gen[~gen["touches_border"]]
    assert len(inner) == len(gen_inner) == 17
    assert sorted(inner["area_px"]) == sorted(gen_inner["area_px"])
    # the generator's drawn diameters vs the labels' equivalent circles (faceted outline)
    assert inner["diameter_nm"].median() == pytest.approx(
        gen_inner["diameter_nm"].median(), rel=0.05
    )


# ---------------------------------------------------------------------------- the command


def write_image(path: Path, pixel_size_nm: float, size: int = 256, seed: int = 0) -> Path:
    """Raw counts with a few dark discs, calibrated TIFF."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = rng.poisson(400, (size, size)).astype(np.float32)
    for cy, cx in rng.integers(20, size - 20, (4, 2)):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 100] *= 0.7
    return write_calibrated_tiff(path, img, pixel_size_nm)


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return save_checkpoint(tmp_path / "net.pt", random_net((2, 2)), {"pixel_size_nm": 0.02})


def test_pixel_size_mismatch_is_refused_and_nothing_written(tmp_path, checkpoint, capsys):
    image = write_image(tmp_path / "img.tif", 0.03)
    out = tmp_path / "results" / "seg"
    rc = main(["segment", str(image), "--model", str(checkpoint), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "img.tif: pixel size 0.03 nm differs from the model's 0.02 nm by 50%" in err
    assert "--resample" in err
    assert not (tmp_path / "results").exists()  # not even the parent folder
    # with --resample it runs, says so, and the mask keeps the image's shape
    rc = main(["segment", str(image), "--model", str(checkpoint), "--out", str(out), "--quiet",
               "--resample"])  # fmt: skip
    assert rc == 0
    assert "resampled from 0.03 to 0.02 nm/px" in capsys.readouterr().err
    assert read_mask(out / "img_mask.tif").shape == (1, 256, 256)
    assert pd.read_csv(out / "summary.csv")["resampled"].tolist() == [True]
    assert sorted(p.name for p in out.parent.iterdir()) == ["seg"]  # no temporary left


def test_segment_writes_masks_tables_and_report(tmp_path, checkpoint):
    image = write_image(tmp_path / "img.tif", 0.02)
    truth = write_calibrated_tiff(tmp_path / "t.tif", np.zeros((256, 256), np.uint8), 0.02)
    out = tmp_path / "seg"
    args = ["segment", str(image), "--model", str(checkpoint), "--out", str(out), "--quiet"]
    assert main(args + ["--truth", str(truth)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "img_mask.tif", "img_overlay.png", "img_overlay_full.png", "index.html",
        "particles.csv", "sizes.csv", "sizes.png", "summary.csv",
    ]  # fmt: skip
    mask = read_mask(out / "img_mask.tif")[0]
    std, _ = preprocess(read_raw(image).data[0], pixel_size_nm=0.02)
    net = random_net((2, 2))
    raw_mask = predict_whole(net, std)
    expected, removed = remove_specks(raw_mask, 0.02, 1.0)  # the default --min-diameter-nm
    assert np.array_equal(mask, expected)  # the training preprocessing, no seams
    assert pd.read_csv(out / "summary.csv")["removed_specks"].tolist() == [removed]
    # --min-diameter-nm 0 writes the network's own mask
    out0 = tmp_path / "seg0"
    args0 = ["segment", str(image), "--model", str(checkpoint), "--out", str(out0), "--quiet"]
    assert main(args0 + ["--min-diameter-nm", "0"]) == 0
    assert np.array_equal(read_mask(out0 / "img_mask.tif")[0], raw_mask)
    parts = pd.read_csv(out / "particles.csv")
    assert len(parts) == len(particle_table(mask, 0.02))
    s = pd.read_csv(out / "summary.csv").iloc[0]
    assert s["count"] == len(parts) and s["true_count_interior"] == 0
    assert s["dice"] == (0.0 if mask.any() else 1.0)
    assert main(args) == 2  # the folder exists: refused without --overwrite


def test_authors_legacy_checkpoint_segments(reference_models, tmp_path, capsys):
    model = reference_models / "20210922_UNet_b2_m22_run5_model.h5"
    image = write_image(tmp_path / "img.tif", 0.0215)
    out = tmp_path / "seg"
    args = ["segment", str(image), "--model", str(model), "--out", str(out), "--quiet"]
    assert main(args) == 2
    assert "--model-pixel-size-nm" in capsys.readouterr().err and not out.exists()
    assert main(args + ["--model-pixel-size-nm", "0.02152"]) == 0
    from temseg.legacy import load_legacy_checkpoint

    std, _ = preprocess(read_raw(image).data[0], pixel_size_nm=0.0215)
    expected, _ = remove_specks(predict_whole(load_legacy_checkpoint(model), std), 0.0215, 1.0)
    assert np.array_equal(read_mask(out / "img_mask.tif")[0], expected)


# ---------------------------------------------------------------------------- registry


def test_recommended_trial_choice():
    from temseg.analysis.recommend import recommended_trials

    def trial(ds, rf, pools, seed, val, n=2, run=None):
        return {
            "dataset": ds, "num_blocks": n, "pools": pools, "dilations": "1-1-1", "rf_px": rf,
            "n_params": 8074, "seed": seed, "status": "FINISHED", "pixel_size_nm": 0.02,
            "run_id": run or f"{ds}-{rf}-{seed}", "test_hard_dice": 0.5,
            "best_val_hard_dice": val,
        }  # fmt: skip

    trials = pd.DataFrame(
        [
            trial("a", 44, "2-2", 1, 0.70),
            trial("a", 120, "4-4", 1, 0.80),
            trial("a", 120, "4-4", 2, 0.85),
            trial("a", 232, "8-4", 1, 0.90),  # better, but more RF than is enough
            trial("b", 44, "2-2", 1, 0.60),
            trial("b", 120, "4-4", 1, 0.75),
            trial("b", 120, "4-4", 2, 0.65),
            trial("b", 232, "8-4", 1, 0.69),
        ]
    )
    recommendation = pd.DataFrame(
        [
            {"dataset": "a", "status": "plateau", "cheapest_network": "N2-p4.4-d1.1.1"},
            {"dataset": "b", "status": "undetermined", "cheapest_network": math.nan},
        ]
    )
    rec = recommended_trials(trials, recommendation)
    # a: the report's network, its best-validating seed (not the better-validating 232 px);
    # b: no network named, so the best seed-mean validation dice (120 px: 0.70 > 0.69 > 0.60)
    assert rec["run_id"].tolist() == ["a-120-2", "b-120-1"]
    assert rec["reason"].tolist() == [
        "the report's recommendation (plateau): cheapest network N=2 pools 4-4 dilations 1-1-1",
        "no recommended network (undetermined): best seed-mean validation dice",
    ]


def test_registered_model_round_trip(tmp_path, capsys):
    """Sweep-like runs in a real SQLite store -> register_recommended -> segment models:/."""
    from mlflow import MlflowClient

    from temseg import tracking
    from temseg.sweep import grid_report

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    exp = tracking.ensure_experiment(uri, "study")
    client = MlflowClient(uri)
    runs = {}
    for pools, val, seed in (((2, 2), 0.9, 1), ((4, 4), 0.8, 1), ((4, 4), 0.7, 2)):
        net = random_net(pools, seed=3 if seed == 1 else 4)
        # no pixel size in this checkpoint: the registered card must carry it
        ckpt = save_checkpoint(tmp_path / f"{pools[0]}-{seed}" / "best.pt", net, {"seed": seed})
        run = client.create_run(exp, run_name=f"ds/{pools}/{seed}")
        rid = run.info.run_id
        params = {"dataset": "ds", "pixel_size_nm": 0.02, "num_blocks": 2, "seed": seed,
                  "pools": "-".join(map(str, pools)), "dilations": "1-1-1",
                  "rf_px": net.config.rf_px, "n_params": 8074, "contrast": 0.1}  # fmt: skip
        for k, v in params.items():
            client.log_param(rid, k, v)
        client.log_metric(rid, "test_hard_dice", 0.5)
        client.log_metric(rid, "best_val_hard_dice", val)
        client.log_artifact(rid, str(ckpt), "checkpoint")
        client.set_terminated(rid, "FINISHED")
        runs.setdefault(pools, rid)
    report = tmp_path / "report"
    report.mkdir()
    pd.DataFrame(
        [{"dataset": "ds", "status": "plateau", "cheapest_network": "N2-p4.4-d1.1.1"}]
    ).to_csv(report / "recommendation.csv", index=False)
    grid_report.register_after_sweep(uri, "study", report)
    assert "registry: temseg-ds@recommended = version 1" in capsys.readouterr().out
    mv = MlflowClient(uri, registry_uri=uri).get_model_version_by_alias("temseg-ds", "recommended")
    assert (
        mv.run_id == runs[(4, 4)]
    )  # the report's network (120 px), not the better-validating 44 px

    image = write_image(tmp_path / "img.tif", 0.02)
    out = tmp_path / "seg"
    rc = main(["segment", str(image), "--model", "models:/temseg-ds@recommended",
               "--tracking-uri", uri, "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0
    std, _ = preprocess(read_raw(image).data[0], pixel_size_nm=0.02)
    expected, _ = remove_specks(predict_whole(random_net((4, 4), seed=3), std), 0.02, 1.0)
    assert np.array_equal(read_mask(out / "img_mask.tif")[0], expected)
    # every seed of the recommended network is a version (alias seed-<n>), with the
    # store's contrast; @seeds segments with their ensemble
    from temseg.segment.registry import expand_spec, load_models

    specs = expand_spec("models:/temseg-ds@seeds", uri)
    assert specs == ["models:/temseg-ds/1", "models:/temseg-ds/2"]
    seeds = load_models(specs, tracking_uri=uri)
    assert [m.contrast for m in seeds] == [0.1, 0.1]
    assert [m.card["seed"] for m in seeds] == [1, 2]
    rc = main(["segment", str(image), "--model", "models:/temseg-ds@seeds", "--tracking-uri",
               uri, "--out", str(tmp_path / "ens"), "--quiet", "--bootstrap", "100"])  # fmt: skip
    assert rc == 0 and pd.read_csv(tmp_path / "ens" / "summary.csv")["networks"].tolist() == [2]
    rc = main(["segment", str(image), "--model", "models:/temseg-nope@recommended",
               "--tracking-uri", uri, "--out", str(tmp_path / "x"), "--quiet"])  # fmt: skip
    assert rc == 2 and "registered models there: ['temseg-ds']" in capsys.readouterr().err
