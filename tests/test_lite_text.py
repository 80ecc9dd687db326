"""The lite model's zero-shot dense head: shapes, the embedder protocol, training, unseen-class exclusion."""
from __future__ import annotations

import dataclasses
import hashlib
import types
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zeroseg.data import ZERO_SHOT_SPLITS
from zeroseg.errors import ConfigError
from zeroseg.models.lite.backbone import load_imagenet_lite
from zeroseg.models.lite.text_head import TextHeadConfig, head_inputs
from zeroseg.models.vl.base import DenseEmbedder
from zeroseg.models.vl.lite import (
    LiteEmbedder,
    build_text_head,
    load_lite_embedder,
    load_text_head,
    save_text_head,
)
from zeroseg.train import zero_shot as zs

SMALL = TextHeadConfig(img_size=128, dim=32, depth=1)


class HashEncoder:
    """A stand-in text encoder: a fixed random unit vector per name (no model to load)."""

    name = "hash"
    dim = SMALL.embed_dim

    def encode(self, names: Sequence[str]) -> torch.Tensor:
        rows = []
        for name in names:
            seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
            rows.append(torch.randn(self.dim, generator=torch.Generator().manual_seed(seed)))
        return torch.nn.functional.normalize(torch.stack(rows), dim=1) if rows else torch.zeros(0, self.dim)


@pytest.fixture(scope="module")
def backbone():
    return load_imagenet_lite()


@pytest.fixture(scope="module")
def data_root_dir(tmp_path_factory) -> Path:
    """A tiny MSRC-like source (2 images) and a COCO-like one (1 image) with unseen and dropped classes."""
    root = tmp_path_factory.mktemp("data")
    msrc = root / "msrc21"
    for sub in ("train/images", "train/labels"):
        (msrc / sub).mkdir(parents=True)
    (msrc / "classes.tsv").write_text("label_id\tname\n0\tgrass\n3\tcow\n4\thorse\n6\tsky\n255\tvoid\n")
    rng = np.random.default_rng(0)
    for k in range(2):
        label = np.zeros((60, 80), np.uint8)  # grass
        label[:20] = 6  # sky
        label[30:50, 10:40] = 3  # cow: unseen
        label[30:50, 50:70] = 4  # horse: dropped
        label[55:, :] = 255  # void
        label[25, 75] = 3  # a single unseen pixel inside grass
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(msrc / f"train/images/{k}.png")
        Image.fromarray(label).save(msrc / f"train/labels/{k}.png")
    coco = root / "coco128_seg"
    (coco / "images/train").mkdir(parents=True)
    (coco / "labels/train").mkdir(parents=True)
    (coco / "classes.tsv").write_text("idx\tcoco_id\tname\n0\t1\tperson\n1\t17\tcat\n2\t3\tcar\n")
    # sorted first, so the val quarter (CocoYoloSegDataset split "val"), which no training step may read
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(coco / "images/train/0_val.jpg")
    (coco / "labels/train/0_val.txt").write_text("2 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n")  # a car
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(coco / "images/train/a.jpg")
    (coco / "labels/train/a.txt").write_text(
        "0 0.05 0.1 0.45 0.1 0.45 0.9 0.05 0.9\n"  # person
        "1 0.4 0.2 0.7 0.2 0.7 0.6 0.4 0.6\n"  # cat (unseen), overlapping the person
        "2 0.75 0.5 0.95 0.5 0.95 0.95 0.75 0.95\n"  # car
    )
    return root


@pytest.fixture(scope="module")
def tiny(backbone, data_root_dir):
    cfg = zs.TrainConfig(sources=("msrc21", "coco128"), source_weights=(0.5, 0.5), images_per_step=2,
                         cells_per_image=64, steps=2, calibrate=False)
    data = zs.build_training_data(cfg, backbone, SMALL, cache_dir=None, progress=False, root=data_root_dir)
    return cfg, data


