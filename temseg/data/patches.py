"""Patch grids, particle-pixel filtering and the grouped 70/10/20 split (pure numpy).

The paper cuts each standardized image into non-overlapping 512 x 512 patches, drops the
patches that hold (almost) no particle, and splits 70/10/20 into train / val / test "ordered
such that patches from the same image were not likely to be in both". temseg makes that a
guarantee whenever there are at least 3 source images (or stacks): whole images go to one
split, chosen by a seeded shuffle, with every split non-empty.
"""

from __future__ import annotations

import numpy as np

SPLIT_FRACTIONS = (0.7, 0.1, 0.2)
MIN_GROUPS_FOR_GROUPING = 3


def patch_grid(height: int, width: int, patch_size: int) -> list[tuple[int, int]]:
    """Top-left corners of the non-overlapping P x P patches of an image, grid centred.

    The remainder (``height % P`` rows, ``width % P`` columns) is split evenly between the
    borders, so no side is favoured.

    >>> patch_grid(1100, 1024, 512)
    [(38, 0), (38, 512), (550, 0), (550, 512)]
    """
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}")
    ny, nx = height // patch_size, width // patch_size
    oy, ox = (height - ny * patch_size) // 2, (width - nx * patch_size) // 2
    return [(oy + i * patch_size, ox + j * patch_size) for i in range(ny) for j in range(nx)]


def cut_patches(
    image: np.ndarray, mask: np.ndarray, patch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """All P x P patches of one image and its mask: (images (n, P, P), masks (n, P, P))."""
    if image.shape != mask.shape:
        raise ValueError(f"image shape {image.shape} differs from mask shape {mask.shape}")
    h, w = image.shape
    if h < patch_size or w < patch_size:
        raise ValueError(f"image of {h}x{w} px is smaller than the {patch_size} px patch")
    corners = patch_grid(h, w, patch_size)
    imgs = np.stack([image[y : y + patch_size, x : x + patch_size] for y, x in corners])
    msks = np.stack([mask[y : y + patch_size, x : x + patch_size] for y, x in corners])
    return imgs, msks


def particle_filter(masks: np.ndarray, min_particle_px: int) -> np.ndarray:
    """Boolean keep-flags: patches with at least ``min_particle_px`` particle pixels."""
    return masks.reshape(len(masks), -1).sum(axis=1, dtype=np.int64) >= int(min_particle_px)


def split_patches(
    groups: np.ndarray,
    *,
    seed: int,
    fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
) -> tuple[np.ndarray, dict]:
    """Assign each patch to train (0), val (1) or test (2), keeping groups together.

    Parameters
    ----------
    groups
        (n,) group id of every patch: its source image (a stack counts as one group, since
        its frames are near copies of each other).
    seed
        Seeds the shuffle of groups (or patches).
    fractions
        Target shares of patches in train / val / test.

    Returns
    -------
    assignment
        (n,) int8 split index per patch.
    record
        ``{"mode": "by_image" | "by_patch", "fractions", "seed", "groups": {split: [ids]}}``.

    Notes
    -----
    With at least 3 groups ("by_image"): groups are shuffled and laid end to end by patch
    count; a group goes to the split whose share of the cumulative count holds the group's
    midpoint. Any split left empty then takes the smallest group of the split with the most
    groups, so all three splits are non-empty. With fewer groups ("by_patch") patches are
    shuffled and cut 70/10/20 with at least one patch in val and test when n >= 3; the
    record says that grouping was not possible.

    Examples
    --------
    >>> a, rec = split_patches(np.repeat(np.arange(10), 4), seed=0)
    >>> rec["mode"], sorted(set(a.tolist()))
    ('by_image', [0, 1, 2])
    """
    groups = np.asarray(groups)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1):
        raise ValueError(f"fractions must be 3 non-negative shares summing to 1, got {fractions}")
    n = groups.size
    rng = np.random.default_rng(seed)
    ids, counts = np.unique(groups, return_counts=True)
    assignment = np.zeros(n, dtype=np.int8)
    bounds = np.cumsum(fractions)[:2]
    record = {"fractions": [float(f) for f in fractions], "seed": int(seed)}
    if ids.size >= MIN_GROUPS_FOR_GROUPING:
        order = rng.permutation(ids.size)
        ids, counts = ids[order], counts[order]
        mids = (np.cumsum(counts) - counts / 2) / n
        side = np.searchsorted(bounds, mids, side="right").astype(np.int8)
        for s in range(3):
            if not (side == s).any():
                sizes = np.bincount(side, minlength=3)
                donor = int(np.argmax(sizes))
                cand = np.nonzero(side == donor)[0]
                side[cand[np.argmin(counts[cand])]] = s  # first of the smallest
        for gid, s in zip(ids.tolist(), side.tolist(), strict=True):
            assignment[groups == gid] = s
        record["mode"] = "by_image"
        record["groups"] = {
            name: sorted(int(g) for g in ids[side == s])
            for s, name in enumerate(("train", "val", "test"))
        }
    else:
        perm = rng.permutation(n)
        n_val = int(round(fractions[1] * n))
        n_test = int(round(fractions[2] * n))
        if n >= 3:
            n_val, n_test = max(n_val, 1), max(n_test, 1)
        n_train = n - n_val - n_test
        assignment[perm[n_train : n_train + n_val]] = 1
        assignment[perm[n_train + n_val :]] = 2
        record["mode"] = "by_patch"
        record["note"] = (
            f"only {ids.size} source image(s): patches of one image may appear in more than "
            f"one split (grouping needs >= {MIN_GROUPS_FOR_GROUPING})"
        )
    return assignment, record
