"""The embedded default model: EfficientNet-Lite0 (ImageNet) + a promptable head trained by our recipe."""

from zeroseg.models.lite.build import LiteConfig, build_lite, build_lite_model

__all__ = ["LiteConfig", "build_lite", "build_lite_model"]
