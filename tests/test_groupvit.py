"""GroupViT through transformers, checked against the reference goldens (README section 4)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zeroseg.errors import WeightsNotFoundError
from zeroseg.hub import load_dense_embedder
from zeroseg.models.vl import DenseEmbedder
from zeroseg.models.vl.groupvit import (
    BPE_FILE,
    HF_REPO,
    GroupViTTextEncoder,
    clip_tokenizer,
    load_groupvit_embedder,
)


@pytest.fixture(scope="module")
def golden(goldens_dir):
    spec = json.loads((goldens_dir / "groupvit" / "groupvit_goldens.json").read_text())
    arrays = dict(np.load(goldens_dir / spec["npz"]))
    return spec, arrays


@pytest.fixture(scope="module")
def golden_tokenize(golden):
    """The goldens' own token ids, looked up by text (the tokenizer is tested separately)."""
    spec, arrays = golden
    rows = {text: torch.from_numpy(ids) for text, ids in zip(spec["texts"], arrays["input_ids"])}
    return lambda sentences: torch.stack([rows[s] for s in sentences])


@pytest.fixture(scope="module")
def embedder(goldens_dir, golden, golden_tokenize):
    return load_groupvit_embedder(goldens_dir / golden[0]["hf_dir"], tokenizer=golden_tokenize)


@pytest.fixture(scope="module")
def reference(embedder, golden):
    arrays = golden[1]
    with torch.inference_mode():
        return embedder.model(
            input_ids=torch.from_numpy(arrays["input_ids"]),
            pixel_values=torch.from_numpy(arrays["pixel_values"]),
            output_segmentation=True,
        )


def test_reference_call_matches_goldens(reference, golden):
    arrays = golden[1]
    close = np.testing.assert_allclose
    for name in ("logits_per_image", "logits_per_text"):
        close(getattr(reference, name).numpy(), arrays[name], atol=1e-4)
    for name in ("text_embeds", "image_embeds"):
        close(getattr(reference, name).numpy(), arrays[name], atol=1e-5)
    vision = reference.vision_model_output
    close(vision.last_hidden_state.numpy(), arrays["vision_last_hidden_state"], atol=1e-5)
    close(vision.pooler_output.numpy(), arrays["vision_pooler_output"], atol=1e-5)
    close(reference.text_model_output.pooler_output.numpy(), arrays["text_pooler_output"], atol=1e-5)
    stages = sorted((k for k in arrays if k.startswith("grouping_attention_stage")), key=lambda k: int(k[24:]))
    assert len(stages) == len(vision.attentions)
    for stage, attention in zip(stages, vision.attentions):
        close(attention.numpy(), arrays[stage], atol=1e-5)
    seg, gold = reference.segmentation_logits.numpy(), arrays["segmentation_logits"]
    close(seg, gold, atol=1e-3)
    close(seg - seg.mean(), gold - gold.mean(), atol=1e-4)


def test_text_encoder_gives_text_embeds(embedder, golden, golden_tokenize):
    spec, arrays = golden
    encoder = GroupViTTextEncoder(embedder.model, golden_tokenize, templates=("{}",))
    assert embedder.text_encoder.name == "groupvit" and encoder.dim == arrays["text_embeds"].shape[1]
    np.testing.assert_allclose(encoder.encode(spec["texts"]).numpy(), arrays["text_embeds"], atol=1e-5)


def test_grouping_rebuilds_segmentation_logits(embedder, golden):
    """The unnormalised share-weighted group mix reproduces the reference's logits exactly."""
    arrays = golden[1]
    pixels = torch.from_numpy(arrays["pixel_values"])
    embeds, share = embedder.grouping(pixels)
    text = torch.from_numpy(arrays["text_embeds"])
    scale2 = embedder.temperature**-2
    grid_logits = torch.einsum("bgd,bghw,td->bthw", embeds, share, text) * scale2
    seg = F.interpolate(grid_logits, size=pixels.shape[-2:], mode="bilinear", align_corners=False).numpy()
    gold = arrays["segmentation_logits"]
    np.testing.assert_allclose(seg, gold, atol=1e-3)
    np.testing.assert_allclose(seg - seg.mean(), gold - gold.mean(), atol=1e-4)


