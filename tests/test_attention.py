import math

import numpy as np
import pytest
import torch

from tvlt.attention import (
    AttentionMaps,
    attention_rollout,
    audio_to_video_attention,
    cls_attention,
    layer_attention,
    pixel_box_to_patch_box,
    record_attention,
    seconds_to_time_patches,
    upsample_grid,
    video_to_audio_attention,
)
from tvlt.config import TvltConfig
from tvlt.layout import TokenLayout
from tvlt.masking import MaskSpec
from tvlt.modeling import TvltForPreTraining

# tiny layout: T=2, h=w=2 (8 video tokens), s=2, f=2 (4 audio tokens), N = 1 + 8 + 4 = 13


@pytest.fixture(scope="module")
def model() -> TvltForPreTraining:
    torch.manual_seed(0)
    model = TvltForPreTraining(TvltConfig.tiny(num_hidden_layers=3)).eval()
    with torch.no_grad():  # spread the attention so that position errors show
        for p in model.tvlt.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return model


@pytest.fixture(scope="module")
def clip() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 2, 3, 32, 32, generator=g), torch.randn(2, 1, 32, 32, generator=g)


def reference_attentions(model, pixels, audio, **kwargs) -> tuple:
    with torch.no_grad():
        return model.tvlt(pixels, audio, output_attentions=True, **kwargs).attentions


@pytest.mark.parametrize("layer", [0, 2])
def test_hook_weights_equal_output_attentions(model, clip, layer):
    maps = layer_attention(model, *clip, layer)
    expected = reference_attentions(model, *clip)[layer]
    assert maps.weights.shape == (2, 2, 13, 13)
    torch.testing.assert_close(maps.weights, expected, atol=1e-5, rtol=0)


def test_hook_weights_equal_with_hidden_and_padded_tokens(model, clip):
    audio_mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]])  # row 1: last time column is padding
    video = np.zeros((2, 2, 2), dtype=bool)
    video[0, 0, 1] = video[1, 1, 0] = True
    maps = layer_attention(model, *clip, 1, audio_mask=audio_mask, video_masking=video)
    expected = reference_attentions(
        model, *clip, audio_mask=audio_mask, pixel_is_masked=torch.from_numpy(video).flatten()[None].expand(2, -1)
    )[1]
    assert maps.weights.shape == (2, 2, 11, 11)
    torch.testing.assert_close(maps.weights, expected, atol=1e-5, rtol=0)


def test_hooks_are_removed_even_after_an_error(model, clip):
    module = model.tvlt.encoder.layer[0].attention.attention
    with pytest.raises(RuntimeError, match="boom"):
        with record_attention(model, [0], lambda layer, w: None):
            assert len(module._forward_hooks) == 1
            raise RuntimeError("boom")
    assert len(module._forward_hooks) == 0
    with pytest.raises(ValueError, match="layer 3"):
        layer_attention(model, *clip, 3)


def test_record_attention_reports_layers_in_order(model, clip):
    seen = []
    with torch.no_grad(), record_attention(model, [2, 0], lambda layer, w: seen.append((layer, tuple(w.shape)))):
        model.tvlt(*clip)
    assert seen == [(0, (2, 2, 13, 13)), (2, (2, 2, 13, 13))]


def test_cls_maps_follow_hidden_tokens_and_sum_to_one(model, clip):
    video = np.zeros((2, 2, 2), dtype=bool)
    video[0, 0, 1] = video[1, 1, 0] = True  # flat video tokens 1 and 6 hidden
    maps = layer_attention(model, *clip, 0, video_masking=video)
    video_map, audio_map = cls_attention(maps, head=1)
    assert torch.isnan(video_map[:, 0, 0, 1]).all() and torch.isnan(video_map[:, 1, 1, 0]).all()
    assert torch.isnan(video_map).sum() == 4 and not torch.isnan(audio_map).any()
    # visible video tokens 0, 2, 3, 4, 5, 7 sit at sequence positions 1..6; audio at 7..10
    row = maps.weights[:, 1, 0]
    expected = row[:, 1:7] / row[:, 1:7].sum(dim=1, keepdim=True)
    torch.testing.assert_close(video_map.flatten(1)[:, [0, 2, 3, 4, 5, 7]], expected)
    torch.testing.assert_close(audio_map.flatten(1), row[:, 7:] / row[:, 7:].sum(dim=1, keepdim=True))
    assert torch.equal(maps.video_is_visible, ~torch.from_numpy(video)[None].expand(2, -1, -1, -1))


def test_padding_is_excluded_and_renormalised(model, clip):
    audio_mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]])
    maps = layer_attention(model, *clip, 0, audio_mask=audio_mask)
    _, audio_map = cls_attention(maps)
    assert torch.isnan(audio_map[1, 1]).all() and not torch.isnan(audio_map[0]).any()
    torch.testing.assert_close(torch.nansum(audio_map.flatten(1), dim=1), torch.ones(2))
    assert maps.weights[1, :, :, 11:].abs().max() < 1e-6  # nothing attends to padding


def test_generated_mask_over_unequal_padding(model, clip):
    pixel_mask = torch.ones(2, 8)
    pixel_mask[1, 4:] = 0  # clip 1: one real frame
    maps = layer_attention(model, *clip, layer=1, pixel_mask=pixel_mask, video_masking=MaskSpec(0.5, "random", 0))
    assert maps.video_is_visible.flatten(1).sum(dim=1).tolist() == [4, 2]  # padding that evens the rows is not visible
    video, _ = cls_attention(maps)
    assert torch.isnan(video[1, 1]).all()  # the padded frame has no value
    torch.testing.assert_close(video[1].nansum(), torch.tensor(1.0))


