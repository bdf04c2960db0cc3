"""Cluster mode with real faults: a two-node Ray cluster and an MLflow server, all on loopback.

The module builds, once, a real cluster with ``ray start`` (a head on 127.0.0.2 and a second
node on 127.0.0.3, one CPU each, distinct node ids) plus a real ``mlflow server`` on
127.0.0.1, and drives ``sweeps/grid.py --address`` against them in subprocesses, as a user
would. Faults are real: trials crash through ``tests/fault_grid.py`` (the grid with a wrapped,
crashing trainable; fault injection is no part of the user's command line), the second
node's processes are SIGKILLed mid-trial, the driver is SIGKILLed and resumed.

Every process is started here with its own process group and stopped by PID: a node's group
(everything ``ray start`` daemonized) plus the descendants of its processes (Ray puts each
worker in a group of its own), found through /proc. Nothing is stopped by name, so other Ray
runtimes on a shared machine are left alone. ``RAY_AUTH_MODE=disabled`` is set for every Ray
process (Ray 2.60 would otherwise switch a ``ray start`` cluster to token auth as soon as
``~/.ray/auth_token`` exists).

Every address given or advertised is loopback. Note that Ray 2.60's own gRPC servers (GCS,
raylets, workers) still bind all interfaces whatever ``--node-ip-address`` says; Ray has no
setting for that in this release (the local runtime of ``temseg.sweep.runtime.init_ray`` does the same).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import parent_runs, tiny_store

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not sys.platform.startswith("linux"),
        reason="needs Linux: 127.0.0.x loopback addresses and /proc",
    ),
]

REPO = Path(__file__).resolve().parents[1]
GRID = [sys.executable, str(REPO / "sweeps" / "grid.py")]
FAULT_GRID = [sys.executable, str(REPO / "tests" / "fault_grid.py")]
RAY = [sys.executable, "-m", "ray.scripts.scripts"]  # the `ray` CLI of this interpreter
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
EPOCH_METRICS = ("train_loss", "val_loss", "train_hard_dice", "val_hard_dice", "val_soft_dice")
P22, P44 = "discs128 N2 p2-2 s752", "discs128 N2 p4-4 s752"  # the smoke grid


# ---------------------------------------------------------------- processes, by PID via /proc


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) of every process now."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            out[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return out


def _family(pgid: int) -> set[int]:
    """The processes of group ``pgid`` and all their descendants (in groups of their own)."""
    procs = _processes()
    found = {pid for pid, (_, g) in procs.items() if g == pgid}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in procs.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return found


def _signal(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _alive(pids: set[int]) -> set[int]:
    procs = _processes()
    out = set()
    for pid in pids & set(procs):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def _stop(pids: set[int], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL what is still there after ``grace`` seconds."""
    _signal(pids, signal.SIGTERM)
    deadline = time.time() + grace
    while _alive(pids) and time.time() < deadline:
        time.sleep(0.2)
    _signal(_alive(pids), signal.SIGKILL)


def free_port(host: str = "") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the cluster and MLflow


@dataclass
class Node:
    ip: str
    pgid: int  # the pid of its `ray start`, leader of the group of what it daemonized
    node_id: str


