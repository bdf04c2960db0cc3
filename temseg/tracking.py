"""The only module that writes to MLflow: run names, params, per-epoch curves, artifacts,
and the Model Registry entry of each dataset's recommended network.

One MLflow run per trial. A trial is identified across retries and sweep resumes by the tag
``temseg.trial_key`` (a hash of everything that defines the training: data, architecture, seed,
protocol), so a restarted trial continues its own run instead of opening a second one, and a
trial whose run already finished is not trained again.

Tracking URIs: ``sqlite:///<absolute path>`` locally (MLflow 3 refuses plain file stores), or
``http://host:port`` for a tracking server that trials on other nodes can reach. With SQLite
the experiment's artifacts go to an absolute folder beside the database (Ray Tune changes the
working directory of each trial, so nothing here may be relative).
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from temseg import schema
from temseg.trial import (
    TAG_ERROR,
    TAG_PARENT,
    TAG_SWEEP_KEY,
    TAG_TRIAL_KEY,
    TEST_IMAGES_FILE,
    RayTrial,
)



class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be used."""


def check_tracking(uri: str, *, timeout: float = 5.0) -> None:
    """Fail fast, before any trial is scheduled, when the store cannot be reached."""
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                if response.status != 200:
                    raise TrackingError(
                        f"MLflow server {uri} answered {response.status} on /health"
                    )
        except (urllib.error.URLError, OSError) as exc:
            raise TrackingError(
                f"MLflow server {uri} is unreachable ({getattr(exc, 'reason', exc)}); start it "
                f"(e.g. `mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri "
                f"sqlite:///$PWD/mlruns.db`) or pass another --tracking-uri"
            ) from None
    elif uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        if not path.is_absolute():
            raise TrackingError(f"SQLite tracking URI must hold an absolute path: {uri}")
        if not path.parent.is_dir():
            raise TrackingError(f"folder of the tracking database does not exist: {path.parent}")
    else:
        raise TrackingError(
            f"unsupported tracking URI {uri!r}: use sqlite:///<absolute path> or http://host:port"
        )


