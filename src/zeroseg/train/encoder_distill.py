"""Start a lite head on a new backbone from a head trained on another one (MobileSAM's decoupled distillation).

A head trained on one EfficientNet-Lite keeps its prompt encoder and mask decoder when it moves to another
backbone, but the neck's inputs change width and meaning. Before the prompt training, the new image encoder
(neck and tuned blocks) is fitted to reproduce the old model's image embedding on the cached training photos
(MSE, as MobileSAM fits its small encoder to SAM's), so the decoder it inherits reads what it was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from zeroseg.models.lite.build import TUNED_PREFIX, head_state_dict
from zeroseg.models.sam.sam import Sam


def load_matching(model: Sam, source: Sam) -> list[str]:
    """Copy every trainable tensor of ``source`` whose name and shape ``model`` shares; return the names of
    ``model``'s trainable tensors that kept their own values (new shapes, or tuned blocks of another backbone)."""
    theirs = head_state_dict(source)
    kept, state = [], {}
    for name, value in head_state_dict(model).items():
        if name.startswith(TUNED_PREFIX) or name not in theirs or theirs[name].shape != value.shape:
            kept.append(name)
        else:
            state[name] = theirs[name]
    model.load_state_dict(state, strict=False)
    return kept


def distill_encoder(
    student: Sam,
    teacher: Sam,
    student_features: Sequence[torch.Tensor],
    teacher_features: Sequence[torch.Tensor],
    groups: list[dict],
    steps: int,
    lr: float,
    seed: int = 0,
    batch: int = 8,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Fit ``student``'s trainable image encoder to ``teacher``'s embedding of the same photos (each list: cached
    frozen-backbone features per level, one entry per photo, in the same order), with the training's parameter
    groups (``params`` and an lr ``scale`` each; parameters the embedding does not reach stay as they are).
    Returns the loss history."""
    entries = len(student_features[0])
    if len(teacher_features[0]) != entries:
        raise ValueError(f"student and teacher features cover {entries} and {len(teacher_features[0])} photos")
    encoder = student.image_encoder
    groups = [{"params": g["params"], "scale": g["scale"]} for g in groups]  # its own, not the caller's optimizer's
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=0.0)
    teacher.eval()
    encoder.train()
    history, window = [], []
    bar = tqdm(range(steps), desc="distil encoder", disable=not progress)
    for step in bar:
        rate = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in optimizer.param_groups:
            group["lr"] = rate * group["scale"]
        index = torch.from_numpy(np.random.default_rng([seed, step]).choice(entries, min(batch, entries), replace=False))
        with torch.no_grad():
            target = teacher.image_encoder.embed_features([f[index].float() for f in teacher_features])
        loss = F.mse_loss(encoder.embed_features([f[index].float() for f in student_features]), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        optimizer.step()
        window.append(loss.item())
        bar.set_postfix(mse=f"{window[-1]:.4f}")
        if (step + 1) % 25 == 0 or step + 1 == steps:
            history.append({"step": step + 1, "mse": float(np.mean(window))})
            window = []
    encoder.eval()
    return history
