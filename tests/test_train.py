"""fit(): determinism, best-epoch selection, checkpoint rebuild, test metrics, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from temseg.config import ConfigError
from temseg.data.store import load_split
from temseg.data.augment import dihedral
from temseg.erf import effective_receptive_field
from temseg.model import load_checkpoint
from temseg.train import Split, epoch_order, evaluate, fit
from tests.helpers import tiny_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tiny_store(tmp_path_factory.mktemp("data") / "discs.zarr")


def config(store, **kw):
    base = dict(
        data=str(store),
        num_blocks=2,
        pools=[2, 2],
        seed=752,
        epochs=3,
        lr=1e-2,
        batch_size=4,
        device="cpu",
    )
    return {**base, **kw}


def numbers(out):
    """A run's per-epoch history without its wall-clock seconds."""
    return {k: v for k, v in out["history"].items() if k != "epoch_seconds"}


def test_same_seed_same_numbers_and_weights(store, tmp_path):
    a = fit(config(store), workdir=tmp_path / "a")
    b = fit(config(store), workdir=tmp_path / "b")
    assert numbers(a) == numbers(b)
    assert a["test_hard_dice"] == b["test_hard_dice"]
    wa, _ = load_checkpoint(a["best_checkpoint"])
    wb, _ = load_checkpoint(b["best_checkpoint"])
    for (k, va), vb in zip(wa.state_dict().items(), wb.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    c = fit(config(store, seed=2245), workdir=tmp_path / "c")
    assert c["history"]["train_loss"] != a["history"]["train_loss"]


def test_reports_once_per_epoch_and_selects_the_best_epoch(store, tmp_path):
    rows = []
    out = fit(config(store, epochs=4), rows.append, workdir=tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    val = out["history"]["val_hard_dice"]
    assert out["best_epoch"] == 1 + max(range(4), key=lambda i: (val[i], -i))
    assert rows[-1]["done"] and "test_hard_dice" in rows[-1]
    assert all("test_hard_dice" not in r for r in rows[:-1])
    assert out["n_params"] == 8074 and out["rf_px"] == 44


def test_test_metrics_come_from_the_best_checkpoint(store, tmp_path):
    # fp32 on purpose: the exact (1e-12) agreement below is of fp32 evaluations
    out = fit(config(store, epochs=3, precision="fp32"), workdir=tmp_path)
    model, cfg = load_checkpoint(tmp_path / "best.pt")
    assert cfg["pools"] == [2, 2] and cfg["seed"] == 752 and cfg["data"] == str(store)
    assert cfg["precision"] == "fp32"
    test = Split(str(store), "test", torch.device("cpu"), augment=True)
    again = evaluate(model, test, batch_size=4, device=torch.device("cpu"), precision="fp32")
    assert again["hard_dice"] == pytest.approx(out["test_hard_dice"], abs=1e-12)
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 3
    # the effective receptive field is the best checkpoint's, on the untransformed test patches
    erf = effective_receptive_field(model, test.images)
    assert (out["erf50_px"], out["erf95_px"]) == (erf["erf50_px"], erf["erf95_px"])
    assert out["erf95_nm"] == pytest.approx(out["erf95_px"] * 0.02, rel=1e-12)  # 0.02 nm/px
    assert 0 < out["erf50_px"] <= out["erf95_px"] and 2 * out["erf95_px"] <= 44  # exact reach
    # the per-test-image record: each image's counts over its 8 dihedral copies, whose pooled
    # dice is the logged test dice
    rec = json.loads((tmp_path / "test_images.json").read_text())
    assert rec["format"] == "temseg-test-images/1"
    assert (rec["source"], rec["name"]) == ([0, 1], ["disc-0", "disc-1"])
    masks = load_split(str(store), "test")[1]
    assert rec["true"] == [8 * int(m.sum()) for m in masks]
    inter, pred, true = (np.array(rec[k]) for k in ("intersection", "predicted", "true"))
    assert 2 * inter.sum() / (pred.sum() + true.sum()) == pytest.approx(
        out["test_hard_dice"], abs=1e-12
    )
    assert (inter <= np.minimum(pred, true)).all() and pred.sum() > 0


def test_learns_discs(store, tmp_path):
    out = fit(config(store, epochs=6), workdir=tmp_path)
    assert out["history"]["train_loss"][-1] < out["history"]["train_loss"][0]
    assert out["test_hard_dice"] > 0.5


def test_resume_continues_exactly(store, tmp_path):
    full = fit(config(store, epochs=3), workdir=tmp_path / "full")
    rows = []

    def crash_after_two(row):
        rows.append(row)
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(config(store, epochs=3), crash_after_two, workdir=tmp_path / "cut")
    resumed = []
    out = fit(config(store, epochs=3), resumed.append, workdir=tmp_path / "cut")
    # epoch 2 was saved but its report broke off: it is reported again (at least once), with
    # the very numbers of the first try, and training goes on with epoch 3, not epoch 2
    assert [r["epoch"] for r in resumed] == [2, 3]
    assert resumed[0] == rows[1]
    assert numbers(out) == numbers(full)
    assert out["test_hard_dice"] == full["test_hard_dice"]


def test_precision_is_part_of_what_is_trained(store, tmp_path):
    # bf16 autocast is the default on CPU too, and changes the numbers
    bf16 = fit(config(store, epochs=1), workdir=tmp_path / "bf16")
    fp32 = fit(config(store, epochs=1, precision="fp32"), workdir=tmp_path / "fp32")
    assert bf16["config"]["precision"] == "bf16" and fp32["config"]["precision"] == "fp32"
    assert bf16["history"]["train_loss"] != fp32["history"]["train_loss"]
    # so an fp32 fit never continues a bf16 training state (nor the other way round); the
    # same config does (a finished run: only its answer is returned)
    with pytest.raises(ValueError, match="training state of another config"):
        fit(config(store, epochs=1, precision="fp32"), workdir=tmp_path / "bf16")
    with pytest.raises(ValueError, match="training state of another config"):
        fit(config(store, epochs=1), workdir=tmp_path / "fp32")
    again = fit(config(store, epochs=1, precision="bf16"), workdir=tmp_path / "bf16")
    assert numbers(again) == numbers(bf16)


def test_a_broken_final_report_is_repeated_with_the_test_metrics(store, tmp_path):
    def crash_at_the_end(row):
        if row.get("done"):
            raise ConnectionError("tracking server went away")

    with pytest.raises(ConnectionError):
        fit(config(store, epochs=2), crash_at_the_end, workdir=tmp_path)
    again = []
    out = fit(config(store, epochs=2), again.append, workdir=tmp_path)
    assert [(r["epoch"], r.get("done")) for r in again] == [(2, True)]
    assert again[0]["test_hard_dice"] == out["test_hard_dice"]
    assert fit(config(store, epochs=2), workdir=tmp_path)["test_hard_dice"] == out["test_hard_dice"]


def test_batch_order_is_shared_by_architectures():
    assert torch.equal(epoch_order(752, 3, 80), epoch_order(752, 3, 80))
    assert not torch.equal(epoch_order(752, 3, 80), epoch_order(752, 4, 80))


def test_augmented_batches_are_the_dihedral_transforms(store):
    split = Split(str(store), "train", torch.device("cpu"), augment=True)
    assert len(split) == 8 * 6
    x, y = split.batch(torch.arange(8, 16))  # patch 1 under the 8 transforms
    for k in range(8):
        assert torch.equal(x[k], dihedral(split.images[1], k))
        assert torch.equal(y[k], dihedral(split.masks[1], k).long())


def test_bad_config(store):
    with pytest.raises(ConfigError, match="unknown key"):
        fit(config(store, epoch=3))
    with pytest.raises(ValueError, match="absolute path"):
        fit(config(store, data="relative.zarr"))
    with pytest.raises(ValueError, match="not divisible"):
        fit(config(store, pools=[8, 8]))  # 32 px patches, pools 64


def test_record_test_adds_the_test_curve_and_changes_nothing_trained(store, tmp_path):
    # fp32: the final test (best.pt reloaded) must equal that epoch's recorded test exactly
    plain = fit(config(store, epochs=4, precision="fp32"), workdir=tmp_path / "a")
    rows = []
    rec = fit(
        config(store, epochs=4, precision="fp32", record_test=True),
        rows.append,
        workdir=tmp_path / "b",
    )
    for k in ("train_loss", "val_hard_dice", "val_loss"):
        assert rec["history"][k] == plain["history"][k]
    assert plain["history"]["epoch_test_hard_dice"] == []
    curve = rec["history"]["epoch_test_hard_dice"]
    assert len(curve) == 4 and [r["epoch_test_hard_dice"] for r in rows] == curve
    assert curve[rec["best_epoch"] - 1] == pytest.approx(rec["test_hard_dice"], abs=1e-12)
    assert len(rec["history"]["epoch_seconds"]) == 4 and all(
        rows[i]["epoch_seconds"] > 0 for i in range(4)
    )
    assert sum(rec["history"]["epoch_seconds"]) == pytest.approx(rec["seconds"])
