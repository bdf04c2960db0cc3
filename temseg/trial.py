"""A trial: what one training run trains, typed and frozen, with one key and one MLflow face.

A :class:`Trial` holds a dataset, the resolved :class:`temseg.config.TrainConfig` (the
architecture, seed, protocol and precision: exactly what ``fit`` receives, saves beside the
checkpoint and what MLflow logs) and how it was planned (profile; ``grid`` or a search and
its study). Where it runs (device, GPU share, workers) is not part of it.

Everything derived from a trial comes from one place here: its stable key
(:meth:`Trial.key`, the ``temseg.trial_key`` tag by which a retried or resumed trial finds
its own MLflow run), its run name, its MLflow params and tags (:meth:`Trial.mlflow`), and the
plain dict Ray Tune carries (:meth:`Trial.to_ray`, ``{"train", "meta"}``; Ray's param space
and its experiment snapshots hold JSON-like values). Pure: no Ray, MLflow or torch import.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from temseg.config import RESOURCE_KEYS, TrainConfig, from_dict, to_dict
from temseg.receptive_field import Architecture, format_seq

# MLflow tags of a trial's run, one name each (the MLflow boundary).
TAG_TRIAL_KEY = "temseg.trial_key"
TAG_SEARCH = "temseg.search"  # "grid", or the search method ("optuna")
TAG_STRATEGY = "temseg.strategy"  # "pooling" or "dilation": where the RF comes from
TAG_PROFILE = "temseg.profile"
TAG_STUDY = "temseg.study"  # a search's study (dataset, objective, sampler seed)
TAG_ERROR = "temseg.error"
GRID = "grid"
# a finished trial's per-test-image pixel counts (temseg.train.write_test_images), logged as
# an artifact at the root of its run for the bootstrap over test images (temseg.analysis)
TEST_IMAGES_FILE = "test_images.json"
TEST_IMAGES_FORMAT = "temseg-test-images/1"


def trial_key(train_config: dict[str, Any]) -> str:
    """Stable id of a trial: everything that changes what is trained, nothing about resources.

    ``train_config`` is a :func:`temseg.config.to_dict` of a TrainConfig plus any scope keys
    (``experiment``, a search's ``study``). SHA-256 of its sorted JSON, 16 hex digits: the
    value every existing MLflow store was keyed with, so it must never change.
    """
    keep = {k: v for k, v in train_config.items() if k not in RESOURCE_KEYS}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


TAG_DATASET = "temseg.dataset"
TAG_ARCH = "temseg.architecture"  # e.g. N2-p4.4-d1.1.1
TAG_PARENT = "mlflow.parentRunId"  # MLflow's own: the sweep's parent run (temseg.tracking)
TAG_SWEEP_KEY = "temseg.sweep_key"  # on a parent run only: same sweep config, same parent


def run_name(dataset: str, arch: Architecture, seed: int, level: float = float("nan")) -> str:
    """A name that reads in MLflow's run table, e.g. ``c0.060 N2 p4-4 s752``.

    The dataset, the network and the seed. The network is :attr:`Architecture.short_label`,
    the compact form of the name users read everywhere else (``N=2 pools 4-4 dilations
    1-1-1``): MLflow's run-name column shows about 20 characters, and the long form left every
    trial of a contrast level reading ``c0.090 N=2 poo...`` there. The generator's contrast
    level C stands for the dataset when the store has one (a synthetic series:
    ``hr-2.2nm-c0.060-s0``), else the dataset's name does. The trial key, not the name,
    identifies a run (tag ``temseg.trial_key``); the dataset and the architecture's id are
    tags too.

    >>> run_name("hr-2.2nm-c0.060-s0", Architecture(2, (4, 4)), 752, 0.06)
    'c0.060 N2 p4-4 s752'
    >>> run_name("discs", Architecture(2, (2, 2), (1, 2, 2)), 140)
    'discs N2 p2-2 d1-2-2 s140'
    """
    where = f"c{level:.3f}" if level == level else dataset
    return f"{where} {arch.short_label} s{seed}"


@dataclass(frozen=True)
class Dataset:
    """A patch store a sweep trains on: its absolute path, name and imaging attributes."""

    path: str  # absolute
    name: str
    pixel_size_nm: float
    patch_size: int
    contrast: float
    digest: str = ""  # the store's content hash (temseg.data.store), "" when not yet made
    level: float = float("nan")  # a synthetic store's generator contrast C (its name's c0.090)

    def mlflow_input(self) -> dict[str, Any]:
        """The store as an MLflow dataset input (:meth:`temseg.tracking.TrialRun`): name,
        digest (MLflow keeps at most 36 characters: the first 32 hex digits of the content
        hash; the whole hash is in the profile), source (its path) and its imaging profile."""
        profile = {
            "pixel_size_nm": self.pixel_size_nm,
            "patch_size": self.patch_size,
            "contrast": None if self.contrast != self.contrast else self.contrast,
            "content_hash": self.digest,
        }
        return {
            "name": self.name,
            "digest": self.digest[:32],
            "source": self.path,
            "profile": profile,
        }


@dataclass(frozen=True)
class Trial:
    """One training: a dataset and the resolved TrainConfig, planned by ``search``."""

    dataset: Dataset
    train: TrainConfig
    profile: str
    search: str = GRID
    study: str | None = None  # a search's study: part of the key, so studies never share runs

    @property
    def architecture(self) -> Architecture:
        t = self.train
        return Architecture(t.num_blocks, t.pools, t.dilations)

    @property
    def run_name(self) -> str:
        ds = self.dataset
        return run_name(ds.name, self.architecture, self.train.seed, ds.level)

    def key(self, experiment_id: str) -> str:
        """The trial key within MLflow experiment ``experiment_id`` (and the study, if any)."""
        scope: dict[str, Any] = {"experiment": experiment_id}
        if self.study is not None:
            scope["study"] = self.study
        return trial_key({**to_dict(self.train), **scope})

    def mlflow(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The MLflow params and tags of this trial's run: the one place they are made."""
        ds, t, arch = self.dataset, self.train, self.architecture
        lo, hi = arch.rf_exact
        params = {
            "dataset": ds.name,
            "data_path": ds.path,
            "contrast": round(ds.contrast, 6),
            "pixel_size_nm": ds.pixel_size_nm,
            "num_blocks": arch.num_blocks,
            "pools": format_seq(arch.pools),
            "dilations": format_seq(arch.dilations),
            "seed": t.seed,
            "epochs": t.epochs,
            "lr": t.lr,
            "batch_size": t.batch_size,
            "lr_schedule": t.lr_schedule,
            "val_dihedral": t.val_dihedral,
            "precision": t.precision,
            "rf_px": arch.rf_px,
            "rf_nm": round(arch.rf_px * ds.pixel_size_nm, 4),
            "rf_exact_min_px": lo,
            "rf_exact_max_px": hi,
            "n_params": arch.n_params,
        }
        tags = {
            TAG_SEARCH: self.search,
            TAG_STRATEGY: arch.strategy,
            TAG_PROFILE: self.profile,
            TAG_DATASET: ds.name,
            TAG_ARCH: arch.name,
        }
        if self.study is not None:
            tags[TAG_STUDY] = self.study
        return params, tags

    def to_ray(
        self,
        *,
        tracking_uri: str,
        experiment_id: str,
        gpus_per_trial: float = 0.0,
        parent_run_id: str | None = None,
    ) -> dict[str, Any]:
        """The plain ``{"train", "meta"}`` dict Ray Tune carries to the trainable
        (``parent_run_id``: the sweep's MLflow parent run, whose child this trial's run is)."""
        params, tags = self.mlflow()
        return RayTrial(
            train=self.train,
            run_name=self.run_name,
            trial_key=self.key(experiment_id),
            tracking_uri=tracking_uri,
            experiment_id=experiment_id,
            gpus_per_trial=gpus_per_trial,
            params=params,
            tags=tags,
            parent_run_id=parent_run_id,
            dataset_input=self.dataset.mlflow_input(),
        ).encode()


# What Ray carries for a trial besides its TrainConfig, in the order the wire form lists it.
_RAY_FIELDS = (
    "run_name",
    "trial_key",
    "tracking_uri",
    "experiment_id",
    "gpus_per_trial",
    "params",
    "tags",
    "parent_run_id",
    "dataset_input",
)


@dataclass(frozen=True)
class RayTrial:
    """A planned trial as the trainable, the progress lines and the results see it.

    Ray Tune carries :meth:`encode`'s plain ``{"train", "meta"}`` dict (its param space and
    experiment snapshots hold JSON-like values, and sweeps snapshotted by earlier versions
    restore from that same shape); whoever receives one calls :meth:`decode` once and reads
    typed fields from then on. The wire keys are known here only.
    """

    train: TrainConfig
    run_name: str
    trial_key: str
    tracking_uri: str
    experiment_id: str
    params: dict[str, Any]  # the run's MLflow params (Trial.mlflow)
    tags: dict[str, str]  # the run's MLflow tags (Trial.mlflow)
    gpus_per_trial: float = 0.0
    parent_run_id: str | None = None  # the sweep's MLflow parent run
    dataset_input: dict[str, Any] | None = None  # Dataset.mlflow_input

    @property
    def dataset(self) -> str:
        return str(self.params["dataset"])

    @property
    def architecture(self) -> Architecture:
        return self.train.model

    @property
    def rf_nm(self) -> float:
        return float(self.params["rf_nm"])

    def encode(self) -> dict[str, Any]:
        """The plain dict Ray Tune carries: ``{"train": TrainConfig as a dict, "meta": ...}``."""
        return {
            "train": to_dict(self.train),
            "meta": {name: getattr(self, name) for name in _RAY_FIELDS},
        }

    @classmethod
    def decode(cls, data: dict[str, Any]) -> RayTrial:
        """The typed trial of an :meth:`encode`'d dict (also one a Ray snapshot kept)."""
        meta = data["meta"]
        return cls(
            train=from_dict(TrainConfig, dict(data["train"])),
            **{name: meta.get(name) for name in _RAY_FIELDS if name in meta},
        )

    @classmethod
    def of(cls, config: dict[str, Any]) -> RayTrial:
        """The trial of a Ray trial's ``config`` (the grid's and the search's param space put
        the encoded trial under ``"trial"``)."""
        return cls.decode(config["trial"])


@dataclass(frozen=True)
class TrialResult:
    """How one trial of a grid or a search ended: its last reported metrics, and its error
    (``None`` when it finished)."""

    trial: RayTrial
    metrics: dict[str, Any]
    error: str | None = None
