"""The patch store: one Zarr v3 group per dataset, written atomically, read fast.

Layout (documented for users in ``data/README.md``)::

    STORE.zarr/
      zarr.json                 root attributes (temseg_format, pixel_size_nm, ...)
      train/images              float32 (n, P, P), one chunk per patch, zstd
      train/masks               uint8   (n, P, P), values 0/1 (particle = 1)
      train/source              int32   (n,), index into the ``sources`` attribute
      val/...  test/...         same three arrays

Writes go to a hidden temporary sibling directory that is renamed onto the target only
when everything is on disk, so a failed or interrupted write leaves nothing at the target
path (a hard kill can leave the hidden ``.NAME.tmp-*`` sibling, never a half store).
The ``content_hash`` attribute is a SHA-256 over the array bytes and every other
attribute, so the same inputs (same generator seed) give the same hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
ARRAYS = ("images", "masks", "source")
REQUIRED_ATTRS = (
    "temseg_format",
    "pixel_size_nm",
    "patch_size",
    "kind",
    "contrast",
    "sources",
    "preprocessing",
    "n_patches",
    "content_hash",
)
KINDS = ("synthetic", "ingested")


class StoreError(ValueError):
    """A path is not a readable temseg patch store, or data to write break the schema."""


def plain(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples and Paths turned into JSON-ready types."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        value = float(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None  # JSON has no NaN/inf
    if isinstance(value, Path):
        return str(value)
    return value


def _check_split(name: str, arrays: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        images, masks, source = arrays
    except (TypeError, ValueError):
        raise StoreError(
            f"split {name!r}: expected (images, masks, source), got {type(arrays).__name__}"
        ) from None
    images = np.asarray(images)
    masks = np.asarray(masks)
    source = np.asarray(source)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise StoreError(f"split {name!r}: images must be (n, P, P), got shape {images.shape}")
    if masks.shape != images.shape:
        raise StoreError(
            f"split {name!r}: masks shape {masks.shape} differs from images {images.shape}"
        )
    if source.shape != images.shape[:1]:
        raise StoreError(f"split {name!r}: source must be ({images.shape[0]},), got {source.shape}")
    if masks.size and (masks.min() < 0 or masks.max() > 1):
        raise StoreError(f"split {name!r}: masks must hold 0/1 only")
    if images.size and not np.isfinite(images).all():
        raise StoreError(f"split {name!r}: images contain NaN or infinite values")
    if source.size and not np.issubdtype(source.dtype, np.integer):
        raise StoreError(f"split {name!r}: source must be integers, got {source.dtype}")
    return (
        np.ascontiguousarray(images, dtype="<f4"),
        np.ascontiguousarray(masks, dtype="u1"),
        np.ascontiguousarray(source, dtype="<i4"),
    )


def content_hash(splits: Mapping[str, tuple[np.ndarray, ...]], attrs: Mapping[str, Any]) -> str:
    """SHA-256 over every array's dtype, shape and bytes, then the attributes as sorted JSON.

    ``attrs`` must not contain ``content_hash`` itself (it is ignored if present).
    """
    h = hashlib.sha256(b"temseg-store-v%d\n" % FORMAT_VERSION)
    for name in SPLITS:
        for arr_name, arr in zip(ARRAYS, splits[name], strict=True):
            h.update(f"{name}/{arr_name}:{arr.dtype.str}:{arr.shape}\n".encode())
            if arr.size:  # hashed without a copy
                h.update(memoryview(np.ascontiguousarray(arr).reshape(-1)).cast("B"))
    rest = {k: v for k, v in attrs.items() if k != "content_hash"}
    h.update(json.dumps(plain(rest), sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def write_store(
    out: str | os.PathLike,
    splits: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    attrs: Mapping[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Write a patch store atomically and return its absolute path.

    Parameters
    ----------
    out
        Target directory (conventionally ``NAME.zarr``).
    splits
        ``{"train": (images, masks, source), "val": ..., "test": ...}`` with images float32
        (n, P, P), masks uint8 0/1 (n, P, P) and source int (n,). Every split must be given
        (an empty split has n = 0).
    attrs
        Root attributes; must hold ``pixel_size_nm``, ``kind``, ``contrast``, ``sources``
        and ``preprocessing``. ``temseg_format``, ``patch_size``, ``n_patches`` and
        ``content_hash`` are filled in here.
    overwrite
        Replace an existing store at ``out``; otherwise an existing path raises
        :class:`FileExistsError` before anything is written.

    Notes
    -----
    The store is built in a hidden sibling ``.NAME.tmp-<uuid>`` and renamed onto ``out``
    (same file system, so the rename is atomic); on any exception, including
    KeyboardInterrupt, the temporary directory is removed and ``out`` is untouched.
    """
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite / --overwrite to replace it)")
    missing = [s for s in SPLITS if s not in splits]
    unknown = sorted(set(splits) - set(SPLITS))
    if missing or unknown:
        raise StoreError(f"splits must be exactly {SPLITS}; missing {missing}, unknown {unknown}")
    checked = {name: _check_split(name, splits[name]) for name in SPLITS}
    sizes = {arr[0].shape[1] for arr in checked.values() if arr[0].shape[0]}
    if len(sizes) > 1:
        raise StoreError(f"every split must have the same patch size, got {sorted(sizes)}")
    if not sizes:
        raise StoreError("no patches to write: every split is empty")
    patch_size = sizes.pop()
    need = ("pixel_size_nm", "kind", "contrast", "sources", "preprocessing")
    absent = [k for k in need if k not in attrs]
    if absent:
        raise StoreError(f"attrs lack required key(s) {absent}")
    if attrs["kind"] not in KINDS:
        raise StoreError(f"kind must be one of {KINDS}, got {attrs['kind']!r}")
    n_sources = len(attrs["sources"])
    for name, (_, _, source) in checked.items():
        if source.size and (source.min() < 0 or source.max() >= n_sources):
            raise StoreError(
                f"split {name!r}: source indices must lie in [0, {n_sources}) (len(sources))"
            )

    full = dict(plain(dict(attrs)))
    full["temseg_format"] = FORMAT_VERSION
    full["patch_size"] = int(patch_size)
    full["n_patches"] = {name: int(checked[name][0].shape[0]) for name in SPLITS}
    # Keys are written sorted, so the zarr.json bytes depend on content only.
    full.pop("content_hash", None)
    full["content_hash"] = content_hash(checked, full)
    full = dict(sorted(full.items()))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        _write_tree(tmp, checked, full, patch_size)
        _commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_tree(
    tmp: Path, checked: dict[str, tuple[np.ndarray, ...]], attrs: dict, patch_size: int
) -> None:
    import zarr
    from zarr.codecs import ZstdCodec

    root = zarr.open_group(tmp, mode="w-", zarr_format=3)
    for name in SPLITS:
        grp = root.create_group(name)
        for arr_name, arr in zip(ARRAYS, checked[name], strict=True):
            chunks = (1, patch_size, patch_size) if arr.ndim == 3 else (max(1, arr.shape[0]),)
            z = grp.create_array(
                arr_name,
                shape=arr.shape,
                chunks=chunks,
                dtype=arr.dtype,
                compressors=ZstdCodec(level=1),
                fill_value=0,
            )
            if arr.size:
                z[...] = arr
    root.attrs.update(attrs)


