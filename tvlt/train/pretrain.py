"""Pretraining of the bundled TVLT on the procedural corpus: contrastive + MAE + vision-audio matching.

One step on a batch of B train clips, some in groups of timing twins (same objects, other timing):
1. contrastive: symmetric InfoNCE between `tvlt.retrieval.embed_video` / `embed_audio` (mean-pooled
   final-layer-normed tokens of a video-only / audio-only pass, L2-normalised; no projection head, so the
   export carries all that retrieval needs), learnable temperature;
2. MAE: one masked joint pass (video `pixel_mask_ratio` random or tube, audio `audio_mask_ratio` of the
   config's audio mask type), `decode`, transformers' loss on the hidden patches of each modality;
3. matching: each audio is paired with its own video or a negative (random, timing twin, or one of the
   `hard_k` most similar videos by the current embeddings), joint pass, BCE on `matching_head`. Its weight
   ramps in linearly from schedule fraction `matching_start` over `matching_ramp`.

`--init` starts from a trained model instead (continued pretraining); `object_weight` and `shape_weight` then
add refine-mae's MAE levers (see `tvlt.train.refine_mae`) while all three objectives keep the encoder serving
retrieval and matching. The shape loss applies to the single scenes only (twins cannot be re-rendered by index).
`retrieval_every` k > 1 runs contrastive and matching (three of a step's four encoder passes, about 3/4 of
its time on CPU) on every k-th step only, MAE on all: continued pretraining then sees k-fold more MAE clips
per minute while both retrieval objectives still hold the encoder in place.
`encoder_lr_scale` < 1 moves the trained encoder and matching head more slowly than the decoder: on CPU, the
whole model at one learning rate of 2e-4 (batch 32) lost on every probe within 40 steps (embedding R@1 0.99 ->
0.92, shape shown 0.50 -> 0.39).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch

from tvlt.config import TvltConfig
from tvlt.layout import TokenLayout
from tvlt.masking import MaskSpec, generate_batch_mask
from tvlt.modeling import TvltForPreTraining, TvltModelOutput
from tvlt.retrieval import embed_audio, embed_video
from tvlt.train import corpus, recognition
from tvlt.train.evaluate import mae_probe, object_patches
from tvlt.train.export import read_provenance
from tvlt.train.inputs import clip_geometry, model_inputs, scene_inputs, twin_inputs
from tvlt.train.loop import LoopSettings, Progress, StepOutput, load_weights, read_checkpoint, step_seed, train
from tvlt.train.objectives import NegativeMix, Temperature, info_nce, masked_mse, matching_bce, matching_pairs

PROBE_SPLIT = "val"
VIDEO_MASK_TYPES = ("random", "tube")


@dataclass
class PretrainOptions:
    """What shapes a pretraining run beyond the loop settings (flags of `python -m tvlt.train pretrain`)."""

    batch: int = 256
    twin_groups: int = 16  # groups of clips sharing objects (`corpus.timing_twins`) in each batch
    twin_group_size: int = 8
    contrastive_weight: float = 1.0
    mae_weight: float = 5.0  # MAE losses are ~0.04: at weight 1 the encoder barely served reconstruction
    object_weight: float = 0.0  # extra weight of hidden video patches on a visible object (as refine-mae's)
    shape_weight: float = 0.0  # weight of the shape loss on the single scenes (not scaled by mae_weight); 0: none
    shape_temperature: float = 0.1
    contrastive_scale: float = 1 / 0.07  # initial contrastive logit scale (an export does not carry the trained one)
    encoder_lr_scale: float = 1.0  # learning-rate factor of the encoder and the matching head (the decoder's is 1)
    matching_weight: float = 1.0
    retrieval_every: int = 1  # contrastive and matching on steps 0, k, 2k, ... only; MAE on every step
    matching_start: float = 0.15  # schedule fraction where matching begins
    matching_ramp: float = 0.1  # schedule fraction over which its weight ramps up to matching_weight
    matching_batch: int = 256  # audio queries paired per step (<= batch)
    neg_random: float = 0.1  # fractions of the matching pairs; the rest are positives
    neg_twin: float = 0.4  # (falls back to random for clips without a twin in the batch)
    neg_hard: float = 0.15
    hard_k: int = 8
    video_mask: str = "random"  # MAE video masking: "random" patches (TVLT's) or "tube"
    probe_clips: int = 100  # held-out clips for the retrieval probe
    mae_probe_clips: int = 0  # held-out scenes for the MAE and recognition probe (0: none)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.video_mask not in VIDEO_MASK_TYPES:
            raise ValueError(f"video_mask must be one of {VIDEO_MASK_TYPES}, got {self.video_mask!r}")
        if self.twin_groups * self.twin_group_size > self.batch or (self.twin_groups and self.twin_group_size < 2):
            raise ValueError(f"{self.twin_groups} twin groups of {self.twin_group_size} do not fit a batch of {self.batch}")
        if not 2 <= self.matching_batch <= self.batch:
            raise ValueError(f"matching_batch must be in [2, batch={self.batch}], got {self.matching_batch}")
        NegativeMix(self.neg_random, self.neg_twin, self.neg_hard)  # validates the fractions
        if min(self.object_weight, self.shape_weight, self.mae_probe_clips) < 0:
            raise ValueError("object_weight, shape_weight and mae_probe_clips must be >= 0")
        if self.retrieval_every < 1:
            raise ValueError(f"retrieval_every must be >= 1, got {self.retrieval_every}")
        if min(self.shape_temperature, self.contrastive_scale, self.encoder_lr_scale) <= 0:
            raise ValueError("shape_temperature, contrastive_scale and encoder_lr_scale must be > 0")

    @property
    def negative_mix(self) -> NegativeMix:
        return NegativeMix(self.neg_random, self.neg_twin, self.neg_hard)

    def matching_scale(self, fraction: float) -> float:
        """Matching loss weight at schedule position `fraction`."""
        if self.matching_weight == 0 or fraction < self.matching_start:
            return 0.0
        ramp = 1.0 if self.matching_ramp <= 0 else min(1.0, (fraction - self.matching_start) / self.matching_ramp)
        return self.matching_weight * ramp


@dataclass
class SceneTargets:
    """What the MAE losses need besides the inputs: where the objects are and their shape variants."""

    on_objects: Optional[torch.Tensor]  # (B, Nv) float: 1 where the patch overlaps a visible object; None: unweighted
    meta: dict[str, torch.Tensor]  # the clips' corpus meta
    shape_variants: dict[int, tuple[torch.Tensor, torch.Tensor]]  # `recognition.slot_variants`; empty: no shape loss


@dataclass
class PretrainBatch:
    pixel_values: torch.Tensor  # (B, T, C, H, W)
    audio_values: torch.Tensor  # (B, 1, S, F)
    twin_of: torch.Tensor  # (B,) long: batch index of the clip's timing twin, -1 if none
    step: int
    targets: SceneTargets


# ---------------------------------------------------------------- data
def make_batch(step: int, opts: PretrainOptions, config: TvltConfig, device: torch.device) -> PretrainBatch:
    """B distinct train scenes per step, deterministic in `step`: `twin_groups` groups of `twin_group_size`
    timing twins (group g starts at scene index n*step + g, n = clips of new scenes per step) first, then
    single scenes. Each twin's `twin_of` is the next member of its group."""
    G, K = opts.twin_groups, opts.twin_group_size
    num_scenes = opts.batch - G * (K - 1)  # scene indices used per step
    indices = list(range(step * num_scenes, (step + 1) * num_scenes))
    geometry = clip_geometry(config)
    clips = corpus.concat([*(corpus.timing_twins("train", index, K, device, **geometry) for index in indices[:G]),
                           corpus.scene_batch("train", indices[G:], device, **geometry)])
    twin_of = torch.full((opts.batch,), -1, dtype=torch.long, device=device)
    member = torch.arange(G * K, device=device)
    twin_of[: G * K] = member - member % K + (member + 1) % K
    targets = scene_targets(clips, config, bool(opts.object_weight), indices[G:] if opts.shape_weight else [])
    return PretrainBatch(*model_inputs(clips), twin_of, step, targets)


