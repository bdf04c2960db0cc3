"""The patch store: schema, atomic writes, content hash, readers, errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr

from temseg.data import store as store_mod
from temseg.data.store import (
    StoreError,
    content_hash,
    load_sources,
    load_split,
    open_store,
    read_attrs,
    write_store,
)

P = 16


def make_splits(n=(5, 2, 3), seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    start = 0
    for name, k in zip(("train", "val", "test"), n, strict=True):
        images = rng.standard_normal((k, P, P)).astype(np.float32)
        masks = (rng.random((k, P, P)) < 0.3).astype(np.uint8)
        source = np.arange(start, start + k) % 4
        start += k
        out[name] = (images, masks, source)
    return out


def base_attrs(**kw):
    attrs = {
        "pixel_size_nm": np.float32(0.02),  # numpy scalars must be cast on the way in
        "kind": "synthetic",
        "contrast": np.float64(0.2),
        "sources": ["a", "b", "c", "d"],
        "preprocessing": {"xray_threshold": 1500.0, "split": {"mode": "by_image"}},
        "generator": {"preset": "hr-2.2nm", "seed": np.int64(3), "defocus_nm": (-14.0, -6.0)},
    }
    attrs.update(kw)
    return attrs


def test_schema_arrays_chunks_and_attrs(tmp_path):
    splits = make_splits()
    out = write_store(tmp_path / "s.zarr", splits, base_attrs())
    assert out.is_absolute() and out.name == "s.zarr"
    root = open_store(out)
    for name, (images, masks, source) in splits.items():
        grp = root[name]
        assert grp["images"].dtype == np.float32 and grp["images"].shape == images.shape
        assert grp["masks"].dtype == np.uint8 and grp["masks"].shape == masks.shape
        assert grp["source"].dtype == np.int32 and grp["source"].shape == source.shape
        assert grp["images"].chunks == (1, P, P)  # one chunk per patch
        assert grp["masks"].chunks == (1, P, P)
        assert grp["images"].compressors, "patch arrays must be compressed"
        np.testing.assert_array_equal(grp["images"][...], images)
        np.testing.assert_array_equal(grp["masks"][...], masks)
        np.testing.assert_array_equal(grp["source"][...], source)
    attrs = read_attrs(out)
    for key in (
        "temseg_format",
        "pixel_size_nm",
        "patch_size",
        "kind",
        "contrast",
        "sources",
        "preprocessing",
        "generator",
        "content_hash",
        "n_patches",
    ):
        assert key in attrs, key
    assert attrs["temseg_format"] == 1
    assert attrs["patch_size"] == P
    assert attrs["n_patches"] == {"train": 5, "val": 2, "test": 3}
    assert attrs["generator"]["seed"] == 3 and attrs["generator"]["defocus_nm"] == [-14.0, -6.0]
    # plain JSON on disk, no numpy reprs
    meta = json.loads((out / "zarr.json").read_text())
    assert meta["attributes"]["pixel_size_nm"] == pytest.approx(0.02)
    assert isinstance(meta["attributes"]["contrast"], float)
    assert root.metadata.zarr_format == 3


def test_content_hash_is_recomputable_and_content_sensitive(tmp_path):
    splits = make_splits()
    a = write_store(tmp_path / "a.zarr", splits, base_attrs())
    b = write_store(tmp_path / "b.zarr", splits, base_attrs())
    ha, hb = read_attrs(a)["content_hash"], read_attrs(b)["content_hash"]
    assert ha == hb and len(ha) == 64
    root = open_store(a)
    arrays = {s: tuple(root[s][n][...] for n in ("images", "masks", "source")) for s in splits}
    assert content_hash(arrays, read_attrs(a)) == ha
    other = make_splits()
    other["val"][0][0, 0, 0] += 1.0
    c = write_store(tmp_path / "c.zarr", other, base_attrs())
    d = write_store(tmp_path / "d.zarr", splits, base_attrs(contrast=0.3))
    assert len({ha, read_attrs(c)["content_hash"], read_attrs(d)["content_hash"]}) == 3


def test_same_inputs_same_bytes(tmp_path):
    splits = make_splits()
    a = write_store(tmp_path / "a.zarr", splits, base_attrs())
    b = write_store(tmp_path / "b.zarr", splits, base_attrs())
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_existing_output_refused_then_overwritten(tmp_path):
    out = write_store(tmp_path / "s.zarr", make_splits(), base_attrs())
    first = read_attrs(out)["content_hash"]
    with pytest.raises(FileExistsError, match="s.zarr"):
        write_store(out, make_splits(seed=1), base_attrs())
    assert read_attrs(out)["content_hash"] == first
    write_store(out, make_splits(seed=1), base_attrs(), overwrite=True)
    assert read_attrs(out)["content_hash"] != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]  # no temp/old leftovers


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_write_interrupted_midway_leaves_nothing(tmp_path, monkeypatch, exc):
    real = store_mod._write_tree

    def half_then_fail(tmp, checked, attrs, patch_size):
        real(tmp, checked, attrs, patch_size)  # everything on disk in the temp dir...
        raise exc  # ...then the process is interrupted before the rename

    monkeypatch.setattr(store_mod, "_write_tree", half_then_fail)
    with pytest.raises(type(exc)):
        write_store(tmp_path / "s.zarr", make_splits(), base_attrs())
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_leaves_nothing(tmp_path, monkeypatch):
    def boom(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(store_mod, "_rename", boom)
    with pytest.raises(OSError):
        write_store(tmp_path / "s.zarr", make_splits(), base_attrs())
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_restores_old_store(tmp_path, monkeypatch):
    out = write_store(tmp_path / "s.zarr", make_splits(), base_attrs())
    first = read_attrs(out)["content_hash"]
    calls = []

    def second_fails(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # old store moved aside, new one fails to move in
            raise OSError("interrupted")
        return os.replace(src, dst)

    monkeypatch.setattr(store_mod, "_rename", second_fails)
    with pytest.raises(OSError):
        write_store(out, make_splits(seed=1), base_attrs(), overwrite=True)
    assert read_attrs(out)["content_hash"] == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda s: s.pop("test"), "missing"),
        (lambda s: s.__setitem__("val", (s["val"][0], s["val"][1][:, :8], s["val"][2])), "masks"),
        (lambda s: s["train"][1].__setitem__((0, 0, 0), 2), "0/1"),
        (lambda s: s["train"][0].__setitem__((0, 0, 0), np.nan), "NaN"),
        (lambda s: s.__setitem__("val", (s["val"][0], s["val"][1], s["val"][2] + 10)), "sources"),
    ],
)
def test_schema_violations_rejected_before_writing(tmp_path, mutate, match):
    splits = make_splits()
    mutate(splits)
    with pytest.raises(StoreError, match=match):
        write_store(tmp_path / "s.zarr", splits, base_attrs())
    assert list(tmp_path.iterdir()) == []


def test_empty_split_is_allowed_and_loads(tmp_path):
    out = write_store(tmp_path / "s.zarr", make_splits(n=(4, 0, 1)), base_attrs())
    images, masks = load_split(out, "val")
    assert images.shape == (0, P, P) and masks.shape == (0, P, P)


def test_load_split_and_sources(tmp_path):
    splits = make_splits()
    out = write_store(tmp_path / "s.zarr", splits, base_attrs())
    images, masks = load_split(out, "train")
    assert images.dtype == np.float32 and masks.dtype == np.uint8
    np.testing.assert_array_equal(images, splits["train"][0])
    np.testing.assert_array_equal(load_sources(out, "test"), splits["test"][2])
    with pytest.raises(StoreError, match="unknown split 'dev'"):
        load_split(out, "dev")


def test_open_store_errors_name_the_path(tmp_path):
    with pytest.raises(StoreError, match="missing.zarr: no such patch store"):
        open_store(tmp_path / "missing.zarr")
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(StoreError, match="file.zarr: not a temseg patch store"):
        open_store(tmp_path / "file.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="empty: not a temseg patch store"):
        open_store(tmp_path / "empty")
    zarr.open_group(tmp_path / "plain.zarr", mode="w").attrs["x"] = 1
    with pytest.raises(StoreError, match="plain.zarr: not a temseg patch store"):
        read_attrs(tmp_path / "plain.zarr")
    assert issubclass(StoreError, ValueError)