# The renames of a commit (module level so tests can make them fail).
_rename = os.replace


def _commit(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` onto ``out``; an old store at ``out`` is moved aside
    first and put back if the second rename fails."""
    if not (out.exists() or out.is_symlink()):
        _rename(tmp, out)
        return
    trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:12]}"
    _rename(out, trash)
    try:
        _rename(tmp, out)
    except BaseException:
        _rename(trash, out)
        raise
    if trash.is_dir() and not trash.is_symlink():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink(missing_ok=True)


def open_store(path: str | os.PathLike):
    """Open a patch store read-only as a ``zarr.Group``; StoreError if it is not one."""
    import zarr

    path = Path(path).absolute()
    if not path.exists():
        raise StoreError(f"{path}: no such patch store")
    if not path.is_dir():
        raise StoreError(f"{path}: not a temseg patch store (a file, not a Zarr directory)")
    try:
        root = zarr.open_group(path, mode="r", zarr_format=3)
    except Exception as exc:  # zarr raises several types for a non-group directory
        raise StoreError(
            f"{path}: not a temseg patch store (no readable Zarr v3 group: {exc})"
        ) from None
    attrs = dict(root.attrs)
    if "temseg_format" not in attrs:
        raise StoreError(f"{path}: not a temseg patch store (no temseg_format attribute)")
    if attrs["temseg_format"] != FORMAT_VERSION:
        raise StoreError(
            f"{path}: temseg_format {attrs['temseg_format']} is not supported "
            f"(this temseg reads format {FORMAT_VERSION}); regenerate the store"
        )
    absent = [k for k in REQUIRED_ATTRS if k not in attrs]
    if absent:
        raise StoreError(f"{path}: patch store lacks attribute(s) {absent}")
    return root


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The root attributes of a patch store as a plain dict."""
    return dict(open_store(path).attrs)


def check_split_name(split: str) -> str:
    if split not in SPLITS:
        raise StoreError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split


def load_split(path: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split whole: (images float32 (n, P, P), masks uint8 (n, P, P)).

    Zarr fetches and decompresses the chunks concurrently; this is the fast path for a
    trainer that keeps a split in memory.
    """
    check_split_name(split)
    root = open_store(path)
    try:
        grp = root[split]
        images = grp["images"][...]
        masks = grp["masks"][...]
    except KeyError as exc:
        raise StoreError(f"{Path(path).absolute()}: split {split!r} lacks array {exc}") from None
    return np.asarray(images, dtype=np.float32), np.asarray(masks, dtype=np.uint8)


def load_sources(path: str | os.PathLike, split: str) -> np.ndarray:
    """The ``source`` index (into the ``sources`` attribute) of every patch of a split."""
    check_split_name(split)
    return np.asarray(open_store(path)[split]["source"][...], dtype=np.int64)
