"""The residual UNet: exact parameter counts, shapes, gradients, errors, checkpoints."""

import pytest
import torch

from temseg.model import ResidualUNet, count_parameters, load_checkpoint, save_checkpoint


@pytest.mark.parametrize(
    ("n", "pools", "dilations", "params"),
    [
        (2, (2, 2), None, 8074),  # paper Table 2
        (2, (8, 8), None, 8074),
        (2, (2, 2), (1, 2, 4), 8074),
        (3, (2, 2, 2), None, 32730),
        (3, (8, 4, 2), (2, 2, 2, 2), 32730),
        (4, (2, 2, 2, 2), None, 130682),
    ],
)
def test_parameter_counts_are_the_papers(n, pools, dilations, params):
    assert count_parameters(ResidualUNet(n, pools, dilations)) == params


@pytest.mark.parametrize(
    ("n", "pools", "dilations"), [(2, (4, 8), None), (3, (2, 2, 2), (1, 2, 2, 4))]
)
def test_shape_and_every_parameter_gets_a_gradient(n, pools, dilations):
    torch.manual_seed(0)
    net = ResidualUNet(n, pools, dilations)
    x = torch.randn(2, 1, 64, 64)
    out = net(x)
    assert out.shape == (2, 2, 64, 64)
    out.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_receptive_field_is_real():
    """An input impulse changes outputs exactly within the RF of N=2 pools 2-2 (44 px)."""
    torch.manual_seed(0)
    net = ResidualUNet(2, (2, 2)).eval()
    with torch.no_grad():
        for m in net.modules():  # positive weights: no accidental cancellation
            if isinstance(m, torch.nn.Conv2d):
                m.weight.abs_()
        x = torch.zeros(1, 1, 128, 128)
        base = net(x)
        x[0, 0, 64, 64] = 1.0
        changed = (net(x) - base).abs().sum(dim=(0, 1)) > 0
    rows = changed.any(dim=1).nonzero().flatten()
    extent = int(rows.max() - rows.min() + 1)
    assert extent <= 44  # the impulse reaches at most RF px (alignment with the pools may trim)
    assert extent > 44 - 8


def test_init_is_kaiming_and_batchnorm_unit():
    net = ResidualUNet(2, (2, 2))
    assert torch.equal(net.downs[0].bn1.weight, torch.ones(4))
    assert torch.equal(net.downs[0].bn1.bias, torch.zeros(4))
    w = torch.cat([net.ups[0].conv1.weight.flatten(), net.ups[1].conv1.weight.flatten()])
    # kaiming_normal_ (fan_in, gain sqrt 2): std = sqrt(2 / fan_in); fan_in = 24*9 for ups.0
    assert net.ups[0].conv1.weight.std().item() == pytest.approx((2 / (24 * 9)) ** 0.5, rel=0.15)
    assert w.mean().abs() < 0.05


@pytest.mark.parametrize(
    ("args", "message"),
    [((2, (2,)), "one kernel per block"), ((2, (2, 1)), ">= 2"), ((2, (2, 2), (1, 1)), "3")],
)
def test_bad_architecture(args, message):
    with pytest.raises(ValueError, match=message):
        ResidualUNet(*args)


def test_input_not_divisible_says_which_size_works():
    net = ResidualUNet(2, (8, 8))
    with pytest.raises(ValueError, match=r"input size 100 .* 64 .* 64 or 128"):
        net(torch.zeros(1, 1, 100, 100))


def test_checkpoint_round_trip_rebuilds_alone(tmp_path):
    torch.manual_seed(3)
    net = ResidualUNet(3, (2, 4, 2), (1, 1, 2, 2)).eval()
    path = save_checkpoint(tmp_path / "ck" / "model.pt", net, {"seed": 3, "epochs": 1})
    again, config = load_checkpoint(path)
    assert config["pools"] == [2, 4, 2] and config["dilations"] == [1, 1, 2, 2]
    assert config["seed"] == 3
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), again(x))
    assert not again.training
    assert list(tmp_path.joinpath("ck").iterdir()) == [path]  # no temporary file left


def test_load_checkpoint_refuses_other_files(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(ValueError, match="not a temseg checkpoint"):
        load_checkpoint(bad)
