from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tvlt.config import TvltConfig
from tvlt.layout import TokenLayout, patchify_audio, patchify_video, unpatchify_audio, unpatchify_video, valid_tokens


@pytest.fixture
def layout():
    return TokenLayout.from_config(TvltConfig.tiny(image_size=48, num_frames=3, spectrogram_length=64))


def test_sizes_and_slices(layout):
    assert (layout.num_frames, layout.grid_rows, layout.grid_cols) == (3, 3, 3)
    assert (layout.audio_time_patches, layout.audio_freq_patches) == (4, 2)
    assert (layout.num_video_tokens, layout.num_audio_tokens, layout.num_tokens) == (27, 8, 36)
    assert layout.video_slice == slice(1, 28) and layout.audio_slice == slice(28, 36)
    assert (layout.video_patch_dim, layout.audio_patch_dim) == (768, 256)


def test_overrides_are_checked():
    config = TvltConfig.tiny()
    short = TokenLayout.from_config(config, num_frames=1, spectrogram_length=16)
    assert (short.num_video_tokens, short.num_audio_tokens) == (4, 2)
    for kwargs, name in [(dict(num_frames=3), "num_frames"), (dict(spectrogram_length=24), "spectrogram_length")]:
        with pytest.raises(ValueError, match=name):
            TokenLayout.from_config(config, **kwargs)


def test_index_maps_are_inverse_and_ordered(layout):
    i = torch.arange(layout.num_video_tokens)
    t, r, c = layout.video_position(i)
    assert torch.equal(layout.video_index(t, r, c), i)
    assert layout.video_position(layout.video_index(2, 1, 0)) == (2, 1, 0)
    assert layout.video_index(1, 0, 0) == layout.patches_per_frame  # frame-major
    j = torch.arange(layout.num_audio_tokens)
    assert torch.equal(layout.audio_index(*layout.audio_position(j)), j)
    assert layout.audio_index(1, 0) == layout.audio_freq_patches  # freq fastest


def test_patch_values_come_from_the_mapped_location(layout):
    pixels = torch.randn(2, 3, 3, 48, 48)
    patches = layout.patchify_video(pixels)  # (B, N, p*q*C)
    t, r, c = layout.video_position(13)
    expected = pixels[1, t, :, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16].permute(1, 2, 0).reshape(-1)
    assert torch.equal(patches[1, 13], expected)
    audio = torch.randn(2, 1, 64, 32)
    audio_patches = layout.patchify_audio(audio)
    s, f = layout.audio_position(5)
    assert torch.equal(audio_patches[0, 5], audio[0, 0, s * 16:(s + 1) * 16, f * 16:(f + 1) * 16].reshape(-1))


@pytest.mark.parametrize("seed", range(3))
def test_unpatchify_inverts_patchify(seed):
    g = torch.Generator().manual_seed(seed)
    T, H, W, (p, q) = 1 + seed, 8 * (seed + 1), 12, [(4, 4), (2, 3), (8, 6)][seed]
    pixels = torch.randn(2, T, 3, H, W, generator=g)
    assert torch.equal(unpatchify_video(patchify_video(pixels, (p, q)), T, H, W, (p, q)), pixels)
    audio = torch.randn(2, 2, 4 * p, 4 * q, generator=g)
    assert torch.equal(unpatchify_audio(patchify_audio(audio, (p, q)), 4 * q, (p, q)), audio)


def test_layout_unpatchify_and_bad_shapes(layout):
    pixels = torch.randn(1, 3, 3, 48, 48)
    assert torch.equal(layout.unpatchify_video(layout.patchify_video(pixels)), pixels)
    audio = torch.randn(1, 1, 64, 32)
    assert torch.equal(layout.unpatchify_audio(layout.patchify_audio(audio)), audio)
    with pytest.raises(ValueError, match="not divisible"):
        patchify_video(torch.zeros(1, 1, 3, 20, 16))
    with pytest.raises(ValueError, match="do not fit"):
        unpatchify_video(torch.zeros(1, 5, 768), 1, 32, 32)


def test_valid_tokens():
    assert valid_tokens(None) is None
    assert torch.equal(valid_tokens(torch.tensor([[1.0, 0.0]])), torch.tensor([[True, False]]))


def test_value_order_matches_transformers_patchify():
    """tests/fixtures/model/patchify.safetensors: transformers' patchify_pixel/patchify_audio, 8x8 patches."""
    ref = load_file(Path(__file__).parent / "fixtures" / "model" / "patchify.safetensors")
    assert torch.equal(patchify_video(ref["pixel_values"], 8), ref["video_patches"])
    assert torch.equal(patchify_audio(ref["audio_values"], 16), ref["audio_patches"])
