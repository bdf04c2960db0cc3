"""A trial's identity: its key, run name, MLflow params and tags must not drift.

Resume depends on the key: a sweep or search resumed against an existing MLflow store finds
its runs by the tag ``temseg.trial_key``. The golden values below were computed by the code
as it stood before the sweep layer was reshaped (issue 14, commit 6631535), so any change to
how a trial is keyed or logged fails here first.
"""

from __future__ import annotations

import dataclasses

import pytest

from temseg.config import TrainConfig
from temseg.receptive_field import Architecture
from temseg.sweep.profile import SweepConfig
from temseg.sweep.space import build_trials
from temseg.trial import Dataset, RayTrial

DS = Dataset("/data/discs128.zarr", "discs128", 0.02, 128, 0.1)
CFG = SweepConfig(
    profile="smoke",
    blocks=(2,),
    pools=("4-2",),
    dilation_variants=False,
    seeds=(752,),
    epochs=2,
    lr=1e-3,
    batch_size=8,
    precision="fp32",
)
PARAMS = {
    "batch_size": 8,
    "contrast": 0.1,
    "data_path": "/data/discs128.zarr",
    "dataset": "discs128",
    "dilations": "1-1-1",
    "epochs": 2,
    "lr": 0.001,
    "lr_schedule": "constant",
    "n_params": 8074,
    "num_blocks": 2,
    "pixel_size_nm": 0.02,
    "pools": "4-2",
    "precision": "fp32",
    "rf_exact_max_px": 84,
    "rf_exact_min_px": 76,
    "rf_nm": 1.6,
    "rf_px": 80,
    "seed": 752,
    "val_dihedral": True,
}
TAGS = {
    "temseg.profile": "smoke",
    "temseg.search": "grid",
    "temseg.strategy": "pooling",
    # since issue 15: the run name reads in MLflow's table; dataset and network are tags
    "temseg.dataset": "discs128",
    "temseg.architecture": "N2-p4.2-d1.1.1",
}


def test_a_known_grid_trial_keeps_its_key_name_params_and_tags():
    (trial,) = build_trials(CFG, [DS], tracking_uri="sqlite:////tmp/x.db", experiment_id="7")
    meta = trial["meta"]
    assert meta["trial_key"] == "2cf69e9a54cf7c61"
    # the name changed in issue 15 (it was "discs128/N2-p4.2-d1.1.1-s752"); the key did not
    assert meta["run_name"] == "discs128 N2 p4-2 s752"
    assert meta["params"] == PARAMS
    assert meta["tags"] == TAGS
    assert meta["parent_run_id"] is None
    assert meta["dataset_input"] == {
        "name": "discs128",
        "digest": "",
        "source": "/data/discs128.zarr",
        "profile": {"pixel_size_nm": 0.02, "patch_size": 128, "contrast": 0.1, "content_hash": ""},
    }
    assert trial["train"]["pools"] == [4, 2] and trial["train"]["dilations"] == [1, 1, 1]


def test_a_known_search_trial_keeps_its_key_and_tags():
    from temseg.sweep.search import TrialFactory

    factory = TrialFactory(CFG, DS, "sqlite:////tmp/x.db", "7", "discs128/optuna-dice-s0")
    trial = factory(Architecture(2, (4, 2), (1, 1, 1)))
    assert trial["meta"]["trial_key"] == "972acc0586449ddb"
    assert trial["meta"]["params"] == PARAMS
    assert trial["meta"]["tags"] == {
        **TAGS,
        "temseg.search": "optuna",
        "temseg.study": "discs128/optuna-dice-s0",
    }


def test_a_synthetic_store_is_named_by_its_generator_contrast():
    ds = Dataset("/data/hr.zarr", "hr-2.2nm-c0.090-s0_px0.04", 0.04, 192, 0.436, level=0.09)
    (trial,) = build_trials(CFG, [ds], tracking_uri="sqlite:////tmp/x.db", experiment_id="7")
    assert trial["meta"]["run_name"] == "c0.090 N2 p4-2 s752"  # C, not the measured 0.436
    assert trial["meta"]["params"]["contrast"] == 0.436


def test_the_wire_form_decodes_once_into_a_typed_trial_and_back():
    """What Ray carries ({"train", "meta"}, also in snapshots of earlier sweeps) decodes into
    a frozen RayTrial with a TrainConfig, and encodes back to the same dict."""
    (wire,) = build_trials(CFG, [DS], tracking_uri="sqlite:////tmp/x.db", experiment_id="7")
    trial = RayTrial.decode(wire)
    assert isinstance(trial.train, TrainConfig) and trial.train.pools == (4, 2)
    assert trial.trial_key == "2cf69e9a54cf7c61" and trial.architecture.rf_px == 80
    assert trial.dataset == "discs128" and trial.rf_nm == 1.6
    assert trial.encode() == wire
    assert RayTrial.of({"trial": wire}) == trial
    with pytest.raises(dataclasses.FrozenInstanceError):
        trial.run_name = "x"  # type: ignore[misc]
