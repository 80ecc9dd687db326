"""GroupViT (Xu et al., 2022) through Hugging Face `transformers`: dense embeddings from its learned grouping.

GroupViT merges image patches into a few group tokens, stage by stage; each stage's soft assignment says
how much every input token belongs to every group. Chaining the assignments maps every patch to the final
groups, so a pixel's embedding is the assignment-weighted mix of the projected, unit-normalised final group
embeddings. Its cosine with a text embedding is, up to a positive per-pixel factor, what `GroupViTModel`
returns as `segmentation_logits` (which also multiplies by exp(logit_scale) twice), so the per-pixel argmax
over names is the reference's.

Weights are a Hugging Face GroupViT folder (config.json + model.safetensors, as `save_pretrained` writes
them, e.g. nvidia/groupvit-gcc-yfcc); the text side tokenizes with CLIP's byte-pair encoding.
"""

from __future__ import annotations

import gzip
import html
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from zeroseg.errors import WeightsNotFoundError
from zeroseg.models.text import DEFAULT_TEMPLATES, CachedTemplateEncoder
from zeroseg.models.vl.base import DenseEmbedding

HF_REPO = "nvidia/groupvit-gcc-yfcc"
CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # either one
VOCAB_FILE, MERGES_FILE = "vocab.json", "merges.txt"
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"  # OpenAI CLIP's merges list, an alternative to vocab.json + merges.txt
PREPROCESSOR_FILE = "preprocessor_config.json"

# CLIP's pixel statistics (GroupViT was trained with them); a folder's preprocessor_config.json overrides them.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
START_TOKEN, END_TOKEN = "<|startoftext|>", "<|endoftext|>"

Tokenize = Callable[[list[str]], torch.Tensor]
"""sentences -> [N, context_length] int64 token ids (start, BPE ids, end, zero padding)."""


# --- tokenizer ------------------------------------------------------------------------------------
def _byte_symbols() -> list[str]:
    """GPT-2's printable stand-in for every byte, in CLIP's vocabulary order (printable bytes first)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def _vocab_from_bpe_file(path: Path, vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's vocabulary and merges from its gzipped merges list: the 256 byte symbols, the same with the
    end-of-word suffix `</w>`, one token per merge (as many as `vocab_size` leaves room for), start, end."""
    with gzip.open(path, "rt", encoding="utf-8") as file:
        lines = file.read().split("\n")
    n_merges = vocab_size - 2 * 256 - 2
    merges = [tuple(line.split()) for line in lines[1 : 1 + n_merges]]  # line 0 is a version header
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [START_TOKEN, END_TOKEN]
    return {t: i for i, t in enumerate(tokens)}, merges


