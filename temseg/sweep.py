"""A receptive-field sweep: profile -> datasets x architectures x seeds -> trials -> results.

Pure planning (profiles, the grid, the trial table) imports neither Ray nor torch, so
``sweeps/grid.py --dry-run`` answers at once; :func:`run_grid` then hands the trials to
:mod:`temseg.tune` and writes the report.

Grid (SPEC.md sections 3 and 5): for each N in ``blocks``, every pool sequence over ``kernels``
whose RF is below the patch size (or the ``pools`` given), with dilations all 1 (or the
``dilations`` given); plus, with ``dilation_variants``, the paper's Figure 4 strategy for
N = 2 and 3 (pool 2 everywhere; the full-resolution block undilated, the deeper blocks'
dilation rising: 1,d,...,d); times every dataset and every seed.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# ClusterError and check_address moved to temseg.campaign; still importable from here
from temseg.campaign import ClusterError, check_address, ray_run_name  # noqa: F401
from temseg.config import (
    LR_SCHEDULES,
    PAPER_SEEDS,
    ConfigError,
    TrainConfig,
    check_distinct,
    from_dict,
    resolve_precision,
    to_dict,
)
from temseg.receptive_field import (
    Architecture,
    check_pools,
    dilation_variants,
    format_seq,
    parse_seq,
    pool_product,
    pool_sequences,
    resolve_dilations,
)
from temseg.trial import GRID, Dataset, Trial

PROFILES_DIR = Path(__file__).resolve().parents[1] / "sweeps"
PROFILES = ("smoke", "demo", "validation", "paper")
FIG4_BLOCKS = (2, 3)  # the paper's dilation study used N = 2 and 3


PRECISIONS = ("bf16", "fp32")
# SyntheticData's generator knobs: None = the preset's value; otherwise passed to
# temseg.data.synth.make_contrast_series (dose and fringe_free_fraction as its named options,
# the others as GeneratorParams overrides). Short names tag the stores' folder and datasets.
GENERATOR_KNOBS = {
    "pixel_size_nm": "px",
    "defocus_nm": "df",
    "fringe_free_fraction": "ff",
    "coverage": "cov",
    "dose": "dose",
    "astigmatism_nm": "astig",
    "split_fractions": "split",
}
RANGE_KNOBS = ("defocus_nm", "astigmatism_nm")


@dataclass(frozen=True)
class SyntheticData:
    """The default datasets: a synthetic contrast series made under ``data/`` on first use.

    ``seed`` is the generator seed of the series (stores are named ``<preset>-c<C>-s<seed>``).
    The generator knobs (``pixel_size_nm``; ``defocus_nm`` and ``astigmatism_nm`` as
    ``(min, max)`` ranges drawn per image; ``fringe_free_fraction``; ``coverage``; ``dose`` in
    e/A^2) default to None, the preset's value. A series with any knob set lives in its own
    folder ``data/<tag>/`` and its datasets are named ``<store>_<tag>``, e.g. tag
    ``px0.03_dose200``, so it never collides with the preset's series.
    """

    preset: str = "hr-2.2nm"
    contrasts: tuple[float, ...] = (0.02, 0.06, 0.2)
    images: int = 12
    image_size: int = 512
    patch_size: int = 256
    seed: int = 0
    pixel_size_nm: float | None = None
    defocus_nm: tuple[float, ...] | None = None
    fringe_free_fraction: float | None = None
    coverage: float | None = None
    dose: float | None = None
    astigmatism_nm: tuple[float, ...] | None = None
    # shares of the images in train / val / test (None: the paper's 0.7 / 0.1 / 0.2)
    split_fractions: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        for name in RANGE_KNOBS:
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or not value[0] <= value[1]):
                raise ValueError(
                    f"{name} must be a range [min, max] with min <= max, got {list(value)}"
                )
        if self.astigmatism_nm is not None and self.astigmatism_nm[0] < 0:
            raise ValueError(f"astigmatism_nm must be >= 0, got {list(self.astigmatism_nm)}")
        fr = self.split_fractions
        if fr is not None and (len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1) > 1e-6):
            raise ValueError(f"split_fractions must be 3 shares summing to 1, got {list(fr)}")
        if self.pixel_size_nm is not None and not self.pixel_size_nm > 0:
            raise ValueError(f"pixel_size_nm must be > 0, got {self.pixel_size_nm}")
        if self.dose is not None and not self.dose > 0:
            raise ValueError(f"dose must be > 0 e/A^2, got {self.dose}")
        if self.coverage is not None and not 0.0 < self.coverage < 0.6:
            raise ValueError(f"coverage must lie in (0, 0.6), got {self.coverage}")
        ff = self.fringe_free_fraction
        if ff is not None and not 0.0 <= ff <= 1.0:
            raise ValueError(f"fringe_free_fraction must lie in [0, 1], got {ff}")

    @property
    def knobs(self) -> dict[str, Any]:
        """The generator knobs that are set (not None), as make_contrast_series keywords."""
        return {k: getattr(self, k) for k in GENERATOR_KNOBS if getattr(self, k) is not None}

    @property
    def tag(self) -> str:
        """Short name of the knobs that are set, e.g. ``px0.03_df-12..-6``; "" for none."""
        return self._tag(self.knobs)

    @staticmethod
    def _tag(knobs: dict[str, Any]) -> str:
        def fmt(v: Any) -> str:
            return "..".join(f"{x:g}" for x in v) if isinstance(v, tuple) else f"{v:g}"

        return "_".join(f"{GENERATOR_KNOBS[k]}{fmt(v)}" for k, v in knobs.items())

    def describe_knobs(self) -> str:
        """E.g. ``pixel_size_nm 0.03, defocus_nm [-12, -6]``; "" when every knob is the preset's."""

        def fmt(v: Any) -> str:
            return "[" + ", ".join(f"{x:g}" for x in v) + "]" if isinstance(v, tuple) else f"{v:g}"

        return ", ".join(f"{k} {fmt(v)}" for k, v in self.knobs.items())

    def series_dir(self, data_dir: Path) -> Path:
        """Folder of this series' stores: ``data_dir``, or ``data_dir/<tag>`` with knobs set."""
        return data_dir / self.tag if self.tag else data_dir

    def dataset_name(self, store_stem: str) -> str:
        """Dataset name of a store of this series: the store name plus the tag of the image
        model's knobs (the split is not in the name: it is in the store's provenance)."""
        tag = self._tag({k: v for k, v in self.knobs.items() if k != "split_fractions"})
        return f"{store_stem}_{tag}" if tag else store_stem


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep needs; a profile YAML and the command line fill it."""

    profile: str = "demo"
    data: tuple[str, ...] = ()  # patch stores; empty = the synthetic series
    synthetic: SyntheticData = field(default_factory=SyntheticData)
    blocks: tuple[int, ...] = (2, 3, 4)
    kernels: tuple[int, ...] = (2, 4, 8)
    pools: tuple[str, ...] = ()  # e.g. ("8-8", "4-4"); empty = every valid sequence
    dilations: tuple[str, ...] = ()  # e.g. ("1-1-2",); empty = all ones
    dilation_variants: bool = True
    seeds: tuple[int, ...] = PAPER_SEEDS
    epochs: int = 100
    lr: float = 1e-4
    batch_size: int = 32
    augment: bool = True
    val_dihedral: bool = True  # see TrainConfig
    record_test: bool = False  # test dice every epoch (TrainConfig; a benchmark table's curves)
    lr_schedule: str = "constant"  # or "cosine" (see TrainConfig)
    # forward pass of every trial: bf16 autocast (CPU and CUDA) or fp32; "auto" = bf16 on GPUs
    # and CPUs with native bf16, fp32 elsewhere, resolved when the sweep is planned (the trial
    # key holds the resolved value)
    precision: str = "auto"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 2
    experiment: str = ""  # default: temseg-<profile>
    description: str = ""

    def __post_init__(self) -> None:
        # Every value is checked here, when the config is built (a profile, flags, a test), so
        # a bad one fails at load, before any store, Ray runtime or MLflow run exists.
        for name, low in (("epochs", 1), ("batch_size", 1), ("max_failures", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr:g}")
        if not self.seeds:
            raise ValueError("seeds must hold at least one seed, got none")
        if min(self.seeds) < 0:
            raise ValueError(f"seeds must be >= 0, got {list(self.seeds)}")
        if not self.blocks or min(self.blocks) < 1:
            raise ValueError(f"blocks must be >= 1 (at least one N), got {list(self.blocks)}")
        if not self.kernels or min(self.kernels) < 2:
            raise ValueError(f"kernels must be >= 2, got {list(self.kernels)}")
        for name in ("data", "seeds", "blocks", "kernels", "pools", "dilations"):
            check_distinct(name, getattr(self, name))
        for text in self.pools:
            check_pools(parse_arch_seq(text, what="pools"))
        for text in self.dilations:
            dil = parse_arch_seq(text, what="dilations")
            resolve_dilations(len(dil) - 1, dil)  # every value >= 1
            if len(dil) - 1 not in self.blocks:
                raise ValueError(
                    f"dilations {text!r} fits no N in blocks {list(self.blocks)} (an N-block "
                    "network takes N + 1 dilations, e.g. 1-1-2 for N = 2)"
                )
        if not self.cpus_per_trial > 0:
            raise ValueError(f"cpus_per_trial must be > 0, got {self.cpus_per_trial:g}")
        if self.gpus_per_trial < 0:
            raise ValueError(f"gpus_per_trial must be >= 0, got {self.gpus_per_trial:g}")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise ValueError(f"gpus_per_trial must be <= 1 or whole, got {self.gpus_per_trial:g}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be {' or '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.precision not in (*PRECISIONS, "auto"):
            raise ValueError(
                f"precision must be auto, {' or '.join(PRECISIONS)}, got {self.precision!r}"
            )

    @property
    def experiment_name(self) -> str:
        return self.experiment or f"temseg-{self.profile}"


def load_profile(name: str, overrides: dict[str, Any] | None = None) -> SweepConfig:
    """Read ``sweeps/<name>.yaml`` and apply command-line overrides (None values ignored).

    ``overrides["synthetic"]``, a dict, overrides single fields of the profile's synthetic
    series (e.g. ``{"seed": 3}``), its None values ignored too. The profile is checked on its
    own first, so an error names its file; an error the overrides bring in names the command
    line instead.
    """
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        valid = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown profile {name!r}; valid profiles: {', '.join(valid)}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(raw).__name__}")
    raw["profile"] = name
    try:
        profile = from_dict(SweepConfig, raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    overrides = dict(overrides or {})
    synthetic = {k: v for k, v in (overrides.pop("synthetic", None) or {}).items() if v is not None}
    merged = {k: v for k, v in overrides.items() if v is not None}
    if synthetic:
        merged["synthetic"] = {**to_dict(profile.synthetic), **synthetic}
    if not merged:
        return profile
    try:
        return from_dict(SweepConfig, {**to_dict(profile), **merged})
    except ConfigError as exc:
        raise ConfigError(f"command line (profile {name}): {exc}") from None


def parse_arch_seq(text: str, *, what: str = "sequence") -> tuple[int, ...]:
    """``"8-8"`` -> ``(8, 8)`` (:func:`temseg.receptive_field.parse_seq`), as a ConfigError."""
    try:
        return parse_seq(text)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def architectures(cfg: SweepConfig, patch_size: int) -> list[Architecture]:
    """The sweep's networks for one patch size, without duplicates, in a stable order."""
    out: list[Architecture] = []
    explicit_pools = [parse_arch_seq(p, what="pools") for p in cfg.pools]
    explicit_dil = [parse_arch_seq(d, what="dilations") for d in cfg.dilations]
    for n in cfg.blocks:
        if explicit_pools:
            seqs = [p for p in explicit_pools if len(p) == n]
        else:
            seqs = pool_sequences(n, kernels=cfg.kernels, patch_size=patch_size)
        dils = [d for d in explicit_dil if len(d) == n + 1] or [resolve_dilations(n, None)]
        for seq in seqs:
            for dil in dils:
                out.append(Architecture(n, seq, dil))
        if cfg.dilation_variants and not explicit_dil and n in FIG4_BLOCKS:
            out.extend(dilation_variants(n, patch_size=patch_size))
    seen, unique = set(), []
    for a in out:
        if a not in seen and a.rf_px < patch_size and patch_size % pool_product(a.pools) == 0:
            seen.add(a)
            unique.append(a)
    if explicit_pools:
        bad = [p for p in explicit_pools if patch_size % pool_product(p)]
        if bad:
            raise ConfigError(
                f"pool sequence(s) {[format_seq(p) for p in bad]} do not divide the "
                f"{patch_size} px patch (their product must divide it)"
            )
    if not unique and explicit_pools and not any(len(p) in cfg.blocks for p in explicit_pools):
        raise ConfigError(
            f"empty grid: no pool sequence in {list(cfg.pools)} fits blocks {list(cfg.blocks)} "
            "(an N-block network takes N pool kernels, e.g. 4-4 for N = 2)"
        )
    if not unique:
        raise ConfigError(
            f"empty grid: no architecture with blocks {list(cfg.blocks)}"
            f"{', pools ' + str(list(cfg.pools)) if cfg.pools else ''} has RF below the "
            f"{patch_size} px patch"
        )
    return unique


