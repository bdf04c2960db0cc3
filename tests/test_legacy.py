"""The authors' published checkpoints load into temseg's network and give their logits.

The independent reference below is the authors' network written from
shared/reference_models/README.md (both layouts, their module names), NOT temseg's code. Its
weights come from an ordinary trusted unpickle of the file, done only after the file's
sha256 matches the README's published hash; temseg's importer never unpickles code.
"""

import hashlib
import pickle
import types
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from temseg.legacy import LegacyCheckpointError, load_legacy_checkpoint
from temseg.model import load_checkpoint

SHA256 = {  # shared/reference_models/README.md
    "20210922_UNet_b2_m22_run5_model.h5": (
        "cb7e3d72d8dfd5c5bffc027a2112456017cbb01dfb2f1d606fb7bacf835dd944",
        (2, 2),
    ),
    "20210922_UNet_b2_m44_run5_model.h5": (
        "e9fe656a0ae54c47bd6a2005180765241ace200fc915dff691e1c0d9be545d54",
        (4, 4),
    ),
    "20210922_UNet_b2_m88_run5_model.h5": (
        "be2277eec81cdc8e48b892bc66e88aad0dbafd0db36fa9c0482023ee0d39f054",
        (8, 8),
    ),
    "UNet_b2_Au_m24_run1_model.h5": (
        "101e736a97073257458de83754c895619f6d24e882279108f77a23d4b762f814",
        (2, 4),
    ),
    "UNet_b2_Au_m48_run1_model.h5": (
        "5afeacad4242df32d94d3139bf39b68fbeeba58ccf7453bdf40ca57a3d4848da",
        (4, 8),
    ),
}


# ---- the authors' network, from the README's description -------------------------------
class ResidualBlock(nn.Module):
    def __init__(self, cin=1, cout=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.conv_add = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.conv_add(x))


class UNet(nn.Module):  # zip layout: downs.i, pools.i, ups.0 deepest
    def __init__(self, pools=(2, 2)):
        super().__init__()
        f = [4, 8, 16]
        self.downs = nn.ModuleList([ResidualBlock(1, 4), ResidualBlock(4, 8)])
        self.pools = nn.ModuleList([nn.MaxPool2d(p, p) for p in pools])
        self.ups = nn.ModuleList([ResidualBlock(f[i] + f[i + 1], f[i]) for i in (1, 0)])
        self.upsamples = nn.ModuleList([nn.Upsample(scale_factor=pools[i]) for i in (1, 0)])
        self.bottleneck = ResidualBlock(8, 16)
        self.final_conv = nn.Conv2d(4, 2, 1)
        self.num_blocks = 2

    def forward(self, x):
        skips = []
        for i in range(2):
            x = self.downs[i](x)
            skips.append(x)
            x = self.pools[i](x)
        x = self.bottleneck(x)
        for i, skip in enumerate(reversed(skips)):
            x = self.ups[i](torch.cat((skip, self.upsamples[i](x)), dim=1))
        return self.final_conv(x)


class UNet_MaxPool(nn.Module):  # legacy layout: down1, pool1, ..., up2 deepest  # noqa: N801
    def __init__(self, pools=(2, 2)):
        super().__init__()
        self.down1, self.pool1 = ResidualBlock(1, 4), nn.MaxPool2d(pools[0], pools[0])
        self.down2, self.pool2 = ResidualBlock(4, 8), nn.MaxPool2d(pools[1], pools[1])
        self.bottleneck = ResidualBlock(8, 16)
        self.upsample2, self.up2 = nn.Upsample(scale_factor=pools[1]), ResidualBlock(24, 8)
        self.upsample1, self.up1 = nn.Upsample(scale_factor=pools[0]), ResidualBlock(12, 4)
        self.final_conv = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        s1 = self.down1(x)
        s2 = self.down2(self.pool1(s1))
        x = self.bottleneck(self.pool2(s2))
        x = self.up2(torch.cat((s2, self.upsample2(x)), dim=1))
        x = self.up1(torch.cat((s1, self.upsample1(x)), dim=1))
        return self.final_conv(x)


def authors_state_dict(path: Path) -> tuple[str, dict]:
    """Trusted full unpickle (hash-checked file), then the module's tensors by name."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == SHA256[path.name][0], "file differs from the published checkpoint"
    classes = {"UNet": UNet, "UNet_MaxPool": UNet_MaxPool, "ResidualBlock": ResidualBlock}

    class Trusted(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "__main__":
                return classes[name]
            if module == "torch.nn.backends.thnn":
                return lambda *a: None
            return super().find_class(module, name)

    mod = types.ModuleType("trusted_pickle")
    mod.Unpickler = Trusted
    mod.load = lambda f, **kw: Trusted(f, **kw).load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch cannot compare the classes' source
        module = torch.load(path, map_location="cpu", weights_only=False, pickle_module=mod)
    tensors = {}

    def walk(m, prefix):
        for k, v in m.__dict__["_parameters"].items():
            tensors[prefix + k] = v.detach()
        for k, v in m.__dict__["_buffers"].items():
            tensors[prefix + k] = v
        for k, v in m.__dict__["_modules"].items():
            walk(v, prefix + k + ".")

    walk(module, "")
    return type(module).__name__, tensors


@pytest.mark.parametrize("name", sorted(SHA256))
def test_reference_checkpoint_gives_the_authors_logits(reference_models, name, tmp_path):
    path = reference_models / name
    pools = SHA256[name][1]
    cls_name, state = authors_state_dict(path)
    reference = {"UNet": UNet, "UNet_MaxPool": UNet_MaxPool}[cls_name](pools)
    reference.load_state_dict(state, strict=True)
    reference.eval()

    model = load_legacy_checkpoint(path, save_to=tmp_path / "model.pt")
    assert not model.training
    assert model.config.pools == pools
    assert sum(p.numel() for p in model.parameters()) == 8074

    x = torch.randn(2, 1, 128, 128, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = reference(x)
        got = model(x)
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
        # and temseg's own checkpoint format carries the same network
        again, config = load_checkpoint(tmp_path / "model.pt")
        assert config["pools"] == list(pools)
        assert torch.equal(again(x), got)


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/temseg_pwned",))


def test_crafted_pickle_naming_another_callable_is_refused(tmp_path):
    path = tmp_path / "evil.h5"
    torch.save(Evil(), path)
    with pytest.raises(LegacyCheckpointError, match=r"(posix|os)\.system.*allow-list"):
        load_legacy_checkpoint(path)
    assert not Path("/tmp/temseg_pwned").exists()


def test_crafted_legacy_pickle_is_refused_too(tmp_path):
    path = tmp_path / "evil_legacy.h5"
    torch.save(Evil(), path, _use_new_zipfile_serialization=False)
    with pytest.raises(LegacyCheckpointError, match="allow-list"):
        load_legacy_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "noise.h5"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(LegacyCheckpointError, match=str(path)):
        load_legacy_checkpoint(path)


def test_a_plain_state_dict_is_not_a_legacy_model(tmp_path):
    path = tmp_path / "sd.h5"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(LegacyCheckpointError, match="expected a pickled UNet"):
        load_legacy_checkpoint(path)


def test_zip_member_is_the_authors_class(reference_models):
    """Provenance: the zip file really pickles __main__.UNet (no temseg code involved)."""
    with zipfile.ZipFile(reference_models / "UNet_b2_Au_m24_run1_model.h5") as z:
        pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
        head = z.read(pkl)[:32]
    assert head.startswith(b"\x80\x02c__main__\nUNet\n")