def scene_targets(clips: corpus.ClipBatch, config: TvltConfig, weigh_objects: bool, shape_scenes: list[int]
                  ) -> SceneTargets:
    """Targets of a batch of train `clips`: object patches if `weigh_objects`; the shape variants of train scenes
    `shape_scenes`, the batch's last len(shape_scenes) clips (none: no shape loss)."""
    layout = TokenLayout.from_config(config)
    on_objects = object_patches(clips.meta, layout).flatten(1).float() if weigh_objects else None
    first = len(clips.frames) - len(shape_scenes)
    variants = recognition.slot_variants("train", shape_scenes, clips.meta["shape"][first:], "shape",
                                         clips.frames.device, first, **clip_geometry(config)) if shape_scenes else {}
    return SceneTargets(on_objects, clips.meta, variants)


# ---------------------------------------------------------------- losses
def tube_mask(config: TvltConfig, batch: int, ratio: float, seed: int, device: torch.device) -> torch.Tensor:
    """bool (B, Nv), True = hidden: `ratio` of the spatial positions hidden in every frame."""
    layout = TokenLayout.from_config(config)
    is_valid = torch.ones(batch, layout.num_frames, layout.grid_rows, layout.grid_cols, dtype=torch.bool)
    return generate_batch_mask(MaskSpec(ratio, "tube", seed), is_valid).flatten(1).to(device)