def _generator_contrast(attrs: dict[str, Any]) -> float:
    """The contrast knob C of a synthetic store's generator (NaN for any other store)."""
    gen = attrs.get("generator")
    c = gen.get("contrast") if isinstance(gen, dict) else None
    return float(c) if isinstance(c, (int, float)) else float("nan")


def open_datasets(paths: list[str]) -> list[Dataset]:
    """Read the attributes of existing patch stores (clear error for a non-temseg store)."""
    from temseg.data.store import read_attrs

    out = []
    for p in paths:
        path = Path(p).expanduser().resolve()
        attrs = read_attrs(path)
        name = path.name[: -len(".zarr")] if path.name.endswith(".zarr") else path.name
        out.append(
            Dataset(
                str(path),
                name,
                float(attrs["pixel_size_nm"]),
                int(attrs["patch_size"]),
                float("nan") if attrs.get("contrast") is None else float(attrs["contrast"]),
                str(attrs.get("content_hash", "")),
                _generator_contrast(attrs),
            )
        )
    return out


def synthetic_datasets(cfg: SweepConfig, data_dir: Path) -> list[str]:
    """Create (or reuse) the profile's synthetic contrast series; return the store paths.

    The stores go to ``cfg.synthetic.series_dir(data_dir)``: ``data_dir`` itself, or a folder
    of their own when generator knobs are set. :func:`synthetic_series` also names them.
    """
    from temseg.data.synth import make_contrast_series

    s = cfg.synthetic
    out_dir = s.series_dir(data_dir)
    knobs = s.describe_knobs()
    print(
        f"datasets: synthetic {s.preset} contrast series {list(s.contrasts)} "
        f"({s.images} images of {s.image_size} px, {s.patch_size} px patches, seed {s.seed}"
        f"{'; ' + knobs if knobs else ''}) under {out_dir}",
        flush=True,
    )
    paths = make_contrast_series(
        out_dir,
        contrasts=s.contrasts,
        preset=s.preset,
        images=s.images,
        seed=s.seed,
        image_size=s.image_size,
        patch_size=s.patch_size,
        **s.knobs,
    )
    return [str(p) for p in paths]