# MLflow 3's UI opens an experiment as model training (runs, charts) only with this tag;
# untagged, it opens the GenAI view (traces) and the runs are one toggle away
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def ensure_experiment(uri: str, name: str) -> str:
    """Id of experiment ``name``, creating it (with absolute artifact storage for SQLite),
    tagged as model training for MLflow's UI (also when it already existed untagged)."""
    check_tracking(uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if uri.startswith("sqlite:///"):
            root = Path(uri[len("sqlite:///") :]).parent / "mlartifacts"
            location = (root / name).resolve().as_uri()
        try:
            client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
        except Exception:  # created concurrently by someone else
            pass
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise RuntimeError(f"MLflow experiment {name!r} could not be created at {uri}")
    for key, value in EXPERIMENT_KIND.items():
        if exp.tags.get(key) != value:
            client.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


def find_runs(uri: str, experiment_id: str, key: str) -> list:
    client = MlflowClient(uri)
    return client.search_runs(
        [experiment_id], filter_string=f"tags.`{TAG_TRIAL_KEY}` = '{key}'", max_results=10
    )


class TrialRun:
    """The MLflow run of one trial: created once, continued after a retry or a resume."""

    def __init__(
        self,
        uri: str,
        experiment_id: str,
        key: str,
        name: str,
        params: dict[str, Any],
        tags: dict[str, str],
        parent_run_id: str | None = None,
        dataset_input: dict[str, Any] | None = None,
    ) -> None:
        self.client = MlflowClient(uri)
        existing = find_runs(uri, experiment_id, key)
        if existing:
            run = existing[0]
            self.run_id = run.info.run_id
            self.finished = run.info.status == "FINISHED" and "test_hard_dice" in run.data.metrics
            self.final = dict(run.data.metrics)
            self.tags = dict(run.data.tags)
            if not self.finished:
                self.client.update_run(self.run_id, status="RUNNING")
            # a run made before parents and dataset inputs existed gets them now; a trial the
            # current sweep shares with an earlier one becomes the current sweep's child
            if parent_run_id and self.tags.get(TAG_PARENT) != parent_run_id:
                self.set_tags({TAG_PARENT: parent_run_id})
            if dataset_input and not (run.inputs and run.inputs.dataset_inputs):
                log_dataset_input(self.client, self.run_id, dataset_input)
        else:
            first = {TAG_TRIAL_KEY: key, **tags}
            if parent_run_id:
                first[TAG_PARENT] = parent_run_id
            run = self.client.create_run(experiment_id, run_name=name, tags=first)
            self.run_id = run.info.run_id
            self.finished = False
            self.final = {}
            self.tags = first
            self.client.log_batch(
                self.run_id, params=[Param(k, _param(v)) for k, v in params.items()]
            )
            if dataset_input:
                log_dataset_input(self.client, self.run_id, dataset_input)

    @classmethod
    def for_trial(cls, trial: RayTrial) -> TrialRun:
        """The run of a planned trial (:class:`temseg.trial.RayTrial`), created or found."""
        return cls(
            trial.tracking_uri,
            trial.experiment_id,
            trial.trial_key,
            trial.run_name,
            params=trial.params,
            tags=trial.tags,
            parent_run_id=trial.parent_run_id,
            dataset_input=trial.dataset_input,
        )

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set (or overwrite) tags of the run, e.g. where this try of the trial runs."""
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        self.tags.update({k: str(v) for k, v in tags.items()})

    def last_logged_epoch(self) -> int:
        history = self.client.get_metric_history(self.run_id, "val_hard_dice")
        return max((m.step for m in history), default=0)

    def log_epoch(self, row: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        step = int(row["epoch"])
        metrics = [Metric(k, float(row[k]), now, step) for k in schema.EPOCH_METRICS if k in row]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, row: dict[str, Any], workdir: Path) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(row[k]), now, 0) for k in schema.FINAL_METRICS if k in row]
        self.client.log_batch(self.run_id, metrics=metrics)
        self.client.log_artifact(self.run_id, str(workdir / "best.pt"), "checkpoint")
        self.client.log_artifact(self.run_id, str(workdir / "config.json"), "checkpoint")
        if (workdir / TEST_IMAGES_FILE).exists():  # per test image counts (temseg.train)
            self.client.log_artifact(self.run_id, str(workdir / TEST_IMAGES_FILE))
        if TAG_ERROR in self.tags:  # an earlier try crashed; this one finished
            self.client.delete_tag(self.run_id, TAG_ERROR)
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FINISHED))

    def stop(self) -> None:
        """The trial was stopped before it finished (early stopping, shutdown)."""
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.KILLED))

    def fail(self, message: str) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(TAG_ERROR, message[:4000])])
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FAILED))


def log_dataset_input(client: Any, run_id: str, ds: dict[str, Any]) -> None:
    """Log a patch store as the run's MLflow dataset input (context ``training``): its name,
    digest, path and profile (:meth:`temseg.trial.Dataset.mlflow_input`).

    Trials that start together log the same dataset at once. MLflow looks the dataset up and
    inserts it when missing, so all but one of them fail the store's unique constraint on
    (experiment, name, digest) (seen on a fresh demo: a trial lost one of its retries to it).
    The dataset exists by then, so the input is logged again, once, and links it.
    """
    from mlflow.exceptions import MlflowException

    try:
        _log_dataset_input(client, run_id, ds)
    except MlflowException as exc:
        if not _lost_insert_race(exc):
            raise
        _log_dataset_input(client, run_id, ds)


def _lost_insert_race(exc: Exception) -> bool:
    """Whether a backend refused a row another writer inserted first (SQLite, PostgreSQL,
    MySQL wordings of a unique-constraint violation)."""
    text = str(exc)
    return any(m in text for m in ("UNIQUE constraint failed", "duplicate key", "Duplicate entry"))


def _log_dataset_input(client: Any, run_id: str, ds: dict[str, Any]) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(
        name=ds["name"],
        digest=ds["digest"] or "unknown",
        source_type="local",
        source=json.dumps({"uri": ds["source"]}),
        profile=json.dumps(ds["profile"]),
    )
    client.log_inputs(
        run_id, datasets=[DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])]
    )


def _param(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# ----------------------------------------------------------------------------- registry

REGISTRY_PREFIX = "temseg-"
RECOMMENDED_ALIAS = "recommended"
MODEL_ARTIFACT_DIR = "temseg_model"  # in the trial's run: the checkpoint and its card
TAG_PIXEL_SIZE = "temseg.pixel_size_nm"


def registered_model_name(dataset: str) -> str:
    """``temseg-<dataset>``, with characters outside ``[A-Za-z0-9._-]`` replaced by ``_``.

    >>> registered_model_name("hr-2.2nm-c0.060-s0")
    'temseg-hr-2.2nm-c0.060-s0'
    """
    import re

    return REGISTRY_PREFIX + re.sub(r"[^A-Za-z0-9._-]+", "_", dataset)


def register_checkpoint(
    uri: str,
    run_id: str,
    name: str,
    *,
    pixel_size_nm: float,
    card: dict[str, Any] | None = None,
    alias: str = RECOMMENDED_ALIAS,
    checkpoint: str = "checkpoint/best.pt",
) -> str:
    """Register a trial's temseg checkpoint as a version of model ``name`` and point ``alias``
    at it; returns the version.

    The version is an artifact folder of the trial's run, ``temseg_model/``, holding the
    checkpoint (state dict + config; loaded with ``weights_only=True``, so loading never
    unpickles code) and ``temseg_model.json`` (pixel size and provenance). No MLflow model
    flavor is involved: ``temseg segment --model models:/<name>@<alias>`` downloads the
    folder and loads the checkpoint itself. When ``alias`` already points at a version of
    this run, that version is kept and no new one is made.
    """
    import tempfile

    from mlflow.exceptions import MlflowException

    client = MlflowClient(uri, registry_uri=uri)
    try:
        current = client.get_model_version_by_alias(name, alias)
        if current.run_id == run_id:
            return current.version
    except MlflowException:
        pass
    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="temseg-register-") as tmp:
        folder = Path(tmp) / MODEL_ARTIFACT_DIR
        folder.mkdir()
        local = Path(client.download_artifacts(run_id, checkpoint, tmp))
        local.replace(folder / local.name)
        info = {
            **(card or {}),
            "pixel_size_nm": float(pixel_size_nm),
            "run_id": run_id,
            "checkpoint": local.name,
        }
        (folder / schema.MODEL_CARD).write_text(json.dumps(info, indent=2, sort_keys=True))
        client.log_artifacts(run_id, str(folder), MODEL_ARTIFACT_DIR)
    try:
        client.create_registered_model(
            name, description="temseg: the network a sweep recommends for this dataset"
        )
    except MlflowException:
        pass  # it exists already
    tags = {TAG_PIXEL_SIZE: f"{float(pixel_size_nm):.6g}"}
    tags.update({f"temseg.{k}": str(v) for k, v in (card or {}).items()})
    version = client.create_model_version(
        name,
        source=f"{run.info.artifact_uri}/{MODEL_ARTIFACT_DIR}",
        run_id=run_id,
        tags=tags,
        description=str((card or {}).get("reason", "")),
    )
    client.set_registered_model_alias(name, alias, version.version)
    return version.version


def set_alias(uri: str, name: str, alias: str, version: str) -> None:
    """Point ``alias`` of registered model ``name`` at ``version``."""
    MlflowClient(uri, registry_uri=uri).set_registered_model_alias(name, alias, version)


# --------------------------------------------------------------------------------------------
# The sweep's parent run: one per sweep or search, every trial run its child.

TAG_KIND = "temseg.kind"  # "grid" or "search" on a parent run
TAG_NOTE = "mlflow.note.content"  # the run's description in MLflow's UI


def sweep_key(kind: str, experiment: str, config: dict[str, Any]) -> str:
    """Id of a sweep: its kind, experiment and resolved config (what it trains, not where)."""
    text = json.dumps({"kind": kind, "experiment": experiment, "config": config}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: value}


class SweepRun:
    """The MLflow parent run of one sweep (grid) or search.

    Found again by ``temseg.sweep_key`` (a hash of the kind, the experiment and the resolved
    config), so ``--resume`` and a re-run of a finished sweep continue the same parent instead
    of opening a second. Holds the resolved profile (params and ``profile.yaml``), and, when
    the sweep ends, its report files (``report/``), summary metrics and the recommendation
    (tags, and the run's description in the UI).
    """

    def __init__(
        self,
        uri: str,
        experiment_id: str,
        *,
        kind: str,
        name: str,
        config: dict[str, Any],
        key: str,
        tags: dict[str, str] | None = None,
    ) -> None:
        import yaml

        self.client = MlflowClient(uri)
        found = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`{TAG_SWEEP_KEY}` = '{key}'", max_results=1
        )
        if found:
            self.run_id, self.resumed = found[0].info.run_id, True
            self.client.update_run(self.run_id, status="RUNNING")
            return
        self.resumed = False
        run = self.client.create_run(
            experiment_id,
            run_name=name,
            tags={TAG_SWEEP_KEY: key, TAG_KIND: kind, **(tags or {})},
        )
        self.run_id = run.info.run_id
        params = [Param(k, _param(v)[:6000]) for k, v in _flat("", config).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        text = yaml.safe_dump(config, sort_keys=False)
        self.client.log_text(self.run_id, text, "profile.yaml")

    def finish(
        self,
        report_dir: Path | None,
        *,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """Attach the report and the summary, then mark the parent FINISHED."""
        if report_dir is not None and Path(report_dir).is_dir():
            self.client.log_artifacts(self.run_id, str(report_dir), "report")
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items() if v == v]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)
        if tags:
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FINISHED))

    def end(self, status: str) -> None:
        """Close the parent without a report: ``KILLED`` (interrupted) or ``FAILED``."""
        self.client.set_terminated(self.run_id, status)


def browse_hint(uri: str, experiment: str, port: int = 5000) -> str:
    """How to open ``experiment`` in MLflow's UI, as training runs.

    MLflow 3.17's UI opens every experiment in its GenAI view unless the link says
    ``workflowType=machine_learning`` (its sidebar toggle; the browser then keeps the choice),
    whatever the experiment's ``mlflow.experimentKind`` tag says, so the link says it.
    """
    exp = MlflowClient(uri).get_experiment_by_name(experiment)
    page = f"#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning" if exp else ""
    if uri.startswith(("http://", "https://")):
        return f"  {uri.rstrip('/')}/{page}"
    return (
        f"  mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port {port}\n"
        f"  then open http://127.0.0.1:{port}/{page}"
    )
