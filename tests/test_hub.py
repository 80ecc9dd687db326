"""Model registry and weight cache, without network: file:// URLs and a patched urlopen stand in."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from zeroseg import hub
from zeroseg.errors import (
    ChecksumError,
    ConfigError,
    ModelError,
    UnknownModelError,
    WeightsNotFoundError,
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch, scratch_hub) -> Path:
    """A private cache and a private copy of the registry for every test."""
    home = tmp_path / "home"
    monkeypatch.setenv("ZEROSEG_HOME", str(home))
    return home


@pytest.fixture
def offline(monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


@pytest.fixture
def local_weights(tmp_path: Path) -> tuple[Path, str]:
    """A 3 MB 'weight file' served through a file:// URL as sam_vit_b."""
    payload = bytes(range(256)) * (3 * 4096) + b"tail"
    source = tmp_path / "server" / "weights.pth"
    source.parent.mkdir()
    source.write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    entry = dataclasses.replace(hub.get("sam_vit_b"), url=source.as_uri(), sha256=sha, size=len(payload))
    hub.register(entry, replace=True)
    return source, sha


def _cache_files(home: Path) -> list[str]:
    return sorted(p.name for p in home.rglob("*") if p.is_file())


# --- registry -----------------------------------------------------------------------------
def test_official_entries() -> None:
    names = {e.name: e for e in hub.list_models()}
    assert {"sam_vit_b", "sam_vit_l", "sam_vit_h", "mobile_sam"} <= set(names)
    for entry in names.values():
        if entry.downloadable:
            assert len(entry.sha256) == 64 and entry.size > 1_000_000
            assert entry.url.endswith(entry.filename) and entry.url.startswith("https://")
    assert names["mobile_sam"].arch == "vit_t"
    assert hub.get("vit_b") is names["sam_vit_b"]
    assert hub.get("VIT-T") is names["mobile_sam"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        names["sam_vit_b"].url = "http://elsewhere"  # type: ignore[misc]


def test_unknown_model_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownModelError) as info:
        hub.get("sam_vit_bb")
    message = str(info.value)
    assert "did you mean 'sam_vit_b'" in message
    assert "mobile_sam" in message and "sam_vit_h" in message
    assert "did you mean" not in str(pytest.raises(UnknownModelError, hub.get, "zzzzzz").value)


def test_register_packaged_builder(tmp_path: Path) -> None:
    calls = []

    def builder(checkpoint):
        import torch

        calls.append(checkpoint)
        return torch.nn.Linear(2, 2).train()

    hub.register(hub.ModelEntry(name="toy", description="a toy", licence="MIT", builder=builder, aliases=("t0y",)))
    assert hub.is_cached("toy") and hub.download("toy") is None
    assert hub.verify("toy").name == "toy"
    model = hub.load_model("t0y")
    assert not model.training and calls == [None]
    explicit = tmp_path / "toy.bin"
    explicit.write_bytes(b"x")
    hub.load_model("toy", checkpoint=explicit)
    assert calls[-1] == explicit
    with pytest.raises(ValueError, match="already registered"):
        hub.register(hub.ModelEntry(name="TOY", description="", licence="", builder=builder))
    with pytest.raises(ValueError, match="exactly one of"):
        hub.ModelEntry(name="bad", description="", licence="")


# --- kinds: text encoders and dense embedders ---------------------------------------------
def test_every_kind_resolves_through_the_hub(scratch_hub, tmp_path: Path) -> None:
    assert hub.get("minilm", hub.TEXT_ENCODER).kind == hub.TEXT_ENCODER
    assert {e.name for e in hub.list_models(hub.DENSE_EMBEDDER)} >= {"lite", "maskclip", "groupvit"}
    assert hub.get("lite").kind == hub.SEGMENTER  # a name of several kinds: the segmenter first
    assert hub.get("lite", hub.DENSE_EMBEDDER).kind == hub.DENSE_EMBEDDER
    assert hub.get("clip").name == "clip_vit_b16" and hub.get("clip", hub.TEXT_ENCODER).needs
    with pytest.raises(UnknownModelError, match="unknown text encoder 'nope'.*minilm"):
        hub.get_text_encoder("nope")
    with pytest.raises(ModelError, match="'lite' is a segmentation model, not a text encoder"):
        hub.get_text_encoder("lite")
    with pytest.raises(ModelError, match="'maskclip' is a dense embedder, not a segmentation model"):
        hub.load_model("maskclip")

    calls = []
    scratch_hub("words", lambda path: calls.append(path) or object(), kind=hub.TEXT_ENCODER)
    assert hub.get_text_encoder("words") is hub.get_text_encoder("WORDS") and calls == [None]  # shared
    scratch_hub("pixels", lambda path, **options: (path, options))
    assert hub.load_dense_embedder("pixels") == (None, {})
    assert hub.load_dense_embedder("pixels", str(tmp_path), device="cpu") == (tmp_path, {"device": "cpu"})
    with pytest.raises(ValueError, match="needs a builder"):
        hub.ModelEntry(name="bad", description="", licence="", kind=hub.DENSE_EMBEDDER)


