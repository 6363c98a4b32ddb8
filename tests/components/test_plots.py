from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from components import plots


def test_panel_grid_locates_every_cell_centre_and_rejects_gaps():
    grid = plots.PanelGrid(rows=3, cols=4, cell_h=20, cell_w=30)
    for r in range(3):
        for c in range(4):
            y, x = grid.origin(r, c)
            row, col, u, v = grid.locate(x + 15, y + 10)
            assert (row, col) == (r, c) and u == pytest.approx(0.5) and v == pytest.approx(0.5)
    y, x = grid.origin(0, 1)
    assert grid.locate(x - 1, y + 5) is None  # the gap left of column 1
    assert grid.locate(5, 2) is None  # the title strip
    assert grid.locate(5, grid.size[0] + 3) is None


def test_compose_has_the_grid_size_and_places_cells():
    grid = plots.PanelGrid(rows=2, cols=2, cell_h=8, cell_w=8, header=0)
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    image = grid.compose([[red, red * 0], [red * 0, red]])
    assert image.shape == (*grid.size, 3)
    y, x = grid.origin(1, 1)
    assert tuple(image[y + 4, x + 4]) == (255, 0, 0)
    y, x = grid.origin(0, 1)
    assert tuple(image[y + 4, x + 4]) == (0, 0, 0)


def test_grey_out_paints_exactly_the_hidden_patches():
    image = np.full((32, 32, 3), 200, np.uint8)
    hidden = np.array([[True, False], [False, False]])
    out = plots.grey_out(image, hidden, (16, 16))
    assert (out[:16, :16] == plots.hatch(16, 16)).all()
    assert (out[16:, :] == 200).all() and (out[:16, 16:] == 200).all()
    assert (image == 200).all()  # input untouched


def test_spectrogram_rgb_puts_low_frequencies_at_the_bottom():
    spec = np.full((10, 4), -1.0)
    spec[:, 0] = 1.0  # the lowest mel bin is loud
    rgb = plots.spectrogram_rgb(spec)
    assert rgb.shape == (4, 10, 3)
    assert rgb[-1].mean() > rgb[0].mean()


def test_figures_are_pyplot_free_figures():
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    figs = [
        plots.frames_figure(frames, (16, 16), [0.1, 0.2, 0.3]),
        plots.spectrogram_figure(np.zeros((32, 128)), np.arange(32) / 86, np.linspace(30, 20000, 128), (16, 16),
                                 valid_frames=16),
        plots.token_layout_figure(3, 4, 2, 8, 1),
        plots.sentiment_figure(["a", "b"], [1.0, -2.0]),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    assert figs[1].axes[0].get_xlabel() == "time (s)"
    assert "Hz" in figs[1].axes[0].get_ylabel()
    assert len(figs[0].axes) == 3
