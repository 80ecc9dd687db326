"""CLIP: exact tokenizer and preprocessing, golden equivalence with openai/CLIP, checkpoint formats and
errors, hub entries (offline), the CLIP text encoder and the MaskCLIP dense embedder."""
from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zeroseg import hub
from zeroseg.errors import (
    CheckpointMismatchError,
    CheckpointReadError,
    ModelError,
    PromptValueError,
    WeightsNotFoundError,
)
from zeroseg.models.clip import CLIP, ClipTokenizer, load_clip, load_clip_model, preprocess
from zeroseg.models.clip.build import ClipTextEncoder, config_from_state_dict, load_clip_text_encoder, read_state_dict
from zeroseg.models.vl.base import DenseEmbedder
from zeroseg.models.vl.maskclip import dense_input_size, load_maskclip_embedder

TOL = {"rtol": 1e-4, "atol": 1e-4}
LOGITS_TOL = {"rtol": 1e-4, "atol": 1e-3}


# --- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vocab_path(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "clip_vocab" / "bpe_simple_vocab_16e6.txt.gz"


@pytest.fixture(scope="module")
def clip_goldens(goldens_dir: Path) -> dict:
    return json.loads((goldens_dir / "clip" / "clip_goldens.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def arrays(goldens_dir: Path, clip_goldens: dict) -> dict[str, np.ndarray]:
    return dict(np.load(goldens_dir / clip_goldens["npz"]))


@pytest.fixture(scope="module")
def checkpoint(goldens_dir: Path, clip_goldens: dict) -> Path:
    return goldens_dir / clip_goldens["checkpoint"]


@pytest.fixture(scope="module")
def clip(checkpoint: Path, vocab_path: Path) -> tuple[CLIP, ClipTokenizer]:
    return load_clip(checkpoint, vocab_path)


@pytest.fixture(scope="module")
def outputs(clip, arrays: dict) -> dict[str, np.ndarray]:
    """Every golden call of the README, run on the golden inputs."""
    model, _ = clip
    pixels, tokens = torch.from_numpy(arrays["pixel_values"]), torch.from_numpy(arrays["tokens"])
    with torch.inference_mode():
        logits_per_image, logits_per_text = model(pixels, tokens)
        result = {
            "image_features": model.encode_image(pixels),
            "text_features": model.encode_text(tokens),
            "logits_per_image": logits_per_image,
            "logits_per_text": logits_per_text,
            "vision_tokens": model.visual.tokens(pixels),
            "vision_tokens_ln_post_proj": model.dense_features(pixels),
            "text_tokens_ln_final": model.text_tokens(tokens),
            "eot_index": tokens.argmax(dim=-1),
        }
    return {name: value.numpy() for name, value in result.items()}


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch, scratch_hub) -> Path:
    """A private hub cache and a private copy of the registry."""
    home = tmp_path / "home"
    monkeypatch.setenv("ZEROSEG_HOME", str(home))
    return home


@pytest.fixture
def offline(monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


# --- tokenizer ----------------------------------------------------------------------------
def test_bpe_ids_and_symbols_match_the_reference(clip_goldens: dict, vocab_path: Path) -> None:
    tokenizer = ClipTokenizer(vocab_path)
    texts = clip_goldens["texts"]
    assert [tokenizer.encode(t) for t in texts] == clip_goldens["bpe_ids_untruncated"]
    assert [tokenizer.tokens(t) for t in texts] == clip_goldens["bpe_tokens_untruncated"]


def test_tokenize_pads_and_truncates_like_clip_tokenize(clip_goldens: dict, arrays: dict, vocab_path: Path) -> None:
    expected = arrays["tokens"]
    tokens = ClipTokenizer(vocab_path).tokenize(clip_goldens["texts"], context_length=expected.shape[1], truncate=True)
    assert tokens.dtype == torch.int32
    np.testing.assert_array_equal(tokens.numpy(), expected)
    np.testing.assert_array_equal(tokens.argmax(dim=-1).numpy(), arrays["eot_index"])


def test_tokenize_edge_cases(vocab_path: Path) -> None:
    tokenizer = ClipTokenizer(vocab_path, context_length=8)
    start, end = tokenizer.start_id, tokenizer.end_id
    assert tokenizer.tokenize("").tolist() == [[start, end, 0, 0, 0, 0, 0, 0]]
    assert tokenizer.encode("<|endoftext|>") == [end]  # special tokens in text keep their ids
    assert tokenizer.encode("123") == [tokenizer.encode(d)[0] for d in "123"]  # one token per digit
    long_text = "a b c d e f g h i j"
    assert tokenizer(long_text)[0, -1].item() == end
    with pytest.raises(PromptValueError, match="context length 8"):
        tokenizer.tokenize(long_text, truncate=False)
    with pytest.raises(ValueError, match="merges"):
        ClipTokenizer(vocab_path, vocab_size=10**7)


# --- preprocessing and golden outputs -----------------------------------------------------
def test_pixel_values_match(goldens_dir: Path, clip_goldens: dict, arrays: dict, clip) -> None:
    model, _ = clip
    images = [np.array(Image.open(goldens_dir / name).convert("RGB")) for name in clip_goldens["images"]]
    pixels = torch.stack([preprocess(image, model.config.image_resolution) for image in images])
    np.testing.assert_allclose(pixels.numpy(), arrays["pixel_values"], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "name",
    ["image_features", "text_features", "vision_tokens", "vision_tokens_ln_post_proj", "text_tokens_ln_final"],
)
def test_features_match(outputs: dict, arrays: dict, name: str) -> None:
    assert outputs[name].shape == arrays[name].shape
    np.testing.assert_allclose(outputs[name], arrays[name], **TOL)


@pytest.mark.parametrize("name", ["logits_per_image", "logits_per_text"])
def test_logits_match(outputs: dict, arrays: dict, name: str) -> None:
    np.testing.assert_allclose(outputs[name], arrays[name], **LOGITS_TOL)


def test_eot_index_matches(outputs: dict, arrays: dict) -> None:
    np.testing.assert_array_equal(outputs["eot_index"], arrays["eot_index"])


@pytest.mark.parametrize("manifest", ["clip_vit_b32.json", "clip_vit_b16.json", "clip_vit_l14.json"])
def test_official_architectures_have_the_official_state_dict(manifests_dir: Path, manifest: str) -> None:
    """Shapes of the released models -> the official constructor arguments -> the same keys and shapes."""
    official = json.loads((manifests_dir / manifest).read_text())
    state = {key: torch.empty(shape, device="meta") for key, shape in official["state_dict"].items()}
    config = config_from_state_dict(state)
    assert dataclasses.asdict(config) == official["constructor"]
    with torch.device("meta"):
        model = CLIP(config)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == official["state_dict"]


def test_hyper_parameters_come_from_the_checkpoint(clip, goldens_dir: Path, clip_goldens: dict) -> None:
    model, tokenizer = clip
    config = json.loads((goldens_dir / clip_goldens["config"]).read_text())
    assert dataclasses.asdict(model.config) == config["constructor"]
    assert model.config.vision_heads == config["vision_heads"]
    assert tokenizer.context_length == model.config.context_length
    assert model.logit_scale.item() == pytest.approx(config["logit_scale"], abs=1e-3)  # float16-rounded
    assert all(p.dtype == torch.float32 for p in model.parameters()) and not model.training


# --- MaskCLIP value path and positional embedding -----------------------------------------
def test_maskclip_features_are_the_last_blocks_self_only_attention(clip, arrays: dict) -> None:
    """The value path equals PyTorch's own attention in which every token attends only to itself."""
    model, _ = clip
    visual = model.visual
    pixels = torch.from_numpy(arrays["pixel_values"])
    last = visual.transformer.resblocks[-1]
    width = visual.conv1.out_channels
    reference_attn = torch.nn.MultiheadAttention(width, visual.transformer.resblocks[0].attn.heads, batch_first=True)
    reference_attn.load_state_dict(last.attn.state_dict())
    with torch.inference_mode():
        x = visual.embed(pixels)
        for block in visual.transformer.resblocks[:-1]:
            x = block(x)
        y = last.ln_1(x)
        self_only = torch.full((x.shape[1], x.shape[1]), float("-inf")).fill_diagonal_(0.0)
        attended = reference_attn(y, y, y, attn_mask=self_only, need_weights=False)[0]
        expected = visual.ln_post(attended) @ visual.proj
        np.testing.assert_allclose(model.maskclip_features(pixels).numpy(), expected.numpy(), **TOL)


def test_positional_embedding_resizes_rows_and_columns_in_place(clip) -> None:
    visual = clip[0].visual
    grid, width = visual.grid, visual.positional_embedding.shape[1]
    assert torch.equal(visual.position_embedding(grid, grid), visual.positional_embedding)
    original = visual.positional_embedding.detach().clone()
    try:
        with torch.no_grad():
            visual.positional_embedding[1:] = 0.0
            visual.positional_embedding[1 : 1 + grid] = 1.0  # only the first row of patches
        resized = visual.position_embedding(grid, 2 * grid)[1:].reshape(grid, 2 * grid, width)
        # a unit vertical scale samples rows exactly: row 0 stays ones (a constant), the others zeros
        torch.testing.assert_close(resized[0], torch.ones(2 * grid, width), rtol=0, atol=1e-5)
        torch.testing.assert_close(resized[1:], torch.zeros(grid - 1, 2 * grid, width), rtol=0, atol=1e-5)
    finally:
        with torch.no_grad():
            visual.positional_embedding.copy_(original)


# --- checkpoint formats and errors --------------------------------------------------------
def test_torchscript_archive_loads_like_the_state_dict(clip, tmp_path: Path) -> None:
    """OpenAI's release format: a traced float16 module whose state_dict also holds integer metadata."""
    model, _ = clip
    config = model.config
    archive_model = CLIP(config)
    archive_model.load_state_dict(model.state_dict())
    for key, value in (
        ("input_resolution", config.image_resolution),
        ("context_length", config.context_length),
        ("vocab_size", config.vocab_size),
    ):
        archive_model.register_buffer(key, torch.tensor(value))
    pixels = torch.zeros(1, 3, config.image_resolution, config.image_resolution)
    tokens = torch.zeros(1, config.context_length, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks become constants: intended
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit itself; OpenAI's format all the same
        traced = torch.jit.trace(archive_model.eval(), (pixels, tokens), check_trace=False)
    traced.half().save(str(tmp_path / "ViT-tiny.pt"))

    assert read_state_dict(tmp_path / "ViT-tiny.pt")["visual.proj"].dtype == torch.float16
    loaded = load_clip_model(tmp_path / "ViT-tiny.pt")
    assert loaded.config == config
    for key, value in model.state_dict().items():  # the golden checkpoint is float16 already: lossless
        assert torch.equal(loaded.state_dict()[key], value), key


def _save_edited(checkpoint: Path, tmp_path: Path, edit) -> Path:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    edit(state)
    path = tmp_path / "edited.pt"
    torch.save(state, path)
    return path


def test_missing_key_is_a_mismatch(checkpoint: Path, tmp_path: Path) -> None:
    path = _save_edited(checkpoint, tmp_path, lambda s: s.pop("visual.ln_post.bias"))
    with pytest.raises(CheckpointMismatchError, match=r"1 missing keys \(visual.ln_post.bias\)"):
        load_clip_model(path)


def test_wrong_shape_is_a_mismatch(checkpoint: Path, tmp_path: Path) -> None:
    def widen(state):
        state["visual.proj"] = torch.zeros(state["visual.proj"].shape[0], state["visual.proj"].shape[1] + 1)

    with pytest.raises(CheckpointMismatchError, match="shape mismatches .*visual.proj"):
        load_clip_model(_save_edited(checkpoint, tmp_path, widen))


def test_unexpected_key_is_a_mismatch(checkpoint: Path, tmp_path: Path) -> None:
    path = _save_edited(checkpoint, tmp_path, lambda s: s.update({"visual.extra": torch.zeros(1)}))
    with pytest.raises(CheckpointMismatchError, match="unexpected keys"):
        load_clip_model(path)


def test_other_files_are_refused(tmp_path: Path) -> None:
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(2)}, tmp_path / "sam.pt")
    with pytest.raises(CheckpointMismatchError, match="not a CLIP ViT checkpoint"):
        load_clip_model(tmp_path / "sam.pt")
    torch.save({"visual.layer1.0.conv1.weight": torch.zeros(2)}, tmp_path / "rn50.pt")
    with pytest.raises(CheckpointMismatchError, match="ResNet CLIP"):
        load_clip_model(tmp_path / "rn50.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointReadError, match="cannot read CLIP checkpoint .*junk.pt: a text file"):
        load_clip_model(tmp_path / "junk.pt")
    with pytest.raises(WeightsNotFoundError):
        load_clip_model(tmp_path / "missing.pt")


# --- hub ----------------------------------------------------------------------------------
def test_hub_registers_the_official_files(vocab_path: Path) -> None:
    for name, filename in (("clip_vit_b16", "ViT-B-16.pt"), ("clip_vit_b32", "ViT-B-32.pt")):
        entry = hub.get(name)
        assert entry.kind == "clip" and entry.filename == filename
        assert entry.url.endswith(f"/{entry.sha256}/{filename}")  # OpenAI's URLs carry the file's hash
    assert hub.get("ViT-B/16") is hub.get("clip_vit_b16")
    vocab = hub.get("clip_vocab")
    assert vocab.kind == "vocab" and vocab.size == vocab_path.stat().st_size
    assert vocab.sha256 == hub.file_sha256(vocab_path)
    assert {e.name for e in hub.list_models(hub.SEGMENTER)} >= {"lite", "sam_vit_b", "mobile_sam"}
    assert {e.kind for e in hub.list_models() if e.name.startswith("clip_")} == {"clip", "vocab"}


def test_load_model_refuses_non_segmenters() -> None:
    with pytest.raises(ModelError, match="not a segmentation model"):
        hub.load_model("clip_vit_b16")


def test_offline_errors_say_what_to_fetch_and_where(isolated: Path, offline, checkpoint: Path) -> None:
    weights = hub.get("clip_vit_b16")
    with pytest.raises(WeightsNotFoundError) as info:
        hub.get_text_encoder("clip")
    message = str(info.value)
    assert weights.url in message and weights.sha256 in message
    assert str(isolated / "checkpoints" / "ViT-B-16.pt") in message

    vocab = hub.get("clip_vocab")
    with pytest.raises(WeightsNotFoundError) as info:
        hub.load_dense_embedder("maskclip", checkpoint)  # weights given, vocabulary from the (empty) cache
    message = str(info.value)
    assert vocab.url in message and vocab.sha256 in message
    assert str(isolated / "checkpoints" / "bpe_simple_vocab_16e6.txt.gz") in message

    with pytest.raises(WeightsNotFoundError, match="name resolution"):
        hub.download("clip_vocab", progress=False)


def test_vocabulary_comes_through_the_hub(isolated: Path, checkpoint: Path, vocab_path: Path) -> None:
    entry = hub.get("clip_vocab")
    hub.register(dataclasses.replace(entry, url=vocab_path.as_uri()), replace=True)  # a file:// URL
    assert hub.download("clip_vocab", progress=False) == isolated / "checkpoints" / entry.filename
    embedder = hub.load_dense_embedder("maskclip", checkpoint)
    tokenizer = embedder.text_encoder.tokenizer
    assert tokenizer.encode("a photo of a cat") == ClipTokenizer(vocab_path).encode("a photo of a cat")
    with pytest.raises(WeightsNotFoundError, match="CLIP vocabulary not found"):
        load_clip(checkpoint, isolated / "missing.txt.gz")  # the builder itself takes paths only


# --- text encoder -------------------------------------------------------------------------
def test_clip_text_encoder_averages_templates(clip) -> None:
    model, tokenizer = clip
    templates = ("a photo of a {}.", "{}")
    encoder = ClipTextEncoder(model, tokenizer, templates=templates)
    assert encoder.name == "clip" and encoder.dim == model.config.embed_dim
    names = ["cat", "traffic light"]
    embeddings = encoder.encode(names)
    assert embeddings.shape == (2, model.config.embed_dim)
    with torch.inference_mode():
        per_template = model.encode_text(tokenizer([t.format("cat") for t in templates]))
    expected = torch.nn.functional.normalize(torch.nn.functional.normalize(per_template, dim=-1).mean(0), dim=0)
    torch.testing.assert_close(embeddings[0], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(2))


def test_clip_text_encoder_is_registered(checkpoint: Path, vocab_path: Path) -> None:
    entry = hub.get("clip", hub.TEXT_ENCODER)
    assert entry.needs == ("clip_vit_b16", "clip_vocab")
    encoder = entry.builder(checkpoint, vocab=vocab_path)  # what get_text_encoder calls, with the cached files
    assert isinstance(encoder, ClipTextEncoder) and encoder.encode(["sky"]).shape == (1, encoder.dim)
    assert load_clip_text_encoder(checkpoint, vocab_path).dim == encoder.dim


# --- MaskCLIP embedder --------------------------------------------------------------------
def test_maskclip_embedder_gives_unit_features_over_the_whole_image(
    checkpoint: Path, vocab_path: Path, goldens_dir: Path, clip_goldens: dict
) -> None:
    embedder = load_maskclip_embedder(checkpoint, vocab=vocab_path)
    assert isinstance(embedder, DenseEmbedder)
    assert embedder.name == "maskclip" and embedder.temperature == 0.01 and embedder.background() is None
    visual = embedder.model.visual
    resolution, patch = visual.input_resolution, visual.patch_size
    for name in clip_goldens["images"]:
        image = np.array(Image.open(goldens_dir / name).convert("RGB"))
        height, width = image.shape[:2]
        dense = embedder.embed(image)
        input_width, input_height = dense_input_size(height, width, resolution, patch)
        assert min(input_width, input_height) == resolution
        assert dense.image_size == (height, width)
        assert dense.features.shape == (embedder.text_encoder.dim, input_height // patch, input_width // patch)
        torch.testing.assert_close(dense.features.norm(dim=0), torch.ones(dense.features.shape[1:]))
    assert embedder.text_encoder.dim == embedder.model.config.embed_dim


def test_dense_input_size_keeps_the_aspect_in_whole_patches() -> None:
    assert dense_input_size(281, 413, 224, 32) == (320, 224)  # 224 * 413 / 281 = 329 -> 10 patches
    assert dense_input_size(371, 262, 224, 16) == (224, 320)
    assert dense_input_size(100, 100, 224, 16) == (224, 224)
    assert dense_input_size(10, 10_000, 224, 16) == (4 * 224, 224)  # strips are capped
