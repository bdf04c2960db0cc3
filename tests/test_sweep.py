"""sweeps/grid.py end to end: real local Ray runtime, real MLflow stores (SQLite and server)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import experiment_runs, parent_runs, tiny_store

REPO = Path(__file__).resolve().parents[1]
GRID = [sys.executable, str(REPO / "sweeps" / "grid.py")]
EPOCH_METRICS = ("train_loss", "val_loss", "train_hard_dice", "val_hard_dice", "val_soft_dice")
PARAMS = (
    "dataset",
    "contrast",
    "pixel_size_nm",
    "num_blocks",
    "pools",
    "dilations",
    "seed",
    "epochs",
    "lr",
    "batch_size",
    "precision",
    "lr_schedule",
    "rf_px",
    "rf_nm",
    "rf_exact_min_px",
    "rf_exact_max_px",
    "n_params",
)


@pytest.fixture(scope="module")
def store128(tmp_path_factory):
    return tiny_store(tmp_path_factory.mktemp("data") / "discs128.zarr", size=128, n=(4, 2, 2))


def grid(*args, env=None, timeout=300):
    return subprocess.run(
        [*GRID, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, MARK: "grid", **(env or {})},
    )


# Every process a sweep starts (the driver, its Ray runtime's daemons and workers) inherits
# the driver's environment, so a mark in it finds them all in /proc, however they detach.
MARK = "TEMSEG_TEST_SWEEP_MARK"


def marked(value="grid"):
    """Pids of live processes carrying MARK=value (zombies, already dead, are not counted)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"{MARK}={value}".encode() in env and state != "Z":
            out.append(int(entry))
    return out


def assert_no_process_left(value="grid"):
    deadline = time.time() + 10  # what the driver terminated may take a moment to go
    while marked(value) and time.time() < deadline:
        time.sleep(0.2)
    left = marked(value)
    names = [
        Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in left if Path(f"/proc/{p}").exists()
    ]
    assert not left, f"processes of the sweep still alive: {names}"


