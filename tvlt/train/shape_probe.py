"""Where a hidden object's shape gets lost: linear probes of the shape from what the model holds about it.

The model card counts how often a reconstruction shows a mostly hidden object's true shape. This asks which
stage loses it. For every object in a clip with at least one visible and one hidden token on it (75 % random
masking, as the card), one feature vector per stage:
- "visible pixels": the mean visible patch on the object (what a copy of visible pixels could use);
- "encoder": the mean encoder output over its visible tokens (all a frozen-encoder decoder gets about it);
- "decoder at hidden": the mean final decoder state over its hidden tokens (what the MAE head draws from).
A linear classifier trained on train scenes predicts the shape of val-scene objects from each; chance is
1/6. If the encoder row is low, decoder training cannot draw the shape, however long it runs.
"""

from __future__ import annotations

import torch

from tvlt.layout import TokenLayout
from tvlt.mae import default_masking
from tvlt.masking import encoder_masks
from tvlt.modeling import TvltForPreTraining, restore_tokens
from tvlt.train import corpus, scenes
from tvlt.train.evaluate import object_cover
from tvlt.train.inputs import clip_geometry, model_inputs
from tvlt.train.loop import evaluating

STAGES = ("visible pixels", "encoder", "decoder at hidden")


def object_features(model: TvltForPreTraining, split: str, indices: list[int], seed: int, device: torch.device,
                    chunk: int = 64) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """-> ({stage: (N, D) float on CPU}, shapes (N,) long) for the N objects of scenes `indices` of `split` that
    keep at least one visible and one hidden video token under the config's default masking (seeded per chunk).
    Runs without gradients and leaves the model's train/eval mode alone."""
    layout = TokenLayout.from_config(model.config)
    features, shapes = {stage: [] for stage in STAGES}, []
    for start in range(0, len(indices), chunk):
        clips = corpus.scene_batch(split, indices[start:start + chunk], device, **clip_geometry(model.config))
        pixel_values, audio_values = model_inputs(clips)
        video_spec, audio_spec = default_masking(model.config, seed + start)
        masks = encoder_masks(model.config, pixel_values, audio_values, None, None, video_spec, audio_spec)
        with evaluating(model):
            output = model.tvlt(pixel_values, audio_values, **masks.model_inputs(device))
            encoded = output.last_pixel_hidden_state  # (B, Nv', D)
            encoded = restore_tokens(encoded, output.pixel_ids_restore, encoded.new_zeros(encoded.shape[-1]))
            decoded, _ = model.decoder_states(output)  # (B, Nv, Dd)
        per_token = {"visible pixels": layout.patchify_video(pixel_values), "encoder": encoded,
                     "decoder at hidden": decoded}
        hidden = masks.video_is_masked.flatten(1)  # (B, Nv)
        cover = object_cover(clips.meta, layout).flatten(2)  # (B, O, Nv)
        visible_on, hidden_on = cover & ~hidden[:, None], cover & hidden[:, None]  # (B, O, Nv)
        on = {"visible pixels": visible_on, "encoder": visible_on, "decoder at hidden": hidden_on}
        kept = visible_on.any(dim=2) & hidden_on.any(dim=2)  # (B, O)
        for stage in STAGES:
            weights = on[stage].float()  # (B, O, Nv)
            pooled = weights @ per_token[stage].float() / weights.sum(dim=2, keepdim=True).clamp(min=1)  # (B, O, D)
            features[stage].append(pooled[kept].cpu())
        shapes.append(clips.meta["shape"][kept].cpu())
    return {stage: torch.cat(rows) for stage, rows in features.items()}, torch.cat(shapes)


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, steps: int = 400, weight_decay: float = 1e-3) -> tuple[float, float]:
    """Softmax regression on standardised features (full-batch Adam, seeded) -> (train, test) accuracy.
    train_x (N, D), train_y (N,) long; test_x (M, D), test_y (M,)."""
    mean, std = train_x.mean(dim=0), train_x.std(dim=0) + 1e-5
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    with torch.random.fork_rng(devices=[]):  # the same start every call, the caller's RNG untouched
        torch.manual_seed(0)
        classifier = torch.nn.Linear(train_x.shape[1], num_classes)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-2, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(classifier(train_x), train_y).backward()
            optimizer.step()
    with torch.no_grad():
        pairs = ((train_x, train_y), (test_x, test_y))
        return tuple((classifier(x).argmax(dim=1) == y).float().mean().item() for x, y in pairs)


def shape_probe(model: TvltForPreTraining, train_clips: int, val_clips: int, device: torch.device
                ) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """-> ({"train": N, "val": M} objects probed, {stage: {"train": accuracy, "val": accuracy}})."""
    train_x, train_y = object_features(model, "train", list(range(train_clips)), 0, device)
    val_x, val_y = object_features(model, "val", list(range(val_clips)), 1, device)
    table = {}
    for stage in STAGES:
        train, val = linear_probe(train_x[stage], train_y, val_x[stage], val_y, len(scenes.SHAPES))
        table[stage] = {"train": train, "val": val}
    return {"train": len(train_y), "val": len(val_y)}, table
