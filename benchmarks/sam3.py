"""SAM 3 concept prompts on full-size random weights (transformers' ``Sam3Config()`` defaults are the
official sizes: PE ViT-L+/14 at 1008, a 24-layer CLIP-style text tower, 6+6 DETR layers, 200 queries).

Each row of zeroseg is set against a plain forward pass of the transformers model on the same weights
in the same run: ``model(pixel_values=..., input_ids=..., attention_mask=...)`` on ready-made pixel
values (no preprocessing, no post-processing), so the ratios favour the baseline.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.cases import Context, photo
from benchmarks.report import Row, at_least, at_most
from benchmarks.timing import Repeats, median_seconds

TEXT_PROMPT_MAX_SECONDS = 30.0
VOCABULARY_MIN_SPEEDUP = 3.0
BFLOAT16_MAX_MASK_CHANGE = 0.01  # of float32's mask pixels
VOCABULARY = ("cow", "sheep", "dog", "person", "car", "bicycle", "tree", "cup", "bottle", "chair")
PROMPT = "a cup of coffee"
SHARED_VOCAB = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "clip_vocab" / "bpe_simple_vocab_16e6.txt.gz"


def tokenizer():
    """CLIP's tokenizer (SAM 3 uses it) from the shared BPE file, else a byte-level one: ids differ, the
    work does not (every phrase is padded to 32 tokens)."""
    from transformers import CLIPTokenizer

    from zeroseg.models.vl.groupvit import _vocab_from_bpe_file

    if SHARED_VOCAB.is_file():
        vocab, merges = _vocab_from_bpe_file(SHARED_VOCAB, 49408)
    else:
        merges = []
        symbols = [chr(b) if 33 <= b <= 126 else chr(256 + b) for b in range(256)]
        tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
        vocab = {t: i for i, t in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=merges)


@functools.cache
def full_size_model():
    """zeroseg's concept adapter around a full-size random Sam3Model (float32, SDPA attention)."""
    from transformers.models.sam3.configuration_sam3 import Sam3Config
    from transformers.models.sam3.modeling_sam3 import Sam3Model

    from zeroseg.models.hf.sam3 import Sam3Concepts, install_roi_align

    install_roi_align()
    config = Sam3Config()
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return Sam3Concepts(Sam3Model(config).eval(), tokenizer()).eval()


def image() -> np.ndarray:
    """The benchmarks' photo (640 x 480), which the model sees at 1008 x 1008."""
    return photo()


def sam3(ctx: Context) -> list[Row]:
    """One text prompt end to end, a 10-name vocabulary per image, and the bfloat16 path."""
    once = Repeats(0, 1)  # a full-size forward is tens of seconds on 2 cores: one timed run each
    started = time.perf_counter()
    concepts = full_size_model()
    built = time.perf_counter() - started
    model, rgb = concepts.model, image()
    where = f"{rgb.shape[1]}x{rgb.shape[0]} photo at 1008x1008"

    def prompt_once() -> None:
        concepts.clear_cache()
        concepts.find(rgb, PROMPT)

    text_prompt = median_seconds(prompt_once, once)  # first: it pays the one-time start-up costs

    pixels = concepts.preprocess(rgb)
    ids, mask = concepts.tokenize([PROMPT])
    plain = median_seconds(lambda: model(pixel_values=pixels, input_ids=ids, attention_mask=mask), once)

    concepts.clear_cache()
    started = time.perf_counter()
    concepts.embed_texts(list(VOCABULARY))
    vocabulary_text = time.perf_counter() - started

    def vocabulary_once() -> None:
        concepts._images.clear()  # a new image each time; the vocabulary's text stays cached
        concepts.find(rgb, list(VOCABULARY))

    per_image = median_seconds(vocabulary_once, once)
    per_name = per_image / len(VOCABULARY)
    speedup = plain / per_name

    rows = [
        Row("sam3", f"SAM 3 text prompt end to end, {where} (float32)", text_prompt,
            at_most(text_prompt, TEXT_PROMPT_MAX_SECONDS), ratio=f"plain forward / this: {plain / text_prompt:.2f}",
            note=f"{once}, first run of the process; model built in {built:.0f} s"),
        Row("sam3", "SAM 3 plain transformers forward (pixel values + one phrase)", plain, note=str(once)),
        Row("sam3", f"SAM 3 {len(VOCABULARY)}-name vocabulary: its text side, once for all images",
            vocabulary_text, note="one text-tower pass per name, cached"),
        Row("sam3", f"SAM 3 {len(VOCABULARY)}-name vocabulary per image (image encoded once)", per_image,
            note=f"{once}; text side cached"),
        Row("sam3", f"SAM 3 per name within a {len(VOCABULARY)}-name vocabulary", per_name,
            at_least(speedup, VOCABULARY_MIN_SPEEDUP, "cheaper"),
            ratio=f"{speedup:.1f}x cheaper than a plain forward per name",
            note=f"10 separate plain forwards = 10 x the plain row ({10 * plain:.0f} s)"),
    ]  # fmt: skip
    return rows + bfloat16_rows(concepts, rgb, where, ctx)


def bfloat16_rows(concepts, rgb: np.ndarray, where: str, ctx: Context) -> list[Row]:
    """The same text prompt with the weights in bfloat16, and how far its masks move from float32's."""
    once = Repeats(0, 1)
    reference = _raw_masks(concepts, rgb)  # the photo's float32 embedding is still cached
    concepts.model.to(torch.bfloat16)  # in place: the float32 model is rebuilt if needed again
    try:
        concepts.clear_cache()

        def prompt_once() -> None:
            concepts.clear_cache()
            concepts.find(rgb, PROMPT)

        seconds = median_seconds(prompt_once, once)
        changed = _mask_change(reference, _raw_masks(concepts, rgb))
    finally:
        concepts.clear_cache()
        full_size_model.cache_clear()
    ok = changed <= BFLOAT16_MAX_MASK_CHANGE
    return [
        Row("sam3", f"SAM 3 text prompt end to end, {where} (bfloat16)", seconds,
            at_most(seconds, TEXT_PROMPT_MAX_SECONDS),
            note=f"{once}; masks of all 200 queries differ from float32's on {100 * changed:.2f}% of their "
                 f"pixels ({'within' if ok else 'NOT within'} the 1% the target allows)"),
    ]  # fmt: skip


def _raw_masks(concepts, rgb: np.ndarray) -> torch.Tensor:
    """Every query's binarised mask at the model's mask resolution (no score threshold)."""
    embedding = concepts.embed_image(rgb)
    (text,) = concepts.embed_texts([PROMPT])
    return concepts.decode(embedding, text).pred_masks[0].float() > 0


def _mask_change(reference: torch.Tensor, other: torch.Tensor) -> float:
    return float((reference ^ other).sum() / reference.sum().clamp(min=1))


CASES: dict[str, Callable[[Context], list[Row]]] = {"sam3": sam3}