def assert_parent(uri, store, experiment="t", epochs=2):
    """Exactly one parent run holds every trial run as a child; each trial run has its store
    as a dataset input whose digest is the store's content hash; the parent holds the
    resolved profile and the report."""
    from mlflow.tracking import MlflowClient

    from temseg.data.store import read_attrs

    client, runs = runs_of(uri, experiment)
    (parent,) = parent_runs(uri, experiment)
    assert parent.info.status == "FINISHED" and parent.data.tags["temseg.kind"] == "grid"
    assert parent.info.run_name == "grid smoke"
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    content_hash = read_attrs(store)["content_hash"]
    for r in runs:
        (inp,) = r.inputs.dataset_inputs
        assert inp.dataset.name == "discs128" and inp.dataset.digest == content_hash[:32]
        assert json.loads(inp.dataset.profile)["content_hash"] == content_hash
        assert [(t.key, t.value) for t in inp.tags] == [("mlflow.data.context", "training")]
    arts = {a.path for a in MlflowClient(uri).list_artifacts(parent.info.run_id)}
    assert {"profile.yaml", "report"} <= arts
    report = {a.path for a in MlflowClient(uri).list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/recommendation.csv"} <= report
    assert parent.data.params["profile"] == "smoke" and parent.data.params["epochs"] == str(epochs)
    assert parent.data.metrics["trials"] == len(runs)
    return parent


def sweep_args(tmp_path, store, uri, *extra):
    return (
        "--profile",
        "smoke",
        "--data",
        store,
        "--tracking-uri",
        uri,
        "--experiment",
        "t",
        "--storage-path",
        tmp_path / "ray",
        "--report-dir",
        tmp_path / "report",
        "--num-cpus",
        2,
        *extra,
    )


def runs_of(uri, experiment="t"):
    return experiment_runs(uri, experiment)


def assert_complete(uri, n_runs, epochs):
    client, runs = runs_of(uri)
    assert len(runs) == n_runs
    keys = [r.data.tags["temseg.trial_key"] for r in runs]
    assert len(set(keys)) == n_runs  # exactly one run per trial
    for r in runs:
        assert r.info.status == "FINISHED"
        assert set(PARAMS) <= set(r.data.params)
        for m in EPOCH_METRICS:
            hist = client.get_metric_history(r.info.run_id, m)
            assert sorted(h.step for h in hist) == list(range(1, epochs + 1)), (r.info.run_name, m)
        for m in ("test_hard_dice", "test_soft_dice", "best_epoch"):
            assert m in r.data.metrics
        # the effective receptive field of the best checkpoint (temseg.erf): its diameter is
        # at most the network's exact reach (the gradient is zero outside it)
        m, p = r.data.metrics, r.data.params
        assert 0 < m["erf50_px"] <= m["erf95_px"]
        assert 2 * m["erf95_px"] <= int(p["rf_exact_max_px"]), r.info.run_name
        assert m["erf95_nm"] == pytest.approx(m["erf95_px"] * float(p["pixel_size_nm"]))
        arts = {a.path for a in client.list_artifacts(r.info.run_id, "checkpoint")}
        assert arts == {"checkpoint/best.pt", "checkpoint/config.json"}
    assert_test_images(uri, runs)
    return runs


def assert_test_images(uri, runs):
    """Each trial's per-test-image record round-trips through the store (read in place from
    a SQLite store's artifact folder, downloaded from a server): both test images of the
    store, and its pooled dice is the run's logged test dice."""
    from temseg.analysis import collect

    trials = collect.load_runs("t", uri)
    images = collect.load_test_images(trials, uri)
    assert len(images) == 2 * len(runs)
    dice = trials.set_index("run_id")["test_hard_dice"]
    for run_id, g in images.groupby("run_id"):
        assert g["source"].tolist() == [0, 1] and g["name"].tolist() == ["disc-0", "disc-1"]
        pooled = 2 * g["intersection"].sum() / (g["predicted"].sum() + g["true"].sum())
        assert pooled == pytest.approx(dice[run_id], abs=1e-12)


def test_dry_run_prints_the_table_and_runs_nothing(tmp_path):
    out = grid("--profile", "paper", "--dry-run", "--storage-path", tmp_path / "ray")
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("hr-5nm")]
    # per dataset: the 30 pooling architectures + dilation variants 1-2-2, 1-4-4, 1-8-8 (N=2)
    # and 1-2-2-2, 1-4-4-4 (N=3); 1-1-1 is the pool-2 network already in the grid
    assert len(rows) == 4 * 35
    assert "700 trials" in out.stdout  # x 5 seeds
    assert not (tmp_path / "ray").exists()


