"""Sentiment fine-tuning: `TvltForAudioVisualClassification(num_labels=1, loss_type="regression")` on the
talking-faces corpus, MSE on the label in [-3, 3], encoder initialised from a pretraining run.

Modality dropout: with probability `modality_dropout` a training clip loses one modality (video or audio,
equally likely), blanked exactly as the evaluation blanks it (`blank_modality`), while keeping its full
label. Without it the regressor can lean on the easier cue and ignore the other (the probe ignored faces);
with it each cue must carry its own share. It cannot make a one-modality input as good as both: the label is
the sum of a face and a voice valence drawn independently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tvlt.config import TvltConfig
from tvlt.modeling import TvltForAudioVisualClassification
from tvlt.train import inputs
from tvlt.train.loop import LoopSettings, Progress, StepOutput, load_weights, step_seed, train
from tvlt.train.objectives import blank_modality

PROBE_SPLIT = "val"


@dataclass
class FinetuneOptions:
    batch: int = 128
    modality_dropout: float = 0.3  # fraction of training clips with one modality blanked
    probe_clips: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {self.modality_dropout!r}")


@dataclass
class FaceBatch:
    pixel_values: torch.Tensor  # (B, T, C, H, W)
    audio_values: torch.Tensor  # (B, 1, S, F)
    labels: torch.Tensor  # (B,) float in [-3, 3]
    step: int


def make_batch(step: int, opts: FinetuneOptions, config: TvltConfig, device: torch.device) -> FaceBatch:
    indices = list(range(step * opts.batch, (step + 1) * opts.batch))
    pixel_values, audio_values, labels = inputs.face_inputs("train", indices, config, device)
    return FaceBatch(pixel_values, audio_values, labels, step)


def finetune_step(model: TvltForAudioVisualClassification, batch: FaceBatch, opts: FinetuneOptions) -> StepOutput:
    """MSE on the label after modality dropout; logs the loss and the batch sign accuracy."""
    generator = torch.Generator(device=batch.labels.device).manual_seed(step_seed(opts.seed, batch.step))
    u = torch.rand(len(batch.labels), generator=generator, device=batch.labels.device)
    drop_video = u < opts.modality_dropout / 2
    drop_audio = (u >= opts.modality_dropout / 2) & (u < opts.modality_dropout)
    pixel_values, audio_values = blank_modality(batch.pixel_values, batch.audio_values, drop_video, drop_audio)
    prediction = model(pixel_values, audio_values).logits.float().squeeze(-1)  # (B,), fp32 even under autocast
    loss = F.mse_loss(prediction, batch.labels.float())
    sign_accuracy = ((prediction.detach() > 0) == (batch.labels > 0)).float().mean()
    return StepOutput(loss, {"mse": loss.detach(), "sign_acc": sign_accuracy})


def probe(model: TvltForAudioVisualClassification, clips: FaceBatch, chunk: int = 64) -> dict[str, float]:
    """Held-out MSE and Pearson r of the prediction with the label."""
    prediction = torch.cat([
        model(p, a).logits.float().squeeze(-1) for p, a in zip(clips.pixel_values.split(chunk), clips.audio_values.split(chunk))
    ])
    stacked = torch.stack([prediction, clips.labels.float()])
    return {"mse": (prediction - clips.labels).pow(2).mean().item(), "r": torch.corrcoef(stacked)[0, 1].item()}


def sentiment_model(config: TvltConfig) -> TvltForAudioVisualClassification:
    """The regression model for `config`'s geometry: one output, MSE loss."""
    return TvltForAudioVisualClassification(dataclasses.replace(config, num_labels=1, id2label=None, label2id=None,
                                                                loss_type="regression"))


def run(
    config: TvltConfig, opts: FinetuneOptions, settings: LoopSettings, device: torch.device, init: str | None
) -> tuple[TvltForAudioVisualClassification, Progress]:
    """Fine-tune (or resume, per `settings.resume`); `init` = pretraining source, ignored when resuming."""
    torch.manual_seed(opts.seed)
    model = sentiment_model(config)
    if init and not settings.resume:
        load_weights(model, init)  # pretraining-only heads dropped, the classifier stays fresh
    model.to(device)
    held_out = inputs.face_inputs(PROBE_SPLIT, list(range(opts.probe_clips)), config, device)
    probe_clips = FaceBatch(*held_out, step=-1)
    settings = dataclasses.replace(settings, args={**settings.args, "config": model.config.to_dict(),
                                                   "finetune": dataclasses.asdict(opts), "init": init})
    progress = train(
        {"model": model},
        make_batch=lambda step: make_batch(step, opts, config, device),
        compute=lambda batch, fraction: finetune_step(model, batch, opts),
        batch_size=lambda batch: len(batch.labels),
        settings=settings,
        device=device,
        probe=lambda: probe(model, probe_clips),
    )
    return model.eval(), progress