def synthetic_series(cfg: SweepConfig, data_dir: Path) -> list[Dataset]:
    """The profile's synthetic series as datasets (created or reused), named by their knobs."""
    s = cfg.synthetic
    return [
        dataclasses.replace(ds, name=s.dataset_name(ds.name))
        for ds in open_datasets(synthetic_datasets(cfg, data_dir))
    ]


def make_trial(
    cfg: SweepConfig,
    ds: Dataset,
    arch: Architecture,
    seed: int,
    *,
    search: str = GRID,
    study: str | None = None,
) -> Trial:
    """The :class:`temseg.trial.Trial` of ``arch`` on ``ds`` with ``seed`` under ``cfg``'s
    protocol, its precision resolved ("auto" -> what this machine trains), validated."""
    train = TrainConfig(
        data=ds.path,
        num_blocks=arch.num_blocks,
        pools=arch.pools,
        dilations=arch.dilations,
        seed=seed,
        epochs=cfg.epochs,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        augment=cfg.augment,
        val_dihedral=cfg.val_dihedral,
        record_test=cfg.record_test,
        lr_schedule=cfg.lr_schedule,
        precision=resolve_precision(cfg.precision, gpus_per_trial=cfg.gpus_per_trial),
    )
    return Trial(ds, train, profile=cfg.profile, search=search, study=study)


