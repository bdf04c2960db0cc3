"""Typed configuration: one dataclass per concern, built through one strict ``from_dict``.

A dict from the command line, a YAML profile or a Ray Tune sample goes through
:func:`from_dict`, which rejects unknown keys and wrong types, so a typo in a profile fails at
start instead of silently training the default. The resolved config is what gets saved beside
every checkpoint and logged to MLflow. Pure Python: no torch import.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from temseg.receptive_field import check_pools, receptive_field, resolve_dilations

T = TypeVar("T")

# The authors' five seeds (SPEC.md section 5).
PAPER_SEEDS = (752, 2245, 140, 9213, 956)
# TrainConfig fields that say where and how fast a run trains, not what it trains.
RESOURCE_KEYS = ("device", "num_workers", "gpu_fraction", "precision")


class ConfigError(ValueError):
    """A configuration value is unknown, missing or of the wrong type."""


def _coerce(name: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(name, value, arg)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError("; ".join(errors))
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("-", ",").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return tuple(_coerce(f"{name}[]", v, args[0]) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown key(s) {unknown}; valid keys: {sorted(fields)}")
    kwargs = {k: _coerce(f"{cls.__name__}.{k}", v, hints[k]) for k, v in data.items()}
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{cls.__name__}: missing required key(s) {missing}")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from exc


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        return v

    return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


@dataclass(frozen=True)
class ModelConfig:
    """The residual UNet: N blocks, one max-pool kernel per block, N + 1 dilations."""

    num_blocks: int
    pools: tuple[int, ...]
    dilations: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {self.num_blocks}")
        object.__setattr__(self, "pools", check_pools(self.pools, self.num_blocks))
        object.__setattr__(self, "dilations", resolve_dilations(self.num_blocks, self.dilations))

    @property
    def rf_px(self) -> int:
        return receptive_field(self.pools, self.dilations)


@dataclass(frozen=True)
class TrainConfig:
    """One training run: an architecture, a patch store and the paper's protocol.

    Defaults are the paper's (SPEC.md section 5): Adam lr 1e-4, batch 32, cross-entropy.
    ``data`` must be an absolute path (Ray Tune changes the working directory per trial).
    """

    data: str
    num_blocks: int
    pools: tuple[int, ...]
    dilations: tuple[int, ...] | None = None
    seed: int = PAPER_SEEDS[0]
    epochs: int = 100
    lr: float = 1e-4
    batch_size: int = 32
    augment: bool = True
    num_workers: int = 0
    device: str = "auto"  # "auto" = cuda when available, else cpu
    # Floating-point format of the forward pass on CUDA ("bf16" autocast or "fp32"); CPU
    # always trains in fp32.
    precision: str = "bf16"
    # Fraction of one GPU this trial may use (its per-process CUDA memory cap); 0 = no cap.
    gpu_fraction: float = 0.0

    def __post_init__(self) -> None:
        model = ModelConfig(self.num_blocks, self.pools, self.dilations)
        object.__setattr__(self, "pools", model.pools)
        object.__setattr__(self, "dilations", model.dilations)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda[:i], got {self.device!r}")
        if self.precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be bf16 or fp32, got {self.precision!r}")

    @property
    def model(self) -> ModelConfig:
        return ModelConfig(self.num_blocks, self.pools, self.dilations)
