import math

import numpy as np
import pytest
import torch

from tvlt.config import TvltConfig
from tvlt.layout import TokenLayout
from tvlt.mae import default_masking, reconstruct
from tvlt.masking import MaskSpec
from tvlt.modeling import TvltForPreTraining

# tiny layout: T=2, h=w=2 (8 video patches of 16*16*3), s=2, f=2 (4 audio patches of 16*16)


@pytest.fixture(scope="module")
def model() -> TvltForPreTraining:
    torch.manual_seed(0)
    return TvltForPreTraining(TvltConfig.tiny()).eval()


@pytest.fixture(scope="module")
def layout(model) -> TokenLayout:
    return TokenLayout.from_config(model.config)


@pytest.fixture(scope="module")
def clip() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 1, 32, 32, generator=g) * 2 - 1


def test_shapes_and_counts(model, clip):
    result = reconstruct(model, *clip, MaskSpec(0.75, "random", 0), MaskSpec(0.5, "time", 0))
    assert result.video_is_masked.shape == (2, 2, 2, 2) and result.audio_is_masked.shape == (2, 2, 2)
    assert result.pixel_predictions.shape == (2, 8, 768) and result.audio_predictions.shape == (2, 4, 256)
    for name in ("video_reconstruction", "video_composite"):
        assert getattr(result, name).shape == clip[0].shape
    for name in ("audio_reconstruction", "audio_composite"):
        assert getattr(result, name).shape == clip[1].shape
    assert result.video_patch_error.shape == (2, 2, 2, 2) and result.audio_patch_error.shape == (2, 2, 2)
    assert result.video_masked_error.shape == (2,) and not result.video_masked_error.requires_grad
    # 8 video patches, 6 hidden; 2 time columns, 1 hidden
    assert (result.num_visible_video.tolist(), result.num_visible_audio.tolist(), result.num_encoder_tokens) == (
        [2] * len(result.num_visible_video), [2] * len(result.num_visible_audio), 5)
    assert (~result.video_is_masked).flatten(1).sum(1).tolist() == [2, 2]


def test_encoder_sees_exactly_the_visible_tokens(model, clip):
    seen = []
    hook = model.tvlt.encoder.layer[0].register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    try:
        video = np.zeros((2, 2, 2), dtype=bool)
        video[0] = True  # whole first frame clicked away
        result = reconstruct(model, *clip, video_masking=video)
    finally:
        hook.remove()
    assert seen == [1 + 4 + 4]
    assert result.num_encoder_tokens == 9
    assert (result.num_visible_video == 4).all() and (result.num_visible_audio == 4).all()
    assert torch.isnan(result.audio_masked_error).all()  # no audio hidden, nothing to score


def test_visible_patches_are_pasted_back_exactly(model, clip, layout):
    result = reconstruct(model, *clip, MaskSpec(0.5, "tube", 3), MaskSpec(0.5, "frequency", 3))
    pixel_visible = layout_upsample(~result.video_is_masked, layout.image_patch_size)[:, :, None].expand_as(clip[0])
    assert torch.equal(result.video_composite[pixel_visible], clip[0][pixel_visible])
    assert not torch.equal(result.video_composite[~pixel_visible], clip[0][~pixel_visible])
    audio_visible = layout_upsample(~result.audio_is_masked, layout.audio_patch_size)[:, None]
    assert torch.equal(result.audio_composite[audio_visible], clip[1][audio_visible])
    hidden = result.video_is_masked.flatten(1)[..., None].expand_as(result.pixel_predictions)
    assert torch.equal(layout.patchify_video(result.video_composite)[hidden], result.pixel_predictions[hidden])


