import numpy as np
import torch

from tvlt import video


def test_shortest_edge_size_rounds_down_like_transformers():
    assert video.shortest_edge_size(480, 640, 224) == (224, 298)
    assert video.shortest_edge_size(640, 480, 224) == (298, 224)


def test_center_crop_pads_small_frames_with_zeros():
    frames = torch.ones(1, 3, 10, 300)
    out = video.center_crop(frames, 20, 224)
    assert out.shape == (1, 3, 20, 224) and out[..., :5, :].sum() == 0 and out[..., 5:15, :].min() == 1


def test_pixel_values_round_trip_to_uint8():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    pixels = video.frames_to_pixel_values(frames)
    assert pixels.shape == (2, 3, 224, 224) and pixels.dtype == torch.float32
    assert -1 <= pixels.min() and pixels.max() <= 1
    np.testing.assert_array_equal(video.pixel_values_to_images(pixels), frames)


def test_resize_of_constant_image_is_constant():
    frames = np.full((1, 50, 70, 3), 77, np.uint8)
    pixels = video.frames_to_pixel_values(frames, mean=None, std=None, rescale_factor=None)
    assert pixels.shape == (1, 3, 224, 224) and torch.all(pixels == 77)


def test_sample_indices_even_and_complete():
    assert list(video.sample_indices(16, 4)) == [2, 6, 10, 14]
    assert list(video.sample_indices(3, 8)) == [0, 1, 2]


def test_patch_pixel_edges():
    edges = video.patch_pixel_edges(224, 16)
    assert edges[0] == 0 and edges[-1] == 224 and len(edges) == 15
