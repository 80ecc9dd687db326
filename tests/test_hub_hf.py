"""Hugging Face entries (SAM 2.1, SAM-HQ, EdgeTAM, SAM 3) without network: a fake snapshot_download writes
tiny folders, patched ones raise the Hub's errors, and Meta's SAM 2.1 layout round-trips on a tiny model."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch
from huggingface_hub import errors as hf_errors
from safetensors.torch import save_file
from transformers import Sam2Config, Sam2Model
from typer.testing import CliRunner

import huggingface_hub
from zeroseg import hub
from zeroseg.cli import app
from zeroseg.errors import CheckpointMismatchError, CheckpointReadError, ConfigError, WeightsNotFoundError
from zeroseg.hub import hf
from zeroseg.models.hf import convert_sam2

HEX40 = re.compile(r"[0-9a-f]{40}")
NEW = {
    "sam2.1_hiera_tiny": ("facebook/sam2.1-hiera-tiny", "sam2"),
    "sam2.1_hiera_small": ("facebook/sam2.1-hiera-small", "sam2"),
    "sam2.1_hiera_base_plus": ("facebook/sam2.1-hiera-base-plus", "sam2"),
    "sam2.1_hiera_large": ("facebook/sam2.1-hiera-large", "sam2"),
    "sam_hq_vit_b": ("syscv-community/sam-hq-vit-base", "sam_hq"),
    "sam_hq_vit_l": ("syscv-community/sam-hq-vit-large", "sam_hq"),
    "sam_hq_vit_h": ("syscv-community/sam-hq-vit-huge", "sam_hq"),
    "edgetam": ("yonigozlan/EdgeTAM-hf", "edgetam"),
    "sam3": ("facebook/sam3", "sam3"),
    "sam3_tracker": ("facebook/sam3", "sam3_tracker"),
    "sam3_lite_text": ("vil-uob/sam3-litetext-s0", "sam3_lite_text"),
}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch, scratch_hub) -> Path:
    """A private cache and registry; no token, and no real Hub call can happen."""
    home = tmp_path / "home"
    monkeypatch.setenv("ZEROSEG_HOME", str(home))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)

    def no_hub(**kwargs):
        raise AssertionError("the test reached huggingface_hub.snapshot_download")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_hub)
    return home


class FakeModel(torch.nn.Module):
    """What a patched ``hf.build`` returns: records the family and folder it was built from."""

    def __init__(self, family: str, folder: Path) -> None:
        super().__init__()
        self.family, self.folder = family, folder
        self.weight = torch.nn.Parameter(torch.zeros(1))


@pytest.fixture
def built(monkeypatch) -> list[FakeModel]:
    models: list[FakeModel] = []

    def build(family: str, folder: Path, **options) -> FakeModel:
        models.append(FakeModel(family, folder))
        models[-1].options = options
        return models[-1]

    monkeypatch.setattr(hf, "build", build)
    return models


def write_folder(folder: Path, model_type: str, weights: bool = True) -> Path:
    """A minimal folder in the Hugging Face layout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    if weights:
        save_file({"w": torch.arange(4.0)}, str(folder / "model.safetensors"))
    return folder


class FakeHub:
    """Stands in for ``snapshot_download``: writes a tiny folder as the Hub would, with a progress bar."""

    def __init__(self, model_type: str = "sam2_video", commit: str = "c" * 40) -> None:
        self.model_type, self.commit, self.calls = model_type, commit, []

    def __call__(self, *, repo_id, revision, allow_patterns, local_dir, tqdm_class, **kwargs):
        self.calls.append({"repo_id": repo_id, "revision": revision, "allow_patterns": allow_patterns,
                           "local_dir": Path(local_dir), "tqdm_class": tqdm_class, **kwargs})
        folder = write_folder(Path(local_dir), self.model_type)
        metadata = folder / ".cache" / "huggingface" / "download" / "config.json.metadata"
        metadata.parent.mkdir(parents=True, exist_ok=True)
        metadata.write_text(f"{revision or self.commit}\netag\n0.0\n")
        with tqdm_class(total=100, unit="B", desc="Downloading bytes") as bar:
            bar.update(100)
        return str(folder)


