import numpy as np
import pytest
import torch

from tvlt.masking import (
    AUDIO_MASK_TYPES,
    VIDEO_MASK_TYPES,
    MaskSpec,
    equal_visible_counts,
    explicit_mask,
    generate_batch_mask,
    num_hidden,
    resolve_mask,
    validity_grid,
)

VIDEO_GRID = (4, 3, 5)  # T, h, w
AUDIO_GRID = (6, 4)  # s, f


def all_valid(*grid: int, batch: int = 2) -> torch.Tensor:
    return torch.ones(batch, *grid, dtype=torch.bool)


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9])
def test_random_hides_exactly_rounded_count(ratio):
    mask = resolve_mask(MaskSpec(ratio, "random", seed=3), "video", all_valid(*VIDEO_GRID))
    n = int(np.prod(VIDEO_GRID))
    assert mask.shape == (2, *VIDEO_GRID)
    assert mask.flatten(1).sum(1).tolist() == [num_hidden(ratio, n)] * 2


def test_num_hidden_rounds_half_up():
    assert num_hidden(0.5, 5) == 3
    assert num_hidden(0.25, 10) == 3
    assert num_hidden(0.75, 4) == 3
    assert num_hidden(0.0, 7) == 0


def test_tube_hides_same_positions_in_every_frame():
    mask = resolve_mask(MaskSpec(0.5, "tube", seed=1), "video", all_valid(*VIDEO_GRID))
    assert (mask == mask[:, :1]).all()
    assert mask[:, 0].flatten(1).sum(1).tolist() == [num_hidden(0.5, 15)] * 2


def test_frame_hides_whole_frames():
    mask = resolve_mask(MaskSpec(0.5, "frame", seed=1), "video", all_valid(*VIDEO_GRID))
    per_frame = mask.flatten(2)
    assert (per_frame.all(-1) | ~per_frame.any(-1)).all()
    assert per_frame.all(-1).sum(1).tolist() == [2, 2]


def test_audio_time_and_frequency_hide_whole_columns_and_bands():
    time = resolve_mask(MaskSpec(0.5, "time", seed=2), "audio", all_valid(*AUDIO_GRID))
    freq = resolve_mask(MaskSpec(0.5, "frequency", seed=2), "audio", all_valid(*AUDIO_GRID))
    assert (time == time[:, :, :1]).all() and time[:, :, 0].sum(1).tolist() == [3, 3]
    assert (freq == freq[:, :1, :]).all() and freq[:, 0, :].sum(1).tolist() == [2, 2]


def test_same_seed_same_mask_other_seed_differs():
    valid = all_valid(*VIDEO_GRID)
    first = resolve_mask(MaskSpec(0.5, "random", seed=7), "video", valid)
    again = resolve_mask(MaskSpec(0.5, "random", seed=7), "video", valid)
    other = resolve_mask(MaskSpec(0.5, "random", seed=8), "video", valid)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_generation_leaves_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    generate_batch_mask(MaskSpec(0.5, "patch", seed=1), all_valid(*AUDIO_GRID))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("kind", AUDIO_MASK_TYPES)
def test_padding_is_always_hidden_and_ratio_counts_valid_units(kind):
    valid = all_valid(*AUDIO_GRID, batch=1)
    valid[:, 4:] = False  # last two time columns are padding
    mask = resolve_mask(MaskSpec(0.5, kind, seed=0), "audio", valid)
    assert mask[:, 4:].all()
    hidden_valid = (mask & valid).sum().item()
    units = {"patch": 16, "time": 4, "frequency": 4}[kind]
    per_unit = {"patch": 1, "time": 4, "frequency": 4}[kind]
    assert hidden_valid == num_hidden(0.5, units) * per_unit


@pytest.mark.parametrize("kind", VIDEO_MASK_TYPES)
def test_video_padding_frames_never_visible(kind):
    valid = all_valid(*VIDEO_GRID, batch=1)
    valid[:, 3] = False  # last frame padded
    mask = resolve_mask(MaskSpec(0.25, kind, seed=0), "video", valid)
    assert mask[:, 3].all()
    assert (~mask & ~valid).sum() == 0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("kind", VIDEO_MASK_TYPES)
def test_rows_with_unequal_padding_show_the_encoder_equal_counts(kind, seed):
    g = torch.Generator().manual_seed(seed)
    valid = all_valid(*VIDEO_GRID, batch=3)
    for row, frames in enumerate(torch.randint(1, VIDEO_GRID[0] + 1, (3,), generator=g).tolist()):
        valid[row, frames:] = False  # each clip its own number of real frames
    generated = generate_batch_mask(MaskSpec(0.5, kind, seed), valid)
    mask = resolve_mask(MaskSpec(0.5, kind, seed), "video", valid)
    shown = (~mask).flatten(1).sum(dim=1)
    assert (shown == shown.max()).all()  # one rectangular batch for the encoder
    assert torch.equal(mask | ~valid, generated)  # only padding changed, and real tokens are as generated
    assert torch.equal(equal_visible_counts(mask, valid), mask)  # idempotent


def test_none_hides_only_padding():
    valid = all_valid(*AUDIO_GRID)
    valid[1, 5] = False
    assert torch.equal(resolve_mask(None, "audio", valid), ~valid)


def test_explicit_mask_accepts_grid_flat_and_batched_forms():
    grid_mask = np.zeros(AUDIO_GRID, dtype=bool)
    grid_mask[2, 1] = True
    flat = grid_mask.reshape(-1).astype(int).tolist()
    for form in (grid_mask, torch.from_numpy(grid_mask), flat, np.stack([grid_mask] * 2)):
        out = explicit_mask(form, AUDIO_GRID, batch_size=2)
        assert out.dtype == torch.bool and out.shape == (2, *AUDIO_GRID)
        assert out.sum().item() == 2 and out[:, 2, 1].all()


def test_explicit_mask_is_combined_with_padding():
    valid = all_valid(*AUDIO_GRID, batch=1)
    valid[:, 5] = False
    clicked = np.zeros(AUDIO_GRID, dtype=bool)
    clicked[0, 0] = True
    mask = resolve_mask(clicked, "audio", valid)
    assert mask[0, 0, 0] and mask[0, 5].all() and mask.sum().item() == 5


def test_validation_names_bad_values():
    with pytest.raises(ValueError, match="1.0"):
        MaskSpec(1.0, "random")
    with pytest.raises(ValueError, match="-0.1"):
        MaskSpec(-0.1, "random")
    with pytest.raises(ValueError, match="'blocks'"):
        MaskSpec(0.5, "blocks")
    with pytest.raises(ValueError, match="'time'"):
        resolve_mask(MaskSpec(0.5, "time"), "video", all_valid(*VIDEO_GRID))
    with pytest.raises(ValueError, match=r"\(7,\)"):
        explicit_mask(np.zeros(7, dtype=bool), AUDIO_GRID, batch_size=1)
    with pytest.raises(ValueError, match="0/1"):
        explicit_mask(np.full(AUDIO_GRID, 2), AUDIO_GRID, batch_size=1)


def test_validity_grid_from_float_mask():
    float_mask = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 0.0]])
    grid = validity_grid(float_mask, (2, 3), batch_size=1)
    assert grid.tolist() == [[[True, True, False], [False, True, False]]]
    assert validity_grid(None, (2, 3), batch_size=2).all()
    with pytest.raises(ValueError, match=r"\(1, 6\)"):
        validity_grid(float_mask, (3, 3), batch_size=1)