def step_video_mask(kind: str, config: TvltConfig, batch: int, seed: int, device: torch.device) -> Optional[torch.Tensor]:
    """A step's explicit video mask (B, Nv) for `kind` "tube" at the config ratio; None for "random" (the model
    draws its own)."""
    if kind != "tube":
        return None
    return tube_mask(config, batch, config.pixel_mask_ratio, seed, device)


def reconstruction_losses(
    model: TvltForPreTraining, output: TvltModelOutput, pixel_values: torch.Tensor, audio_values: torch.Tensor,
    targets: SceneTargets, object_weight: float, shape_temperature: float,
) -> dict[str, torch.Tensor]:
    """Decode a masked encoder `output` -> "mae_video" (hidden patches on objects weighing 1 + object_weight when
    the targets carry them), "mae_audio", and "shape" (`recognition.alternatives_loss`) when they carry variants."""
    layout = TokenLayout.from_config(model.config)
    predictions = model.decode(output)  # (B, Nv, P), (B, Na, Pa)
    weight = None if targets.on_objects is None else 1 + object_weight * targets.on_objects
    video, audio = masked_patch_losses(layout, predictions, output, pixel_values, audio_values, pixel_weight=weight)
    losses = {"mae_video": video, "mae_audio": audio}
    if targets.shape_variants:
        losses["shape"] = recognition.patch_alternatives_loss(layout, predictions[0], output.pixel_label_masks > 0,
                                                              targets.meta, "shape", targets.shape_variants,
                                                              shape_temperature)
    return losses