def test_head_shapes_unit_norm_and_logits(backbone):
    head = build_text_head(SMALL, backbone)
    x = torch.randn(2, 3, 128, 128)
    emb = head(head_inputs(backbone, backbone(x), SMALL))
    assert emb.shape == (2, 384, 16, 16)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2, 16, 16))
    text = HashEncoder().encode(["a", "b", "c"])
    assert head.logits(emb, text).shape == (2, 3, 16, 16)
    with_bg = head.logits(emb, text, background=True)
    assert with_bg.shape == (2, 4, 16, 16)
    torch.testing.assert_close(with_bg[:, :3], head.logits(emb, text))
    assert head.background().norm().item() == pytest.approx(1.0)
    assert head.temperature == pytest.approx(SMALL.temperature)
    plain = build_text_head(dataclasses.replace(SMALL, background=False, imagenet_features=False), backbone)
    assert plain.background() is None
    assert plain(head_inputs(backbone, backbone(x), plain.config)).shape == (2, 384, 16, 16)


def test_embedder_protocol_and_grid(backbone):
    embedder = LiteEmbedder(build_text_head(SMALL, backbone), backbone, HashEncoder(), seen=("grass",))
    assert isinstance(embedder, DenseEmbedder)
    out = embedder.embed(np.zeros((50, 100, 3), np.uint8))
    assert out.image_size == (50, 100)
    assert out.features.shape == (384, 8, 16)  # 100x50 -> 128x64 -> stride 8
    torch.testing.assert_close(out.features.norm(dim=0), torch.ones(8, 16))
    assert embedder.background().shape == (384,)
    assert embedder.temperature == pytest.approx(SMALL.temperature)


def test_save_and_load_round_trip(backbone, tmp_path):
    head = build_text_head(dataclasses.replace(SMALL, reconstruction=True), backbone)
    save_text_head(head, tmp_path / "h.safetensors", {"seen": ["grass"], "calibration": 0.5})
    loaded, sidecar = load_text_head(tmp_path / "h.safetensors", backbone)
    assert loaded.config == head.config and sidecar["calibration"] == 0.5
    for k, v in head.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)


def test_cell_targets_majority_and_unseen_poison():
    codes = np.zeros((16, 16), np.int64)  # one 2x2 grid at stride 8 of a 16x16 input
    codes[:8, 8:] = 1
    codes[8:, :8] = zs.BACKGROUND
    codes[12, 12] = zs._UNSEEN  # one unseen pixel in an otherwise class-0 cell
    target = zs.cell_targets(codes, (16, 16), stride=8, grid=3, classes=2)
    assert target.tolist() == [[0, 1, zs.IGNORE], [zs.BACKGROUND, zs.IGNORE, zs.IGNORE], [zs.IGNORE] * 3]


def test_exclusion_of_unseen_names_and_pixels(tiny, data_root_dir):
    cfg, data = tiny
    excluded = set(zs.excluded_names())
    assert {"cow", "sheep", "cat", "boat", "bicycle", "airplane", "hair drier"} <= excluded
    assert excluded == {n for split in ZERO_SHOT_SPLITS.values() for n in split["unseen"]}
    assert data.vocabularies == [("grass", "sky"), ("person", "car")]  # horse dropped, cow and cat excluded
    assert "0_val.jpg" not in {p.name for p in data.paths}  # coco128's val quarter is never read
    for step in range(50):
        batch = zs.sample_batch(data, cfg, np.random.default_rng([0, step]))
        assert not excluded & set(batch.vocabulary)

    # Every cell an unseen pixel falls in has zero loss weight, and no instance covers it.
    for index in range(len(data.paths)):
        source = zs.open_source(data.sources[data.source[index]], cfg.exclude, root=data_root_dir)
        local = index - int(np.flatnonzero(data.source == data.source[index])[0])
        codes, _ = source.read(local)
        size = tuple(int(v) for v in data.input_sizes[index])
        touched = zs.cell_coverage(codes == zs._UNSEEN, size, SMALL.out_stride, data.grid) > 0
        assert touched.any()
        weights = zs.loss_weights(torch.from_numpy(data.targets[index]), background=True).numpy()
        assert (weights[touched] == 0).all()
        assert (data.instance_cover[data.instance_image == index][:, touched] == 0).all()
    assert sorted(data.instance_code.tolist()) == [0, 1]  # person and car; the cat is never a naming target

    # The cells a step samples are weighted cells only, mirrored or not.
    for step in range(10):
        rng = np.random.default_rng([1, step])
        batch = zs.sample_batch(data, cfg, rng)
        targets = zs.batch_grid(data, batch, data.targets[batch.images], batch.images, SMALL.out_stride)
        cells = zs.sample_cells(zs.loss_weights(targets, True), 10_000, rng)
        assert (targets[cells] != zs.IGNORE).all()


