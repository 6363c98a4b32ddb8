"""Are hidden objects recognisable in an MAE reconstruction? Their shape and colour, identified by re-rendering.

For every frame in which an object's bounding square is at least half hidden, the scene is rendered again with
that object's shape (or colour) set to each alternative in turn; the alternative closest (squared error) to a
predictor's frame on the square's hidden pixels is what that frame shows. Object frames whose hidden pixels do not
tell the true alternative from every other one (covered by another object, or only corners outside the shapes)
are left out, so the original frames show every counted object right; chance is one over the alternatives.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from tvlt.attention import upsample_grid
from tvlt.layout import TokenLayout
from tvlt.train import corpus, scenes
from tvlt.train.corpus import VARIANT_ATTRIBUTES

MOSTLY_HIDDEN = 0.5  # share of the bounding square's pixels that must be hidden for an object frame to count
SUBSETS = ("mostly hidden", "wholly hidden")


def object_squares(meta: dict[str, torch.Tensor], slot: int, image_size: int) -> torch.Tensor:
    """bool (B, T, H, W): pixels inside object `slot`'s bounding square in the frames where it is visible."""
    centres = meta["centres"][:, slot]  # (B, T, 2) (x, y) px
    axis = torch.arange(image_size, device=centres.device) + 0.5  # pixel centres
    half = meta["diameter"][:, slot, None, None] / 2  # (B, 1, 1)
    inside_x = (axis - centres[..., 0, None]).abs() < half  # (B, T, W)
    inside_y = (axis - centres[..., 1, None]).abs() < half  # (B, T, H)
    return inside_y[..., :, None] & inside_x[..., None, :] & meta["visible"][:, slot, :, None, None]


def owner_errors(prediction: torch.Tensor, candidates: torch.Tensor, owner: torch.Tensor, num_owners: int) -> torch.Tensor:
    """(K, num_owners): each candidate's squared error to the prediction, summed over each owner's pixels.
    prediction (n, C) and candidates (K, n, C) are n pixels in the same units; owner (n,) int64 in [0, num_owners)."""
    errors = (candidates - prediction).pow(2).sum(dim=-1)  # (K, n)
    return errors.new_zeros(len(candidates), num_owners).index_add(1, owner, errors)


def identify(prediction: torch.Tensor, candidates: torch.Tensor, owner: torch.Tensor, num_owners: int) -> torch.Tensor:
    """(num_owners,) int64: for each owner, the candidate closest to the prediction on its pixels (as above)."""
    return owner_errors(prediction, candidates, owner, num_owners).argmin(dim=0)


def alternatives_loss(frames: torch.Tensor, hidden: torch.Tensor, meta: dict[str, torch.Tensor], attribute: str,
                      variants: dict[int, tuple[torch.Tensor, torch.Tensor]], temperature: float) -> torch.Tensor:
    """Cross-entropy of picking each object frame's true `attribute` among its re-rendered alternatives, by the
    squared error on the hidden pixels of the object's square: the training counterpart of `recognition_table`.

    frames (B, T, C, H, W) predictions in [-1, 1]; hidden (B, T, H, W) bool; variants: slot -> (clips (B',) int64,
    their `corpus.scene_variants` (K, B', T, H, W, 3) uint8). The logits are minus the mean squared error per
    hidden pixel (summed over the channels) over `temperature`; object frames with no hidden pixels are left
    out; 0 when there are none.
    """
    num_frames, image_size = hidden.shape[1], hidden.shape[-1]
    channels_last = frames.permute(0, 1, 3, 4, 2)  # (B, T, H, W, C)
    logits, truths = [], []
    for slot, (clips, rendered) in variants.items():
        region = object_squares(meta, slot, image_size)[clips] & hidden[clips]  # (B', T, H, W)
        b, t, y, x = region.nonzero(as_tuple=True)  # (n,) each
        owner, num_owners = b * num_frames + t, len(clips) * num_frames
        candidates = corpus.unit_pixels(rendered[:, b, t, y, x])  # (K, n, 3)
        errors = owner_errors(channels_last[clips[b], t, y, x], candidates, owner, num_owners)  # (K, owners)
        pixels = torch.bincount(owner, minlength=num_owners)  # (owners,)
        kept = pixels > 0
        logits.append((-errors[:, kept] / (pixels[kept] * temperature)).T)  # (m, K)
        truths.append(meta[attribute][clips, slot].repeat_interleave(num_frames)[kept])  # (m,)
    if not sum(len(part) for part in truths):
        return frames.sum() * 0.0  # keeps the graph (and the device) for the caller's sum
    return F.cross_entropy(torch.cat(logits), torch.cat(truths))


def slot_variants(split: str, indices: Sequence[int], codes: torch.Tensor, attribute: str, device: torch.device,
                  first_row: int = 0, **geometry: float) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """The `variants` of `alternatives_loss` for scenes `indices` of `split`, whose `attribute` codes are
    `codes` (len(indices), O) (-1: unused slot) and which sit at batch rows first_row, first_row + 1, ...:
    slot -> (batch rows using the slot (B',) int64, their `corpus.scene_variants` (K, B', T, H, W, 3) uint8)."""
    variants = {}
    for slot in range(codes.shape[1]):
        present = (codes[:, slot] >= 0).nonzero().flatten()  # (B',)
        if len(present):
            variants[slot] = (present + first_row, corpus.scene_variants(
                split, [indices[i] for i in present.tolist()], slot, attribute, device, **geometry))
    return variants


