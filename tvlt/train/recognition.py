"""Are hidden objects recognisable in an MAE reconstruction? Their shape and colour, identified by re-rendering.

For every object whose bounding square is at least half hidden in a frame, the scene is rendered again with
that object's shape (or colour) set to each alternative in turn; the alternative closest (squared error) to
the reconstruction on the square's hidden pixels is what the reconstruction shows. The original frames
identify every object this way by construction; chance is one over the number of alternatives.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from tvlt.train import corpus, scenes

ATTRIBUTES = {"shape": scenes.SHAPES, "colour": scenes.COLOURS}
MOSTLY_HIDDEN = 0.5  # share of the bounding square's pixels that must be hidden for an object to count
SUBSETS = ("mostly hidden", "wholly hidden")


def object_squares(meta: dict[str, torch.Tensor], slot: int, image_size: int) -> torch.Tensor:
    """bool (B, T, H, W): pixels inside object `slot`'s bounding square in the frames where it is visible."""
    centres = meta["centres"][:, slot]  # (B, T, 2) (x, y) px
    axis = torch.arange(image_size, device=centres.device) + 0.5  # pixel centres
    half = meta["diameter"][:, slot, None, None] / 2  # (B, 1, 1)
    inside_x = (axis - centres[..., 0, None]).abs() < half  # (B, T, W)
    inside_y = (axis - centres[..., 1, None]).abs() < half  # (B, T, H)
    return inside_y[..., :, None] & inside_x[..., None, :] & meta["visible"][:, slot, :, None, None]


def identify(prediction: torch.Tensor, candidates: torch.Tensor, owner: torch.Tensor, num_owners: int) -> torch.Tensor:
    """(num_owners,) int64: for each owner, the candidate closest to the prediction on its pixels.
    prediction (n, C) and candidates (K, n, C) are n pixels in the same units; owner (n,) int64 in [0, num_owners)."""
    errors = (candidates - prediction).pow(2).sum(dim=-1)  # (K, n)
    totals = errors.new_zeros(len(candidates), num_owners).index_add_(1, owner, errors)  # (K, num_owners)
    return totals.argmin(dim=0)


def recognition_table(predictions: dict[str, torch.Tensor], hidden: torch.Tensor, meta: dict[str, torch.Tensor],
                      split: str, indices: Sequence[int], geometry: dict[str, float]) -> dict:
    """How often each predictor's frames show the hidden objects' true shape and colour.

    predictions: name -> pixel values (B, T, C, H, W) in [-1, 1] of scenes `indices` of `split` (rendered with
    `geometry`); hidden (B, T, H, W) bool, the masked pixels; meta, the scenes' corpus meta; all on one device.
    Returns {attribute: {"chance": 1/K, subset: {"objects": n, name: share shown right (nan if n = 0)}}} for the
    subsets "mostly hidden" (>= MOSTLY_HIDDEN of the square hidden) and "wholly hidden" (all of it).
    """
    num_frames, image_size = hidden.shape[1], hidden.shape[-1]
    channels_last = {name: frames.permute(0, 1, 3, 4, 2) for name, frames in predictions.items()}  # (B, T, H, W, C)
    table = {}
    for attribute, names in ATTRIBUTES.items():
        hits = {subset: dict.fromkeys([*predictions, "objects"], 0) for subset in SUBSETS}
        for slot in range(scenes.MAX_OBJECTS):
            square = object_squares(meta, slot, image_size)  # (B, T, H, W)
            region = square & hidden
            share = region.sum(dim=(-2, -1)) / square.sum(dim=(-2, -1)).clamp_min(1)  # (B, T)
            counted = dict(zip(SUBSETS, (share >= MOSTLY_HIDDEN, share >= 1.0)))
            clips = counted["mostly hidden"].any(dim=1).nonzero().flatten()  # (B',) the clips to render again
            if not len(clips):
                continue
            variants = corpus.scene_variants(split, [indices[i] for i in clips.tolist()], slot, attribute,
                                             hidden.device, **geometry)  # (K, B', T, H, W, 3) uint8
            b, t, y, x = region[clips].nonzero(as_tuple=True)  # (n,) each: hidden pixels of the squares
            candidates = corpus.unit_pixels(variants[:, b, t, y, x])  # (K, n, 3)
            owner, num_owners = b * num_frames + t, len(clips) * num_frames
            truth = meta[attribute][clips, slot, None]  # (B', 1)
            for name, frames in channels_last.items():
                shown = identify(frames[clips[b], t, y, x], candidates, owner, num_owners).view(len(clips), num_frames)
                for subset, where in counted.items():
                    hits[subset][name] += int(((shown == truth) & where[clips]).sum())
            for subset, where in counted.items():
                hits[subset]["objects"] += int(where.sum())
        table[attribute] = {"chance": 1 / len(names)} | {
            subset: {"objects": h["objects"]}
            | {name: h[name] / h["objects"] if h["objects"] else float("nan") for name in predictions}
            for subset, h in hits.items()}
    return table