def test_rollout_matches_product_of_all_layers(model, clip):
    rollout = attention_rollout(model, *clip)
    product = torch.eye(13).expand(2, 13, 13)
    for weights in reference_attentions(model, *clip):
        step = 0.5 * torch.eye(13) + 0.5 * weights.mean(dim=1)
        product = (step / step.sum(dim=-1, keepdim=True)) @ product
    torch.testing.assert_close(rollout.weights, product, atol=1e-5, rtol=0)
    video_map, _ = cls_attention(rollout)
    torch.testing.assert_close(video_map.flatten(1), product[:, 0, 1:9] / product[:, 0, 1:9].sum(1, keepdim=True))
    with pytest.raises(ValueError, match="head=0"):
        cls_attention(rollout, head=0)


def test_audio_span_to_video_is_mean_of_span_rows(model, clip):
    maps = layer_attention(model, *clip, 1)
    heat = audio_to_video_attention(maps, (1, 2))  # audio tokens of time patch 1: sequence 11, 12
    rows = maps.weights.mean(dim=1)[:, 11:13].mean(dim=1)[:, 1:9]
    assert heat.shape == (2, 2, 2, 2)
    torch.testing.assert_close(heat.flatten(1), rows / rows.sum(dim=1, keepdim=True))


def test_frame_region_to_audio_is_mean_of_region_rows(model, clip):
    maps = layer_attention(model, *clip, 2)
    heat = video_to_audio_attention(maps, frame=1, patch_box=(0, 1, 2, 2), head=0)  # tokens (1,0,1), (1,1,1)
    rows = maps.weights[:, 0][:, [1 + 5, 1 + 7]].mean(dim=1)[:, 9:]
    assert heat.shape == (2, 2, 2)
    torch.testing.assert_close(heat.flatten(1), rows / rows.sum(dim=1, keepdim=True))
    with pytest.raises(ValueError, match="frame 2"):
        video_to_audio_attention(maps, frame=2, patch_box=(0, 0, 1, 1))
    with pytest.raises(ValueError, match=r"\(0, 0, 3, 1\)"):
        video_to_audio_attention(maps, frame=0, patch_box=(0, 0, 3, 1))


def test_query_selection_without_visible_tokens_is_an_error(model, clip):
    maps = layer_attention(model, *clip, 0, audio_masking=MaskSpec(0.5, "time", seed=0))
    hidden_column = int(maps.audio_positions[0, :, 0].lt(0).nonzero()[0, 0])
    with pytest.raises(ValueError, match="no visible query token"):
        audio_to_video_attention(maps, (hidden_column, hidden_column + 1))


def synthetic_maps() -> AttentionMaps:
    layout = TokenLayout.from_config(TvltConfig.tiny())
    weights = torch.zeros(1, 13, 13)
    weights[0, 0, 1:] = torch.arange(1, 13, dtype=torch.float)  # CLS attends to token j with weight j
    video_positions = torch.arange(1, 9).reshape(1, 2, 2, 2)
    audio_positions = torch.arange(9, 13).reshape(1, 2, 2)
    valid_video = torch.ones(1, 2, 2, 2, dtype=torch.bool)
    valid_audio = torch.ones(1, 2, 2, dtype=torch.bool)
    return AttentionMaps(weights, layout, video_positions, audio_positions, valid_video, valid_audio)


def test_cls_map_places_each_token_at_its_grid_cell():
    video_map, audio_map = cls_attention(synthetic_maps())
    assert torch.equal(video_map, torch.arange(1, 9, dtype=torch.float).reshape(1, 2, 2, 2) / 36)
    assert torch.equal(audio_map, torch.arange(9, 13, dtype=torch.float).reshape(1, 2, 2) / 42)


def test_seconds_to_time_patches():
    fps = 44100 / 512  # ~86.13 spectrogram frames per second
    assert seconds_to_time_patches(0.0, 0.5, fps, 16, 128) == (0, 3)  # 43.07 frames -> patches 0..2
    assert seconds_to_time_patches(1.0, 100.0, fps, 16, 128) == (5, 128)
    # patch 1 spans 0.1858-0.3715 s: its boundaries rounded to the millisecond still name patch 1 alone
    assert seconds_to_time_patches(0.186, 0.372, fps, 16, 128) == (1, 2)
    assert seconds_to_time_patches(0.184, 0.374, fps, 16, 128) == (0, 3)  # beyond the tolerance: both neighbours
    with pytest.raises(ValueError, match=r"\(2.0, 1.0\)"):
        seconds_to_time_patches(2.0, 1.0, fps, 16, 128)
    with pytest.raises(ValueError, match="covers none of the spectrogram's 128 time patches"):
        seconds_to_time_patches(30.0, 31.0, fps, 16, 128)


def test_pixel_box_and_upsampling():
    assert pixel_box_to_patch_box((10, 0, 17, 16), (16, 16)) == (0, 0, 2, 1)
    with pytest.raises(ValueError, match=r"\(5, 0, 5, 3\)"):
        pixel_box_to_patch_box((5, 0, 5, 3), (16, 16))
    grid = torch.tensor([[1.0, math.nan], [3.0, 4.0]])
    up = upsample_grid(grid, (2, 3))
    assert up.shape == (4, 6)
    assert torch.isnan(up[:2, 3:]).all() and (up[2:, :3] == 3).all() and (up[2:, 3:] == 4).all()