def clip_tokenizer(source: str | os.PathLike, context_length: int = 77, vocab_size: int = 49408) -> Tokenize:
    """A CLIP tokenizer (`transformers.CLIPTokenizer`) from a folder with vocab.json + merges.txt or from
    OpenAI's `bpe_simple_vocab_16e6.txt.gz`, cleaning text like `clip.tokenize` (ftfy, HTML unescaping).

    The returned function gives ids like `clip.tokenize(texts, context_length, truncate=True)`: too long
    texts are cut and end with the end token, rows are zero-padded.
    """
    import ftfy
    from transformers import CLIPTokenizer

    source = Path(source)
    if source.is_dir():
        tokenizer = CLIPTokenizer.from_pretrained(str(source), local_files_only=True)
    else:
        vocab, merges = _vocab_from_bpe_file(source, vocab_size)
        tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)

    def tokenize(sentences: list[str]) -> torch.Tensor:
        cleaned = [html.unescape(html.unescape(ftfy.fix_text(s))).strip() for s in sentences]
        rows = tokenizer(cleaned, truncation=True, max_length=context_length)["input_ids"]
        ids = torch.zeros(len(rows), context_length, dtype=torch.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        return ids

    return tokenize


# --- model ----------------------------------------------------------------------------------------
class GroupViTTextEncoder(CachedTemplateEncoder):
    """GroupViT's text tower + projection head: names -> unit vectors in its joint space."""

    name = "groupvit"

    def __init__(self, model: torch.nn.Module, tokenize: Tokenize, templates: Sequence[str] = DEFAULT_TEMPLATES):
        super().__init__(templates)
        self.model = model
        self.tokenize = tokenize
        self.dim = int(model.config.projection_dim)

    def _encode_sentences(self, sentences: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        ids = self.tokenize(sentences).to(device)
        return self.model.get_text_features(input_ids=ids).pooler_output.cpu()


class GroupViTEmbedder:
    """Dense unit embeddings [D, h, w] (h, w = the patch grid) from GroupViT's grouping.

    `hard=True` assigns every token wholly to its most likely group at each stage (a partition of the
    image, as GroupViT's own segmentation demo draws it) instead of the soft assignment the reference's
    `segmentation_logits` uses. The whole image is resized (not cropped) to the model's input size, so the
    grid covers all of it.
    """

    name = "groupvit"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenize: Tokenize,
        hard: bool = False,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
    ) -> None:
        self.model = model.eval()
        self.hard = hard
        self.text_encoder = GroupViTTextEncoder(model, tokenize)
        vision = model.config.vision_config
        self.input_size = int(vision.image_size)
        self.patch_size = int(vision.patch_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    @property
    def temperature(self) -> float:
        """1 / the model's learned logit scale."""
        return float(torch.exp(-self.model.logit_scale.detach()))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def background(self) -> torch.Tensor | None:
        return None  # GroupViT has no learned background embedding

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """RGB uint8 HxWx3 -> [1, 3, S, S] normalised pixels (bicubic resize of the whole image)."""
        size = (self.input_size, self.input_size)
        resized = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
        pixels = torch.from_numpy(resized).permute(2, 0, 1) / 255.0
        return ((pixels - self.mean) / self.std)[None]

    @torch.inference_mode()
    def grouping(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit embeddings of the final groups [B, G, D] and each patch's share in them [B, G, h, w].

        The share is the product of the stage assignments (patches -> stage-1 groups -> ... -> final
        groups), as `output_segmentation` chains them before resizing to pixels.
        """
        pixel_values = pixel_values.to(self.device)
        out = self.model.vision_model(pixel_values=pixel_values, output_attentions=True, return_dict=True)
        groups = out.last_hidden_state  # [B, G, C], after the final LayerNorm
        batch, n_groups, width = groups.shape
        embeds = self.model.visual_projection(groups.reshape(-1, width)).reshape(batch, n_groups, -1)

        share = None  # [B, tokens, groups of the current stage]
        for assignment in out.attentions:  # [B, groups, inputs]: the soft assignment of each grouping stage
            stage = assignment.transpose(1, 2)
            if self.hard:
                stage = F.one_hot(stage.argmax(-1), stage.shape[-1]).to(stage.dtype)
            share = stage if share is None else share @ stage
        grid = (pixel_values.shape[-2] // self.patch_size, pixel_values.shape[-1] // self.patch_size)
        share = share.transpose(1, 2).reshape(batch, -1, *grid)
        return F.normalize(embeds, dim=-1), share

    def dense_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, D, h, w] unit embeddings: each patch's share-weighted mix of the unit group embeddings."""
        embeds, share = self.grouping(pixel_values)
        return F.normalize(torch.einsum("bgd,bghw->bdhw", embeds, share), dim=1)

    def embed(self, image: np.ndarray) -> DenseEmbedding:
        features = self.dense_features(self.preprocess(image))[0].cpu()
        return DenseEmbedding(features=features, image_size=(int(image.shape[0]), int(image.shape[1])))


def _missing_weights(folder: Path, missing: list[str]) -> WeightsNotFoundError:
    url = f"https://huggingface.co/{HF_REPO}"
    return WeightsNotFoundError(
        f"GroupViT weights not found in {folder} (missing: {', '.join(missing)}). Download {CONFIG_FILE}, "
        f"{WEIGHT_FILES[0]} (or {WEIGHT_FILES[1]}), {VOCAB_FILE} and {MERGES_FILE} from the Hugging Face repo "
        f"{HF_REPO} ({url}) and put them in {folder} (e.g. `huggingface-cli download {HF_REPO} --local-dir "
        f"{folder}`), or pass checkpoint=<folder>."
    )


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """Silence transformers' weight-loading progress bar, restoring its previous setting."""
    from transformers.utils import logging

    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


def _read_stats(folder: Path) -> tuple[Sequence[float], Sequence[float]]:
    """Pixel mean/std from the folder's preprocessor_config.json, else CLIP's."""
    path = folder / PREPROCESSOR_FILE
    settings = json.loads(path.read_text()) if path.is_file() else {}
    return settings.get("image_mean", CLIP_MEAN), settings.get("image_std", CLIP_STD)


def load_groupvit_embedder(
    checkpoint: str | os.PathLike,
    tokenizer: Tokenize | str | os.PathLike | None = None,
    hard: bool = False,
    device: str = "cpu",
) -> GroupViTEmbedder:
    """GroupViT from a Hugging Face folder ``checkpoint`` (by default the hub passes ``groupvit_gcc_yfcc``'s).

    `tokenizer` is a function sentences -> ids, or a path (a folder with vocab.json + merges.txt, or
    OpenAI's bpe_simple_vocab_16e6.txt.gz); by default the checkpoint folder's own tokenizer files. Never
    touches the network: missing files raise WeightsNotFoundError saying what to fetch and where.
    """
    from transformers import GroupViTModel

    folder = Path(checkpoint).expanduser()
    missing = [CONFIG_FILE] if not (folder / CONFIG_FILE).is_file() else []
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        missing.append(WEIGHT_FILES[0])
    if tokenizer is None:
        if (folder / VOCAB_FILE).is_file() and (folder / MERGES_FILE).is_file():
            tokenizer = folder
        elif (folder / BPE_FILE).is_file():
            tokenizer = folder / BPE_FILE
        else:
            missing += [VOCAB_FILE, MERGES_FILE]
    if missing:
        raise _missing_weights(folder, missing)

    with _no_progress_bar():
        model = GroupViTModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
    if not callable(tokenizer):
        text = model.config.text_config
        tokenizer = clip_tokenizer(tokenizer, int(text.max_position_embeddings), int(text.vocab_size))
    mean, std = _read_stats(folder)
    return GroupViTEmbedder(model, tokenizer, hard=hard, mean=mean, std=std)
