"""A recorded benchmark table: every architecture x seed of a grid, with its learning curves.

Search methods are measured on recorded tables (tabular benchmarks such as HPOBench and
NAS-Bench-201): every configuration trained once with its full per-epoch curves, then each
method replayed against the table at no training cost (:mod:`temseg.sweep.search.replay`).

The table is a compact CSV, one row per (architecture, seed, epoch):

``arch, num_blocks, pools, dilations, rf_px, n_params, seed, epoch, val_hard_dice,
test_hard_dice, seconds``

``val_hard_dice`` is the validation hard dice after that epoch, ``test_hard_dice`` the test
hard dice of that epoch's weights (``epoch_test_hard_dice``, evaluated exactly like the final
test) and ``seconds`` that epoch's training + validation seconds (``epoch_seconds``). Floats
are rounded to 6 significant digits, so an export is stable.

Definitions (the same as :func:`temseg.train.fit`'s): a trial's best epoch is the first
epoch with the highest validation dice (``>``, so ties go to the earliest); its final test
dice is its recorded test dice at that epoch. An architecture's score is the mean over seeds
of its trials' final test dice; the grid's best is the architecture with the highest score.
The full grid's compute is every trial-epoch of the table (n_arch x n_seeds x max_epochs) and
the sum of every epoch's seconds.

Pure: MLflow is imported only by :func:`export_table`; no Ray.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temseg.receptive_field import Architecture, format_seq, parse_seq, pool_product

COLUMNS = (
    "arch",
    "num_blocks",
    "pools",
    "dilations",
    "rf_px",
    "n_params",
    "seed",
    "epoch",
    "val_hard_dice",
    "test_hard_dice",
    "seconds",
)
INT_COLUMNS = ("num_blocks", "rf_px", "n_params", "seed", "epoch")
FLOAT_COLUMNS = ("val_hard_dice", "test_hard_dice", "seconds")
# MLflow metric of each per-epoch column (step = epoch, 1..epochs)
EPOCH_METRICS = {
    "val_hard_dice": "val_hard_dice",
    "test_hard_dice": "epoch_test_hard_dice",
    "seconds": "epoch_seconds",
}


class TableError(ValueError):
    """A table file that cannot be used, with the file (and line) named."""


def sig6(value: float) -> float:
    """``value`` rounded to 6 significant digits (what the CSV holds).

    >>> sig6(0.61336392489), sig6(7.056080731)
    (0.613364, 7.05608)
    """
    return float(f"{float(value):.6g}")


# ------------------------------------------------------------------------------ export


def _run_label(run: Any) -> str:
    name = run.info.run_name or run.data.tags.get("mlflow.runName", "")
    return f"run {run.info.run_id} ({name})" if name else f"run {run.info.run_id}"


def export_table(
    tracking_uri: str, experiment: str, *, dataset: str | None = None
) -> list[dict[str, Any]]:
    """The table rows of every FINISHED run of ``experiment``: one per (arch, seed, epoch).

    Runs of an Optuna search (tag ``temseg.search=optuna``) are left out: the table is the
    grid. ``dataset`` picks one dataset where the experiment holds several (otherwise that is
    an error). Raises ``ValueError`` naming the run for a run without a complete per-epoch
    history (steps 1..``epochs`` of ``val_hard_dice``, ``epoch_test_hard_dice`` and
    ``epoch_seconds``) and for two finished runs of one architecture and seed.
    """
    from temseg.analysis import collect
    from temseg.trial import TAG_SEARCH

    client = collect.client_for(tracking_uri)
    exp = collect.get_experiment(client, experiment)
    runs = client.search_runs(
        [exp.experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=50000
    )
    runs = [r for r in runs if r.data.tags.get(TAG_SEARCH, "") != "optuna"]
    datasets = sorted({r.data.params.get("dataset", "") for r in runs})
    if dataset is not None:
        runs = [r for r in runs if r.data.params.get("dataset") == dataset]
        if not runs:
            raise ValueError(
                f"experiment {experiment!r} has no finished run on dataset {dataset!r}; "
                f"its datasets: {datasets}"
            )
    elif len(datasets) > 1:
        raise ValueError(
            f"experiment {experiment!r} holds finished runs of {len(datasets)} datasets "
            f"{datasets}: a table is one dataset, pick one"
        )
    if not runs:
        raise ValueError(f"experiment {experiment!r} has no finished runs")
    rows: list[dict[str, Any]] = []
    owner: dict[tuple[Architecture, int], str] = {}
    for run in runs:
        label = _run_label(run)
        p = run.data.params
        try:
            arch = Architecture(
                int(p["num_blocks"]), parse_seq(p["pools"]), parse_seq(p["dilations"])
            )
            seed, epochs = int(p["seed"]), int(p["epochs"])
            rf_px, n_params = int(p["rf_px"]), int(p["n_params"])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{label}: missing or bad param ({exc})") from None
        if (arch, seed) in owner:
            raise ValueError(
                f"{label}: a second finished run of {arch.name} seed {seed} (the first: "
                f"{owner[arch, seed]})"
            )
        owner[arch, seed] = label
        curves: dict[str, dict[int, float]] = {}
        for column, metric in EPOCH_METRICS.items():
            steps: dict[int, float] = {}
            for m in client.get_metric_history(run.info.run_id, metric):
                steps.setdefault(int(m.step), float(m.value))
            missing = sorted(set(range(1, epochs + 1)) - set(steps))
            if missing:
                raise ValueError(
                    f"{label}: incomplete per-epoch history: {metric!r} lacks epoch(s) "
                    f"{missing} of 1..{epochs} (a table needs record_test runs)"
                )
            curves[column] = steps
        for epoch in range(1, epochs + 1):
            rows.append(
                {
                    "arch": arch.name,
                    "num_blocks": arch.num_blocks,
                    "pools": format_seq(arch.pools),
                    "dilations": format_seq(arch.dilations),
                    "rf_px": rf_px,
                    "n_params": n_params,
                    "seed": seed,
                    "epoch": epoch,
                    **{c: sig6(curves[c][epoch]) for c in EPOCH_METRICS},
                }
            )
    rows.sort(key=_row_order)
    return rows


def _row_order(row: Mapping[str, Any]) -> tuple:
    return (
        int(row["num_blocks"]),
        parse_seq(str(row["pools"])),
        parse_seq(str(row["dilations"])),
        int(row["seed"]),
        int(row["epoch"]),
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_table(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` as the table CSV (the columns of :data:`COLUMNS`, floats to 6 digits)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for row in sorted(rows, key=_row_order):
            w.writerow([_cell(row[c]) for c in COLUMNS])
    return path


# ------------------------------------------------------------------------------ load


@dataclass(frozen=True)
class Curve:
    """One trial's per-epoch values (index 0 = epoch 1)."""

    val: tuple[float, ...]
    test: tuple[float, ...]
    seconds: tuple[float, ...]

    @property
    def epochs(self) -> int:
        return len(self.val)

    def best_epoch(self, upto: int | None = None) -> int:
        """First epoch with the highest validation dice among epochs 1..``upto``."""
        k = self.epochs if upto is None else upto
        best, best_val = 0, -math.inf
        for i, v in enumerate(self.val[:k], start=1):
            if v > best_val:  # temseg.train: strictly better, so ties keep the earliest
                best, best_val = i, v
        return best

    def best_val(self, upto: int | None = None) -> float:
        """Running best validation dice after epoch ``upto`` (what the trainable reports)."""
        k = self.epochs if upto is None else upto
        return max(self.val[:k])

    @property
    def final_test(self) -> float:
        """Recorded test dice at the best-validation epoch (the trial's final test)."""
        return self.test[self.best_epoch() - 1]