def plan_trials(cfg: SweepConfig, datasets: list[Dataset]) -> list[Trial]:
    """The grid's trials: dataset x architecture x seed, in a stable order."""
    return [
        make_trial(cfg, ds, arch, seed)
        for ds in datasets
        for arch in architectures(cfg, ds.patch_size)
        for seed in cfg.seeds
    ]


def build_trials(
    cfg: SweepConfig,
    datasets: list[Dataset],
    *,
    tracking_uri: str,
    experiment_id: str,
    parent_run_id: str | None = None,
) -> list[dict[str, Any]]:
    """The grid's trials as Ray carries them: one ``{"train", "meta"}`` dict each."""
    return [
        t.to_ray(
            tracking_uri=tracking_uri,
            experiment_id=experiment_id,
            gpus_per_trial=cfg.gpus_per_trial,
            parent_run_id=parent_run_id,
        )
        for t in plan_trials(cfg, datasets)
    ]


def trial_table(cfg: SweepConfig, datasets: list[Dataset]) -> list[dict[str, Any]]:
    rows = []
    for ds in datasets:
        for a in architectures(cfg, ds.patch_size):
            rows.append(
                {
                    "dataset": ds.name,
                    "num_blocks": a.num_blocks,
                    "pools": format_seq(a.pools),
                    "dilations": format_seq(a.dilations),
                    "strategy": a.strategy,
                    "rf_px": a.rf_px,
                    "rf_nm": round(a.rf_px * ds.pixel_size_nm, 2),
                    "n_params": a.n_params,
                    "precision": resolve_precision(
                        cfg.precision, gpus_per_trial=cfg.gpus_per_trial
                    ),
                    "seeds": len(cfg.seeds),
                }
            )
    return rows