# --- entries ------------------------------------------------------------------------------------
def test_the_new_entries() -> None:
    from zeroseg.models.hf.sam2 import SAM2_PRESET
    from zeroseg.models.hf.sam_hq import SAM_HQ_PRESET

    for name, (repo, family) in NEW.items():
        entry = hub.get(name)
        assert entry.kind == hub.SEGMENTER and entry.fetchable and entry.repo == repo
        assert isinstance(entry.builder, hf.HFBuilder) and entry.builder.family == family
        assert entry.revision is None or HEX40.fullmatch(entry.revision)
        assert entry.size > 10_000_000 and entry.licence and entry.folder.startswith("hf/")
        assert entry.gated == (name in ("sam3", "sam3_tracker"))
    assert hub.get("sam2.1_hiera_tiny").preset == SAM2_PRESET and hub.get("sam_hq_vit_h").preset == SAM_HQ_PRESET
    assert {n for n in NEW if hub.get(n).licence == "Apache-2.0"} >= {"sam2.1_hiera_tiny", "edgetam", "sam_hq_vit_b"}
    assert "SAM License" in hub.get("sam3").licence and hub.get("sam3").gated
    assert hub.get("sam2.1-hiera-tiny") is hub.get("sam2.1_hiera_t") is hub.get("sam2.1_hiera_tiny")
    assert hub.get("sam3").folder == hub.get("sam3_tracker").folder  # one download serves both
    assert [hub.get(n).builder.meta_size for n in NEW if n.startswith("sam2.1")] == list(convert_sam2.SIZES)


def test_a_size_alone_belongs_to_a_repo() -> None:
    with pytest.raises(ValueError, match="a size belongs"):
        hub.ModelEntry(name="x", description="-", licence="-", builder=lambda p: p, size=5)
    with pytest.raises(ValueError, match="revision and gated"):
        hub.ModelEntry(name="x", description="-", licence="-", builder=lambda p: p, gated=True)


