"""The report's 'What the images are': each store's source and what the real-data probe says
of it, read from real stores' attributes."""

from __future__ import annotations

import pandas as pd
import pytest

from temseg.analysis import provenance
from temseg.data.store import read_attrs
from temseg.data.synth import make_contrast_series


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("prov")
    made = {}
    for version in (2, 3):
        (path,) = make_contrast_series(
            root / f"v{version}",
            contrasts=[0.09],
            preset="hr-2.2nm",
            images=3,
            seed=4,
            image_size=128,
            patch_size=128,
            pixel_size_nm=0.04,
            min_particle_px=0,
            version=version,
        )
        made[version] = path
    return made


def test_generator_versions_get_their_own_evidence(stores):
    source, realism = provenance.source_sentence(read_attrs(stores[2]))
    assert source == "fast generator version 2, hr-2.2nm at C = 0.09, seed 4"
    assert realism.startswith("the authors' real-data networks score 0.38 mean dice")
    source, realism = provenance.source_sentence(read_attrs(stores[3]))
    assert source == "fast generator version 3, hr-2.2nm at C = 0.09, seed 4"
    assert "0.69 mean dice on an untuned seed" in realism


def test_multislice_and_real_and_unknown_sources():
    sim = {"simulation": {"version": 2, "preset": "hr-5nm", "dose": 423.0, "seed": 11}}
    source, realism = provenance.source_sentence(sim)
    assert source == "multislice (abTEM) model version 2, hr-5nm, 423 e/A^2, seed 11"
    assert "0.81 mean dice" in realism and "not the worst" in realism
    assert provenance.source_sentence({"simulation": {"preset": "hr-2.2nm", "dose": 80}})[
        1
    ].startswith("the first multislice model")
    real = {"kind": "ingested", "sources": ["a.dm4", "b.dm4"]}
    assert provenance.source_sentence(real)[0] == "real micrographs (2 file(s))"
    assert provenance.source_sentence({"kind": "other"}) == ("other store", "")


def test_table_one_row_per_dataset_and_unreadable_stores_named(stores):
    done = pd.DataFrame(
        {
            "dataset": ["b", "a", "a", "gone"],
            "contrast": [0.9, 0.4, 0.4, 0.5],
            "data_path": [str(stores[3]), str(stores[2]), str(stores[2]), "/nonexistent.zarr"],
        }
    )
    table = provenance.data_sources(done, read_attrs)
    assert list(table.columns) == provenance.SOURCE_COLUMNS
    assert list(table["dataset"]) == ["a", "gone", "b"]  # by contrast, each once
    assert table.loc[1, "source"].startswith("store not read (")
    assert table.loc[2, "source"].startswith("fast generator version 3")