def test_smoke_sweep_into_sqlite(tmp_path, store128):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    out = grid(*sweep_args(tmp_path, store128, uri))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[2/2] done" in out.stdout and "mlflow ui --backend-store-uri" in out.stdout
    assert "/runs?workflowType=machine_learning" in out.stdout  # MLflow 3.17 opens GenAI otherwise
    assert_no_process_left()  # the local Ray runtime and all it started are gone
    runs = assert_complete(uri, n_runs=2, epochs=2)
    names = sorted(r.info.run_name for r in runs)
    assert names == ["discs128 N2 p2-2 s752", "discs128 N2 p4-4 s752"]  # no generator C: the name
    assert {r.data.tags["temseg.architecture"] for r in runs} == {
        "N2-p2.2-d1.1.1",
        "N2-p4.4-d1.1.1",
    }
    # not a terminal: plain progress lines, the first with the time left
    first = next(x for x in out.stdout.splitlines() if x.startswith("sweep: 0/2 trials done"))
    assert "(0 failed)" in first and "epochs 1/4;" in first and first.endswith(" left"), first
    parent = assert_parent(uri, store128)
    p = next(r for r in runs if r.data.params["pools"] == "4-4").data.params
    assert (p["rf_px"], p["rf_nm"], p["n_params"], p["dilations"]) == (
        "120",
        "2.4",
        "8074",
        "1-1-1",
    )
    assert (p["rf_exact_min_px"], p["rf_exact_max_px"]) == ("116", "132")
    # MLflow's UI opens the experiment as model training, not as a GenAI experiment
    from mlflow.tracking import MlflowClient

    exp = MlflowClient(uri).get_experiment(runs[0].info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    # running the same sweep again trains nothing and duplicates nothing, parent included
    again = grid(*sweep_args(tmp_path, store128, uri))
    assert again.returncode == 0, again.stderr
    assert_complete(uri, n_runs=2, epochs=2)
    assert assert_parent(uri, store128).info.run_id == parent.info.run_id


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        # no job-runner processes (they leave a store in /dev/shm behind)
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start")
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def rest(uri, endpoint, body):
    """POST to the MLflow server's REST API; the JSON answer."""
    import urllib.request

    req = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/{endpoint}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_smoke_sweep_against_an_mlflow_server(tmp_path, store128, mlflow_server):
    out = grid(*sweep_args(tmp_path, store128, mlflow_server))
    assert out.returncode == 0, out.stdout + out.stderr
    assert_complete(mlflow_server, n_runs=2, epochs=2)
    assert_parent(mlflow_server, store128)
    # the same structure as any MLflow client sees it, over the server's REST API
    exp = rest(mlflow_server, "experiments/search", {"filter": "name = 't'", "max_results": 10})
    (exp,) = exp["experiments"]
    assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in exp["tags"]
    runs = rest(
        mlflow_server, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100}
    )["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    parents = [r for r, t in zip(runs, tags, strict=True) if "temseg.sweep_key" in t]
    children = [t for t in tags if "temseg.trial_key" in t]
    assert len(parents) == 1 and len(children) == 2 and len(runs) == 3
    assert {t["mlflow.parentRunId"] for t in children} == {parents[0]["info"]["run_id"]}
    digest = __import__("temseg.data.store", fromlist=["x"]).read_attrs(store128)["content_hash"]
    for r in runs:
        inputs = r.get("inputs", {}).get("dataset_inputs", [])
        if r is parents[0]:
            assert not inputs
        else:
            assert [i["dataset"]["digest"] for i in inputs] == [digest[:32]]


def test_unreachable_mlflow_server_fails_before_any_trial(tmp_path, store128):
    out = grid(*sweep_args(tmp_path, store128, f"http://127.0.0.1:{free_port()}"))
    assert out.returncode == 2
    assert "unreachable" in out.stderr
    assert not (tmp_path / "ray").exists()


def test_gpus_per_trial_without_gpus_is_a_clear_error(tmp_path, store128):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    out = grid(*sweep_args(tmp_path, store128, uri, "--gpus-per-trial", 0.25))
    assert out.returncode == 2
    assert "--gpus-per-trial 0.25 but the Ray cluster has 0 GPUs" in out.stderr


def start_grid(args, mark):
    """grid.py in its own session (so its process group can be signalled), marked ``mark``."""
    return subprocess.Popen(
        [*GRID, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, MARK: mark},
    )


def test_killed_driver_resumes_with_exactly_one_run_per_trial(tmp_path, store128):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    args = sweep_args(
        tmp_path, store128, uri, "--seeds", 752, 2245, "--epochs", 3, "--num-cpus", 1
    )
    proc = start_grid(args, "grid")  # the mark of grid(): the resumed run's check sees it
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("[2/4] done"):  # one trial per CPU: the third is starting
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the runtime it started
        proc.wait(timeout=30)
    assert any(line.startswith("[2/4] done") for line in seen), "".join(seen)
    out = grid(*args, "--resume")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming sweep" in out.stdout
    assert_complete(uri, n_runs=4, epochs=3)
    assert_parent(uri, store128, epochs=3)  # the resumed sweep continued the killed one's parent
    assert_no_process_left()  # nor did the killed driver's runtime outlive the resumed one


def test_ctrl_c_leaves_no_ray_process_and_marks_the_parent_killed(tmp_path, store128):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    args = sweep_args(tmp_path, store128, uri, "--epochs", 4, "--num-cpus", 1)
    proc = start_grid(args, "ctrl-c")
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("sweep: 0/2 trials done"):  # the first epoch is trained
                os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole group
                break
        rest_of = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = "".join(seen) + (rest_of or "")
    assert proc.returncode == 130, out
    assert "interrupted" in out and "run the same command to continue" in out
    assert_no_process_left("ctrl-c")
    (parent,) = parent_runs(uri, "t")
    assert parent.info.status == "KILLED"


# ------------------------------------------------------------------ planning (no Ray, no runs)


def test_precision_is_in_the_trial_key_the_params_and_the_table():
    from temseg.config import ConfigError, from_dict
    from temseg.sweep.profile import SweepConfig, load_profile
    from temseg.sweep.space import build_trials, trial_table
    from temseg.trial import Dataset
    from temseg.trial import trial_key

    datasets = [Dataset("/data/discs128.zarr", "discs128", 0.02, 128, 0.1)]
    grid_cfg = dict(blocks=(2,), pools=("2-2",), dilation_variants=False, seeds=(752,))
    assert SweepConfig().precision == "auto"  # resolved per machine when trials are built
    trials = {}
    for precision in ("bf16", "fp32"):
        cfg = SweepConfig(profile="smoke", precision=precision, **grid_cfg)
        (trial,) = build_trials(
            cfg, datasets, tracking_uri="sqlite:////tmp/x.db", experiment_id="1"
        )
        assert trial["train"]["precision"] == precision
        assert trial["meta"]["params"]["precision"] == precision
        assert [row["precision"] for row in trial_table(cfg, datasets)] == [precision]
        trials[precision] = trial
    # "auto" is resolved when the trials are built: the key records what is trained
    from temseg.config import resolve_precision

    auto = SweepConfig(profile="smoke", **grid_cfg)
    (trial,) = build_trials(auto, datasets, tracking_uri="sqlite:////tmp/x.db", experiment_id="1")
    resolved = resolve_precision("auto", gpus_per_trial=0)
    assert trial["train"]["precision"] == trial["meta"]["params"]["precision"] == resolved
    assert trial["meta"]["trial_key"] == trials[resolved]["meta"]["trial_key"]
    # bf16 and fp32 train different numbers: different trials, never one MLflow run
    assert trials["bf16"]["meta"]["trial_key"] != trials["fp32"]["meta"]["trial_key"]
    assert trial_key(trials["bf16"]["train"]) != trial_key(trials["fp32"]["train"])
    # where a trial trains is still no part of its key
    train = trials["bf16"]["train"]
    assert trial_key({**train, "device": "cuda", "gpu_fraction": 0.25}) == trial_key(train)
    # the profile and the command line set it; anything else is refused at config build
    assert load_profile("smoke", {"precision": "fp32"}).precision == "fp32"
    assert load_profile("smoke").precision == "auto"
    with pytest.raises(ConfigError, match="precision must be auto, bf16 or fp32"):
        load_profile("smoke", {"precision": "fp16"})
    with pytest.raises(ConfigError, match="precision must be auto, bf16 or fp32"):
        from_dict(SweepConfig, {"precision": "float32"})


def test_grid_precision_flag_reaches_the_dry_run_table():
    out = grid("--profile", "smoke", "--dry-run", "--precision", "fp32")
    assert out.returncode == 0, out.stderr
    header, *rows = [line.split() for line in out.stdout.splitlines() if line.strip()][:3]
    assert "precision" in header
    assert {row[header.index("precision")] for row in rows} == {"fp32"}
    bad = grid("--profile", "smoke", "--dry-run", "--precision", "fp16")
    assert bad.returncode == 2 and "invalid choice: 'fp16'" in bad.stderr


def test_data_seed_overrides_the_synthetic_series_seed(tmp_path):
    from temseg.sweep.profile import load_profile

    out = grid("--profile", "demo", "--dry-run", "--data-seed", 7, "--storage-path", tmp_path / "r")
    assert out.returncode == 0, out.stderr
    names = {line.split()[0] for line in out.stdout.splitlines() if line.startswith("hr-2.2nm")}
    assert names == {f"hr-2.2nm-c{c}-s7_px0.04_gv3(planned)" for c in ("0.090", "0.300")}
    assert not (tmp_path / "r").exists()
    demo = load_profile("demo")
    seeded = load_profile("demo", {"synthetic": {"seed": 7}})
    assert (demo.synthetic.seed, seeded.synthetic.seed) == (0, 7)
    # only the seed changed: same series otherwise
    assert dataclasses.replace(seeded.synthetic, seed=0) == demo.synthetic
    assert load_profile("demo", {"synthetic": {"seed": None}}) == demo


KNOBS = {
    "pixel_size_nm": 0.03,
    "defocus_nm": [-12, -6],
    "fringe_free_fraction": 0.5,
    "coverage": 0.2,
    "dose": 200,
    "astigmatism_nm": [0, 1.5],
}


def test_synthetic_generator_knobs_round_trip_and_reject_unknown_ones():
    from temseg.config import ConfigError, from_dict, to_dict
    from temseg.sweep.profile import SyntheticData

    raw = {"preset": "hr-2.2nm", "contrasts": [0.02, 0.2], "images": 4, "seed": 3, **KNOBS}
    s = from_dict(SyntheticData, raw)
    assert (s.pixel_size_nm, s.defocus_nm, s.astigmatism_nm) == (0.03, (-12.0, -6.0), (0.0, 1.5))
    assert (s.fringe_free_fraction, s.coverage, s.dose) == (0.5, 0.2, 200.0)
    assert from_dict(SyntheticData, to_dict(s)) == s
    assert {k: to_dict(s)[k] for k in raw} == raw
    assert s.knobs == {k: tuple(v) if isinstance(v, list) else v for k, v in KNOBS.items()}
    assert s.tag == "px0.03_df-12..-6_ff0.5_cov0.2_dose200_astig0..1.5"
    # every knob defaults to None: the preset's value
    default = from_dict(SyntheticData, {"preset": "hr-2.2nm"})
    assert all(getattr(default, k) is None for k in KNOBS)
    assert default.knobs == {} and default.tag == "" and default.describe_knobs() == ""
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['defocus'\]"):
        from_dict(SyntheticData, {**raw, "defocus": [-12, -6]})
    with pytest.raises(ConfigError, match="defocus_nm must be a range"):
        from_dict(SyntheticData, {**raw, "defocus_nm": [-6, -12]})
    with pytest.raises(ConfigError, match="astigmatism_nm must be a range"):
        from_dict(SyntheticData, {**raw, "astigmatism_nm": [1.0]})
    with pytest.raises(ConfigError, match="pixel_size_nm: expected a number"):
        from_dict(SyntheticData, {**raw, "pixel_size_nm": "fine"})
    with pytest.raises(ConfigError, match="seed must be >= 0"):
        from_dict(SyntheticData, {**raw, "seed": -1})


def test_synthetic_knobs_reach_the_generator_and_the_plan(tmp_path, monkeypatch, capsys):
    import temseg.data.synth as synth
    from temseg.config import ConfigError, from_dict
    from temseg.sweep.datasets import planned_datasets, synthetic_datasets
    from temseg.sweep.profile import SweepConfig, SyntheticData
    from temseg.sweep.space import trial_table

    s = from_dict(SyntheticData, {"contrasts": [0.02, 0.2], "patch_size": 128, **KNOBS})
    cfg = SweepConfig(synthetic=s, blocks=(2,), pools=("2-2",), dilation_variants=False)
    # the dry run plans with the overridden pixel size, in the series' own folder
    planned = planned_datasets(cfg, tmp_path)
    assert [d.pixel_size_nm for d in planned] == [0.03, 0.03]
    assert [d.name for d in planned] == [
        f"hr-2.2nm-c{c}-s0_{s.tag}(planned)" for c in ("0.020", "0.200")
    ]
    assert all(Path(d.path).parent == tmp_path / s.tag for d in planned)
    assert trial_table(cfg, planned)[0]["rf_nm"] == round(44 * 0.03, 2)
    # what the generator refuses the dry run refuses too (it checks through the generator)
    bad = dataclasses.replace(cfg, synthetic=dataclasses.replace(s, contrasts=(1.5,)))
    with pytest.raises(ConfigError, match=r"synthetic series: contrast C must lie in \[0, 1\)"):
        planned_datasets(bad, tmp_path)

    calls = []
    monkeypatch.setattr(
        synth, "make_contrast_series", lambda out_dir, **kw: calls.append((out_dir, kw)) or []
    )
    assert synthetic_datasets(cfg, tmp_path) == []
    ((out_dir, kw),) = calls
    assert out_dir == tmp_path / s.tag
    assert {k: kw[k] for k in KNOBS} == s.knobs
    assert (kw["preset"], kw["contrasts"], kw["seed"]) == ("hr-2.2nm", (0.02, 0.2), 0)
    line = capsys.readouterr().out
    assert "pixel_size_nm 0.03, defocus_nm [-12, -6]" in line and "dose 200" in line
    # without knobs: the preset's series, in data/ itself, and nothing extra is passed
    calls.clear()
    synthetic_datasets(SweepConfig(), tmp_path)
    ((out_dir, kw),) = calls
    assert out_dir == tmp_path and not set(kw) & set(KNOBS)
    assert kw["version"] == 2  # SWEEP_GENERATOR_VERSION: what the documented results used


def test_generator_version_flag_picks_the_generator_in_a_folder_of_its_own(
    tmp_path, monkeypatch
):
    import temseg.data.synth as synth
    from temseg.config import ConfigError
    from temseg.sweep.cli import grid_parser, sweep_config
    from temseg.sweep.datasets import planned_datasets, synthetic_datasets

    args = grid_parser().parse_args(["--profile", "smoke", "--generator-version", "3"])
    cfg = sweep_config(args)
    assert cfg.synthetic.generator_version == 3 and cfg.synthetic.tag == "gv3"
    planned = planned_datasets(cfg, tmp_path)
    assert all(Path(d.path).parent == tmp_path / "gv3" for d in planned)
    assert all(d.name.endswith("_gv3(planned)") for d in planned)
    calls = []
    monkeypatch.setattr(
        synth, "make_contrast_series", lambda out_dir, **kw: calls.append((out_dir, kw)) or []
    )
    synthetic_datasets(cfg, tmp_path)
    ((out_dir, kw),) = calls
    assert out_dir == tmp_path / "gv3" and kw["version"] == 3 and "generator_version" not in kw
    # a version the generator does not have is refused by the plan, before anything is made
    bad = sweep_config(grid_parser().parse_args(["--profile", "smoke", "--generator-version", "9"]))
    with pytest.raises(ConfigError, match=r"version 9: valid generator versions \[2, 3\]"):
        planned_datasets(bad, tmp_path)
    with pytest.raises(ConfigError, match="--generator-version sets the generator version"):
        sweep_config(grid_parser().parse_args(["--generator-version", "3", "--data", "x.zarr"]))
