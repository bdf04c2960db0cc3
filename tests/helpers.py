"""Small real patch stores for trainer and sweep tests (written with the real store writer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from temseg.data.store import write_store


def disc_patches(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Standardized noisy images with 1-3 brighter discs each, and their masks."""
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(0.0, 1.0, (n, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.integers(4, size - 4, 2)
            r = rng.integers(3, max(4, size // 5))
            masks[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
        images[i] += 1.5 * masks[i]
    return images, masks


def tiny_store(
    path: Path, *, size: int = 32, n: tuple[int, int, int] = (6, 2, 2), seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    splits = {}
    for name, count in zip(("train", "val", "test"), n, strict=True):
        images, masks = disc_patches(count, size, rng)
        splits[name] = (images, masks, np.arange(count, dtype=np.int32))
    attrs = {
        "pixel_size_nm": 0.02,
        "kind": "synthetic",
        "contrast": 1.5,
        "sources": [f"disc-{i}" for i in range(max(n))],
        "preprocessing": {"note": "test discs, already standardized"},
        "generator": {"kind": "tests.helpers.disc_patches", "seed": seed},
    }
    return write_store(path, splits, attrs)


def experiment_runs(uri: str, experiment: str):
    """An MlflowClient for ``uri`` and every run of ``experiment``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    return client, [r for r in runs if "temseg.sweep_key" not in r.data.tags]  # no parent


def parent_runs(uri: str, experiment: str):
    """The sweep parent runs of ``experiment`` (temseg.tracking.SweepRun)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], filter_string="tags.`temseg.sweep_key` != ''")