def test_file_entries_are_downloads_or_folders(isolated: Path) -> None:
    groupvit = hub.get("groupvit_gcc_yfcc")
    assert groupvit.repo and not groupvit.downloadable and not hub.is_cached("groupvit")
    assert hub.folder_path("groupvit_gcc_yfcc") == isolated / groupvit.folder
    with pytest.raises(ModelError, match=f"huggingface-cli download {groupvit.repo}"):
        hub.download("groupvit_gcc_yfcc")
    (isolated / groupvit.folder).mkdir(parents=True)
    (isolated / groupvit.folder / "config.json").write_text("{}")
    assert hub.is_cached("groupvit_gcc_yfcc") and hub.is_cached("groupvit")  # the embedder needs only it
    assert not hub.is_cached("maskclip")
    with pytest.raises(ValueError, match="a download .* or a folder"):
        hub.ModelEntry(name="bad", description="", licence="", kind="vocab")


# --- versions trained by the engine -------------------------------------------------------
def _trained_version(home: Path, name: str = "lite-toys-v1") -> Path:
    """A version as `zeroseg engine train` leaves it: the shipped head, a sidecar with an engine record."""
    from zeroseg.models.lite.build import DEFAULT_HEAD_WEIGHTS

    weights = home / "models" / f"{name}.safetensors"
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(DEFAULT_HEAD_WEIGHTS.read_bytes())
    sidecar = json.loads(DEFAULT_HEAD_WEIGHTS.with_suffix(".json").read_text())
    sidecar["training"]["engine"] = {"dataset": "Toys", "version": 1, "objects": 6, "steps": 2, "base": "lite"}
    weights.with_suffix(".json").write_text(json.dumps(sidecar))
    return weights


def test_trained_versions_are_found_in_the_cache(isolated: Path, monkeypatch, tmp_path: Path) -> None:
    weights = _trained_version(isolated)
    (isolated / "models" / "lite-stray-v2.safetensors").write_bytes(b"no sidecar: not a version")
    assert hub.trained_name("My Toys!", 3) == "lite-my-toys-v3" and hub.next_version("toys") == 2
    entry = hub.get("LITE_TOYS_V1")
    assert entry.name == "lite-toys-v1" and entry.preset == hub.LITE_PRESET and "'Toys'" in entry.description
    assert hub.trained_weights(entry) == weights.resolve() and hub.trained_weights(hub.get("lite")) is None
    assert [e.name for e in hub.list_models() if hub.trained_weights(e)] == ["lite-toys-v1"]
    with pytest.raises(UnknownModelError):
        hub.get("lite-stray-v2")
    model = hub.load_model("lite-toys-v1")
    assert (model.name, model.preset, model.graph_cut) == ("lite-toys-v1", hub.LITE_PRESET, True)
    monkeypatch.setenv("ZEROSEG_HOME", str(tmp_path / "elsewhere"))  # another cache: not there
    with pytest.raises(UnknownModelError):
        hub.get("lite-toys-v1")


def test_the_hub_imports_nothing_from_the_engine(isolated: Path) -> None:
    _trained_version(isolated)
    code = (
        "import sys\n"
        "import zeroseg.hub as hub\n"
        "from zeroseg.errors import UnknownModelError\n"
        "assert hub.get('lite-toys-v1').name == 'lite-toys-v1'\n"
        "try:\n    hub.get('no_such_model')\nexcept UnknownModelError:\n    pass\n"
        "assert not [m for m in sys.modules if m.startswith('zeroseg.engine')], sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


# --- cache and offline errors -------------------------------------------------------------
def test_cache_dir_follows_environment(monkeypatch, tmp_path: Path) -> None:
    assert hub.cache_dir() == tmp_path / "home"
    monkeypatch.delenv("ZEROSEG_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == tmp_path / "xdg" / "zeroseg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert hub.cache_dir() == Path.home() / ".cache" / "zeroseg"


def test_missing_weights_message_says_what_to_fetch_and_where(isolated: Path) -> None:
    entry = hub.get("vit_b")
    with pytest.raises(WeightsNotFoundError) as info:
        hub.checkpoint_path("vit_b")
    message = str(info.value)
    assert entry.url in message and entry.sha256 in message
    assert str(isolated / "checkpoints" / "sam_vit_b_01ec64.pth") in message
    assert "zeroseg models download sam_vit_b" in message
    assert "\n" not in message


def test_offline_download_raises_weights_not_found(isolated: Path, offline) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        hub.download("mobile_sam", progress=False)
    message = str(info.value)
    assert "name resolution" in message and hub.get("mobile_sam").sha256 in message
    assert _cache_files(isolated) == []


def test_explicit_checkpoint_wins(tmp_path: Path) -> None:
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"weights")
    assert hub.checkpoint_path("vit_h", explicit) == explicit
    with pytest.raises(WeightsNotFoundError, match="checkpoint not found"):
        hub.checkpoint_path("vit_h", tmp_path / "missing.pth")


def test_cached_file_of_the_wrong_size_is_reported(isolated: Path) -> None:
    path = hub.cache_path("vit_l")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"only the first bytes")
    with pytest.raises(ChecksumError, match="incomplete copy"):
        hub.checkpoint_path("vit_l")