def patch_alternatives_loss(layout: TokenLayout, pixel_predictions: torch.Tensor, pixel_is_hidden: torch.Tensor,
                            meta: dict[str, torch.Tensor], attribute: str,
                            variants: dict[int, tuple[torch.Tensor, torch.Tensor]], temperature: float) -> torch.Tensor:
    """`alternatives_loss` on a decoder's patch predictions (B, Nv, P); pixel_is_hidden (B, Nv) bool."""
    grid = pixel_is_hidden.view(-1, layout.num_frames, layout.grid_rows, layout.grid_cols)
    return alternatives_loss(layout.unpatchify_video(pixel_predictions), upsample_grid(grid, layout.image_patch_size),
                             meta, attribute, variants, temperature)


def recognition_table(predictions: dict[str, torch.Tensor], hidden: torch.Tensor, meta: dict[str, torch.Tensor],
                      split: str, indices: Sequence[int], geometry: dict[str, float]) -> dict:
    """How often each predictor's frames show the hidden objects' true shape and colour.

    predictions: name -> pixel values (B, T, C, H, W) in [-1, 1] of scenes `indices` of `split` (rendered with
    `geometry` on hidden's device); hidden (B, T, H, W) bool, the masked pixels; meta, the scenes' corpus meta.
    Returns {attribute: {"chance": 1/K, subset: {"object frames": n, name: share shown right (nan if n = 0)}}}
    for the subsets "mostly hidden" (>= MOSTLY_HIDDEN of the square hidden) and "wholly hidden" (all of it).
    """
    channels_last = {name: frames.permute(0, 1, 3, 4, 2) for name, frames in predictions.items()}  # (B, T, H, W, C)
    table = {}
    for attribute, names in VARIANT_ATTRIBUTES.items():
        hits = {subset: dict.fromkeys([*predictions, "object frames"], 0) for subset in SUBSETS}
        for slot in range(scenes.MAX_OBJECTS):
            for subset, counts in _slot_hits(channels_last, hidden, meta, split, indices, geometry, slot,
                                             attribute).items():
                for key, n in counts.items():
                    hits[subset][key] += n
        table[attribute] = {"chance": 1 / len(names)} | {
            subset: {"object frames": h["object frames"]}
            | {name: h[name] / h["object frames"] if h["object frames"] else float("nan") for name in predictions}
            for subset, h in hits.items()}
    return table


def _slot_hits(channels_last: dict[str, torch.Tensor], hidden: torch.Tensor, meta: dict[str, torch.Tensor],
               split: str, indices: Sequence[int], geometry: dict[str, float], slot: int, attribute: str
               ) -> dict[str, dict[str, int]]:
    """{subset: {"object frames": n, name: right}} for object `slot`'s `attribute` (arguments as above)."""
    num_frames, image_size = hidden.shape[1], hidden.shape[-1]
    square = object_squares(meta, slot, image_size)  # (B, T, H, W)
    region = square & hidden
    share = region.sum(dim=(-2, -1)) / square.sum(dim=(-2, -1)).clamp_min(1)  # (B, T)
    clips = (share >= MOSTLY_HIDDEN).any(dim=1).nonzero().flatten()  # (B',) the clips to render again
    if not len(clips):
        return {}
    variants = corpus.scene_variants(split, [indices[i] for i in clips.tolist()], slot, attribute, hidden.device,
                                     **geometry)  # (K, B', T, H, W, 3) uint8
    b, t, y, x = region[clips].nonzero(as_tuple=True)  # (n,) each: the hidden pixels of the squares
    candidates = variants[:, b, t, y, x]  # (K, n, 3) uint8
    owner, num_owners = b * num_frames + t, len(clips) * num_frames
    truth = meta[attribute][clips, slot, None]  # (B', 1)
    true_pixels = candidates[truth[b, 0], torch.arange(len(b), device=b.device)]  # (n, 3)
    differs = (candidates != true_pixels).any(dim=-1).long()  # (K, n)
    apart = differs.new_zeros(len(candidates), num_owners).index_add_(1, owner, differs) > 0  # (K, owners)
    apart[truth.view(-1).repeat_interleave(num_frames), torch.arange(num_owners, device=b.device)] = True
    telling = apart.all(dim=0).view(-1, num_frames)  # (B', T): the hidden pixels tell the true code apart
    counted = {"mostly hidden": share[clips] >= MOSTLY_HIDDEN, "wholly hidden": share[clips] >= 1.0}
    counted = {subset: where & telling for subset, where in counted.items()}
    candidates = corpus.unit_pixels(candidates)
    hits = {subset: {"object frames": int(where.sum())} for subset, where in counted.items()}
    for name, frames in channels_last.items():
        shown = identify(frames[clips[b], t, y, x], candidates, owner, num_owners).view(-1, num_frames)  # (B', T)
        for subset, where in counted.items():
            hits[subset][name] = int(((shown == truth) & where).sum())
    return hits
