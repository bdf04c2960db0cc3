"""What each dataset of a report is, and how far its RF answer can be expected to carry to
real micrographs.

The report's answer is only as good as its images. temseg's own evidence (docs/physics.md,
docs/validation.md) says which image sources the authors' real-data networks recognise as
real HRTEM: ``source_sentence`` turns a store's provenance attributes into one sentence with
that evidence, and :func:`data_sources` makes the report's table of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

SOURCE_COLUMNS = ["dataset", "contrast", "source", "realism"]

# The authors' five real-data networks (temseg realism) on each image source; real test dice
# of the same architectures: 0.72-0.78. Numbers from docs/physics.md (sections 4 and 6).
REALISM = {
    ("generator", 1): (
        "not checked against the authors' real-data networks; version 2, its successor, "
        "scores 0.38 mean dice (real data: 0.72-0.78)"
    ),
    ("generator", 2): (
        "the authors' real-data networks score 0.38 mean dice on version 2 (hr-5nm at "
        "0.02152 nm/px; real data: "
        "0.72-0.78): its lattice fringes stand only ~1.9x above the carbon texture, so small "
        "RFs fail here for a reason real images do not have; its RF gains overstate what "
        "real data needs (version 3 and the calibrated multislice show much smaller ones: "
        "docs/validation.md)"
    ),
    ("generator", 3): (
        "version 3 was tuned against the authors' real-data networks: 0.69 mean dice on an "
        "untuned seed of hr-5nm at their 0.02152 nm/px (real data: 0.72-0.78), the 44 px "
        "network the lowest, as on real data; its RF gains are a few hundredths at the "
        "demo's contrasts (docs/validation.md)"
    ),
    ("simulation", 1): (
        "the first multislice model (zone axes, flat film, bare Poisson noise) scores 0.56 "
        "with the authors' real-data networks (real data: 0.72-0.78), which call its carbon "
        "particle: easier and cleaner than real images"
    ),
    ("simulation", 2): (
        "the calibrated multislice model; with its defaults (5 nm Au at 0.02152 nm/px) the "
        "authors' real-data networks score 0.81 mean dice (real data: 0.72-0.78), every "
        "predicted particle fraction within 2x of the truth, but the 44 px network is the "
        "best there, not the worst as on real data; other presets and pixel sizes were not "
        "checked this way"
    ),
}


# What made a synthetic store's images, from its provenance attribute and version.
DESCRIBE: dict[str, Callable[[dict[str, Any], int], str]] = {
    "generator": lambda g, v: (
        f"fast generator version {v}, {g.get('preset')} at C = {g.get('contrast'):g}, "
        f"seed {g.get('seed')}"
    ),
    "simulation": lambda g, v: (
        f"multislice (abTEM) model version {v}, {g.get('preset')}, "
        f"{g.get('dose', 0):g} e/A^2, seed {g.get('seed')}"
    ),
}


def source_sentence(attrs: dict[str, Any]) -> tuple[str, str]:
    """``(source, realism)`` of a patch store's attributes: what made its images, and what
    temseg's real-data probe says of that source ("" when there is nothing to say)."""
    for kind, describe in DESCRIBE.items():
        if kind in attrs:
            version = int(attrs[kind].get("version", 1))
            return describe(attrs[kind], version), REALISM.get((kind, version), "")
    n = len(attrs.get("sources", []))
    if attrs.get("kind") == "ingested":
        return f"real micrographs ({n} file(s))", "real data: the answer is about these images"
    return f"{attrs.get('kind', 'unknown')} store", ""


def data_sources(done: pd.DataFrame, read_attrs: Callable[[str], dict[str, Any]]) -> pd.DataFrame:
    """One row per dataset of the finished trials ``done`` (columns ``dataset``, ``contrast``,
    ``data_path``): its source and realism sentence (SOURCE_COLUMNS). A store that cannot be
    read is named as such instead of failing the report."""
    rows = []
    levels = done.drop_duplicates("dataset").sort_values(["contrast", "dataset"])
    for r in levels.itertuples():
        try:
            source, realism = source_sentence(read_attrs(str(r.data_path)))
        except Exception as exc:  # noqa: BLE001 - a report about the runs still stands
            source, realism = f"store not read ({type(exc).__name__})", ""
        rows.append(
            {"dataset": r.dataset, "contrast": r.contrast, "source": source, "realism": realism}
        )
    return pd.DataFrame(rows, columns=SOURCE_COLUMNS)
