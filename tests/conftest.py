"""Shared tiny fixtures: the tiny config and seeded inputs for it."""

import pytest
import torch

from tvlt.config import TvltConfig


@pytest.fixture
def tiny_config() -> TvltConfig:
    return TvltConfig.tiny()


@pytest.fixture
def tiny_inputs(tiny_config: TvltConfig) -> dict[str, torch.Tensor]:
    """Batch of 2 for TvltConfig.tiny(): pixel_values (2, 2, 3, 32, 32), audio_values (2, 1, 32, 32)."""
    g = torch.Generator().manual_seed(0)
    c = tiny_config
    return {
        "pixel_values": torch.randn(2, c.num_frames, 3, c.image_size, c.image_size, generator=g),
        "audio_values": torch.rand(2, 1, c.spectrogram_length, c.frequency_length, generator=g) * 2 - 1,
    }
