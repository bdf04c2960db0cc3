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

from temseg.receptive_field import Architecture

T = TypeVar("T")

# The authors' five seeds (SPEC.md section 5).
PAPER_SEEDS = (752, 2245, 140, 9213, 956)
# TrainConfig fields that say where and how fast a run trains, not what it trains. Precision
# is not one of them: bf16 autocast changes the numbers a run produces, so a bf16 and an fp32
# run are different trials (different trial keys; neither resumes the other's state).
# ``record_test`` is one of them: it only adds a measurement (the test split every epoch).
RESOURCE_KEYS = ("device", "num_workers", "gpu_fraction", "record_test")
LR_SCHEDULES = ("constant", "cosine")


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16).

    On CPUs without it (AVX2-only x86, e.g. many AMD EPYC and laptop parts) PyTorch's bf16
    convolutions fall back to generic kernels: measured here, a bf16-autocast training step
    of this network ran 2-6x *slower* than fp32. Pure Python (reads the flags), so planning
    a sweep needs no torch.
    """
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str, *, gpus_per_trial: float) -> str:
    """``"auto"`` -> ``"bf16"`` on GPUs and on CPUs with native bf16, else ``"fp32"``.

    Resolved once, when a sweep is planned, so the trial key records what is trained.
    """
    if precision != "auto":
        return precision
    return "bf16" if gpus_per_trial > 0 or cpu_has_native_bf16() else "fp32"


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
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        # nested configs go through from_dict too: unknown keys, types and ranges checked
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            try:
                return from_dict(tp, value)
            except ConfigError as exc:
                raise ConfigError(f"{name}: {exc}") from None
        raise ConfigError(f"{name}: expected a mapping, got {value!r}")
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


def check_distinct(name: str, values: tuple[Any, ...]) -> None:
    """Refuse repeated values in a list field (``--seeds 5 5`` would train one trial twice)."""
    repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
    if repeated:
        raise ValueError(
            f"{name} must be distinct values, got {list(values)} "
            f"({', '.join(map(str, repeated))} repeated)"
        )


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists; nested configs, dicts)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return to_dict(v)
        return v

    return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


# The model's config is the one architecture type (N, pools, dilations; validated when built).
# The old name stays for checkpoints' readers and scripts.
ModelConfig = Architecture


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
    # validate on the 8 dihedral copies of each patch (the paper's expanded split) or, False,
    # on the patches as stored: 8x cheaper per epoch, for short studies; test is unaffected
    val_dihedral: bool = True
    # "constant" (the paper's) or "cosine": a linear warm-up over the first 10 % of the run's
    # steps, then half a cosine from lr to 0, so a short run ends converged instead of mid-descent
    lr_schedule: str = "constant"
    num_workers: int = 0
    device: str = "auto"  # "auto" = cuda when available, else cpu
    # Floating-point format of the forward pass, on CPU and CUDA alike: "bf16" (default) runs
    # it under torch.autocast with bfloat16 (weights, gradients and the optimizer stay fp32);
    # "fp32" runs it in plain fp32 (exact reproduction of runs made before bf16 on CPU). Part
    # of what a trial trains, so part of its trial key.
    precision: str = "bf16"
    # Fraction of one GPU this trial may use (its per-process CUDA memory cap); 0 = no cap.
    gpu_fraction: float = 0.0
    # Also evaluate the current model on the test split after every epoch
    # (``epoch_test_hard_dice``), as the final test does (same transforms): the learning
    # curves a recorded benchmark table replays (docs/bench/). It changes nothing trained.
    record_test: bool = False

    def __post_init__(self) -> None:
        model = Architecture(self.num_blocks, self.pools, self.dilations)
        object.__setattr__(self, "pools", model.pools)
        object.__setattr__(self, "dilations", model.dilations)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda[:i], got {self.device!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be {' or '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be bf16 or fp32, got {self.precision!r}")

    @property
    def model(self) -> Architecture:
        """The network this run trains."""
        return Architecture(self.num_blocks, self.pools, self.dilations)
