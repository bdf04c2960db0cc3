"""The Ray Tune trainable: :func:`temseg.train.fit` for one trial, logging to MLflow.

It reports every epoch, keeps the trial's resumable state in a folder of its own on the
storage path, so a trial that crashes, or whose node dies, restarts from its last finished
epoch, and it logs to MLflow from inside the trial (so trials on other nodes log too, through
an ``http://`` tracking server).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import tune

from temseg.config import TrainConfig
from temseg.schema import TAG_ATTEMPTS, TAG_NODE_ID, TAG_NODES
from temseg.tracking import TrialRun
from temseg.train import cuda_problem, fit
from temseg.trial import RayTrial


def trainable(config: dict[str, Any], state_root: str | None = None) -> None:
    """Ray Tune function trainable: one training of :func:`temseg.train.fit`.

    The trial's resumable state (``last.pt``, ``best.pt``) lives in its own folder,
    ``<state_root>/<trial_key>``, on the sweep's storage path (shared storage on a cluster),
    written atomically by ``fit`` after every epoch. A retried trial, a trial whose node died
    and a trial of a resumed sweep all continue from there. It is deliberately not a Ray Tune
    checkpoint: with ``CheckpointConfig(num_to_keep=...)`` a trial's newer checkpoint can
    delete the one that the driver's last experiment snapshot still names, and a driver killed
    in that window leaves a sweep that ``Tuner.restore`` cannot resume ("Could not recover from
    checkpoint as it does not exist on storage anymore", seen here under SIGKILL). The folder
    is removed once the trial's MLflow run is finished.
    """
    spec = RayTrial.of(config)  # decoded once; typed from here on
    train_cfg = dataclasses.replace(spec.train, **trial_device(spec.train, spec.gpus_per_trial))
    run = TrialRun.for_trial(spec)
    if run.finished:  # e.g. the driver died after this trial finished: do not train again
        tune.report({"epoch": train_cfg.epochs, **run.final, "finished": True, "skipped": True})
        return
    _tag_attempt(run)

    if state_root:
        workdir = Path(state_root, spec.trial_key)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="temseg-trial-"))
    already_logged = run.last_logged_epoch()
    state = {"finished": False}

    def report(row: dict[str, Any]) -> None:
        if row["epoch"] > already_logged:
            run.log_epoch(row)
        if row.get("done"):
            run.finish(row, workdir)
            state["finished"] = True
        tune.report(_metrics(row))

    try:
        fit(train_cfg, report, workdir=workdir)
    except Exception as exc:
        run.fail(f"{type(exc).__name__}: {exc}")
        raise
    except BaseException:  # Ray ends a stopped trial's thread (e.g. an early-stopping scheduler)
        if not state["finished"]:
            run.stop()
        raise
    if state["finished"] or not state_root:
        shutil.rmtree(workdir, ignore_errors=True)


def trial_device(train: TrainConfig, gpus_per_trial: float) -> dict[str, Any]:
    """Where this trial trains, from what Ray gave it and the sweep's ``device``.

    Ray gave no GPU: the CPU. Ray gave a GPU share: that GPU, capped at the share, unless the
    user asked for ``--device cpu`` (e.g. logical GPUs on a CPU machine); a torch that cannot
    use CUDA then fails the trial with one line instead of quietly training on the CPU.
    """
    if not ray.get_gpu_ids() or train.device == "cpu":
        return {"device": "cpu"}
    problem = cuda_problem()
    if problem:
        node = ray.get_runtime_context().get_node_id()[:12]
        raise RuntimeError(
            f"Ray gave this trial GPU {ray.get_gpu_ids()} on node {node}, but {problem}; "
            "install the CUDA build of torch there, or pass --device cpu to train on CPUs"
        )
    out: dict[str, Any] = {"device": "cuda"}
    if not train.gpu_fraction:  # cap this process at its share of the GPU
        out["gpu_fraction"] = float(gpus_per_trial)
    return out


def _tag_attempt(run: Any) -> None:
    """Tag the trial's MLflow run with where this try runs: the Ray node id of this try
    (``temseg.node_id``), every node the trial has run on in order (``temseg.nodes``) and
    how many tries started training (``temseg.attempts``: retries, node losses, resumes)."""
    node = ray.get_runtime_context().get_node_id()
    nodes = [n for n in run.tags.get(TAG_NODES, "").split(",") if n]
    run.set_tags(
        {
            TAG_NODE_ID: node,
            TAG_NODES: ",".join(nodes if node in nodes else [*nodes, node]),
            TAG_ATTEMPTS: int(run.tags.get(TAG_ATTEMPTS, 0)) + 1,
        }
    )


def _metrics(row: dict[str, Any]) -> dict[str, Any]:
    """Numeric metrics for Ray; ``done`` is Ray's reserved stop key, so it travels as ``finished``."""
    out = {k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "done"}
    out["finished"] = bool(row.get("done", False))
    return out
