"""Import the authors' published checkpoints without executing code from them.

The paper's authors saved whole modules with ``torch.save(model)``: pickles that name their
classes (``__main__.UNet``, ``__main__.UNet_MaxPool``, ``__main__.ResidualBlock``) and
torch's. Unpickling them the ordinary way imports and calls whatever the file names. Here
every global the pickle asks for goes through an allow-list: module classes become inert
placeholder objects that only receive their saved attributes, tensors are rebuilt by torch's
own tensor-rebuild functions, and any other name stops the load with :class:`LegacyCheckpointError`.
The tensors are then mapped onto :class:`temseg.model.ResidualUNet`, whose module names follow
the authors' ``UNet`` class; the pools and dilations are read from the saved layers themselves.

Two layouts exist (shared/reference_models/README.md):

- ``UNet``: ``downs.i``, ``pools.i``, ``bottleneck``, ``upsamples.i``, ``ups.i`` (``ups.0``
  deepest), ``final_conv``; zip serialization. Maps one to one.
- ``UNet_MaxPool``: ``down1``, ``pool1``, ``down2``, ..., ``upsample2``, ``up2``, ...,
  ``up1``, ``final_conv``; legacy (pre-zip) serialization. ``down{i+1}`` -> ``downs.i``,
  ``up{N-i}`` -> ``ups.i``.
"""

from __future__ import annotations

import os
import pickle
import re
import types
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from temseg.model import ResidualUNet, save_checkpoint


class LegacyCheckpointError(ValueError):
    """The file is not one of the authors' checkpoints, or names something not allowed."""


class _Placeholder:
    """Inert stand-in for a pickled module: it only keeps the attributes it is given."""

    _pickled_name = "?"

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise LegacyCheckpointError(f"unexpected state for {self._pickled_name}")
        self.__dict__.update(state)


