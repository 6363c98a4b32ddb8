"""Model inputs from corpus clips: the corpus geometry a config needs, and clips -> (pixel_values, audio_values)."""

from __future__ import annotations

import torch

from tvlt.audio import HOP_LENGTH, N_MELS, SAMPLING_RATE, log_mel_spectrogram
from tvlt.config import TvltConfig
from tvlt.train import corpus


def clip_geometry(config: TvltConfig) -> dict[str, float]:
    """corpus keyword arguments that render clips of the config's input size (S * 512 samples -> S frames)."""
    if config.frequency_length != N_MELS:
        raise ValueError(f"frequency_length must be {N_MELS} (the log-mel bins), got {config.frequency_length}")
    return dict(image_size=config.image_size, num_frames=config.num_frames,
                duration=config.spectrogram_length * HOP_LENGTH / SAMPLING_RATE)


def model_inputs(clips: corpus.ClipBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """pixel_values (B, T, 3, H, W) in [-1, 1], audio_values (B, 1, S, F) in [-1, 1], on the clips' device."""
    return corpus.to_model_inputs(clips, log_mel_spectrogram)


def scene_inputs(split: str, indices: list[int], config: TvltConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return model_inputs(corpus.scene_batch(split, indices, device, **clip_geometry(config)))


def twin_inputs(split: str, index: int, count: int, config: TvltConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` clips with the objects of scene `index` (the first is the scene itself), each with other timing."""
    return model_inputs(corpus.timing_twins(split, index, count, device, **clip_geometry(config)))


def face_inputs(split: str, indices: list[int], config: TvltConfig, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Talking faces -> (pixel_values, audio_values, labels (B,) in [-3, 3])."""
    clips = corpus.face_batch(split, indices, device, **clip_geometry(config))
    return (*model_inputs(clips), clips.labels)