# --- download -----------------------------------------------------------------------------
def test_download_streams_verifies_and_renames(isolated: Path, local_weights, capsys, monkeypatch) -> None:
    source, sha = local_weights
    path = hub.download("vit_b", progress=True)
    assert path == isolated / "checkpoints" / "sam_vit_b_01ec64.pth"
    assert path.read_bytes() == source.read_bytes()
    assert _cache_files(isolated) == ["sam_vit_b_01ec64.pth"]  # the .part file was renamed away
    assert "100%" in capsys.readouterr().err  # the progress bar ran to the end
    assert hub.checkpoint_path("sam_vit_b") == path and hub.is_cached("vit_b")
    assert hub.verify("vit_b").name == "sam_vit_b" and hub.verify(path).name == "sam_vit_b"

    monkeypatch.setattr(urllib.request, "urlopen", pytest.fail)  # already there: no new download
    assert hub.download("vit_b", progress=False) == path


def test_checksum_mismatch_leaves_nothing(isolated: Path, local_weights) -> None:
    hub.register(dataclasses.replace(hub.get("sam_vit_b"), sha256="0" * 64), replace=True)
    with pytest.raises(ChecksumError, match="expected 0000"):
        hub.download("sam_vit_b", progress=False)
    assert _cache_files(isolated) == []


def test_connection_lost_mid_download_leaves_nothing(isolated: Path, local_weights, monkeypatch) -> None:
    class Dropping(io.BytesIO):
        headers: dict[str, str] = {}

        def read(self, size: int = -1) -> bytes:
            if self.tell() > 0:
                raise ConnectionResetError(104, "Connection reset by peer")
            return super().read(size)

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Dropping(b"x" * (2 << 20)))
    with pytest.raises(WeightsNotFoundError, match="interrupted"):
        hub.download("sam_vit_b", progress=False)
    assert _cache_files(isolated) == []


def test_missing_file_url_is_weights_not_found(isolated: Path, local_weights) -> None:
    source, _ = local_weights
    source.unlink()
    with pytest.raises(WeightsNotFoundError, match="could not be downloaded"):
        hub.download("sam_vit_b", progress=False)


# --- verify -------------------------------------------------------------------------------
def test_verify_reports_corrupt_unknown_and_missing_files(isolated: Path, local_weights, tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="not found in the cache"):
        hub.verify("sam_vit_b")
    path = hub.download("sam_vit_b", progress=False)
    path.write_bytes(b"corrupted")
    with pytest.raises(ChecksumError, match="corrupt or not the official file"):
        hub.verify("sam_vit_b")
    stranger = tmp_path / "other.bin"
    stranger.write_bytes(b"something else")
    with pytest.raises(ChecksumError, match="matches no registered model"):
        hub.verify(stranger)
    with pytest.raises(WeightsNotFoundError, match="no registered model or file"):
        hub.verify(str(tmp_path / "nothing.pth"))


# --- load_model ---------------------------------------------------------------------------
def test_load_model_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a checkpoint"):
        hub.load_model(config={"family": "sam"})
    with pytest.raises(ConfigError, match="config not found"):
        hub.load_model(config=tmp_path / "none.json", checkpoint=__file__)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read config"):
        hub.load_model(config=bad, checkpoint=__file__)
    with pytest.raises(WeightsNotFoundError):
        hub.load_model(config={"family": "sam"}, checkpoint=tmp_path / "none.pth")


def test_load_model_without_weights_is_weights_not_found(offline) -> None:
    with pytest.raises(WeightsNotFoundError, match="zeroseg models download mobile_sam"):
        hub.load_model("vit_t")
    with pytest.raises(ModelError):
        hub.load_model("no_such_model")


def test_load_model_from_golden_config(goldens_dir: Path) -> None:
    config = goldens_dir / "sam" / "sam_tiny_config.json"
    model = hub.load_model(config=config, checkpoint=goldens_dir / "sam" / "sam_tiny.pth")
    assert not model.training
    assert model.image_encoder.img_size == 1024


def test_import_makes_no_network_calls() -> None:
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise SystemExit('network used at import')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "import zeroseg.hub, zeroseg.cli\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
