"""The perceptual distance of realism training: shift-tolerant LPIPS rebuilt from the wheel's weights."""

import numpy as np
import pytest
import torch

from lbaecodec.lab.perceptual import perceptual_distance


@pytest.fixture(scope="module")
def distance():
    return perceptual_distance()


def pair():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.random((2, 3, 32, 32), dtype=np.float32))
    b = (a + torch.from_numpy(rng.normal(0, 0.1, (2, 3, 32, 32)).astype(np.float32))).clamp(0, 1)
    return a, b


@pytest.mark.parametrize(
    "net, published",
    [("alex", [0.00667872279882431, 0.004699889570474625]), ("vgg", [0.006685737520456314, 0.006358794402331114])],
)
def test_each_rebuilt_trunk_gives_the_published_implementations_distances(net, published):
    # stlpips_pytorch.stlpips.LPIPS(net=net, variant="shift_tolerant")(a, b, normalize=True) on this
    # pair, computed with the wheel's own modules (which need torchvision and IPython to import)
    a, b = pair()
    assert perceptual_distance(net)(a, b).tolist() == pytest.approx(published, rel=1e-5)


def test_an_unknown_trunk_is_refused():
    with pytest.raises(ValueError, match="choose from alex, vgg"):
        perceptual_distance("squeeze")


def test_identical_images_are_at_zero_and_gradients_reach_the_images_only(distance):
    a, b = pair()
    assert distance(a, a).tolist() == [0.0, 0.0]
    b.requires_grad_(True)
    distance(b, a).sum().backward()
    assert b.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in distance.parameters()) and not list(distance.parameters())


def test_more_noise_is_farther_and_bf16_autocast_leaves_it_in_float32(distance):
    a, b = pair()
    worse = (a + 3 * (b - a)).clamp(0, 1)
    assert (distance(worse, a) > distance(b, a)).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = distance(b, a)
    assert inside.dtype == torch.float32 and torch.equal(inside, distance(b, a))
