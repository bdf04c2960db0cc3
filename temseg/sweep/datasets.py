"""A sweep's datasets: existing patch stores, or the profile's synthetic contrast series
(created once under ``data/``; planned without creating for ``--dry-run``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from temseg.config import ConfigError
from temseg.sweep.profile import SweepConfig, SyntheticData
from temseg.trial import Dataset

# The generator version of the sweeps' synthetic series. Every documented sweep result (the
# demo, the validation study, the bench table) was measured on version 2; version 3 (tuned
# against the authors' real-data networks on hr-5nm, docs/physics.md section 5) is what
# `temseg synth` makes by default, and the sweeps move to it when they are rerun on it.
SWEEP_GENERATOR_VERSION = 2


def _generator_contrast(attrs: dict[str, Any]) -> float:
    """The contrast knob C of a synthetic store's generator (NaN for any other store)."""
    gen = attrs.get("generator")
    c = gen.get("contrast") if isinstance(gen, dict) else None
    return float(c) if isinstance(c, (int, float)) else float("nan")


def open_datasets(paths: list[str]) -> list[Dataset]:
    """Read the attributes of existing patch stores (clear error for a non-temseg store)."""
    from temseg.data.store import read_attrs

    out = []
    for p in paths:
        path = Path(p).expanduser().resolve()
        attrs = read_attrs(path)
        name = path.name[: -len(".zarr")] if path.name.endswith(".zarr") else path.name
        out.append(
            Dataset(
                str(path),
                name,
                float(attrs["pixel_size_nm"]),
                int(attrs["patch_size"]),
                float("nan") if attrs.get("contrast") is None else float(attrs["contrast"]),
                str(attrs.get("content_hash", "")),
                _generator_contrast(attrs),
            )
        )
    return out


def _generator_options(s: SyntheticData) -> dict[str, Any]:
    """The series' knobs as the generator's keywords, ``generator_version`` as ``version``
    (the sweeps' pinned :data:`SWEEP_GENERATOR_VERSION` when unset)."""
    opts = dict(s.knobs)
    opts["version"] = opts.pop("generator_version", SWEEP_GENERATOR_VERSION)
    return opts


def synthetic_datasets(cfg: SweepConfig, data_dir: Path) -> list[str]:
    """Create (or reuse) the profile's synthetic contrast series; return the store paths.

    The stores go to ``cfg.synthetic.series_dir(data_dir)``: ``data_dir`` itself, or a folder
    of their own when generator knobs are set. :func:`synthetic_series` also names them.
    """
    from temseg.data.synth import make_contrast_series

    s = cfg.synthetic
    out_dir = s.series_dir(data_dir)
    knobs = s.describe_knobs()
    print(
        f"datasets: synthetic {s.preset} contrast series {list(s.contrasts)} "
        f"({s.images} images of {s.image_size} px, {s.patch_size} px patches, seed {s.seed}"
        f"{'; ' + knobs if knobs else ''}) under {out_dir}",
        flush=True,
    )
    paths = make_contrast_series(
        out_dir,
        contrasts=s.contrasts,
        preset=s.preset,
        images=s.images,
        seed=s.seed,
        image_size=s.image_size,
        patch_size=s.patch_size,
        **_generator_options(s),
    )
    return [str(p) for p in paths]


def synthetic_series(cfg: SweepConfig, data_dir: Path) -> list[Dataset]:
    """The profile's synthetic series as datasets (created or reused), named by their knobs."""
    s = cfg.synthetic
    return [
        dataclasses.replace(ds, name=s.dataset_name(ds.name))
        for ds in open_datasets(synthetic_datasets(cfg, data_dir))
    ]


def planned_datasets(cfg: SweepConfig, data_dir: Path) -> list[Dataset]:
    """Datasets for a dry run: real stores when given, else the synthetic series as planned."""
    if cfg.data:
        return open_datasets(list(cfg.data))
    from temseg.data.synth import generator_params, store_name

    s = cfg.synthetic
    out_dir = s.series_dir(data_dir)
    opts = _generator_options(s)
    opts.pop("split_fractions", None)  # not the image model
    opts.update(image_size=s.image_size)
    out = []
    for c in s.contrasts:
        # the generator's own parameters (the knobs validated as the real run would)
        try:
            px = float(generator_params(s.preset, contrast=c, **opts).pixel_size_nm)
        except ValueError as exc:
            raise ConfigError(f"synthetic series: {exc}") from None
        stem = store_name(s.preset, c, s.seed).removesuffix(".zarr")
        name = f"{s.dataset_name(stem)}(planned)"
        out.append(Dataset(str(out_dir / stem), name, px, s.patch_size, c, level=c))
    return out