def print_table(rows: list[dict[str, Any]], file=None) -> None:
    if not rows:
        return
    file = file or sys.stdout  # looked up now: a default bound at import goes stale under capture
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols), file=file)
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols), file=file)


def planned_datasets(cfg: SweepConfig, data_dir: Path) -> list[Dataset]:
    """Datasets for a dry run: real stores when given, else the synthetic series as planned."""
    if cfg.data:
        return open_datasets(list(cfg.data))
    from temseg.data.synth import generator_params, store_name

    s = cfg.synthetic
    out_dir = s.series_dir(data_dir)
    opts = {k: v for k, v in s.knobs.items() if k != "split_fractions"}  # not the image model
    opts.update(image_size=s.image_size)
    out = []
    for c in s.contrasts:
        # the generator's own parameters (the knobs validated as the real run would)
        try:
            px = float(generator_params(s.preset, contrast=c, **opts).pixel_size_nm)
        except ValueError as exc:
            raise ConfigError(f"synthetic series: {exc}") from None
        stem = store_name(s.preset, c, s.seed).removesuffix(".zarr")
        name = f"{s.dataset_name(stem)}(planned)"
        out.append(Dataset(str(out_dir / stem), name, px, s.patch_size, c, level=c))
    return out


@dataclass(frozen=True)
class GridStrategy:
    """The grid as a :class:`temseg.campaign.Strategy`: every trial of the space, one Tuner."""

    name: str = "grid"

    def plan(self, cfg: SweepConfig, datasets: list[Dataset]) -> None:
        rows = trial_table(cfg, datasets)
        print_table(rows)
        n = len(plan_trials(cfg, datasets))  # the real trials, validated as a run builds them
        print(
            f"\n{n} trials ({len(rows)} architectures x datasets, {len(cfg.seeds)} seeds); nothing run."
        )

    def check_space(self, cfg: SweepConfig, patch_size: int) -> None:
        architectures(cfg, patch_size)

    def experiment_of(self, cfg: SweepConfig) -> str:
        return cfg.experiment_name

    def identity(self) -> dict[str, Any]:
        return {}

    def preflight(self, cfg: SweepConfig, where: Any) -> None:
        pass

    def check_datasets(self, cfg: SweepConfig, where: Any, datasets: list[Dataset]) -> None:
        pass

    def run(
        self,
        cfg: SweepConfig,
        where: Any,
        cluster: dict[str, float],
        datasets: list[Dataset],
        parent_run_id: str | None = None,
    ) -> list[dict[str, Any]]:
        from temseg import tracking
        from temseg import tune as ttune

        experiment_id = tracking.ensure_experiment(where.tracking_uri, cfg.experiment_name)
        trials = build_trials(
            cfg,
            datasets,
            tracking_uri=where.tracking_uri,
            experiment_id=experiment_id,
            parent_run_id=parent_run_id,
        )
        print(
            f"sweep: {len(trials)} trials ({cfg.profile} profile) on {where.where} with "
            f"{cluster.get('CPU', 0):g} CPUs / {cluster.get('GPU', 0):g} GPUs; "
            f"{cfg.cpus_per_trial:g} CPU + {cfg.gpus_per_trial:g} GPU per trial",
            flush=True,
        )
        return ttune.run_trials(
            trials,
            name=ray_run_name(where.storage_path, cfg.experiment_name, where.resume),
            storage_path=where.storage_path,
            cpus_per_trial=cfg.cpus_per_trial,
            gpus_per_trial=cfg.gpus_per_trial,
            resume=where.resume,
            max_failures=cfg.max_failures,
        )

    def report(
        self, cfg: SweepConfig, where: Any, results: list[dict[str, Any]], seconds: float
    ) -> tuple[dict[str, float], dict[str, str]]:
        from temseg import tracking

        _print_summary(results, seconds)
        out_dir = where.report_path(cfg.experiment_name)
        _write_report(cfg.experiment_name, where.tracking_uri, out_dir)
        tracking.register_after_sweep(where.tracking_uri, cfg.experiment_name, out_dir)
        # ray_run_name with resume=True reads the pointer the run just wrote (no new folder)
        name = ray_run_name(where.storage_path, cfg.experiment_name, True)
        print(
            f"\nMLflow: {where.tracking_uri} (experiment {cfg.experiment_name!r}); browse with\n"
            f"{tracking.browse_hint(where.tracking_uri, cfg.experiment_name)}\n"
            f"Ray results: {os.path.join(where.storage_path, name)}",
            flush=True,
        )
        metrics, tags = tracking.grid_summary_for_parent(out_dir)
        failed = sum(1 for r in results if r["error"])
        return {**metrics, "trials": len(results), "failed_trials": failed}, tags