def test_real_sources_never_name_an_unseen_class():
    excluded = set(zs.excluded_names())
    for source in ("msrc21", "camvid", "coco128"):
        vocabulary = zs.open_source(source, zs.excluded_names(), limit=1).vocabulary
        assert vocabulary and not excluded & set(vocabulary)
        assert not set(ZERO_SHOT_SPLITS[source]["dropped"]) & set(vocabulary)
    assert "horse" in zs.open_source("coco128", zs.excluded_names(), limit=1).vocabulary  # dropped by MSRC only


def _train_stem(prefix: str) -> str:
    """A file stem of the extra sources' train split (the split is a hash of the stem)."""
    from zeroseg.train.sources import split_of

    return next(f"{prefix}{k}" for k in range(100) if split_of(f"{prefix}{k}") == "train")


def test_extra_named_sources_as_codes(data_root_dir, tmp_path):
    import scipy.io as scipy_io

    extra = tmp_path / "extra"
    person = extra / "human_seg"
    stem = _train_stem("p")
    (person / "Training_Images").mkdir(parents=True)
    (person / "Ground_Truth").mkdir()
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(person / "Training_Images" / f"{stem}.jpg")
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 5:20] = 255
    Image.fromarray(mask).save(person / "Ground_Truth" / f"{stem}.png")
    ccp = extra / "ccp"
    stem = _train_stem("c")
    (ccp / "photos").mkdir(parents=True)
    (ccp / "annotations" / "pixel-level").mkdir(parents=True)
    Image.fromarray(np.full((20, 10, 3), 90, np.uint8)).save(ccp / "photos" / f"{stem}.jpg")
    labels = np.zeros((20, 10), np.uint8)
    labels[2:10, 2:8] = 2  # a bag
    labels[10:18, 2:8] = 1  # skin
    scipy_io.savemat(ccp / "annotations" / "pixel-level" / f"{stem}.mat", {"groundtruth": labels})
    names = np.empty((1, 3), dtype=object)
    names[0] = [np.array(["null"]), np.array(["skin"]), np.array(["bag"])]
    scipy_io.savemat(ccp / "label_list.mat", {"label_list": names})

    # one kind of thing: named among COCO's seen names (the tiny COCO has person and car), also as an instance
    human = zs.open_source("human", zs.excluded_names(), root=data_root_dir, extra_root=extra)
    assert human.vocabulary == ("person", "car")
    codes, instances = human.read(0)
    assert (codes[5:15, 5:20] == 0).all() and (codes[:5] == zs.BACKGROUND).all()
    assert [code for code, _ in instances] == [0] and instances[0][1].sum() == 150
    # garments keep their own names, pixels only; the whole person is left out
    garments = zs.open_source("ccp", zs.excluded_names(), root=data_root_dir, extra_root=extra)
    assert garments.vocabulary == ("bag", "skin")
    codes, instances = garments.read(0)
    assert (codes[2:10, 2:8] == 0).all() and (codes[10:18, 2:8] == 1).all() and (codes[0] == zs.BACKGROUND).all()
    assert instances == []
    with pytest.raises(ConfigError, match="extra data folder"):
        zs.open_source("ccp", zs.excluded_names(), root=data_root_dir)


def test_one_training_step_and_resume(tiny, backbone, tmp_path):
    cfg, data = tiny
    config = dataclasses.replace(SMALL, reconstruction=True)
    text = zs.text_embeddings(data, HashEncoder())
    head = build_text_head(config, backbone)
    joint = dataclasses.replace(cfg, background_mode="joint")  # ZSI: background is a class from the start
    loss, stats = zs.train_step(head, backbone, data, text, joint, np.random.default_rng(0))
    loss.backward()
    assert torch.isfinite(loss) and {"pixel", "naming", "reconstruction", "loss"} <= set(stats)
    assert head.project.weight.grad.abs().sum() > 0 and head.background_embedding.grad.abs().sum() > 0
    assert head.decoder[0].weight.grad.abs().sum() > 0

    first, history = zs.fit_head(tmp_path, data, cfg, config, backbone, text, resume=False, progress=False)
    assert history[-1]["step"] == 2 and (tmp_path / zs.CHECKPOINT_NAME).is_file()
    again, _ = zs.fit_head(tmp_path, data, cfg, config, backbone, text, resume=True, progress=False)
    for k, v in first.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)