def test_models_lists_sizes_licences_and_gates(isolated: Path) -> None:
    result = CliRunner().invoke(app, ["models", "--kind", "segmenter"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    for name in NEW:
        assert f"~{hub.get(name).size / 1e6:,.0f} MB" in rows[name] and hub.get(name).licence in rows[name]
    assert "not cached, gated" in rows["sam3"] and "gated" not in rows["sam2.1_hiera_tiny"]
    write_folder(isolated / hub.get("sam2.1_hiera_tiny").folder, "sam2_video")
    result = CliRunner().invoke(app, ["models", "--kind", "segmenter"])
    assert " cached " in next(line for line in result.output.splitlines() if line.startswith("sam2.1_hiera_tiny "))

    shown = CliRunner().invoke(app, ["models", "show", "sam3"]).output
    assert "repo: https://huggingface.co/facebook/sam3" in shown and f"revision: {hub.get('sam3').revision}" in shown
    assert "gated: yes" in shown and "SAM License" in shown and "cached: no" in shown
    shown = CliRunner().invoke(app, ["models", "show", "sam_hq_vit_b"]).output
    assert "revision: main (not pinned)" in shown and "gated: no" in shown and "licence: Apache-2.0" in shown


# --- download -----------------------------------------------------------------------------------
def test_download_writes_the_folder_into_the_cache_with_a_progress_bar(isolated: Path, capsys) -> None:
    fake = FakeHub()
    entry = hub.get("sam2.1_hiera_tiny")
    folder = hf.fetch(entry.name, downloader=fake)
    assert folder == isolated / "hf" / "facebook--sam2.1-hiera-tiny" == hub.folder_path(entry.name)
    call = fake.calls[0]
    assert call["repo_id"] == entry.repo and call["revision"] == entry.revision and call["local_dir"] == folder
    patterns = call["allow_patterns"]
    assert set(patterns) >= {"*.json", "*.safetensors"} and not any(".pt" in p for p in patterns)
    assert "Downloading bytes" in capsys.readouterr().err  # the bar
    assert hub.is_cached(entry.name) and hf.downloaded_revision(entry) == entry.revision

    hf.fetch(entry.name, progress=False, downloader=fake)
    assert fake.calls[1]["tqdm_class"](total=1).disable and "Downloading" not in capsys.readouterr().err


def test_cli_download_and_first_use_fetch(isolated: Path, monkeypatch, built) -> None:
    fake = FakeHub(model_type="sam_hq")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    result = CliRunner().invoke(app, ["models", "download", "sam_hq_vit_b", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "syscv-community/sam-hq-vit-base" in result.output and hub.is_cached("sam_hq_vit_b")

    model = hub.load_model("sam_hq_vit_l")  # not cached: fetched on first use, then built from the folder
    assert fake.calls[-1]["repo_id"] == "syscv-community/sam-hq-vit-large" and len(fake.calls) == 2
    assert built[-1].family == "sam_hq" and built[-1].folder == isolated / hub.get("sam_hq_vit_l").folder
    assert model.name == "sam_hq_vit_l" and model.version == "c" * 12 and model.preset == hub.get("sam_hq_vit_l").preset
    hub.load_model("sam_hq_vit_l")  # cached: no second download
    assert len(fake.calls) == 2


def test_a_pinned_revision_that_changed_is_fetched_again(isolated: Path, monkeypatch, built) -> None:
    fake = FakeHub(model_type="sam2_video")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    entry = hub.get("sam2.1_hiera_small")
    folder = write_folder(isolated / entry.folder, "sam2_video")
    metadata = folder / ".cache" / "huggingface" / "download" / "config.json.metadata"
    metadata.parent.mkdir(parents=True)
    metadata.write_text("0" * 40 + "\netag\n0.0\n")
    model = hub.load_model(entry.name)
    assert len(fake.calls) == 1 and model.version == entry.revision[:12]

    metadata.write_text("0" * 40 + "\netag\n0.0\n")

    def offline(**kwargs):
        raise hf_errors.LocalEntryNotFoundError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.warns(UserWarning, match="another revision"):
        model = hub.load_model(entry.name)  # offline: the older folder still loads
    assert model.version == "0" * 12


def _gated(repo: str = "facebook/sam3") -> Exception:
    import httpx2

    response = httpx2.Response(403, request=httpx2.Request("GET", f"https://huggingface.co/api/models/{repo}"))
    return hf_errors.GatedRepoError(f"Access to model {repo} is restricted.", response=response)


@pytest.mark.parametrize(
    "error",
    [
        _gated(),
        hf_errors.LocalEntryNotFoundError("outgoing traffic has been disabled"),
        OSError("[Errno -3] Temporary failure in name resolution"),
    ],
    ids=["gated", "offline", "no-network"],
)
def test_offline_or_gated_says_what_to_do(isolated: Path, monkeypatch, built, error: Exception) -> None:
    def fails(**kwargs):
        raise error

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fails)
    with pytest.raises(WeightsNotFoundError) as info:
        hub.load_model("sam3")
    message = str(info.value)
    folder = isolated / "hf" / "facebook--sam3"
    for part in ("https://huggingface.co/facebook/sam3", "HF_TOKEN", str(folder), "--checkpoint DIR",
                 "zeroseg models download sam3", "load_model('sam3', checkpoint=DIR)"):
        assert part in message
    assert ("no Hugging Face token" in message) == isinstance(error, hf_errors.GatedRepoError)
    assert not built

    result = CliRunner().invoke(app, ["models", "download", "sam3"])
    assert result.exit_code == WeightsNotFoundError.exit_code
    assert result.output.count("error:") == 1 and "https://huggingface.co/facebook/sam3" in result.output


def test_not_gated_offline_does_not_ask_for_a_licence(monkeypatch) -> None:
    def fails(**kwargs):
        raise hf_errors.LocalEntryNotFoundError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fails)
    with pytest.raises(WeightsNotFoundError) as info:
        hub.download("edgetam")
    message = str(info.value)
    assert "HF_TOKEN" not in message and "when online" in message and "yonigozlan/EdgeTAM-hf" in message


def test_gated_with_a_token_without_access(monkeypatch) -> None:
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_secret")

    def fails(**kwargs):
        raise _gated()

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fails)
    with pytest.raises(WeightsNotFoundError, match="token has no access") as info:
        hub.download("sam3_tracker")
    assert "hf_secret" not in str(info.value)


def test_other_errors_are_not_hidden(monkeypatch) -> None:
    def fails(**kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fails)
    with pytest.raises(TypeError, match="a bug"):
        hub.download("edgetam")


def test_an_interrupted_download_is_not_cached(isolated: Path) -> None:
    entry = hub.get("edgetam")
    write_folder(isolated / entry.folder, "edgetam_video", weights=False)
    assert not hub.is_cached("edgetam")
    (isolated / entry.folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})
    )
    save_file({"w": torch.zeros(1)}, str(isolated / entry.folder / "model-00001-of-00002.safetensors"))
    assert not hub.is_cached("edgetam")
    save_file({"w": torch.zeros(1)}, str(isolated / entry.folder / "model-00002-of-00002.safetensors"))
    assert hub.is_cached("edgetam")

    def returns_partial(**kwargs):  # what snapshot_download does offline with a non-empty local_dir
        (isolated / entry.folder / "model-00002-of-00002.safetensors").unlink()
        return str(kwargs["local_dir"])

    with pytest.raises(WeightsNotFoundError, match="incomplete"):
        hf.fetch("edgetam", downloader=returns_partial)


