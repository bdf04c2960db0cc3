"""One schema for what a trial writes to MLflow (temseg.schema): the writer writes exactly the
declared fields, and every field written is read by a reader or declared write-only."""

from __future__ import annotations

import math

from temseg import schema, train
from temseg.analysis import collect
from temseg.config import TrainConfig
from temseg.sweep.search import runs, table
from temseg.trial import Dataset, Trial

TRIAL = Trial(
    Dataset("/data/discs128.zarr", "discs128", 0.02, 128, 1.5, "ab" * 32),
    TrainConfig(data="/data/discs128.zarr", num_blocks=2, pools=(4, 2), epochs=2),
    profile="smoke",
    study="s",
)


def written() -> set[str]:
    """Every name a trial's run gets: params and tags (Trial.mlflow), the metrics fit reports
    that tracking logs, and the tags tracking and the trainable add."""
    params, tags = TRIAL.mlflow()
    fit_metrics = train.EPOCH_METRICS + train.TIMED_METRICS + train.ERF_METRICS
    final = ("test_hard_dice", "test_soft_dice", "test_loss", "best_epoch", "best_val_hard_dice")
    added = (schema.TAG_TRIAL_KEY, schema.TAG_ERROR, schema.TAG_PARENT)
    added += (schema.TAG_NODE_ID, schema.TAG_NODES, schema.TAG_ATTEMPTS)
    return set(params) | set(tags) | set(fit_metrics) | set(final) | set(added)


def read() -> set[str]:
    """Every name a reader reads: collect's columns and tags, the benchmark table's curves,
    the search's runs."""
    return set(
        collect.INT_PARAMS
        + collect.FLOAT_PARAMS
        + collect.STR_PARAMS
        + collect.FINAL_METRICS
        + collect.HISTORY_METRICS
        + collect.READ_TAGS
        + tuple(table.EPOCH_METRICS.values())
        + runs.READ_METRICS
        + runs.READ_TAGS
    )


def declared() -> set[str]:
    return set(schema.PARAMS) | set(schema.EPOCH_METRICS + schema.FINAL_METRICS + schema.TAGS)


def test_the_writer_writes_exactly_the_declared_params_with_their_types():
    params, _ = TRIAL.mlflow()
    assert list(params) == list(schema.PARAMS)
    for name, value in params.items():
        kind = schema.PARAMS[name]
        assert isinstance(value, kind) and not (kind is int and isinstance(value, bool)), name
        assert not (isinstance(value, float) and math.isnan(value)), name


def test_every_written_field_is_declared_and_read_or_write_only():
    assert written() <= declared(), f"written, not declared: {written() - declared()}"
    assert declared() <= written(), f"declared, never written: {declared() - written()}"
    neither = {f for f in written() if f not in read() and f not in schema.WRITE_ONLY}
    assert not neither, f"written, neither read nor declared write-only: {sorted(neither)}"
    both = read() & set(schema.WRITE_ONLY)
    assert not both, f"declared write-only but read: {sorted(both)}"


def test_the_readers_read_only_declared_fields():
    assert read() <= declared(), f"read, never written: {read() - declared()}"


def test_the_check_fails_for_a_field_nobody_reads(monkeypatch):
    """The test above can fail: a param the writer adds that no reader reads is caught."""
    original = Trial.mlflow

    def with_extra(self):
        params, tags = original(self)
        return {**params, "momentum": 0.9}, tags

    monkeypatch.setattr(Trial, "mlflow", with_extra)
    monkeypatch.setitem(schema.PARAMS, "momentum", float)
    neither = {f for f in written() if f not in read() and f not in schema.WRITE_ONLY}
    assert neither == {"momentum"}