_MODULE_CLASSES = (
    "__main__.UNet",
    "__main__.UNet_MaxPool",
    "__main__.ResidualBlock",
    "torch.nn.modules.activation.ReLU",
    "torch.nn.modules.batchnorm.BatchNorm2d",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.pooling.MaxPool2d",
    "torch.nn.modules.upsampling.Upsample",
)
_PLACEHOLDERS = {
    name: type(name.rsplit(".", 1)[1], (_Placeholder,), {"_pickled_name": name})
    for name in _MODULE_CLASSES
}
_ALLOWED: dict[str, Any] = {
    "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
    "collections.OrderedDict": OrderedDict,
    "__builtin__.set": set,
    "builtins.set": set,
    # Old torch pickled a module's `_backend` as a call to this (gone from torch today);
    # the placeholder returns None and the attribute is never used.
    "torch.nn.backends.thnn._get_thnn_function_backend": lambda *args: None,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full in _PLACEHOLDERS:
            return _PLACEHOLDERS[full]
        if full in _ALLOWED:
            return _ALLOWED[full]
        raise LegacyCheckpointError(
            f"refusing to load: the pickle names {full!r}, which is not on temseg's allow-list "
            "of the authors' module classes and torch's tensor-rebuild functions"
        )


# torch.load(pickle_module=...) needs `Unpickler` and `load`; torch's own wrapper subclasses
# our Unpickler (for storages) and defers every other global to our find_class.
_restricted_pickle = types.SimpleNamespace(
    __name__="temseg_restricted_pickle",
    Unpickler=_RestrictedUnpickler,
    load=lambda f, **kw: _RestrictedUnpickler(f, **kw).load(),
)


def _read_placeholders(path: Path) -> _Placeholder:
    try:
        with warnings.catch_warnings():
            # torch warns that it cannot compare the placeholders' source with the file's
            warnings.simplefilter("ignore")
            root = torch.load(
                path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle
            )
    except LegacyCheckpointError as exc:
        raise LegacyCheckpointError(f"{path}: {exc}") from None
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise LegacyCheckpointError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    if not isinstance(root, _Placeholder) or root._pickled_name not in (
        "__main__.UNet",
        "__main__.UNet_MaxPool",
    ):
        raise LegacyCheckpointError(
            f"{path}: expected a pickled UNet or UNet_MaxPool module, got {type(root).__name__}"
        )
    return root


def _tensors(obj: _Placeholder, prefix: str, out: dict[str, torch.Tensor]) -> None:
    for key in ("_parameters", "_buffers"):
        for name, value in obj.__dict__.get(key, {}).items():
            if value is not None:
                out[prefix + name] = value.detach() if isinstance(value, torch.Tensor) else value
    for name, child in obj.__dict__.get("_modules", {}).items():
        _tensors(child, f"{prefix}{name}.", out)


def _pair(value: Any) -> int:
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise LegacyCheckpointError(f"non-square kernel or dilation {value}")
        return int(value[0])
    return int(value)


def _architecture(root: _Placeholder, path: Path) -> tuple[str, int, list[Any], list[Any]]:
    """Layout name, N, then the pool and encoder-block placeholders, shallow to deep."""
    mods = root.__dict__["_modules"]
    if "downs" in mods:
        downs = list(mods["downs"].__dict__["_modules"].values())
        pools = list(mods["pools"].__dict__["_modules"].values())
        return "UNet", len(downs), pools, downs
    n = len([k for k in mods if re.fullmatch(r"down\d+", k)])
    if n == 0:
        raise LegacyCheckpointError(f"{path}: no encoder blocks (downs / down1...) found")
    pools = [mods[f"pool{i + 1}"] for i in range(n)]
    downs = [mods[f"down{i + 1}"] for i in range(n)]
    return "UNet_MaxPool", n, pools, downs


def load_legacy_checkpoint(
    path: str | os.PathLike, *, save_to: str | os.PathLike | None = None
) -> ResidualUNet:
    """Load one of the authors' published checkpoints into :class:`ResidualUNet` (eval mode).

    Parameters
    ----------
    path
        A ``torch.save(model)`` file of the authors' ``UNet`` or ``UNet_MaxPool`` class.
    save_to
        If given, also write the model in temseg's own checkpoint format there.

    Raises
    ------
    LegacyCheckpointError
        The file names a global outside the allow-list, or is not such a network.
    """
    path = Path(path)
    root = _read_placeholders(path)
    layout, n, pool_mods, down_mods = _architecture(root, path)
    pools = []
    for p in pool_mods:
        k, s = (
            _pair(p.__dict__["kernel_size"]),
            _pair(p.__dict__.get("stride") or p.__dict__["kernel_size"]),
        )
        if k != s:
            raise LegacyCheckpointError(f"{path}: max pool kernel {k} != stride {s}")
        pools.append(k)
    dilations = [_pair(b.__dict__["_modules"]["conv1"].__dict__["dilation"]) for b in down_mods]
    bottleneck = root.__dict__["_modules"]["bottleneck"]
    dilations.append(_pair(bottleneck.__dict__["_modules"]["conv1"].__dict__["dilation"]))

    raw: dict[str, torch.Tensor] = {}
    _tensors(root, "", raw)
    state = {}
    for key, value in raw.items():
        head, _, rest = key.partition(".")
        if layout == "UNet_MaxPool" and (m := re.fullmatch(r"(down|up)(\d+)", head)):
            i = int(m.group(2)) - 1
            key = f"downs.{i}.{rest}" if m.group(1) == "down" else f"ups.{n - 1 - i}.{rest}"
        state[key] = value

    model = ResidualUNet(n, pools, dilations)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise LegacyCheckpointError(
            f"{path}: tensors do not fit ResidualUNet({n}, {pools}): {exc}"
        ) from exc
    model.eval()
    if save_to is not None:
        save_checkpoint(save_to, model, {"source": str(path.name), "legacy_layout": layout})
    return model
