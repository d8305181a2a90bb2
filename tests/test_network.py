from dataclasses import replace

import pytest
import torch

from lbaecodec.architecture import PRESETS, Architecture
from lbaecodec.network import LBAE, SignSTE, fold_batch_norms


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_shapes(preset):
    arch = replace(PRESETS[preset], width=4)
    net = LBAE(arch).eval()
    x = torch.rand(2, arch.channels, arch.size, arch.size)
    codes = net.encode(x)
    assert codes.shape == (2, arch.bits) and set(codes.unique().tolist()) <= {-1.0, 1.0}
    y = net.decode(codes)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1


def test_sign_straight_through():
    x = torch.tensor([-0.3, 0.0, 0.4], requires_grad=True)
    y = SignSTE.apply(x)
    assert y.tolist() == [-1.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_gradients_reach_the_encoder():
    net = LBAE(replace(PRESETS["cifar10"], width=4))
    logits, _ = net(torch.rand(4, 3, 32, 32))
    logits.mean().backward()
    assert net.encoder.to_latent.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [4, 12, 48])
def test_bad_tile_size(size):
    with pytest.raises(ValueError):
        LBAE(Architecture(3, size, 10))


def test_folding_batch_norms_keeps_the_decoder_s_function():
    torch.manual_seed(0)
    net = LBAE(replace(PRESETS["cifar10"], width=8)).eval()
    for m in net.decoder.modules():  # statistics away from the identity, so a bad fold shows
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
    folded = fold_batch_norms(net.decoder)
    codes = torch.randn(5, net.code_bits).sign()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    assert any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.decoder.modules())  # a copy
    with torch.inference_mode():
        torch.testing.assert_close(folded(codes), net.decoder(codes), atol=1e-4, rtol=1e-4)