def masked_patch_losses(
    layout: TokenLayout, predictions: tuple[torch.Tensor, torch.Tensor], output: TvltModelOutput,
    pixel_values: torch.Tensor, audio_values: torch.Tensor, pixel_weight: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoded `predictions` ((B, Nv, P), (B, Na, Pa)) of a masked encoder `output` -> (video, audio) MSE on
    its hidden patches; pixel_weight (B, Nv) float, if given, weighs each hidden video patch (the video loss is
    then the weighted mean)."""
    pixel_predictions, audio_predictions = predictions
    hidden = (output.pixel_label_masks > 0).float()
    return (
        masked_mse(pixel_predictions, layout.patchify_video(pixel_values),
                   hidden if pixel_weight is None else hidden * pixel_weight),
        masked_mse(audio_predictions, layout.patchify_audio(audio_values), output.audio_label_masks > 0),
    )


def matching_loss(
    model: TvltForPreTraining,
    batch: PretrainBatch,
    similarity: torch.Tensor,
    opts: PretrainOptions,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair the first `matching_batch` audios with own / negative videos, joint pass, BCE -> (loss, accuracy).

    similarity: (B, B) audio->video embedding cosine, detached (for hard negatives).
    """
    M = opts.matching_batch
    twin_of = batch.twin_of[:M]
    twin_of = torch.where(twin_of < M, twin_of, -1)  # the twin's video must be among the paired videos
    video, labels = matching_pairs(M, M, twin_of, similarity[:M, :M], opts.negative_mix, opts.hard_k, generator)
    output = model.tvlt(batch.pixel_values[video], batch.audio_values[:M])
    return matching_bce(model.matching_head(output.last_hidden_state), labels)


def pretrain_step(
    model: TvltForPreTraining, temperature: Temperature, batch: PretrainBatch, fraction: float, opts: PretrainOptions
) -> StepOutput:
    """All losses of one step, weighted; the values dict carries each term for the log (contrastive and matching
    only on the steps of `retrieval_every`)."""
    seed = step_seed(opts.seed, batch.step)
    generator = torch.Generator(device=batch.pixel_values.device).manual_seed(seed)
    pixel_is_masked = step_video_mask(opts.video_mask, model.config, len(batch.pixel_values), seed,
                                      batch.pixel_values.device)
    output = model.tvlt(batch.pixel_values, batch.audio_values, mask_pixel=True, mask_audio=True,
                        pixel_is_masked=pixel_is_masked)
    mae = reconstruction_losses(model, output, batch.pixel_values, batch.audio_values, batch.targets,
                                opts.object_weight, opts.shape_temperature)
    loss = opts.mae_weight * (mae["mae_video"] + mae["mae_audio"])
    if "shape" in mae:
        loss = loss + opts.shape_weight * mae["shape"]
    values = {name: value.detach() for name, value in mae.items()}
    if batch.step % opts.retrieval_every:
        return StepOutput(loss, values)
    video = embed_video(model, batch.pixel_values)  # (B, D)
    audio = embed_audio(model, batch.audio_values)  # (B, D)
    contrastive, batch_r1 = info_nce(video, audio, temperature())
    loss = loss + opts.contrastive_weight * contrastive
    values.update(contrastive=contrastive.detach(), batch_r1=batch_r1, temperature=1 / temperature().detach())
    scale = opts.matching_scale(fraction)
    if scale > 0:
        similarity = (audio @ video.T).detach()  # (B_audio, B_video)
        matching, pair_accuracy = matching_loss(model, batch, similarity, opts, generator)
        loss = loss + scale * matching
        values.update(matching=matching.detach(), pair_accuracy=pair_accuracy)
    return StepOutput(loss, values)


# ---------------------------------------------------------------- probe
@dataclass
class ProbeSet:
    pixel_values: torch.Tensor  # (N, T, C, H, W) held-out clips
    audio_values: torch.Tensor  # (N, 1, S, F)
    twin_pixels: torch.Tensor  # (K, T, C, H, W): a timing twin's video for each of the first K clips


def probe_set(config: TvltConfig, num_clips: int, device: torch.device, num_twins: int = 16) -> ProbeSet:
    pixel_values, audio_values = scene_inputs(PROBE_SPLIT, list(range(num_clips)), config, device)
    twins = [twin_inputs(PROBE_SPLIT, index, 2, config, device)[0][1] for index in range(min(num_twins, num_clips))]
    return ProbeSet(pixel_values, audio_values, torch.stack(twins))


def probe(model: TvltForPreTraining, probe_clips: ProbeSet, chunk: int = 64) -> dict[str, float]:
    """Cheap held-out check: embedding audio->video R@1/R@5 among the probe clips, and how often the matching
    head scores a clip's own video above its timing twin's for the clip's audio (chance 0.5)."""
    video = torch.cat([embed_video(model, p) for p in probe_clips.pixel_values.split(chunk)])
    audio = torch.cat([embed_audio(model, a) for a in probe_clips.audio_values.split(chunk)])
    similarity = audio @ video.T  # (N, N)
    ranks = (similarity > similarity.diagonal()[:, None]).sum(dim=1) + 1  # 1-based rank of the own video
    K = len(probe_clips.twin_pixels)
    own_audio = probe_clips.audio_values[:K]
    own = model.matching_head(model.tvlt(probe_clips.pixel_values[:K], own_audio).last_hidden_state)
    twin = model.matching_head(model.tvlt(probe_clips.twin_pixels, own_audio).last_hidden_state)
    return {
        "emb_r1": (ranks <= 1).float().mean().item(),
        "emb_r5": (ranks <= 5).float().mean().item(),
        "twin_win": (own > twin).float().mean().item(),
    }


# ---------------------------------------------------------------- run
def run(
    config: TvltConfig, opts: PretrainOptions, settings: LoopSettings, device: torch.device, init: Optional[str] = None
) -> tuple[TvltForPreTraining, Progress]:
    """Pretrain (or resume, per `settings.resume`) and return the model (eval mode) and the progress. `init`, a
    pretraining run or export whose config `config` is, gives the starting weights (ignored on resume)."""
    torch.manual_seed(opts.seed)
    model = TvltForPreTraining(config)
    args = {"config": config.to_dict(), "pretrain": dataclasses.asdict(opts)}
    if settings.resume:  # the init and its provenance as they were when the run began
        stored = read_checkpoint(settings.out_dir)["args"]
        args.update({key: stored[key] for key in ("init", "init_provenance") if key in stored})
    elif init:
        load_weights(model, init)
        args.update(init=init, init_provenance=read_provenance(init))
    model.to(device)
    temperature = Temperature(opts.contrastive_scale).to(device)
    modules = {"model": model, "temperature": temperature}
    probe_clips = probe_set(config, opts.probe_clips, device)
    mae_indices = list(range(opts.mae_probe_clips))
    scales = {} if opts.encoder_lr_scale == 1 else {"model.tvlt.": opts.encoder_lr_scale,
                                                    "model.matching_head.": opts.encoder_lr_scale}
    settings = dataclasses.replace(settings, args={**settings.args, **args}, lr_scales=scales)
    progress = train(
        modules,
        make_batch=lambda step: make_batch(step, opts, config, device),
        compute=lambda batch, fraction: pretrain_step(model, temperature, batch, fraction, opts),
        batch_size=lambda batch: len(batch.pixel_values),
        settings=settings,
        device=device,
        probe=lambda: {**probe(model, probe_clips),
                       **(mae_probe(model, PROBE_SPLIT, mae_indices, device) if mae_indices else {})},
    )
    return model.eval(), progress
