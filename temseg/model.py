"""The residual UNet of Sytwu, Groschner & Scott (2022), exactly (SPEC.md section 2).

N encoder residual blocks with 4 * 2**i filters, each followed by a max pool whose kernel equals
its stride (p_i); a bottleneck block with 4 * 2**N filters; a decoder that upsamples by p_i
(nearest), concatenates ``(skip_i, upsampled)`` and applies a residual block back to 4 * 2**i
filters; a final 1x1 convolution to 2 classes. Pools and dilations change the receptive field
but not one parameter: N = 2 / 3 / 4 have 8074 / 32730 / 130682 parameters.

Module names follow the authors' ``UNet`` class (``downs``, ``pools``, ``bottleneck``,
``upsamples``, ``ups``, ``final_conv``; blocks ``conv1 bn1 conv2 bn2 conv_add``), so their
published state dicts map onto this network one to one (see :mod:`temseg.legacy`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from temseg.receptive_field import Architecture, check_input_size

CHECKPOINT_FORMAT = "temseg-checkpoint/1"
MODEL_KEYS = ("num_blocks", "pools", "dilations")


def filters(num_blocks: int) -> list[int]:
    """Filters per level: 4, 8, 16, ... (the last one is the bottleneck's)."""
    return [4 * 2**i for i in range(num_blocks + 1)]


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus a 1x1 conv of the input, added, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__()
        # "same" padding for a dilated 3x3 conv is the dilation itself
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=dilation, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv_add = nn.Conv2d(in_channels, out_channels, 1)
        # The authors' init (copied by them from torchvision): Kaiming-normal conv weights
        # (fan_in, gain sqrt(2)), BN weight 1 and bias 0; conv biases keep PyTorch's default.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.conv_add(x))


class ResidualUNet(nn.Module):
    """Residual UNet with per-block max-pool kernels and dilations.

    Parameters
    ----------
    num_blocks
        N, the number of encoder (and decoder) residual blocks.
    pools
        N max-pool kernels (= strides), each >= 2; the decoder upsamples by the same factors.
    dilations
        N + 1 dilations (encoder blocks, then bottleneck); decoder block i reuses encoder
        block i's value. ``None`` means 1 everywhere.

    Examples
    --------
    >>> net = ResidualUNet(2, [8, 8])
    >>> sum(p.numel() for p in net.parameters())
    8074
    """

    def __init__(
        self,
        num_blocks: int | Architecture,
        pools: Sequence[int] | None = None,
        dilations: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_blocks, Architecture):  # ResidualUNet(arch): the one architecture type
            if pools is not None or dilations is not None:
                raise TypeError("give an Architecture or num_blocks, pools, dilations, not both")
            cfg = num_blocks
        else:
            if pools is None:
                raise TypeError("ResidualUNet needs pools: one max-pool kernel per block")
            cfg = Architecture(
                num_blocks, tuple(pools), None if dilations is None else tuple(dilations)
            )
        self.config = cfg  # the Architecture it was built from
        f = filters(cfg.num_blocks)
        d = cfg.dilations
        self.downs = nn.ModuleList()
        self.pools = nn.ModuleList()
        cin = 1
        for i in range(cfg.num_blocks):
            self.downs.append(ResidualBlock(cin, f[i], d[i]))
            self.pools.append(nn.MaxPool2d(cfg.pools[i], stride=cfg.pools[i]))
            cin = f[i]
        self.bottleneck = ResidualBlock(f[-2], f[-1], d[-1])
        self.upsamples = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i in reversed(range(cfg.num_blocks)):  # deepest first, as the authors
            self.upsamples.append(nn.Upsample(scale_factor=cfg.pools[i], mode="nearest"))
            self.ups.append(ResidualBlock(f[i] + f[i + 1], f[i], d[i]))
        self.final_conv = nn.Conv2d(f[0], 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x.shape[-2], self.config.pools)
        check_input_size(x.shape[-1], self.config.pools)
        skips = []
        for down, pool in zip(self.downs, self.pools, strict=True):
            x = down(x)  # (B, 4*2**i, H_i, W_i)
            skips.append(x)
            x = pool(x)  # (B, 4*2**i, H_i/p_i, W_i/p_i)
        x = self.bottleneck(x)  # (B, 4*2**N, H_N, W_N)
        for up, block, skip in zip(self.upsamples, self.ups, reversed(skips), strict=True):
            x = block(torch.cat((skip, up(x)), dim=1))  # skip first, as the authors
        return self.final_conv(x)  # (B, 2, H, W) logits

    @property
    def architecture(self) -> Architecture:
        return self.config

    def config_dict(self) -> dict[str, Any]:
        c = self.config
        return {"num_blocks": c.num_blocks, "pools": list(c.pools), "dilations": list(c.dilations)}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(config: dict[str, Any]) -> ResidualUNet:
    """Rebuild the network from a config dict holding ``num_blocks``, ``pools``, ``dilations``."""
    missing = [k for k in MODEL_KEYS[:2] if k not in config]
    if missing:
        raise ValueError(f"model config lacks {missing}: {config}")
    return ResidualUNet(config["num_blocks"], config["pools"], config.get("dilations"))


def save_checkpoint(path: str | os.PathLike, model: ResidualUNet, config: dict[str, Any]) -> Path:
    """Write temseg's checkpoint: state dict + the config that rebuilds the model, atomically.

    ``config`` is the resolved (JSON-ready) training config; the model keys are checked
    against the model so the file always rebuilds the network it holds.
    """
    path = Path(path)
    config = {**config, **model.config_dict()}
    json.dumps(config)  # fail here, not at load time, if the config is not plain data
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "config": config, "state_dict": state}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[ResidualUNet, dict[str, Any]]:
    """Load a temseg checkpoint (tensors and plain data only: ``weights_only=True``).

    Returns the model in eval mode and its config.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: not a readable temseg checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path}: not a temseg checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
            "for the authors' published .h5 files use temseg.legacy.load_legacy_checkpoint"
        )
    config = payload["config"]
    model = build_model(config)
    model.load_state_dict(payload["state_dict"])
    return model.eval(), config