# --- --checkpoint DIR -------------------------------------------------------------------------------
def test_checkpoint_folder(tmp_path: Path, built) -> None:
    folder = write_folder(tmp_path / "my-sam2", "sam2")
    model = hub.load_model("sam2.1_hiera_base_plus", checkpoint=folder)
    assert built[-1].folder == folder and built[-1].family == "sam2" and model.name == "sam2.1_hiera_base_plus"
    assert re.fullmatch(r"[0-9a-f]{12}", model.version)
    assert built[-1].options == {}
    hub.load_model("sam3", checkpoint=write_folder(tmp_path / "sam3-video", "sam3_video"), dtype="bfloat16")
    hub.load_model("sam3_tracker", checkpoint=tmp_path / "sam3-video")
    assert [m.family for m in built[-2:]] == ["sam3", "sam3_tracker"] and built[-2].options == {"dtype": "bfloat16"}
    with pytest.raises(ConfigError, match="float32 only"):
        hub.load_model("lite", dtype="bfloat16")


def test_checkpoint_folder_result_through_the_cli(tmp_path: Path, built, monkeypatch) -> None:
    """`--checkpoint DIR` reaches the hub from the CLI (the command fails later on the fake model)."""
    folder = write_folder(tmp_path / "wrong", "sam_hq")
    image = tmp_path / "img.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    result = CliRunner().invoke(app, ["segment", str(image), "--model", "sam2.1_hiera_tiny", "--checkpoint",
                                      str(folder), "--point", "1,1", "--out", str(tmp_path / "out")])
    assert result.exit_code == ConfigError.exit_code and "sam_hq_vit_b" in result.output and not built


@pytest.mark.parametrize(
    ("setup", "error", "match"),
    [
        (lambda p: write_folder(p, "sam_hq"), ConfigError,
         r"holds a 'sam_hq' model, not 'sam2.1_hiera_tiny'.*fits sam_hq_vit_b"),
        (lambda p: p.mkdir(), WeightsNotFoundError, "no config.json"),
        (lambda p: write_folder(p, "sam2", weights=False), WeightsNotFoundError, "no weights"),
        (lambda p: None, WeightsNotFoundError, "checkpoint not found"),
        (lambda p: write_folder(p, "sam2").joinpath("config.json").write_text("{"), ConfigError, "cannot read"),
    ],
    ids=["wrong-model", "no-config", "no-weights", "missing", "bad-json"],
)
def test_checkpoint_folder_errors(tmp_path: Path, built, setup, error, match) -> None:
    folder = tmp_path / "given"
    setup(folder)
    with pytest.raises(error, match=match):
        hub.load_model("sam2.1_hiera_tiny", checkpoint=folder)
    assert not built


def test_a_file_is_a_meta_checkpoint_only_for_sam2(tmp_path: Path, built) -> None:
    file = tmp_path / "weights.safetensors"
    file.write_bytes(b"x")
    with pytest.raises(ConfigError, match="loads a folder in the Hugging Face layout"):
        hub.load_model("sam_hq_vit_b", checkpoint=file)


# --- Meta's SAM 2.1 .pt ----------------------------------------------------------------------------
def tiny_sam2_config() -> Sam2Config:
    backbone = {
        "model_type": "sam2_hiera_det_model", "hidden_size": 8, "num_attention_heads": 1,
        "embed_dim_per_stage": [8, 16, 32, 64], "num_attention_heads_per_stage": [1, 1, 2, 2],
        "blocks_per_stage": [1, 2, 2, 1], "global_attention_blocks": [4], "window_size_per_stage": [8, 4, 8, 4],
        "window_positional_embedding_background_size": [2, 2],
    }
    vision = {"model_type": "sam2_vision_model", "backbone_config": backbone, "backbone_channel_list": [64, 32, 16, 8],
              "fpn_hidden_size": 32}
    return Sam2Config(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": 32, "mask_input_channels": 8},
        mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
    )