def layout_upsample(grid: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    return grid.repeat_interleave(patch[0], dim=-2).repeat_interleave(patch[1], dim=-1)


def test_same_seed_same_result(model, clip):
    a = reconstruct(model, *clip, MaskSpec(0.5, "random", 5), MaskSpec(0.5, "patch", 5))
    b = reconstruct(model, *clip, MaskSpec(0.5, "random", 5), MaskSpec(0.5, "patch", 5))
    c = reconstruct(model, *clip, MaskSpec(0.5, "random", 6), MaskSpec(0.5, "patch", 6))
    assert torch.equal(a.video_is_masked, b.video_is_masked) and torch.equal(a.pixel_predictions, b.pixel_predictions)
    assert not torch.equal(a.video_is_masked, c.video_is_masked)


def test_perfect_decoder_gives_zero_error_and_the_input(model, clip, layout, monkeypatch):
    truth = (layout.patchify_video(clip[0]), layout.patchify_audio(clip[1]))
    monkeypatch.setattr(model, "decode", lambda output, *padding: truth)
    result = reconstruct(model, *clip, *default_masking(model.config, seed=2))
    assert torch.equal(result.video_reconstruction, clip[0]) and torch.equal(result.audio_composite, clip[1])
    assert result.video_masked_error.tolist() == [0.0, 0.0] and result.audio_patch_error.abs().max() == 0


def test_patch_error_lands_on_the_right_grid_cell(model, clip, layout, monkeypatch):
    offsets = 0.1 * torch.arange(8, dtype=torch.float)  # video token n predicted off by 0.1 * n
    truth = (layout.patchify_video(clip[0]) + offsets[None, :, None], layout.patchify_audio(clip[1]))
    monkeypatch.setattr(model, "decode", lambda output, *padding: truth)
    result = reconstruct(model, *clip, MaskSpec(0.5, "frame", 0))
    torch.testing.assert_close(result.video_patch_error, (offsets**2).reshape(1, 2, 2, 2).expand(2, -1, -1, -1))
    hidden_frame = result.video_is_masked[:, :, 0, 0].float().argmax(dim=1)  # one of two frames hidden
    expected = torch.stack([(offsets[4 * f : 4 * f + 4] ** 2).mean() for f in hidden_frame.tolist()])
    torch.testing.assert_close(result.video_masked_error, expected)


def test_padding_is_never_visible_nor_scored(model, clip):
    audio_mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1]])
    audio_mask[:, 2:] = 0  # second time column is padding in both clips
    result = reconstruct(model, *clip, audio_masking=MaskSpec(0.5, "patch", 1), audio_mask=audio_mask)
    assert result.audio_is_masked[:, 1].all() and not result.audio_is_valid[:, 1].any()
    assert result.num_visible_audio.tolist() == [1, 1]  # 2 real patches, 1 hidden
    assert torch.isnan(result.audio_patch_error[:, 1]).all()
    hidden_real = result.audio_is_masked[:, 0]
    torch.testing.assert_close(result.audio_masked_error, result.audio_patch_error[:, 0][hidden_real])
    assert not math.isnan(result.audio_masked_error.sum().item())


def test_unequal_padding_is_topped_up_and_matches_one_clip_at_a_time(model, clip):
    pixel_mask = torch.ones(2, 8)
    pixel_mask[1, 4:] = 0  # clip 1 has one real frame: fewer visible tokens than clip 0
    result = reconstruct(model, *clip, MaskSpec(0.5, "random", 0), pixel_mask=pixel_mask)
    assert result.num_visible_video.tolist() == [4, 2]  # half of each clip's real tokens
    assert result.num_encoder_tokens == 1 + 4 + 4  # clip 1 topped up with 2 (ignored) padding tokens
    for row in (0, 1):  # each clip as if alone: the padding shown to even the rows out changes nothing
        alone = reconstruct(model, clip[0][row : row + 1], clip[1][row : row + 1], result.video_is_masked[row : row + 1],
                            pixel_mask=pixel_mask[row : row + 1])
        torch.testing.assert_close(result.video_patch_error[row], alone.video_patch_error[0], atol=1e-5, rtol=1e-4,
                                   equal_nan=True)
        torch.testing.assert_close(result.pixel_predictions[row], alone.pixel_predictions[0], atol=1e-5, rtol=1e-4)
    assert torch.isnan(result.video_patch_error[1][~result.video_is_valid[1]]).all()


def test_explicit_masks_hiding_different_counts_are_rejected(model, clip):
    is_masked = torch.zeros(2, 8, dtype=torch.bool)
    is_masked[0, :3] = True  # no padding to even the rows out
    with pytest.raises(ValueError, match="same number"):
        reconstruct(model, *clip, is_masked)
