"""Dihedral augmentation (numpy and torch) and the PatchDataset over a store."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from temseg.data import PatchDataset
from temseg.data.augment import dihedral, dihedral_inverse
from temseg.data.store import StoreError, write_store

P = 12


def test_dihedral_identity_and_eight_distinct():
    x = np.arange(P * P, dtype=np.float32).reshape(P, P)  # no symmetry
    assert np.array_equal(dihedral(x, 0), x)
    outs = [dihedral(x, k) for k in range(8)]
    assert len({o.tobytes() for o in outs}) == 8
    # they are exactly the dihedral group: 4 rotations and their mirrors
    expected = [np.rot90(x, r) for r in range(4)] + [np.fliplr(np.rot90(x, r)) for r in range(4)]
    for o, e in zip(outs, expected, strict=True):
        np.testing.assert_array_equal(o, e)
    with pytest.raises(ValueError, match="0..7"):
        dihedral(x, 8)


@pytest.mark.parametrize("k", range(8))
def test_dihedral_torch_matches_numpy_and_inverts(k):
    x = np.random.default_rng(k).standard_normal((2, 3, P, P)).astype(np.float32)
    t = torch.from_numpy(x)
    np.testing.assert_array_equal(dihedral(t, k).numpy(), dihedral(x, k))
    np.testing.assert_array_equal(dihedral_inverse(dihedral(x, k), k), x)
    assert torch.equal(dihedral_inverse(dihedral(t, k), k), t)
    assert dihedral(t, k).shape == t.shape


def test_masks_follow_images():
    # a mask that marks exactly the bright pixels stays aligned under every transform
    img = np.random.default_rng(0).standard_normal((P, P))
    mask = (img > 0.5).astype(np.uint8)
    for k in range(8):
        np.testing.assert_array_equal(dihedral(mask, k), (dihedral(img, k) > 0.5).astype(np.uint8))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    splits = {}
    for name, n in (("train", 3), ("val", 1), ("test", 2)):
        images = rng.standard_normal((n, P, P)).astype(np.float32)
        masks = (images > 0.3).astype(np.uint8)
        splits[name] = (images, masks, np.zeros(n, np.int32))
    attrs = {
        "pixel_size_nm": 0.02,
        "kind": "synthetic",
        "contrast": 0.1,
        "sources": ["x"],
        "preprocessing": {},
    }
    path = write_store(tmp_path_factory.mktemp("ds") / "s.zarr", splits, attrs)
    return path, splits


@pytest.mark.parametrize("in_memory", [False, True])
def test_items_are_transforms_of_patches(store, in_memory):
    path, splits = store
    images, masks, _ = splits["train"]
    ds = PatchDataset(path, "train", in_memory=in_memory)
    assert len(ds) == 24
    for i in range(len(ds)):
        image, mask = ds[i]
        assert image.dtype == torch.float32 and image.shape == (1, P, P)
        assert mask.dtype == torch.int64 and mask.shape == (P, P)
        np.testing.assert_array_equal(image[0].numpy(), dihedral(images[i // 8], i % 8))
        np.testing.assert_array_equal(mask.numpy(), dihedral(masks[i // 8], i % 8))
    assert torch.equal(ds[-1][0], ds[23][0])
    with pytest.raises(IndexError):
        ds[24]


def test_no_augment_and_other_splits(store):
    path, splits = store
    ds = PatchDataset(path, "test", augment=False)
    assert len(ds) == 2
    np.testing.assert_array_equal(ds[1][0][0].numpy(), splits["test"][0][1])
    assert len(PatchDataset(path, "val")) == 8


def test_deterministic_and_picklable_before_and_after_use(store):
    path, _ = store
    ds = PatchDataset(path, "train")
    clone = pickle.loads(pickle.dumps(ds))  # before first use
    a = ds[13]
    again = pickle.loads(pickle.dumps(ds))  # after first use: no open handles shipped
    for other in (clone, again):
        b = other[13]
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_dataloader_with_workers_sees_every_item_once(store):
    path, splits = store
    ds = PatchDataset(path, "train", in_memory=False)
    loader = DataLoader(ds, batch_size=5, num_workers=2, shuffle=False)
    xs, ys = zip(*loader, strict=True)
    x, y = torch.cat(xs), torch.cat(ys)
    assert x.shape == (24, 1, P, P) and y.shape == (24, P, P)
    for i in range(24):
        np.testing.assert_array_equal(x[i, 0].numpy(), dihedral(splits["train"][0][i // 8], i % 8))


def test_bad_path_and_split(store, tmp_path):
    path, _ = store
    with pytest.raises(StoreError, match="unknown split 'dev'"):
        PatchDataset(path, "dev")
    with pytest.raises(StoreError, match="nowhere.zarr: no such patch store"):
        PatchDataset(tmp_path / "nowhere.zarr")
