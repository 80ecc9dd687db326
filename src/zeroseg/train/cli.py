"""``zeroseg train ...``: the training recipes as commands (mounted by the main CLI)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="train",
    help="Train the heads of the embedded models.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def _group() -> None:
    """Train the heads of the embedded models (a command group, even with one recipe)."""


@app.command("lite-prompt")
def lite_prompt(
    out: Annotated[Path, typer.Option(help="Folder for the checkpoint, the feature cache and the exported weights.")],
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps.")] = 8000,
    seed: Annotated[int, typer.Option(help="Seed of the head initialisation and of every step's sampling.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt.")] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where backbone features are cached (default OUT/cache).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N images of each source.")] = None,
    images_per_step: Annotated[int, typer.Option(min=1, help="Images per step.")] = 4,
    objects_per_image: Annotated[int, typer.Option(min=1, help="Objects prompted per image and step.")] = 4,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for torch (1 is fastest on a busy machine).")
    ] = None,
    max_corrections: Annotated[
        int, typer.Option(min=0, help="Correction clicks per step: 0..N, drawn uniformly.")
    ] = 4,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (AdamW).")] = 1e-3,
    init: Annotated[
        Path | None, typer.Option(help="Start from these head weights (fine-tune) instead of a random head.")
    ] = None,
    extra_data: Annotated[
        Path | None,
        typer.Option(help="Folder of the extra sets (recipes/get_lite_data.sh); adds them as training sources."),
    ] = None,
    sources: Annotated[
        str | None,
        typer.Option(help="Comma-separated training sources (default: the shared ones, + every extra set)."),
    ] = None,
    extra_limit: Annotated[
        int | None, typer.Option(min=1, help="At most N images of each extra set (spread evenly).")
    ] = None,
    flips: Annotated[
        bool, typer.Option(help="Also train on mirror images (doubles the feature cache and its time).")
    ] = True,
    tuned_blocks: Annotated[
        int | None,
        typer.Option(min=0, help="Fine-tune the backbone's last N blocks too (default: as --init's head, else 0)."),
    ] = None,
    tuned_lr_scale: Annotated[
        float, typer.Option(min=0.0, help="Learning rate of the tuned blocks, relative to --lr.")
    ] = 0.1,
    backbone: Annotated[
        str | None,
        typer.Option(help="ImageNet EfficientNet-Lite variant: lite0 or lite2 (default: --init's, else lite0)."),
    ] = None,
    distill_steps: Annotated[
        int,
        typer.Option(min=0, help="With an --init head of another backbone: steps fitting the new image encoder to "
                                 "its embedding first."),
    ] = 500,
    source_weight: Annotated[
        list[str] | None,
        typer.Option(help="SOURCE=FACTOR: scale how often a source's objects are drawn (0: never); repeatable."),
    ] = None,
    part_weight: Annotated[
        float,
        typer.Option(min=0.0, help="Add machine-made part targets, drawn this many times as often as their object (0: none)."),
    ] = 0.0,
    part_sources: Annotated[
        str | None, typer.Option(help="Comma-separated sources whose objects get part targets (default: every source).")
    ] = None,
    paste_prob: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of sampled photos that get a copy of an object pasted beside it."),
    ] = 0.0,
    box_margin: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Widen each side of a training box by up to this share of the box's side "
                                            "(boxes drawn loosely, as people do)."),
    ] = 0.0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train the lite model's promptable head on ../shared/data (COCO128, CamVid, MSRC), plus the extra sets
    of --extra-data (BSDS500, Clothing Co-Parsing, pets, ...), and export
    OUT/lite_prompt.safetensors with its JSON sidecar (ship it as zeroseg/weights/lite_prompt.*)."""
    import torch

    from zeroseg.models.lite.build import LiteConfig, read_sidecar
    from zeroseg.train.lite_prompt import TrainConfig, train
    from zeroseg.train.sources import EXTRA_FOLDERS

    if threads is not None:
        torch.set_num_threads(threads)

    defaults = TrainConfig()
    if sources is not None:
        chosen = _names(sources)
    elif extra_data is not None:
        chosen = defaults.sources + tuple(EXTRA_FOLDERS)
    else:
        chosen = defaults.sources
    cfg = dataclasses.replace(
        defaults,
        steps=steps,
        seed=seed,
        limit=limit,
        images_per_step=images_per_step,
        objects_per_image=objects_per_image,
        max_corrections=max_corrections,
        lr=lr,
        init=None if init is None else str(init),
        sources=chosen,
        extra_data=None if extra_data is None else str(extra_data.resolve()),
        extra_limit=extra_limit,
        flips=flips,
        tuned_lr_scale=tuned_lr_scale,
        source_weights=tuple(_source_weight(item, chosen) for item in source_weight or ()),
        part_weight=part_weight,
        part_sources=_part_sources(part_sources, chosen),
        paste_prob=paste_prob,
        box_margin=box_margin,
        distill_steps=distill_steps,
        checkpoint_every=min(defaults.checkpoint_every, steps),
    )
    lite = LiteConfig.from_dict(read_sidecar(init)["config"]) if init is not None else LiteConfig()
    if tuned_blocks is not None:
        lite = dataclasses.replace(lite, tuned_blocks=tuned_blocks)
    if backbone is not None:
        lite = dataclasses.replace(lite, backbone=backbone)
    weights = train(out, cfg, lite, resume=resume, cache_dir=cache_dir, progress=progress)
    typer.echo(f"wrote {weights} and {weights.with_suffix('.json')}")