def meta_keys(config: Sam2Config) -> set[str]:
    """The image model's keys in Meta's layout, written from the sam2 repository's modules (Hiera, FpnNeck,
    PromptEncoder, MaskDecoder, TwoWayTransformer, MLP, SAM2Base), independently of the conversion rules."""
    params = lambda module: {f"{module}.weight", f"{module}.bias"}  # noqa: E731
    keys = {"no_mem_embed", "image_encoder.trunk.pos_embed", "image_encoder.trunk.pos_embed_window"}
    keys |= params("image_encoder.trunk.patch_embed.proj")
    stages = config.vision_config.backbone_config.blocks_per_stage
    stage_starts = {sum(stages[:i]) for i in range(1, len(stages))}
    for n in range(sum(stages)):
        block = f"image_encoder.trunk.blocks.{n}"
        for module in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.layers.0", "mlp.layers.1"):
            keys |= params(f"{block}.{module}")
        if n in stage_starts:
            keys |= params(f"{block}.proj")
    for i in range(len(config.vision_config.backbone_channel_list)):
        keys |= params(f"image_encoder.neck.convs.{i}.conv")
    pe = "sam_prompt_encoder"
    keys |= {f"{pe}.pe_layer.positional_encoding_gaussian_matrix", f"{pe}.not_a_point_embed.weight",
             f"{pe}.no_mask_embed.weight", *(f"{pe}.point_embeddings.{i}.weight" for i in range(4))}
    for i in (0, 1, 3, 4, 6):
        keys |= params(f"{pe}.mask_downscaling.{i}")
    md = "sam_mask_decoder"
    keys |= {f"{md}.iou_token.weight", f"{md}.mask_tokens.weight", f"{md}.obj_score_token.weight"}
    for module in ("output_upscaling.0", "output_upscaling.1", "output_upscaling.3", "conv_s0", "conv_s1",
                   "transformer.norm_final_attn"):
        keys |= params(f"{md}.{module}")
    heads = [f"output_hypernetworks_mlps.{i}" for i in range(config.mask_decoder_config.num_multimask_outputs + 1)]
    for head in (*heads, "iou_prediction_head", "pred_obj_score_head"):
        for i in range(3):
            keys |= params(f"{md}.{head}.layers.{i}")
    attentions = ["transformer.final_attn_token_to_image"]
    for n in range(config.mask_decoder_config.num_hidden_layers):
        layer = f"transformer.layers.{n}"
        attentions += [f"{layer}.{a}" for a in ("self_attn", "cross_attn_token_to_image", "cross_attn_image_to_token")]
        for module in ("norm1", "norm2", "norm3", "norm4", "mlp.layers.0", "mlp.layers.1"):
            keys |= params(f"{md}.{layer}.{module}")
    for attention in attentions:
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            keys |= params(f"{md}.{attention}.{proj}")
    return keys


VIDEO_KEYS = ("maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr", "memory_encoder.fuser.layers.0.gamma",
              "memory_attention.layers.0.self_attn.q_proj.weight", "obj_ptr_proj.layers.0.weight")


@pytest.fixture(scope="module")
def tiny_sam2() -> tuple[Sam2Config, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    config = tiny_sam2_config()
    model = Sam2Model(config).eval()
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}  # every tensor distinct
    shared = "prompt_encoder.shared_embedding.positional_embedding"
    state["shared_image_embedding.positional_embedding"] = state[shared].clone()
    return config, state


def save_meta(path: Path, state: dict[str, torch.Tensor], video: bool = True) -> Path:
    meta = convert_sam2.to_meta_state_dict(state)
    if video:
        meta.update({k: torch.ones(2) for k in VIDEO_KEYS})
    torch.save({"model": meta}, path)
    return path


def test_meta_layout_round_trip(tiny_sam2, tmp_path: Path) -> None:
    config, state = tiny_sam2
    meta = convert_sam2.to_meta_state_dict(state)
    assert set(meta) == meta_keys(config)  # the inverse writes exactly Meta's key names

    renamed = {k: convert_sam2.hf_to_meta_key(k) for k in state if convert_sam2.hf_to_meta_key(k)}
    assert len(set(renamed.values())) == len(renamed)  # injective
    assert all(convert_sam2.meta_to_hf_key(v) == k for k, v in renamed.items())  # and inverted by the rules
    special = {"prompt_encoder.point_embed.weight", "shared_image_embedding.positional_embedding"}
    assert set(state) - set(renamed) == special  # 4 rows <-> 4 Meta keys; a copy of the prompt encoder's matrix

    loaded = convert_sam2.convert_state_dict(convert_sam2.load_meta_checkpoint(save_meta(tmp_path / "tiny.pt", state)))
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    convert_sam2.check_against(loaded, config)


