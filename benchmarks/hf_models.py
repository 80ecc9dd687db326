"""Benchmarks of the transformers promptable models behind zeroseg's Predictor (SAM 2.1, SAM-HQ, SAM 3 tracker).

Each model has full-size random weights from its official configuration (written out below). Both rows of a
case run in the same process on the same weights, zeroseg's path against a plain use of the transformers
model:

- encoder: ``Predictor.set_image`` on the photo (resize, normalise, ``get_image_embeddings``) against
  ``model.get_image_embeddings`` on pixel values made beforehand;
- one click: ``Predictor.predict`` with one point (three masks at the photo's size) against
  ``model(image_embeddings=..., input_points=...)`` plus the processor's upscaling to the photo.
"""
from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.cases import Context, photo, point_batch
from benchmarks.report import Row, at_most
from benchmarks.timing import Repeats, median_seconds

SAM2_TINY_ENCODER_MAX_SECONDS = 1.5
SAM2_TINY_CLICK_MAX_SECONDS = 0.030


def sam2_1_hiera_tiny_config() -> Any:
    """SAM 2.1 Hiera-Tiny (``sam2.1_hiera_t.yaml`` in Meta's sam2 repository; ``facebook/sam2.1-hiera-tiny``)."""
    from transformers import Sam2Config
    from transformers.models.sam2 import configuration_sam2 as c

    trunk = c.Sam2HieraDetConfig(
        hidden_size=96,
        num_attention_heads=1,
        image_size=[1024, 1024],
        patch_kernel_size=[7, 7],
        patch_stride=[4, 4],
        patch_padding=[3, 3],
        query_stride=[2, 2],
        num_query_pool_stages=3,
        blocks_per_stage=[1, 2, 7, 2],
        embed_dim_per_stage=[96, 192, 384, 768],
        num_attention_heads_per_stage=[1, 2, 4, 8],
        window_size_per_stage=[8, 4, 14, 7],
        global_attention_blocks=[5, 7, 9],
        window_positional_embedding_background_size=[7, 7],
        mlp_ratio=4.0,
    )
    vision = c.Sam2VisionConfig(
        backbone_config=trunk,
        backbone_channel_list=[768, 384, 192, 96],
        backbone_feature_sizes=[[256, 256], [128, 128], [64, 64]],
        fpn_hidden_size=256,
        fpn_top_down_levels=[2, 3],
        num_feature_levels=3,
    )
    prompt = c.Sam2PromptEncoderConfig(hidden_size=256, image_size=1024, patch_size=16, mask_input_channels=16)
    decoder = c.Sam2MaskDecoderConfig(
        hidden_size=256,
        mlp_dim=2048,
        num_hidden_layers=2,
        num_attention_heads=8,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        dynamic_multimask_via_stability=True,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98,
    )
    return Sam2Config(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


def sam_hq_vit_b_config() -> Any:
    """SAM-HQ ViT-B (``syscv-community/sam-hq-vit-base``): SAM's ViT-B encoder, the HQ decoder on 768-wide features."""
    from transformers import SamHQConfig
    from transformers.models.sam_hq import configuration_sam_hq as c

    vision = c.SamHQVisionConfig(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, global_attn_indexes=[2, 5, 8, 11],
        output_channels=256, window_size=14, image_size=1024, patch_size=16, mlp_ratio=4.0,
    )  # fmt: skip
    decoder = c.SamHQMaskDecoderConfig(hidden_size=256, mlp_dim=2048, num_attention_heads=8, vit_dim=768)
    prompt = c.SamHQPromptEncoderConfig()
    return SamHQConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


def sam3_tracker_config() -> Any:
    """SAM 3's tracker (``facebook/sam3``): ViT-L-sized encoder (1024 wide, 32 layers) on 1008 x 1008."""
    from transformers import Sam3TrackerConfig
    from transformers.models.sam3 import configuration_sam3 as s3

    vit = s3.Sam3ViTConfig(
        hidden_size=1024, intermediate_size=4736, num_hidden_layers=32, num_attention_heads=16, image_size=1008,
        patch_size=14, window_size=24, global_attn_indexes=[7, 15, 23, 31], pretrain_image_size=336,
    )  # fmt: skip
    vision = s3.Sam3VisionConfig(
        backbone_config=vit, fpn_hidden_size=256, backbone_feature_sizes=[[288, 288], [144, 144], [72, 72]]
    )
    return Sam3TrackerConfig(vision_config=vision)


MODELS: dict[str, tuple[str, str, Callable[[], Any]]] = {
    # case name: (family, transformers class, official configuration)
    "sam2.1_tiny": ("sam2", "Sam2Model", sam2_1_hiera_tiny_config),
    "sam_hq_vit_b": ("sam_hq", "SamHQModel", sam_hq_vit_b_config),
    "sam3_tracker": ("sam3_tracker", "Sam3TrackerModel", sam3_tracker_config),
}


@functools.cache
def adapter(case: str) -> Any:
    """The case's model with its default random initialisation, SDPA attention, behind its adapter."""
    import transformers

    from zeroseg.models.hf import FAMILIES

    family, class_name, config = MODELS[case]
    torch.manual_seed(0)
    model = getattr(transformers, class_name)._from_config(config(), attn_implementation="sdpa").eval()
    spec = FAMILIES[family]
    return spec.adapter(model, spec.spec, family)


def hf_case(case: str, ctx: Context) -> list[Row]:
    from zeroseg.models.hf.common import input_shape, model_input, resize_uint8
    from zeroseg.segment import Predictor

    seg = adapter(case)
    model, spec = seg.model, seg.spec
    image = photo()
    height, width = image.shape[:2]
    pred = Predictor(seg, cache_size=0)

    # encoder: zeroseg's set_image against the model's get_image_embeddings on ready pixel values
    repeats = ctx.repeats(Repeats(1, 3), Repeats(0, 1))
    ours = median_seconds(lambda: pred.set_image(image), repeats)
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]
    pixel_values = model_input(resize_uint8(pixels, input_shape(height, width, spec)), spec, seg.dtype)
    plain = median_seconds(lambda: model.get_image_embeddings(pixel_values), repeats)
    side = spec.side
    target = at_most(ours, SAM2_TINY_ENCODER_MAX_SECONDS) if case == "sam2.1_tiny" else None
    ratio = f"{ours / plain:.2f}x plain get_image_embeddings ({plain:.2f} s)"
    what = f"{case} encoder: set_image, {width}x{height} photo ({side} input)"
    encoder = Row(case, what, ours, target, ratio=ratio, note=str(repeats))

    # one click after the embedding: Predictor.predict against the model's forward + upscaling
    pred.set_image(image)
    coords, labels = point_batch(1, width, height)
    click_repeats = ctx.repeats(Repeats(3, 20), Repeats(1, 5))
    ours = median_seconds(lambda: pred.predict(coords[0], labels[0]), click_repeats)
    embedding = pred.features
    arguments = seg._embedding_arguments(embedding, 1)
    points = torch.tensor(seg.transform.apply_coords(coords[0], (height, width)), dtype=torch.float32)[None, None]
    point_labels = torch.ones(1, 1, 1, dtype=torch.int64)

    resized = pred.input_size

    def plain_click() -> torch.Tensor:
        out = model(**arguments, input_points=points, input_labels=point_labels, multimask_output=True)
        masks = out.pred_masks[0].float()
        if spec.keep_aspect:  # SamProcessor.post_process_masks: to the padded square, crop, to the image
            masks = F.interpolate(masks, (side, side), mode="bilinear", align_corners=False)
            masks = masks[..., : resized[0], : resized[1]]
        return F.interpolate(masks, (height, width), mode="bilinear", align_corners=False) > 0  # Sam2Processor's

    plain = median_seconds(plain_click, click_repeats)
    target = at_most(ours, SAM2_TINY_CLICK_MAX_SECONDS) if case == "sam2.1_tiny" else None
    ratio = f"{ours / plain:.2f}x plain forward + upscaling ({plain * 1e3:.1f} ms)"
    what = f"{case}: 1 click after the embedding, 3 masks at {width}x{height}"
    click = Row(case, what, ours, target, ratio=ratio, note=str(click_repeats))
    rows = [encoder, click]
    if case == "sam2.1_tiny":  # the opt-in bfloat16 path (build_hf_segmenter(..., dtype="bfloat16"))
        half = type(seg)(copy.deepcopy(model).to(torch.bfloat16), spec, seg.family)
        half_pred = Predictor(half, cache_size=0)
        seconds = median_seconds(lambda: half_pred.set_image(image), repeats)
        fp32 = encoder.seconds
        rows.append(Row(case, f"{case} encoder, bfloat16 weights: set_image, {width}x{height} photo", seconds,
                        ratio=f"{fp32 / seconds:.2f}x faster than float32", note=str(repeats)))  # fmt: skip
        half_pred.set_image(image)
        seconds = median_seconds(lambda: half_pred.predict(coords[0], labels[0]), click_repeats)
        ratio = f"{click.seconds / seconds:.2f}x faster than float32"
        rows.append(Row(case, f"{case}: 1 click, bfloat16 weights", seconds, ratio=ratio, note=str(click_repeats)))
        # the app's opt-in (zeroseg serve --dtype bfloat16 --compile): the prompt path compiled and warmed up
        for compiled, name in ((seg, "float32"), (half, "bfloat16")):
            start = time.perf_counter()
            compiled.compile_prompts()
            warm = time.perf_counter() - start
            compiled_pred = Predictor(compiled, cache_size=0)
            compiled_pred.set_image(image)
            seconds = median_seconds(lambda p=compiled_pred: p.predict(coords[0], labels[0]), click_repeats)
            target = at_most(seconds, SAM2_TINY_CLICK_MAX_SECONDS) if name == "bfloat16" else None
            what = f"{case}: 1 click, {name} weights, prompt path compiled (--compile)"
            ratio = f"{click.seconds / seconds:.2f}x faster than float32 eager"
            rows.append(Row(case, what, seconds, target, ratio=ratio, note=f"{click_repeats}; compiled in {warm:.0f} s"))
    return rows


CASES: dict[str, Callable[[Context], list[Row]]] = {name: functools.partial(hf_case, name) for name in MODELS}