class Cluster:
    """A head and worker nodes started with `ray start`, each in a process group of its own."""

    def __init__(self, temp_dir: str) -> None:
        self.temp_dir = temp_dir
        self.port = free_port()
        self.address = f"{HEAD_IP}:{self.port}"
        self.mlflow = ""  # the MLflow server's URI, set by the fixture
        self.nodes: list[Node] = []  # every node started, dead or alive (for the cleanup)
        self.head: Node | None = None
        self.worker: Node | None = None

    def _start(self, ip: str, *args: str) -> Node:
        common = ["--node-ip-address", ip, "--num-cpus", "1", "--num-gpus", "0"]
        common += ["--object-store-memory", str(100 * 1024**2), "--temp-dir", self.temp_dir]
        common += ["--disable-usage-stats"]
        proc = subprocess.Popen(
            [*RAY, "start", *args, *common],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        node = Node(ip, proc.pid, "")
        self.nodes.append(node)  # registered before anything can fail: cleaned up whatever
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"ray start on {ip} failed:\n{out}"
        node.node_id = self._node_id(node)
        return node

    def _node_id(self, node: Node) -> str:
        for pid in _family(node.pgid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"/raylet"):
                for arg in argv:
                    if arg.startswith(b"--node_id="):
                        return arg.split(b"=", 1)[1].decode()
        raise AssertionError(f"no raylet found for the node on {node.ip}")

    def start_head(self) -> None:
        self.head = self._start(
            HEAD_IP, "--head", "--port", str(self.port), "--include-dashboard", "false"
        )

    def start_worker(self) -> None:
        self.worker = self._start(WORKER_IP, "--address", self.address)

    def kill_worker(self) -> set[int]:
        """The second node dies: SIGKILL its raylet's group and every process it runs."""
        assert self.worker is not None
        pids = _family(self.worker.pgid)
        _signal(pids, signal.SIGKILL)
        self.worker = None
        return pids

    def ensure_worker(self) -> None:
        if self.worker is None or not _alive(_family(self.worker.pgid)):
            self.start_worker()

    def stop(self) -> None:
        pids: set[int] = set()
        for node in self.nodes:
            pids |= _family(node.pgid)
        _stop(pids)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port("127.0.0.1")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", "1"),
            *("--backend-store-uri", f"sqlite:///{root / 'server.db'}"),
            *("--artifacts-destination", str(root / "artifacts")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        # no job runner: its seven huey consumers would only load the two cores
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    try:
        yield proc, f"http://127.0.0.1:{port}", port
    finally:
        _stop(_family(proc.pid))
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(mlflow_server):
    """The two-node cluster; ``cluster.mlflow`` is the server's URI (checked healthy)."""
    proc, uri, port = mlflow_server
    c = Cluster(tempfile.mkdtemp(prefix="/tmp/rt"))  # short: Ray's unix socket paths
    try:
        c.start_head()  # while the MLflow server starts
        c.start_worker()
        assert c.head.node_id != c.worker.node_id
        deadline = time.time() + 180
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, "mlflow server exited"
                assert time.time() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        c.mlflow = uri
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tiny_store(tmp_path_factory.mktemp("data") / "discs128.zarr", size=128, n=(4, 2, 2))


@pytest.fixture(scope="module")
def slow_store(tmp_path_factory):
    """Same name, 12x the training patches: epochs long enough (about 0.5 s idle, more under
    load) that a fault timed after an epoch surely lands before the trial ends."""
    return tiny_store(tmp_path_factory.mktemp("slow") / "discs128.zarr", size=128, n=(48, 2, 2))


# ---------------------------------------------------------------- helpers


def sweep_args(cluster, store, tmp_path, experiment, *extra, driver=GRID):
    return [
        *driver,
        *("--profile", "smoke", "--data", str(store), "--address", cluster.address),
        *("--tracking-uri", cluster.mlflow, "--experiment", experiment),
        *("--storage-path", str(tmp_path / "ray"), "--report-dir", str(tmp_path / "report")),
        *map(str, extra),
    ]


def grid(args, timeout=420, env=None):
    env = {**ENV, **(env or {})}
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    print(out.stdout[-4000:])  # shown by pytest when a test fails
    print(out.stderr[-4000:], file=sys.stderr)
    return out


def fault(tmp_path, run_name, epoch, times):
    """The environment of tests/fault_grid.py that crashes ``run_name`` at ``epoch``."""
    marker_dir = tmp_path / "faults"
    spec = {"run_name": run_name, "epoch": epoch, "times": times, "marker_dir": str(marker_dir)}
    return {"TEMSEG_TEST_FAULT": json.dumps(spec)}, marker_dir


def runs_by_name(uri, experiment):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    # trial runs only: the sweep's parent run is checked by assert_one_parent
    return client, {r.info.run_name: r for r in runs if "temseg.sweep_key" not in r.data.tags}


def assert_finished(client, run, epochs):
    """FINISHED with test metrics, a checkpoint, and each epoch's metrics logged exactly once."""
    assert run.info.status == "FINISHED", run.info.run_name
    for m in EPOCH_METRICS:
        steps = [h.step for h in client.get_metric_history(run.info.run_id, m)]
        assert sorted(steps) == list(range(1, epochs + 1)), (run.info.run_name, m, steps)
    assert {"test_hard_dice", "test_soft_dice", "best_epoch"} <= set(run.data.metrics)
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")}
    assert arts == {"checkpoint/best.pt", "checkpoint/config.json"}


def ray_epochs(tmp_path, run_name):
    """The epochs Ray Tune recorded for a trial, in order, over all its tries."""
    from temseg.sweep.runtime.tuner import trial_dirname

    name = trial_dirname(run_name)
    (trial_dir,) = (tmp_path / "ray").glob(f"*/{name}_*")
    lines = (trial_dir / "result.json").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines if line.strip()], trial_dir


# ---------------------------------------------------------------- tests


@pytest.mark.slow
def test_smoke_grid_runs_on_both_nodes_and_logs_every_epoch(cluster, store, tmp_path):
    out = grid(sweep_args(cluster, store, tmp_path, "c-smoke"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"on cluster {cluster.address} with 2 CPUs" in out.stdout
    assert "[2/2] done" in out.stdout
    client, runs = runs_by_name(cluster.mlflow, "c-smoke")
    assert sorted(runs) == [P22, P44]
    assert len({r.data.tags["temseg.trial_key"] for r in runs.values()}) == 2
    for run in runs.values():
        assert_finished(client, run, epochs=2)
        assert run.data.tags["temseg.attempts"] == "1"
    nodes = {r.data.tags["temseg.node_id"] for r in runs.values()}
    assert nodes == {cluster.head.node_id, cluster.worker.node_id}  # one trial on each node
    print(f"observed: trials on nodes {sorted(n[:8] for n in nodes)}")


@pytest.mark.slow
def test_trial_that_crashes_once_is_retried_from_its_checkpoint(cluster, store, tmp_path):
    inject, markers = fault(tmp_path, P44, epoch=2, times=1)
    out = grid(sweep_args(cluster, store, tmp_path, "c-crash-once", driver=FAULT_GRID), env=inject)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 trials ok, 0 failed" in out.stdout
    assert len(list(markers.glob("crash-*"))) == 1  # it did crash, once
    client, runs = runs_by_name(cluster.mlflow, "c-crash-once")
    assert sorted(runs) == [P22, P44]  # the retry continued its MLflow run: no second run
    for run in runs.values():
        assert_finished(client, run, epochs=2)
    assert runs[P44].data.tags["temseg.attempts"] == "2"
    assert "temseg.error" not in runs[P44].data.tags  # the crash is history once the retry finished
    assert runs[P22].data.tags["temseg.attempts"] == "1"
    # Ray recorded epoch 1 (first try), then epoch 2 (the retry): it resumed from the epoch-1
    # checkpoint instead of training from scratch (which would record epoch 1 twice)
    epochs, trial_dir = ray_epochs(tmp_path, P44)
    assert epochs == [1, 2]
    assert "injected fault" in (trial_dir / "error.txt").read_text()
    print(
        f"observed: {P44} crashed once ({sorted(p.name for p in markers.glob('crash-*'))}), "
        f"Ray epochs {epochs}, attempts 2, nodes {runs[P44].data.tags['temseg.nodes']}"
    )


@pytest.mark.slow
def test_trial_that_always_crashes_is_reported_failed(cluster, store, tmp_path):
    """It fails (after its retry) while the other trial finishes; the report lists it."""
    inject, markers = fault(tmp_path, P22, epoch=1, times=-1)
    out = grid(
        sweep_args(cluster, store, tmp_path, "c-crash-always", driver=FAULT_GRID), env=inject
    )
    assert out.returncode == 1, out.stdout + out.stderr  # the sweep ran; a trial failed
    assert "1 trials ok, 1 failed" in out.stdout
    assert any(
        re.match(rf"\[\d/2\] FAILED +{re.escape(P22)}  ", x) for x in out.stdout.splitlines()
    )
    assert len(list(markers.glob("crash-*"))) == 2  # the first try and one retry (max_failures 1)
    client, runs = runs_by_name(cluster.mlflow, "c-crash-always")
    assert sorted(runs) == [P22, P44]
    assert_finished(client, runs[P44], epochs=2)
    assert runs[P22].info.status == "FAILED"
    assert "injected fault at epoch 1" in runs[P22].data.tags["temseg.error"]
    assert runs[P22].data.tags["temseg.attempts"] == "2"
    with open(tmp_path / "report" / "failed_trials.csv", newline="") as f:
        failed = list(csv.DictReader(f))
    assert [(r["run_name"], r["status"]) for r in failed] == [(P22, "FAILED")]
    assert "injected fault" in failed[0]["error"]
    print(f"observed: failed_trials.csv {failed}")


def start_driver(args, log):
    with open(log, "w") as f:
        return subprocess.Popen(
            args, stdout=f, stderr=subprocess.STDOUT, env=ENV, start_new_session=True
        )


def last_epochs(client, runs):
    """run name -> last epoch logged, for the runs still RUNNING."""
    out = {}
    for name, run in runs.items():
        if run.info.status == "RUNNING":
            history = client.get_metric_history(run.info.run_id, "val_hard_dice")
            out[name] = max((h.step for h in history), default=0)
    return out


EPOCHS = 6  # with slow_store: 4 epochs (seconds) of training left after the second


@pytest.mark.slow
def test_killed_driver_resumes_with_exactly_one_run_per_trial(cluster, slow_store, tmp_path):
    """SIGKILL the driver once a trial finished and another is mid-training; --resume."""
    cluster.ensure_worker()
    args = sweep_args(
        cluster, slow_store, tmp_path, "c-resume", "--pools", "4-4", "--seeds", 752, 2245, 140,
        "--epochs", EPOCHS,
    )  # fmt: skip
    log = tmp_path / "driver.log"
    proc = start_driver(args, log)
    client = MlflowClient(cluster.mlflow)
    try:
        deadline = time.time() + 300
        while True:
            assert proc.poll() is None, "the sweep ended before the kill:\n" + log.read_text()
            assert time.time() < deadline, log.read_text()
            time.sleep(0.25)
            _, runs = runs_by_name(cluster.mlflow, "c-resume")
            done = {n for n, r in runs.items() if r.info.status == "FINISHED"}
            midway = {n: e for n, e in last_epochs(client, runs).items() if 1 <= e <= EPOCHS // 2}
            if done and midway:
                break
    finally:
        _signal(_family(proc.pid), signal.SIGKILL)  # the driver (the cluster stays up)
        proc.wait(timeout=30)
    time.sleep(3)  # Ray ends the dead driver's trials
    _, runs = runs_by_name(cluster.mlflow, "c-resume")
    interrupted = set(last_epochs(client, runs))
    assert set(midway) <= interrupted  # they did not finish: the kill landed mid-training
    out = grid(args + ["--resume"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming sweep" in out.stdout and "3 trials ok, 0 failed" in out.stdout
    client, runs = runs_by_name(cluster.mlflow, "c-resume")
    assert len(runs) == 3  # exactly one MLflow run per trial
    # the resumed sweep continued the killed one's parent run: one parent holds every trial
    (parent,) = parent_runs(cluster.mlflow, "c-resume")
    assert parent.info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in runs.values()} == {parent.info.run_id}
    assert len({r.data.tags["temseg.trial_key"] for r in runs.values()}) == 3
    for run in runs.values():
        assert_finished(client, run, epochs=EPOCHS)  # each epoch logged once, none twice
    for name in done:  # finished before the kill: not trained again
        assert runs[name].data.tags["temseg.attempts"] == "1"
    for name in interrupted:  # continued in its own run
        assert runs[name].data.tags["temseg.attempts"] == "2"
    resumed = next(line for line in out.stdout.splitlines() if "resuming sweep" in line)
    print(
        f"observed: driver killed when {sorted(done)} had finished and {midway} was mid-"
        f"training (last epoch logged); {resumed.split(': ')[-1]}; all 3 runs FINISHED"
    )


@pytest.mark.slow
def test_lost_node_trials_are_rescheduled_on_the_head(cluster, slow_store, tmp_path):
    """The second node dies mid-trial; its trial continues on the head from its checkpoint."""
    cluster.ensure_worker()
    worker, head = cluster.worker.node_id, cluster.head.node_id
    args = sweep_args(cluster, slow_store, tmp_path, "c-node-loss", "--epochs", EPOCHS)
    log = tmp_path / "driver.log"
    proc = start_driver(args, log)
    client = MlflowClient(cluster.mlflow)
    victim, killed_at, killed = None, 0, set()
    try:
        deadline = time.time() + 300
        while victim is None:
            assert proc.poll() is None, "the sweep ended before the kill:\n" + log.read_text()
            assert time.time() < deadline, "no trial trained on the second node"
            time.sleep(0.25)
            _, runs = runs_by_name(cluster.mlflow, "c-node-loss")
            there = {n: r for n, r in runs.items() if r.data.tags.get("temseg.node_id") == worker}
            for name, epoch in last_epochs(client, there).items():
                # it trained (and saved) two epochs there: a restart from scratch would
                # record epoch 1 again, a resume at most re-reports the epoch it died in
                if 2 <= epoch < EPOCHS:
                    killed = cluster.kill_worker()
                    victim, killed_at = name, epoch
                    break
        proc.wait(timeout=420)
    finally:
        if proc.poll() is None:
            _signal(_family(proc.pid), signal.SIGKILL)
            proc.wait(timeout=30)
        cluster.ensure_worker()  # a replacement second node for whatever runs next
    output = log.read_text()
    print(output)
    assert proc.returncode == 0, output
    assert "2 trials ok, 0 failed" in output
    _, runs = runs_by_name(cluster.mlflow, "c-node-loss")
    assert sorted(runs) == [P22, P44]
    for run in runs.values():
        assert_finished(client, run, epochs=EPOCHS)
    tags = runs[victim].data.tags
    # it started on the second node and ended on the head
    assert tags["temseg.nodes"] == f"{worker},{head}"
    assert tags["temseg.node_id"] == head and tags["temseg.attempts"] == "2"
    ray_seen, trial_dir = ray_epochs(tmp_path, victim)
    # resumed from its last saved epoch: every epoch once, except that the epoch whose report
    # the kill cut short may be reported again (fit reports at least once), never epoch 1
    assert sorted(set(ray_seen)) == list(range(1, EPOCHS + 1)), ray_seen
    assert ray_seen == sorted(ray_seen) and len(ray_seen) - EPOCHS <= 1, ray_seen
    assert ray_seen.count(1) == 1, ray_seen
    error = (trial_dir / "error.txt").read_text()  # Ray recorded the lost try
    print(
        f"observed: killed {len(killed)} processes of node {worker[:8]} after epoch {killed_at} "
        f"of {victim}; it finished on {head[:8]} (head), Ray epochs {ray_seen}; "
        f"lost try: {error.strip().splitlines()[-1][:200]}"
    )


def test_unreachable_mlflow_server_fails_before_the_cluster_is_used(cluster, store, tmp_path):
    args = sweep_args(cluster, store, tmp_path, "c-unreachable")
    args[args.index(cluster.mlflow)] = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    t0 = time.time()
    out = grid(args, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "grid.py: error: MLflow server http://127.0.0.1:" in out.stderr
    assert "is unreachable" in out.stderr and "Traceback" not in out.stderr
    assert "sweep:" not in out.stdout  # nothing was scheduled
    assert not (tmp_path / "ray").exists()
    assert time.time() - t0 < 60


def test_gpus_the_cluster_lacks_is_a_clear_error(cluster, store, tmp_path):
    out = grid(sweep_args(cluster, store, tmp_path, "c-gpus", "--gpus-per-trial", 1), timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--gpus-per-trial 1.0 but the Ray cluster has 0 GPUs" in out.stderr
    assert "sweep:" not in out.stdout and not (tmp_path / "ray").exists()
    _, runs = runs_by_name(cluster.mlflow, "c-gpus")
    assert not runs
