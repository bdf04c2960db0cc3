"""`temseg realism`: the authors' networks as a probe of a store's realism."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from temseg import realism
from temseg.cli import main
from temseg.data.store import write_store


def _square_pair() -> tuple[np.ndarray, np.ndarray]:
    """A 10 x 10 true particle in a 20 x 20 patch (rows/cols 5-14); the prediction is it
    shifted right by 1 px plus a 2 x 10 false blob (rows 18-19, cols 0-9) far from it."""
    truth = np.zeros((1, 20, 20), np.uint8)
    truth[0, 5:15, 5:15] = 1
    pred = np.zeros_like(truth)
    pred[0, 5:15, 6:16] = 1
    pred[0, 18:20, 0:10] = 1
    return pred, truth


def test_boundary_band_is_two_px_either_side_of_the_outline():
    _, truth = _square_pair()
    band = realism.boundary_band(truth)
    # within 2 px of the other class: the 14 x 14 square (rows/cols 3-16) less the 6 x 6
    # interior (rows/cols 7-12) that is 3+ px inside
    assert int(band.sum()) == 14 * 14 - 6 * 6
    assert band[0, 3:17, 3:17].sum() == 160 and not band[0, 7:13, 7:13].any()


def test_boundary_band_ignores_patch_edges_and_the_next_patch():
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[0] = 1  # all particle: no boundary inside this patch
    masks[1, :, 4:] = 1
    band = realism.boundary_band(masks, 1)
    assert not band[0].any()
    assert band[1].sum() == 8 * 2  # columns 3 and 4


def test_mask_scores_exact_values_on_a_hand_made_pair():
    pred, truth = _square_pair()
    s = realism.mask_scores(pred, truth, realism.boundary_band(truth))
    # |pred| = 100 + 20, |truth| = 100, overlap 90
    assert s["dice"] == pytest.approx(180 / 220)
    assert s["precision"] == pytest.approx(90 / 120)
    assert s["recall"] == pytest.approx(0.9)
    assert (s["pred_fraction"], s["true_fraction"]) == (120 / 400, 100 / 400)
    # outside the band: truth's 36 interior px, all predicted; the blob's 20 px are false
    assert s["band_dice"] == pytest.approx(72 / (36 + 36 + 20))


def test_mask_scores_without_prediction():
    truth = np.ones((2, 2), np.uint8)
    s = realism.mask_scores(np.zeros_like(truth), truth, np.zeros((2, 2), bool))
    assert s["dice"] == 0.0 and s["recall"] == 0.0 and np.isnan(s["precision"])


def _tiny_store(path, *, pixel_size_nm=0.02152, size=16, n=2):
    images = np.random.default_rng(0).standard_normal((n, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), np.uint8)
    masks[:, :, size // 2 :] = 1
    empty = (np.zeros((0, size, size), np.float32), np.zeros((0, size, size), np.uint8),
             np.zeros(0, np.int32))  # fmt: skip
    return write_store(
        path,
        {"train": (images, masks, np.zeros(n, np.int32)), "val": empty, "test": empty},
        {
            "pixel_size_nm": pixel_size_nm,
            "kind": "synthetic",
            "contrast": None,
            "sources": ["hand-made"],
            "preprocessing": {},
        },
    )


def test_store_at_twice_the_pixel_size_is_resampled(tmp_path):
    store = _tiny_store(tmp_path / "s.zarr", pixel_size_nm=2 * 0.02152)
    info, images, masks = realism.load_store(store)
    assert info.resample_factor == pytest.approx(2.0) and info.n_patches == 2
    assert images.shape == masks.shape == (2, 32, 32)
    # the step between columns 7 and 8 lands between 15 and 16: bilinear, then >= 0.5
    assert (masks[:, :, 16:] == 1).all() and (masks[:, :, :16] == 0).all()
    same = realism.load_store(_tiny_store(tmp_path / "t.zarr"))
    assert same[0].resample_factor == 1.0 and same[1].shape == (2, 16, 16)


def _bad_inputs(tmp_path):
    store = _tiny_store(tmp_path / "ok.zarr")
    (tmp_path / "plain").mkdir()
    (tmp_path / "nomodels").mkdir()
    (tmp_path / "nomodels" / "notes.txt").write_text("no checkpoints here")
    models = tmp_path / "models"
    models.mkdir()
    (models / "m.h5").write_bytes(b"never read: the inputs fail first")
    return {
        "missing store": ([str(tmp_path / "absent.zarr"), "--models", str(models)], "absent.zarr"),
        "not a store": ([str(tmp_path / "plain"), "--models", str(models)], "not a temseg"),
        "missing models": ([str(store), "--models", str(tmp_path / "nope")], "nope"),
        "no .h5": ([str(store), "--models", str(tmp_path / "nomodels")], "no .h5"),
        "bad out": ([str(store), "--models", str(models), "--out", "x.txt"], ".csv or .json"),
    }


@pytest.mark.parametrize(
    "case", ["missing store", "not a store", "missing models", "no .h5", "bad out"]
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, case):
    args, says = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out.csv"
    if "--out" not in args:
        args = [*args, "--out", str(out)]
    assert main(["realism", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("temseg realism: error:") and says in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.fixture(scope="module")
def synth_store(tmp_path_factory):
    import torch

    from temseg.data.synth import make_synthetic_store

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 5 tiny networks: threads only contend on shared cores
    yield make_synthetic_store(
        tmp_path_factory.mktemp("realism") / "hr5.zarr",
        preset="hr-5nm",
        contrast=0.1,
        images=3,
        seed=0,
        image_size=256,
        patch_size=128,
        min_particle_px=0,
    )
    torch.set_num_threads(threads)


def test_probe_gives_the_same_numbers_twice(reference_models, synth_store):
    first = realism.probe([synth_store], models=reference_models).frame()
    second = realism.probe([synth_store], models=reference_models).frame()
    assert first.equals(second)
    assert list(first.network) == ["m22", "m44", "m88", "m24", "m48", "mean"]
    assert list(first.real_dice) == pytest.approx([0.721, 0.766, 0.759, 0.749, 0.778, 0.7546])
    nets = first[first.network != "mean"]
    # dice is the harmonic mean of precision and recall; the label's fraction is one number
    p, r = nets.precision, nets.recall
    assert np.allclose(nets.dice, 2 * p * r / (p + r))
    assert nets.true_fraction.nunique() == 1
    assert first.dice.iloc[-1] == pytest.approx(nets.dice.mean())


def test_cli_prints_the_table_and_writes_csv_and_json(reference_models, synth_store, tmp_path,
                                                      capsys):  # fmt: skip
    out = tmp_path / "r.csv"
    args = ["realism", str(synth_store), "--models", str(reference_models), "--threads", "1"]
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "m22" in text and "real 5 nm Au" in text
    rows = list(csv.DictReader(out.open()))
    assert [r["network"] for r in rows] == ["m22", "m44", "m88", "m24", "m48", "mean"]
    assert rows[0]["rf_px"] == "44" and rows[-1]["rf_px"] == ""
    assert main([*args, "--split", "test", "--out", str(tmp_path / "r.json")]) == 0
    assert '"dice_by_rf_px"' in (tmp_path / "r.json").read_text()