def _natural(arch: Architecture) -> tuple:
    return (arch.num_blocks, arch.pools, arch.dilations)


@dataclass(frozen=True)
class Table:
    """A loaded table: architectures (by N, pools, dilations), seeds (ascending), curves."""

    path: str
    architectures: tuple[Architecture, ...]
    seeds: tuple[int, ...]
    max_epochs: int
    curves: Mapping[tuple[Architecture, int], Curve]
    rf_px: Mapping[Architecture, int] = field(default_factory=dict)
    n_params: Mapping[Architecture, int] = field(default_factory=dict)

    def curve(self, arch: Architecture, seed: int) -> Curve:
        return self.curves[arch, seed]

    def final_test(self, arch: Architecture, seed: int) -> float:
        return self.curves[arch, seed].final_test

    def seed_mean(self, arch: Architecture) -> float:
        """Mean over seeds of the final test dice of ``arch``."""
        return math.fsum(self.final_test(arch, s) for s in self.seeds) / len(self.seeds)

    @functools.cached_property
    def grid_best(self) -> tuple[Architecture, float]:
        """The architecture with the highest seed-mean final test dice, and that mean.

        Ties (equal means) go to the first in :meth:`grid_order`.
        """
        best, best_mean = None, -math.inf
        for arch in self.grid_order():
            mean = self.seed_mean(arch)
            if mean > best_mean:
                best, best_mean = arch, mean
        assert best is not None
        return best, best_mean

    @property
    def grid_trial_epochs(self) -> int:
        """Every trial-epoch of the table: n_arch x n_seeds x max_epochs."""
        return sum(c.epochs for c in self.curves.values())

    @functools.cached_property
    def grid_seconds(self) -> float:
        """The sum of every epoch's seconds (exactly rounded, order-independent)."""
        return math.fsum(s for c in self.curves.values() for s in c.seconds)

    @functools.cached_property
    def patch_size(self) -> int:
        """The smallest patch that trains every architecture of the table.

        The table does not record the patch; this one (a multiple of every pool product,
        above every RF) gives the grid's order and the search space the same architectures.
        The bench profile's 13 networks give 192 px, its patch.
        """
        step = math.lcm(*(pool_product(a.pools) for a in self.architectures))
        return step * (max(a.rf_px for a in self.architectures) // step + 1)

    def grid_order(self) -> list[Architecture]:
        """The table's architectures in the order :func:`temseg.sweep.space.architectures` trains them.

        The sweep is rebuilt from the table: its blocks, its pool sequences (lexicographic,
        as a profile lists them) and the Figure 4 dilation variants; any architecture of the
        table it does not produce follows, by N, pools, dilations.
        """
        from temseg.sweep.profile import SweepConfig
        from temseg.sweep.space import architectures

        pools = sorted({a.pools for a in self.architectures}, key=lambda p: (len(p), p))
        sweep = SweepConfig(
            blocks=tuple(sorted({a.num_blocks for a in self.architectures})),
            pools=tuple(format_seq(p) for p in pools),
            dilation_variants=True,
        )
        mine = set(self.architectures)
        order = [a for a in architectures(sweep, self.patch_size) if a in mine]
        rest = sorted(mine - set(order), key=_natural)
        return order + rest


def _fail(path: Path, line: int | None, message: str) -> TableError:
    where = f"{path}, line {line}" if line is not None else str(path)
    return TableError(f"{where}: {message}")


def load_table(path: str | Path) -> Table:
    """Read a table CSV written by :func:`write_table`.

    Raises :class:`TableError` (a ``ValueError``) naming the file and line for a missing
    column or a bad value, a duplicate (arch, seed, epoch), an ``arch`` name or ``rf_px`` that
    does not match its blocks, pools and dilations; and naming the file and the pair for an
    (arch, seed) pair whose epochs are not 1..max epoch, or an architecture lacking a seed.
    """
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such table file")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise _fail(path, 1, f"missing column(s) {missing}; a table has {list(COLUMNS)}")
        values: dict[tuple[Architecture, int], dict[int, tuple[float, float, float]]] = {}
        rf_px: dict[Architecture, int] = {}
        n_params: dict[Architecture, int] = {}
        for line, raw in enumerate(reader, start=2):
            row: dict[str, Any] = {}
            for c in COLUMNS:
                text = (raw.get(c) or "").strip()
                try:
                    if c in INT_COLUMNS:
                        row[c] = int(text)
                    elif c in FLOAT_COLUMNS:
                        row[c] = float(text)
                        if not math.isfinite(row[c]):
                            raise ValueError("not finite")
                    else:
                        row[c] = text
                except ValueError:
                    raise _fail(path, line, f"bad value {text!r} in column {c!r}") from None
            try:
                arch = Architecture(
                    row["num_blocks"], parse_seq(row["pools"]), parse_seq(row["dilations"])
                )
            except ValueError as exc:
                raise _fail(path, line, f"bad architecture: {exc}") from None
            if row["arch"] != arch.name:
                raise _fail(
                    path, line, f"arch {row['arch']!r} does not match its columns ({arch.name})"
                )
            if row["rf_px"] != arch.rf_px:
                raise _fail(path, line, f"rf_px {row['rf_px']} is not {arch.name}'s {arch.rf_px}")
            if row["epoch"] < 1:
                raise _fail(path, line, f"epoch must be >= 1, got {row['epoch']}")
            if n_params.setdefault(arch, row["n_params"]) != row["n_params"]:
                raise _fail(path, line, f"n_params of {arch.name} differs from an earlier row")
            rf_px[arch] = row["rf_px"]
            epochs = values.setdefault((arch, row["seed"]), {})
            if row["epoch"] in epochs:
                raise _fail(
                    path, line, f"{arch.name} seed {row['seed']} epoch {row['epoch']} twice"
                )
            epochs[row["epoch"]] = (row["val_hard_dice"], row["test_hard_dice"], row["seconds"])
    if not values:
        raise _fail(path, None, "no rows")
    archs = tuple(sorted({a for a, _ in values}, key=_natural))
    seeds = tuple(sorted({s for _, s in values}))
    max_epochs = max(max(e) for e in values.values())
    curves = {}
    for arch in archs:
        for seed in seeds:
            got = values.get((arch, seed))
            if got is None:
                raise _fail(path, None, f"{arch.name} has no rows for seed {seed}")
            lacking = sorted(set(range(1, max_epochs + 1)) - set(got))
            if lacking:
                raise _fail(
                    path,
                    None,
                    f"{arch.name} seed {seed} lacks epoch(s) {lacking} of 1..{max_epochs}",
                )
            ordered = [got[e] for e in range(1, max_epochs + 1)]
            curves[arch, seed] = Curve(
                tuple(v for v, _, _ in ordered),
                tuple(t for _, t, _ in ordered),
                tuple(s for _, _, s in ordered),
            )
    return Table(str(path), archs, seeds, max_epochs, curves, rf_px, n_params)