def _names(value: str | None) -> tuple[str, ...]:
    """``a, b`` -> ("a", "b") (None: none)."""
    return tuple(s.strip() for s in (value or "").split(",") if s.strip())


def _part_sources(value: str | None, sources: tuple[str, ...]) -> tuple[str, ...]:
    """``a,b`` -> ("a", "b"), each a source the run trains on (None: every source)."""
    names = _names(value)
    unknown = [name for name in names if name not in sources]
    if unknown:
        raise typer.BadParameter(f"--part-sources {unknown}: not sources of this run {list(sources)}")
    return names


def _source_weight(item: str, sources: tuple[str, ...]) -> tuple[str, float]:
    """``SOURCE=FACTOR`` -> (source, factor), for a source the run trains on."""
    name, _, factor = item.partition("=")
    try:
        value = float(factor)
    except ValueError:
        value = -1.0
    if name not in sources or value < 0:
        raise typer.BadParameter(f"--source-weight {item!r}: expected SOURCE=FACTOR >= 0 with SOURCE one of {list(sources)}")
    return name, value


@app.command("lite-text")
def lite_text(
    out: Annotated[Path, typer.Option(help="Folder for the checkpoints, the feature cache and the exported weights.")],
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps (of each head).")] = 600,
    seed: Annotated[int, typer.Option(help="Seed of the head initialisation and of every step's sampling.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoints in OUT.")] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where backbone features are cached (default OUT/cache).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N images of each source.")] = None,
    images_per_step: Annotated[int, typer.Option(min=1, help="Images per step.")] = 8,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (AdamW).")] = 2e-3,
    background: Annotated[bool, typer.Option(help="Learn a background embedding (ZSI).")] = True,
    background_mode: Annotated[
        str,
        typer.Option(help="'after': fit the background on the trained head; 'joint': a class of the pixel loss."),
    ] = "after",
    reconstruction: Annotated[bool, typer.Option(help="Add ZSI's semantic-visual reconstruction loss.")] = False,
    naming_weight: Annotated[float, typer.Option(min=0.0, help="Weight of the COCO mask naming loss.")] = 0.5,
    calibrate: Annotated[
        bool, typer.Option(help="Fit calibrated stacking on pseudo-unseen classes (trains a second head).")
    ] = True,
    evaluate: Annotated[bool, typer.Option(help="Measure MSRC-21 val and COCO128 naming into the sidecar.")] = True,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for torch (1 is fastest on a busy machine).")
    ] = None,
    extra_data: Annotated[
        Path | None, typer.Option(help="Folder of the extra labelled sets (recipes/get_lite_data.sh).")
    ] = None,
    extra_source: Annotated[
        list[str] | None,
        typer.Option(help="NAME=SHARE: also train on this extra named set (ccp, human, horse, pets, coco) with this share "
                          "of the sampled images (the shared sources' shares are scaled to the rest); repeatable."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train the lite model's zero-shot dense head on the seen classes of ../shared/data (MSRC-21, CamVid,
    COCO128 train) and export OUT/lite_text.safetensors with its JSON sidecar (ship it as
    zeroseg/weights/lite_text.*)."""
    import torch

    from zeroseg.models.lite.text_head import TextHeadConfig
    from zeroseg.train.zero_shot import TrainConfig, train

    if threads is not None:
        torch.set_num_threads(threads)
    defaults = TrainConfig()
    sources, shares = _with_extra_sources(defaults.sources, defaults.source_weights, extra_source or [], extra_data)
    cfg = dataclasses.replace(
        defaults,
        sources=sources,
        source_weights=shares,
        extra_data=None if extra_data is None else str(extra_data.resolve()),
        steps=steps,
        seed=seed,
        limit=limit,
        images_per_step=images_per_step,
        lr=lr,
        naming_weight=naming_weight,
        background_mode=background_mode,
        calibrate=calibrate,
        checkpoint_every=min(defaults.checkpoint_every, steps),
    )
    head_config = dataclasses.replace(TextHeadConfig(), background=background, reconstruction=reconstruction)
    weights = train(out, cfg, head_config, resume=resume, cache_dir=cache_dir, progress=progress, evaluate=evaluate)
    typer.echo(f"wrote {weights} and {weights.with_suffix('.json')}")


def _with_extra_sources(
    sources: tuple[str, ...], shares: tuple[float, ...], extra: list[str], extra_data: Path | None
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """``sources`` and ``shares`` with the ``NAME=SHARE`` extra sources added, the others scaled to the rest."""
    from zeroseg.train.zero_shot import EXTRA_NAMED

    added: dict[str, float] = {}
    for item in extra:
        name, _, share = item.partition("=")
        try:
            value = float(share)
        except ValueError:
            raise typer.BadParameter(f"{item!r}: expected NAME=SHARE, e.g. ccp=0.1") from None
        if name not in EXTRA_NAMED or not 0 < value < 1:
            raise typer.BadParameter(f"{item!r}: NAME is one of {sorted(EXTRA_NAMED)}, SHARE in (0, 1)")
        added[name] = value
    if added and extra_data is None:
        raise typer.BadParameter("--extra-source needs --extra-data")
    rest = 1.0 - sum(added.values())
    if rest <= 0:
        raise typer.BadParameter("the extra sources' shares must leave some for the shared ones")
    total = sum(shares)
    return (*sources, *added), (*(w / total * rest for w in shares), *added.values())


if __name__ == "__main__":  # python -m zeroseg.train.cli lite-prompt|lite-text ...
    app(prog_name="zeroseg train")