def test_meta_checkpoint_through_load_model(tiny_sam2, tmp_path: Path, monkeypatch, isolated: Path) -> None:
    config, state = tiny_sam2
    monkeypatch.setattr(hf, "official_sam2_config", lambda size: config if size == "tiny" else None)
    loaded_from: list[Path] = []

    def build(family: str, folder: Path, **options) -> torch.nn.Module:
        loaded_from.append(folder)
        return Sam2Model.from_pretrained(folder)

    monkeypatch.setattr(hf, "build", build)
    pt = save_meta(tmp_path / "sam2.1_hiera_tiny.pt", state)
    model = hub.load_model("sam2.1_hiera_tiny", checkpoint=pt)
    assert all(torch.equal(model.state_dict()[k], state[k]) for k in state)
    assert model.name == "sam2.1_hiera_tiny" and re.fullmatch(r"[0-9a-f]{12}", model.version)
    folder = loaded_from[-1]
    assert folder.parent == isolated / "converted" / "sam2.1_hiera_tiny"
    assert json.loads((folder / "config.json").read_text())["model_type"] == "sam2"

    calls = []
    monkeypatch.setattr(convert_sam2, "write_hf_folder", lambda *a: calls.append(a))
    hub.load_model("sam2.1_hiera_tiny", checkpoint=pt)  # converted once, then reused
    assert not calls and loaded_from[-1] == folder


def test_meta_checkpoint_errors(tiny_sam2, tmp_path: Path) -> None:
    config, state = tiny_sam2
    pt = save_meta(tmp_path / "tiny.pt", state)
    with pytest.raises(CheckpointMismatchError, match="another size"):
        convert_sam2.write_hf_folder(pt, convert_sam2.official_config("tiny"), tmp_path / "out")
    meta = convert_sam2.to_meta_state_dict(state) | {"sam_mask_decoder.extra.weight": torch.ones(1)}
    with pytest.raises(CheckpointMismatchError, match="unknown key.*extra"):
        convert_sam2.convert_state_dict(meta)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointReadError):
        convert_sam2.load_meta_checkpoint(garbage)
    buffer = io.BytesIO()
    torch.save({"model": [1, 2]}, buffer)
    (tmp_path / "list.pt").write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointReadError, match="no state dict"):
        convert_sam2.load_meta_checkpoint(tmp_path / "list.pt")


def test_official_configs() -> None:
    assert convert_sam2.official_config("tiny").to_dict() == Sam2Config().to_dict()  # transformers' default is tiny
    with torch.device("meta"):
        blocks = {size: len(Sam2Model(convert_sam2.official_config(size)).vision_encoder.backbone.blocks)
                  for size in convert_sam2.SIZES}
    assert blocks == {"tiny": 12, "small": 16, "base_plus": 24, "large": 48}
    with pytest.raises(ValueError, match="unknown SAM 2.1 size"):
        convert_sam2.official_config("huge")


def test_meta_checkpoint_and_folder_build_the_same_adapter(tiny_sam2, tmp_path: Path, monkeypatch) -> None:
    """The real adapter (zeroseg.models.hf): Meta's .pt and the save_pretrained folder give one model."""
    import numpy as np

    from zeroseg import Predictor

    config, state = tiny_sam2
    monkeypatch.setattr(hf, "official_sam2_config", lambda size: config)
    original = Sam2Model(config)
    original.load_state_dict(state)
    original.save_pretrained(tmp_path / "folder")
    from_folder = hub.load_model("sam2.1_hiera_tiny", checkpoint=tmp_path / "folder")
    from_meta = hub.load_model("sam2.1_hiera_tiny", checkpoint=save_meta(tmp_path / "tiny.pt", state))
    assert all(torch.equal(from_meta.model.state_dict()[k], state[k]) for k in state)
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    outputs = []
    for model in (from_folder, from_meta):
        predictor = Predictor(model)
        predictor.set_image(image)
        outputs.append(predictor.predict(point_coords=np.array([[20.0, 30.0]]), point_labels=np.array([1])))
    for a, b in zip(*outputs):
        assert np.array_equal(a, b)
