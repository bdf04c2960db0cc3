"""What a trial writes to MLflow, declared once: its params, tags and metrics, and who reads them.

The writer (:meth:`temseg.trial.Trial.mlflow` for params and tags,
:class:`temseg.tracking.TrialRun` for metrics, the trainable for where it ran) writes these
names; the readers (:mod:`temseg.analysis.collect`, the benchmark table
:mod:`temseg.sweep.search.table`, the search's runs :mod:`temseg.sweep.search.runs`) take theirs from here.
A field no reader reads is declared in :data:`WRITE_ONLY` with why it is written;
``tests/test_schema.py`` fails when a written field is neither read nor declared so. Pure.
"""

from __future__ import annotations

from temseg.trial import (
    TAG_ARCH,
    TAG_DATASET,
    TAG_ERROR,
    TAG_PARENT,
    TAG_PROFILE,
    TAG_SEARCH,
    TAG_STRATEGY,
    TAG_STUDY,
    TAG_TRIAL_KEY,
)

# Params of a trial's run (MLflow stores them as strings): name -> the type readers parse.
PARAMS: dict[str, type] = {
    "dataset": str,
    "data_path": str,
    "contrast": float,
    "pixel_size_nm": float,
    "num_blocks": int,
    "pools": str,  # "4-2": temseg.receptive_field.format_seq
    "dilations": str,
    "seed": int,
    "epochs": int,
    "lr": float,
    "batch_size": int,
    "lr_schedule": str,
    "val_dihedral": bool,
    "precision": str,
    "rf_px": int,
    "rf_nm": float,
    "rf_exact_min_px": int,
    "rf_exact_max_px": int,
    "n_params": int,
}

# Metrics with step = epoch (1..epochs), as temseg.train.fit reports them every epoch.
EPOCH_METRICS = (
    "train_loss",
    "val_loss",
    "train_hard_dice",
    "val_hard_dice",
    "val_soft_dice",
    "epoch_seconds",  # that epoch's training and validation time
    "epoch_test_hard_dice",  # with record_test only (temseg.train)
)
# The learning curves of a trial (what the analysis plots and tables by default).
CURVES = EPOCH_METRICS[:5]
# Metrics logged once, when the trial finishes (step 0): the best checkpoint's.
FINAL_METRICS = (
    "test_hard_dice",
    "test_soft_dice",
    "test_loss",
    "best_epoch",
    "best_val_hard_dice",  # the model-selection score (the registry picks seeds by it)
    "erf50_px",  # effective receptive field of the best checkpoint (temseg.erf)
    "erf95_px",
    "erf95_nm",
)

# A registered network's card, beside its checkpoint in the run's artifacts (written by
# temseg.tracking.register_checkpoint, read by temseg.segment).
MODEL_CARD = "temseg_model.json"

# Where each try of a trial ran (temseg.sweep.runtime.trainable).
TAG_NODE_ID, TAG_NODES, TAG_ATTEMPTS = "temseg.node_id", "temseg.nodes", "temseg.attempts"
TAGS = (
    TAG_TRIAL_KEY,
    TAG_SEARCH,
    TAG_STRATEGY,
    TAG_PROFILE,
    TAG_DATASET,
    TAG_ARCH,
    TAG_STUDY,
    TAG_ERROR,
    TAG_PARENT,
    TAG_NODE_ID,
    TAG_NODES,
    TAG_ATTEMPTS,
)

# Written for people (MLflow's table, filters, charts) or for the trial itself, read by no
# temseg reader: why each is written.
WRITE_ONLY = {
    "lr_schedule": "the protocol in MLflow's table (the trial key holds it)",
    "val_dihedral": "the protocol in MLflow's table (the trial key holds it)",
    "precision": "the protocol in MLflow's table (the trial key holds it)",
    "test_loss": "beside the test dice in MLflow's table; the analysis compares dice",
    TAG_PROFILE: "which profile planned the trial, for MLflow's filters",
    TAG_DATASET: "the dataset's full name, for MLflow's filters (the run name abbreviates it)",
    TAG_ARCH: "the network's full name, for MLflow's filters (the run name abbreviates it)",
    TAG_PARENT: "MLflow's own: nests the trial under the sweep's parent run",
    TAG_NODE_ID: "where this try runs (a cluster's node), for people and the cluster tests",
    TAG_NODES: "every node the trial ran on, for people and the cluster tests",
    TAG_ATTEMPTS: "read back by the trainable itself to count its tries",
}


def read_params(kind: type) -> tuple[str, ...]:
    """The params of type ``kind`` that readers parse (every param not write-only).

    >>> read_params(float)
    ('contrast', 'pixel_size_nm', 'lr', 'rf_nm')
    """
    return tuple(k for k, t in PARAMS.items() if t is kind and k not in WRITE_ONLY)


def read_metrics(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` without the write-only ones, in order."""
    return tuple(m for m in names if m not in WRITE_ONLY)