def test_dense_argmax_agrees_with_segmentation(embedder, golden):
    arrays = golden[1]
    pixels = torch.from_numpy(arrays["pixel_values"])
    features = embedder.dense_features(pixels)
    patch = embedder.patch_size
    assert features.shape[-2:] == (pixels.shape[-2] // patch, pixels.shape[-1] // patch)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(features.shape[0], *features.shape[2:]))
    cosine = torch.einsum("bdhw,td->bthw", features, torch.from_numpy(arrays["text_embeds"]))
    ours = F.interpolate(cosine, size=pixels.shape[-2:], mode="bilinear", align_corners=False).argmax(1).numpy()
    agree = (ours == arrays["segmentation_logits"].argmax(1)).mean()
    assert agree > 0.9, agree


def test_hard_grouping_is_a_partition(goldens_dir, golden, golden_tokenize):
    hard = load_groupvit_embedder(goldens_dir / golden[0]["hf_dir"], tokenizer=golden_tokenize, hard=True)
    _, share = hard.grouping(torch.from_numpy(golden[1]["pixel_values"]))
    assert set(share.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(share.sum(1), torch.ones(share.shape[0], *share.shape[2:]))


def test_embed_any_image(embedder, goldens_dir, golden):
    from zeroseg.io import load_image

    image = load_image(goldens_dir / golden[0]["images"][0])
    assert isinstance(embedder, DenseEmbedder) and embedder.background() is None
    out = embedder.embed(image)
    grid = embedder.input_size // embedder.patch_size
    assert out.image_size == image.shape[:2]
    assert out.features.shape == (embedder.model.config.projection_dim, grid, grid)
    torch.testing.assert_close(out.features.norm(dim=0), torch.ones(grid, grid))
    assert 0 < embedder.temperature < 1


def test_clip_tokenizer_matches_reference_ids(shared_dir, goldens_dir, golden):
    bpe = shared_dir / "fixtures" / "clip_vocab" / BPE_FILE
    spec, arrays = golden
    tokenize = clip_tokenizer(bpe)
    np.testing.assert_array_equal(tokenize(spec["texts"]).numpy(), arrays["input_ids"])
    clip = json.loads((goldens_dir / "clip" / "clip_goldens.json").read_text())
    tokens = np.load(goldens_dir / clip["npz"])["tokens"]
    np.testing.assert_array_equal(tokenize(clip["texts"]).numpy(), tokens)


def test_loader_uses_the_folder_tokenizer(tmp_path, shared_dir, goldens_dir, golden):
    """A folder with OpenAI's BPE file tokenizes by itself, end to end to the reference text embeddings."""
    spec, arrays = golden
    for item in (goldens_dir / spec["hf_dir"]).iterdir():
        (tmp_path / item.name).symlink_to(item)
    (tmp_path / BPE_FILE).symlink_to(shared_dir / "fixtures" / "clip_vocab" / BPE_FILE)
    embedder = load_groupvit_embedder(tmp_path)
    encoder = GroupViTTextEncoder(embedder.model, embedder.text_encoder.tokenize, templates=("{}",))
    np.testing.assert_allclose(encoder.encode(spec["texts"]).numpy(), arrays["text_embeds"], atol=1e-5)


def test_the_hub_hands_its_cached_folder_to_the_builder(tmp_path, monkeypatch, shared_dir, goldens_dir, golden):
    from zeroseg import hub

    spec, _ = golden
    monkeypatch.setenv("ZEROSEG_HOME", str(tmp_path))
    folder = hub.folder_path("groupvit_gcc_yfcc")
    folder.mkdir()
    for item in (goldens_dir / spec["hf_dir"]).iterdir():
        (folder / item.name).symlink_to(item)
    (folder / BPE_FILE).symlink_to(shared_dir / "fixtures" / "clip_vocab" / BPE_FILE)
    assert folder == tmp_path / "groupvit-gcc-yfcc" and hub.is_cached("groupvit")
    embedder = load_dense_embedder("groupvit", hard=True)
    assert embedder.name == "groupvit" and embedder.hard


def test_missing_weights_say_what_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("ZEROSEG_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as info:
        load_dense_embedder("groupvit")
    message = str(info.value)
    folder = tmp_path / "groupvit-gcc-yfcc"
    for part in (HF_REPO, "config.json", "model.safetensors", "vocab.json", "merges.txt", str(folder)):
        assert part in message
    assert not folder.exists()


def test_clip_tokenizer_from_hugging_face_files(tmp_path, shared_dir, golden):
    """vocab.json + merges.txt (the Hugging Face layout) tokenize like OpenAI's BPE file."""
    from zeroseg.models.vl.groupvit import _vocab_from_bpe_file

    vocab, merges = _vocab_from_bpe_file(shared_dir / "fixtures" / "clip_vocab" / BPE_FILE, 49408)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    spec, arrays = golden
    np.testing.assert_array_equal(clip_tokenizer(tmp_path)(spec["texts"]).numpy(), arrays["input_ids"])
