"""MAE decoder refinement: train only the MAE decoder of a pretrained TVLT, the encoder frozen.

Pretraining shares one encoder between three objectives and gives MAE a small share of a short schedule, so
its reconstructions stay blurry. With the encoder (and the matching head) frozen, the decoder side
(`encoder_to_decoder`, mask tokens, decoder embeddings, decoder blocks, MAE heads) can train on MAE alone
without moving anything retrieval or matching use: their outputs stay bit-identical. A step is cheap: the
encoder runs without gradients on the visible tokens only.

Three levers beyond the plain MAE loss (measured on CPU: see the README's bundled-model section):
- `object_weight`: hidden video patches that overlap a visible object (from the corpus meta, the same test as
  the model card's "masked on objects") weigh 1 + object_weight in the video loss. Unweighted, the loss is
  dominated by easy background patches and barely moved (0.744 -> 0.737 object ratio over 8k clips).
- `extra_decoder_layers`: blocks appended to the decoder, initialised as the identity (their residual output
  projections at zero), so refinement starts from exactly the pretrained reconstructions. In 5-minute probes
  a 2+2-block decoder matched the 2-block one step for step (about 20 % slower per clip); the bundled run uses
  it for capacity over a long schedule.
- `shape_weight`: squared error rewards a soft blob of the right colour where a hidden object's shape is
  uncertain, and shape is a small share of its pixels. `recognition.alternatives_loss` asks directly for the
  shape: each hidden object frame's reconstruction must be nearer (on the hidden pixels of its square) to the
  scene rendered with the true shape than with any other. The batches then carry every object's six shape
  variants (on this CPU ~9 clips/s overall instead of ~14).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from tvlt.config import TvltConfig
from tvlt.modeling import TvltForPreTraining
from tvlt.train import corpus, inputs, pretrain
from tvlt.train.evaluate import mae_probe
from tvlt.train.export import read_provenance
from tvlt.train.loop import LoopSettings, Progress, StepOutput, load_weights, read_checkpoint, step_seed, train

PROBE_SPLIT = "val"


@dataclass
class RefineOptions:
    batch: int = 48
    audio_weight: float = 1.0  # weight of the audio MAE loss (video's is 1)
    object_weight: float = 6.0  # extra weight of hidden video patches on a visible object
    shape_weight: float = 0.0  # weight of the shape loss (recognition.alternatives_loss); 0 renders no variants
    shape_temperature: float = 0.1  # its temperature, on the squared error per hidden pixel (3 channels, [-1, 1])
    extra_decoder_layers: int = 0  # identity-initialised decoder blocks appended before refining
    video_mask: str = "random"  # "random" patches (TVLT's) or "tube"
    probe_clips: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.video_mask not in pretrain.VIDEO_MASK_TYPES:
            raise ValueError(f"video_mask must be one of {pretrain.VIDEO_MASK_TYPES}, got {self.video_mask!r}")
        if self.object_weight < 0 or self.extra_decoder_layers < 0 or self.shape_weight < 0:
            raise ValueError("object_weight, shape_weight and extra_decoder_layers must be >= 0")
        if self.shape_temperature <= 0:
            raise ValueError(f"shape_temperature must be > 0, got {self.shape_temperature}")


@dataclass
class SceneBatch:
    pixel_values: torch.Tensor  # (B, T, C, H, W)
    audio_values: torch.Tensor  # (B, 1, S, F)
    step: int
    targets: pretrain.SceneTargets  # object patches always; shape variants when shape_weight is set


def make_batch(step: int, opts: RefineOptions, config: TvltConfig, device: torch.device) -> SceneBatch:
    indices = list(range(step * opts.batch, (step + 1) * opts.batch))
    geometry = inputs.clip_geometry(config)
    clips = corpus.scene_batch("train", indices, device, **geometry)
    targets = pretrain.scene_targets(clips, config, True, indices if opts.shape_weight else [])
    return SceneBatch(*inputs.model_inputs(clips), step, targets)


def deepen_decoder(model: TvltForPreTraining, extra: int) -> TvltForPreTraining:
    """A copy of `model` with `extra` decoder blocks appended, each the identity at first (residual output
    projections zero), so its reconstructions equal the original's; `model` itself when `extra` is 0."""
    if extra == 0:
        return model
    depth = model.config.decoder_num_hidden_layers
    deeper = TvltForPreTraining(TvltConfig.from_dict({**model.config.to_dict(), "decoder_num_hidden_layers": depth + extra}))
    missing, unexpected = deeper.load_state_dict(model.state_dict(), strict=False)
    new_blocks = tuple(f"decoder.decoder_layers.{k}." for k in range(depth, depth + extra))
    if unexpected or not all(key.startswith(new_blocks) for key in missing):
        raise RuntimeError(f"decoder deepening mismatch: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for block in deeper.decoder.decoder_layers[depth:]:
            for projection in (block.attention.output.dense, block.output.dense):
                projection.weight.zero_()
                projection.bias.zero_()
    return deeper


def freeze_encoder(model: TvltForPreTraining) -> list[str]:
    """Stop gradients into the encoder and the matching head; returns the names of what still trains."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(not name.startswith(("tvlt.", "matching_head.")))
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


def refine_step(model: TvltForPreTraining, batch: SceneBatch, opts: RefineOptions) -> StepOutput:
    """MAE losses on the hidden patches, plus the shape loss when the batch carries shape variants; the masked
    encoder pass runs without gradients."""
    pixel_is_masked = pretrain.step_video_mask(opts.video_mask, model.config, len(batch.pixel_values),
                                               step_seed(opts.seed, batch.step), batch.pixel_values.device)
    with torch.no_grad():
        model.tvlt.eval()  # frozen: no dropout noise in its features either
        output = model.tvlt(batch.pixel_values, batch.audio_values, mask_pixel=True, mask_audio=True,
                            pixel_is_masked=pixel_is_masked)
    losses = pretrain.reconstruction_losses(model, output, batch.pixel_values, batch.audio_values, batch.targets,
                                            opts.object_weight, opts.shape_temperature)
    loss = losses["mae_video"] + opts.audio_weight * losses["mae_audio"] + opts.shape_weight * losses.get("shape", 0.0)
    return StepOutput(loss, {name: value.detach() for name, value in losses.items()})


def run(
    config: TvltConfig, opts: RefineOptions, settings: LoopSettings, device: torch.device, init: str | None
) -> tuple[TvltForPreTraining, Progress]:
    """Refine (or resume, per `settings.resume`) the decoder of the model at `init`. On resume `config` is the
    checkpoint's (already deepened); otherwise it is the init's and `extra_decoder_layers` are appended."""
    torch.manual_seed(opts.seed)
    model = TvltForPreTraining(config)
    if settings.resume:  # weights from the checkpoint; the init and its provenance as they were when the run began
        stored = read_checkpoint(settings.out_dir)["args"]  # (the init directory may have been overwritten since)
        init, init_provenance = stored["init"], stored["init_provenance"]
    elif not init:
        raise ValueError("refine-mae needs --init: the pretrained model whose decoder it trains")
    else:
        load_weights(model, init)
        model = deepen_decoder(model, opts.extra_decoder_layers)
        config, init_provenance = model.config, read_provenance(init)
    trained = sum(model.get_parameter(name).numel() for name in freeze_encoder(model.to(device)))
    settings = dataclasses.replace(settings, args={**settings.args, "config": config.to_dict(),
                                                   "refine_mae": dataclasses.asdict(opts), "init": init,
                                                   "init_provenance": init_provenance,
                                                   "trained_parameters": trained})
    progress = train(
        {"model": model},
        make_batch=lambda step: make_batch(step, opts, config, device),
        compute=lambda batch, fraction: refine_step(model, batch, opts),
        batch_size=lambda batch: len(batch.pixel_values),
        settings=settings,
        device=device,
        probe=lambda: mae_probe(model, PROBE_SPLIT, list(range(opts.probe_clips)), device),
    )
    return model.eval(), progress
