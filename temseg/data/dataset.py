"""A torch Dataset over one split of a patch store, with the paper's dihedral expansion.

Item i of an augmented dataset is dihedral transform ``i % 8`` of patch ``i // 8``, so an
epoch visits every (patch, transform) pair exactly once and the order is fixed (shuffle it
with the DataLoader's seeded sampler). The Zarr arrays are opened lazily, on first access in
the process that reads (each DataLoader worker opens its own handle); the dataset pickles
before and after first use.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from temseg.data.augment import N_DIHEDRAL, dihedral
from temseg.data.store import check_split_name, open_store

IN_MEMORY_LIMIT_BYTES = 512 * 2**20


class PatchDataset(Dataset):
    """(image float32 (1, P, P), mask int64 (P, P)) pairs of one split of a patch store.

    Parameters
    ----------
    path
        The patch store (made by ``temseg ingest`` or ``temseg synth``).
    split
        ``"train"``, ``"val"`` or ``"test"``.
    augment
        Expand by the 8 dihedral transforms (length 8n) as the paper does; False gives the
        n patches as stored.
    in_memory
        Read the whole split on first access (each worker holds its own copy) instead of
        one Zarr chunk per item. None (default) decides by size: in memory up to
        ``IN_MEMORY_LIMIT_BYTES`` (512 MB) of images. Per-item chunk reads cost a trip
        through Zarr's async machinery (~1-3 ms, far more on a loaded machine).

    Examples
    --------
    >>> ds = PatchDataset("data/hr-2.2nm-c0.060-s0.zarr", "train")  # doctest: +SKIP
    >>> image, mask = ds[9]   # transform 1 of patch 1
    """

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "train",
        augment: bool = True,
        *,
        in_memory: bool | None = None,
    ) -> None:
        self.path = str(Path(path).absolute())  # trials may change the working directory
        self.split = check_split_name(split)
        self.augment = bool(augment)
        root = open_store(self.path)  # validates now, so a bad path fails at construction
        shape = root[self.split]["images"].shape
        self.n_patches = int(shape[0])
        self.patch_size = int(shape[1])
        if in_memory is None:
            in_memory = 4 * self.n_patches * self.patch_size**2 <= IN_MEMORY_LIMIT_BYTES
        self.in_memory = bool(in_memory)
        self.pixel_size_nm = float(root.attrs["pixel_size_nm"])
        self._arrays = None
        self._pid = None

    def __len__(self) -> int:
        return self.n_patches * (N_DIHEDRAL if self.augment else 1)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_arrays"] = None  # never ship open handles or cached arrays to workers
        state["_pid"] = None
        return state

    def _open(self):
        if self._arrays is None or self._pid != os.getpid():
            grp = open_store(self.path)[self.split]
            images, masks = grp["images"], grp["masks"]
            if self.in_memory:
                images, masks = images[...], masks[...]
            self._arrays = (images, masks)
            self._pid = os.getpid()
        return self._arrays

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        patch, k = divmod(index, N_DIHEDRAL) if self.augment else (index, 0)
        images, masks = self._open()
        image = np.asarray(images[patch], dtype=np.float32)
        mask = np.asarray(masks[patch])
        image = np.ascontiguousarray(dihedral(image, k))
        mask = np.ascontiguousarray(dihedral(mask, k)).astype(np.int64)
        return torch.from_numpy(image)[None], torch.from_numpy(mask)
