"""A sweep's profile: ``sweeps/<name>.yaml`` and the command line, as one validated config.

:class:`SweepConfig` holds what a grid and a search share: the datasets (patch stores or the
synthetic series, :class:`SyntheticData`), the space (blocks, kernels or pool sequences,
dilation sets), the training protocol (:class:`temseg.config.TrainConfig`'s fields, defaults
and checks) and the resources per trial. Pure: no torch, Ray or MLflow, so ``--dry-run`` and
every bad value answer at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from temseg.config import (
    PAPER_SEEDS,
    ConfigError,
    TrainConfig,
    check_distinct,
    from_dict,
    resolve_precision,
    to_dict,
)
from temseg.receptive_field import Architecture, check_pools, parse_seq, resolve_dilations

PROFILES_DIR = Path(__file__).resolve().parents[2] / "sweeps"
PRECISIONS = ("bf16", "fp32")
# What every trial of a sweep trains with: TrainConfig's protocol fields (their defaults too).
PROTOCOL = ("epochs", "lr", "batch_size", "augment", "val_dihedral", "record_test", "lr_schedule")
_TRAIN = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
DEVICES = ("auto", "cpu", "cuda")
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
    "generator_version": "gv",
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
    ``px0.03_dose200``, so it never collides with the preset's series. ``generator_version``
    (tag ``gv``) picks the fast generator's model version (None: the sweeps' pinned one).
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
    # the fast generator's model version (None: the sweeps' pinned version,
    # temseg.sweep.datasets.SWEEP_GENERATOR_VERSION; 3 is the one tuned against real data)
    generator_version: int | None = None

    def __post_init__(self) -> None:
        if self.generator_version is not None and self.generator_version < 1:
            raise ValueError(f"generator_version must be >= 1, got {self.generator_version}")
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
    # the training protocol of every trial: TrainConfig's fields, defaults and checks
    epochs: int = _TRAIN["epochs"]
    lr: float = _TRAIN["lr"]
    batch_size: int = _TRAIN["batch_size"]
    augment: bool = _TRAIN["augment"]
    val_dihedral: bool = _TRAIN["val_dihedral"]
    record_test: bool = _TRAIN["record_test"]  # test dice every epoch (a benchmark's curves)
    lr_schedule: str = _TRAIN["lr_schedule"]
    # forward pass of every trial: bf16 autocast (CPU and CUDA) or fp32; "auto" = bf16 on GPUs
    # and CPUs with native bf16, fp32 elsewhere, resolved when the sweep is planned (the trial
    # key holds the resolved value)
    precision: str = "auto"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    # where trials train: "auto" = the GPU Ray gives a trial, else the CPU; "cpu" = always the
    # CPU, also when Ray gives GPU shares (logical GPUs); "cuda" = a GPU (gpus_per_trial > 0)
    device: str = "auto"
    max_failures: int = 2
    experiment: str = ""  # default: temseg-<profile>
    description: str = ""

    def __post_init__(self) -> None:
        # Every value is checked here, when the config is built (a profile, flags, a test), so
        # a bad one fails at load, before any store, Ray runtime or MLflow run exists. The
        # protocol is TrainConfig's, checked by TrainConfig itself (one trial's worth).
        self.train_config("/", Architecture(1, (2,)), 0, precision="fp32")
        if self.max_failures < 0:
            raise ValueError(f"max_failures must be >= 0, got {self.max_failures}")
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
        for seq in self.pool_seqs:  # parsed once, here
            check_pools(seq)
        for text, dil in zip(self.dilations, self.dilation_sets, strict=True):
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
        if self.device not in DEVICES:
            raise ValueError(f"device must be {', '.join(DEVICES)}, got {self.device!r}")
        if self.device == "cuda" and not self.gpus_per_trial > 0:
            raise ValueError(
                "device cuda needs gpus_per_trial > 0 (Ray hides the GPUs from a trial it "
                "gave none)"
            )
        if self.precision not in (*PRECISIONS, "auto"):
            raise ValueError(
                f"precision must be auto, {' or '.join(PRECISIONS)}, got {self.precision!r}"
            )

    @cached_property
    def pool_seqs(self) -> tuple[tuple[int, ...], ...]:
        """``pools`` typed: ``("8-8", "4-4")`` -> ``((8, 8), (4, 4))``."""
        return tuple(parse_arch_seq(text, what="pools") for text in self.pools)

    @cached_property
    def dilation_sets(self) -> tuple[tuple[int, ...], ...]:
        """``dilations`` typed: ``("1-1-2",)`` -> ``((1, 1, 2),)``."""
        return tuple(parse_arch_seq(text, what="dilations") for text in self.dilations)

    @property
    def experiment_name(self) -> str:
        return self.experiment or f"temseg-{self.profile}"

    @property
    def precision_resolved(self) -> str:
        """The precision trials train in ("auto" resolved for where they train)."""
        on_gpu = self.gpus_per_trial if self.device != "cpu" else 0.0
        return resolve_precision(self.precision, gpus_per_trial=on_gpu)

    def train_config(
        self, data: str, arch: Architecture, seed: int, *, precision: str | None = None
    ) -> TrainConfig:
        """The :class:`TrainConfig` of ``arch`` on store ``data`` with ``seed`` under this
        sweep's protocol (precision resolved: what this machine trains), validated."""
        return TrainConfig(
            data=data,
            num_blocks=arch.num_blocks,
            pools=arch.pools,
            dilations=arch.dilations,
            seed=seed,
            precision=precision or self.precision_resolved,
            device=self.device,  # "auto": the trainable picks what Ray gave the trial
            **{name: getattr(self, name) for name in PROTOCOL},
        )


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