def test_background_after_training_leaves_the_head_alone(tiny, backbone):
    cfg, data = tiny
    text = zs.text_embeddings(data, HashEncoder())
    head = build_text_head(SMALL, backbone)
    assert cfg.background_mode == "after"
    loss, _ = zs.train_step(head, backbone, data, text, cfg, np.random.default_rng(0))
    loss.backward()
    assert head.background_embedding.grad is None  # not a class of the pixel loss while the head learns

    before = {k: v.clone() for k, v in head.state_dict().items()}
    history = zs.fit_background(head, backbone, data, text, dataclasses.replace(cfg, background_steps=3), False)
    assert history[-1]["step"] == 3
    changed = {k for k, v in head.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"background_embedding"}


def test_pixel_loss_with_a_background_class(backbone):
    head = build_text_head(SMALL, backbone)
    text = [HashEncoder().encode(["grass", "sky"])]
    embeddings = torch.nn.functional.normalize(torch.randn(4, 384), dim=1)
    classes, sources = torch.tensor([2, 2, 0, 1]), torch.zeros(4, dtype=torch.long)
    loss = zs.pixel_loss(head, embeddings, classes, sources, text, background=True)
    logits = embeddings @ torch.cat([text[0], head.background()[None]]).T / SMALL.temperature
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, classes))
    loss.backward()
    assert head.background_embedding.grad.abs().sum() > 0


def test_metrics_from_known_predictions():
    text = torch.eye(3, 384)  # names a, b, c along the first axes
    feats = torch.zeros(384, 1, 2)
    feats[0, 0, 0] = 1.0  # left half says a, right half says c
    feats[2, 0, 1] = 1.0
    emb = zs.DenseEmbedding(features=feats, image_size=(2, 4))
    label = np.array([[0, 0, 2, 1], [0, 0, 2, -1]])
    seen = torch.tensor([True, True, False])
    m = zs.segmentation_metrics([emb], [label], ["a", "b", "c"], ["c"], text, 10.0, seen)
    assert m["per_class_iou"] == {"a": 100.0, "b": 0.0, "c": pytest.approx(66.67)}
    assert m["seen_miou"] == 50.0 and m["unseen_miou"] == pytest.approx(66.67, abs=0.01)
    assert m["zero_shot_miou"] == 100.0
    naming = zs.naming_metrics([emb], [[("a", label == 0), ("c", label == 2)]], ["a", "b", "c"], ["c"], text, 10.0,
                               seen)
    assert naming["seen_top1"] == 100.0 and naming["unseen_top1"] == 100.0
    # A large calibration moves the seen name's mask to the unseen name.
    calibrated = zs.naming_metrics([emb], [[("a", label == 0)]], ["a", "b", "c"], ["c"], text, 10.0, seen, 20.0)
    assert calibrated["seen_top1"] == 0.0


def test_shipped_weights_load_and_embed(backbone):
    from zeroseg import hub

    embedder = hub.load_dense_embedder("lite", backbone=backbone)  # the head's text encoder from the hub
    assert embedder.name == "lite" and embedder.text_encoder is hub.get_text_encoder("minilm")
    assert embedder.text_encoder.dim == 384
    assert load_lite_embedder(backbone=backbone, text_encoders=lambda name: embedder.text_encoder).seen == embedder.seen
    assert not set(zs.excluded_names()) & set(embedder.seen)
    assert embedder.calibration >= 0.0 and 0.0 < embedder.temperature < 1.0
    out = embedder.embed(np.full((48, 64, 3), 128, np.uint8))
    assert out.features.shape == (384, 48, 64) and out.image_size == (48, 64)  # 512x384 input, stride 8
    torch.testing.assert_close(out.features.norm(dim=0), torch.ones(48, 64))
    assert embedder.background() is not None