def run_grid(
    cfg: SweepConfig,
    *,
    project_dir: Path,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage_path: str | None = None,
    resume: bool = False,
    dry_run: bool = False,
    report_dir: str | None = None,
    num_cpus: int | None = None,
) -> list[dict[str, Any]]:
    """Run the sweep end to end; return one result dict per trial (see temseg.tune.run_trials)."""
    from temseg.campaign import placement, run_campaign

    where = placement(
        project_dir,
        address=address,
        tracking_uri=tracking_uri,
        storage_path=storage_path,
        report_dir=report_dir,
        num_cpus=num_cpus,
        resume=resume,
    )
    return run_campaign(cfg, GridStrategy(), where, dry_run=dry_run)


def _print_summary(results: list[dict[str, Any]], seconds: float) -> None:
    rows = []
    for r in sorted(
        results, key=lambda r: (r["meta"]["params"]["dataset"], r["meta"]["params"]["rf_px"])
    ):
        p, m = r["meta"]["params"], r["metrics"]
        rows.append(
            {
                "dataset": p["dataset"],
                "N": p["num_blocks"],
                "pools": p["pools"],
                "dilations": p["dilations"],
                "seed": p["seed"],
                "rf_px": p["rf_px"],
                "rf_nm": p["rf_nm"],
                "best_val_dice": f"{m['best_val_hard_dice']:.4f}"
                if "best_val_hard_dice" in m
                else "",
                "test_hard_dice": f"{m['test_hard_dice']:.4f}" if "test_hard_dice" in m else "",
                "best_epoch": f"{m['best_epoch']:.0f}/{p['epochs']}"
                + (" still improving" if m["best_epoch"] >= p["epochs"] else "")
                if "best_epoch" in m
                else "",
                "status": "ok" if r["error"] is None else "FAILED",
            }
        )
    failed = sum(r["error"] is not None for r in results)
    print(
        f"\nsweep finished in {seconds:.0f} s: {len(results) - failed} trials ok, {failed} failed"
    )
    print_table(rows)


def _write_report(experiment: str, tracking_uri: str, out_dir: Path) -> None:
    try:
        from temseg.analysis.report import write_report
    except ImportError:
        return
    try:
        path = write_report(experiment, tracking_uri, out_dir)
        import pandas as pd

        answers = pd.read_csv(path / "answers.csv")
        print("\nanswer (which receptive field is enough):", flush=True)
        for sentence in answers["sentence"]:
            print(f"- {sentence}", flush=True)
        print(f"report: {path / 'report.html'}", flush=True)
    except Exception as exc:  # the sweep's results are in MLflow whatever the report does
        print(f"report: not written ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