def test_training_and_the_namer_share_one_mask_pooling(backbone, tiny, monkeypatch):
    """The naming loss, the training metrics and Namer.mask_logits all pool masks with base.pool_masks."""
    from zeroseg.models.vl import base
    from zeroseg.segment import naming

    assert zs.pool_masks is base.pool_masks and naming.pool_masks is base.pool_masks
    calls: list[tuple[str, torch.Tensor]] = []

    def spy(where: str):
        def pool(embeddings: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
            pooled = base.pool_masks(embeddings, cover)
            calls.append((where, pooled))
            return pooled

        return pool

    monkeypatch.setattr(zs, "pool_masks", spy("train"))
    monkeypatch.setattr(naming, "pool_masks", spy("namer"))
    cfg, data = tiny
    head = build_text_head(SMALL, backbone)
    text = [HashEncoder().encode(v) for v in data.vocabularies]
    zs.train_step(head, backbone, data, text, cfg, np.random.default_rng([0, 0]))
    assert [where for where, _ in calls] == ["train"]  # the naming loss

    # One mask pooled by the training metrics and by the Namer: the same embedding.
    generator = torch.Generator().manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(SMALL.embed_dim, 6, 8, generator=generator), dim=0)
    embedding = zs.DenseEmbedding(features=features, image_size=(48, 64))
    mask = np.zeros((48, 64), bool)
    mask[5:30, 3:41] = True

    class GridEmbedder:
        name, text_encoder = "grid", HashEncoder()

        def embed(self, image: np.ndarray) -> zs.DenseEmbedding:
            return embedding

        def background(self) -> None:
            return None

    names = ["a", "b", "c"]
    naming.Namer(GridEmbedder(), names).mask_logits(np.zeros((48, 64, 3), np.uint8), mask[None])
    zs.naming_metrics([embedding], [[("a", mask)]], names, [], HashEncoder().encode(names), 10.0,
                      torch.zeros(3, dtype=torch.bool))
    assert [where for where, _ in calls] == ["train", "namer", "train"]
    torch.testing.assert_close(calls[1][1], calls[2][1])


def test_calibration_fit_searches_gammas_in_cosine_units(monkeypatch):
    """The gamma grid (0..0.5) is in cosine units, as stored and as evaluate_set and Namer apply it; the
    fit picks the gamma whose harmonic mean is best (here the one nearest 0.2)."""
    passed: list[float] = []

    def evaluate_set(embedder, eval_set, embeddings, calibration):
        passed.append(calibration)
        hm = -abs(calibration - 0.2)
        return {"seen_miou": 1.0, "unseen_miou": 1.0, "hm": hm, "seen_top1": 1.0, "unseen_top1": 1.0}

    monkeypatch.setattr(zs, "evaluate_set", evaluate_set)
    monkeypatch.setattr(zs, "embed_set", lambda *a, **k: [])
    monkeypatch.setattr(zs, "msrc_eval_set", lambda *a, **k: types.SimpleNamespace(paths=[]))
    monkeypatch.setattr(zs, "coco_naming_set", lambda *a, **k: types.SimpleNamespace(paths=[]))
    data = types.SimpleNamespace(sources=["msrc21", "coco128"], source=np.array([0, 0, 1, 1]),
                                 held_out=np.array([True, False, True, False]),
                                 vocabularies=[("grass",), ("person",)])
    embedder = types.SimpleNamespace(temperature=0.05)
    info = zs.fit_calibration(embedder, data, zs.TrainConfig(), None)
    assert 0.0 <= min(passed) and max(passed) <= 0.5
    assert info["pixels"]["gamma_cosine"] == pytest.approx(0.2) and info["masks"]["gamma_cosine"] == pytest.approx(0.2)


def test_extra_source_shares_scale_the_shared_ones():
    import typer

    from zeroseg.train.cli import _with_extra_sources

    sources, shares = _with_extra_sources(("msrc21", "coco128"), (0.5, 0.5), ["ccp=0.2", "human=0.1"], Path("x"))
    assert sources == ("msrc21", "coco128", "ccp", "human")
    assert shares == pytest.approx((0.35, 0.35, 0.2, 0.1))
    for bad, root in ((["ccp=0.2"], None), (["bsds=0.2"], Path("x")), (["ccp"], Path("x")), (["ccp=1"], Path("x"))):
        with pytest.raises(typer.BadParameter):
            _with_extra_sources(("msrc21",), (1.0,), bad, root)
