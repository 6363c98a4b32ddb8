"""Recognising hidden objects in reconstructions: squares, identification, and the table on real scenes."""
import math

import pytest
import torch

from tvlt.config import TvltConfig
from tvlt.layout import TokenLayout
from tvlt.train import corpus, recognition, scenes, synth
from tvlt.train.corpus import scene_batch

GEOMETRY = {"image_size": 48, "num_frames": 4}


def test_object_squares_cover_the_bounding_square_while_visible():
    meta = {"centres": torch.tensor([[[[20.0, 12.0], [20.0, 12.0]]]]),  # (B=1, O=1, T=2, (x, y))
            "diameter": torch.tensor([[8.0]]), "visible": torch.tensor([[[True, False]]])}
    square = recognition.object_squares(meta, 0, 32)  # (1, 2, 32, 32)
    rows, cols = square[0, 0].nonzero(as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (8, 15, 16, 23) and len(rows) == 64
    assert not square[0, 1].any()


def test_identify_picks_the_closest_candidate_per_owner():
    prediction = torch.tensor([[0.0], [0.0], [1.0]])  # 3 pixels, 1 channel: owners 0, 0, 1
    candidates = torch.tensor([[[0.1], [0.1], [0.0]], [[0.5], [0.5], [0.9]]])  # (K=2, n=3, 1)
    shown = recognition.identify(prediction, candidates, torch.tensor([0, 0, 1]), 2)
    assert shown.tolist() == [0, 1]


def _pixels(frames: torch.Tensor) -> torch.Tensor:
    return corpus.unit_pixels(frames).movedim(-1, -3)  # (B, T, H, W, 3) uint8 -> (B, T, 3, H, W)


def _left_hidden(indices: list[int]) -> torch.Tensor:
    """(B, T, 48, 48) bool: the left part of every frame hidden."""
    hidden = torch.zeros(len(indices), GEOMETRY["num_frames"], 48, 48, dtype=torch.bool)
    hidden[..., :, :30] = True
    return hidden


def _single_non_circles(count: int) -> list[int]:
    """Validation scenes with one object, not a circle."""
    rows = synth.uniform_rows("val", synth.SCENE_STREAM, list(range(200)), scenes.LOOK_WIDTH + scenes.TIMING_WIDTH)
    look = scenes.scene_look(rows[:, :scenes.LOOK_WIDTH], synth.ClipSpec(image_size=48, num_frames=4))
    keep = (look["num_objects"] == 1) & (look["shape"][:, 0] != 0)
    return keep.nonzero()[:count, 0].tolist()


def test_the_original_frames_show_every_object_and_a_wrong_shape_is_caught():
    indices = _single_non_circles(8)
    clips = scene_batch("val", indices, **GEOMETRY)
    circles = corpus.scene_variants("val", indices, 0, "shape", **GEOMETRY)[0]  # the object drawn as a circle
    hidden = _left_hidden(indices)
    predictions = {"original": _pixels(clips.frames), "as a circle": _pixels(circles)}
    table = recognition.recognition_table(predictions, hidden, clips.meta, "val", indices, GEOMETRY)
    assert table["shape"]["chance"] == 1 / len(scenes.SHAPES)
    for attribute in ("shape", "colour"):
        for subset in ("mostly hidden", "wholly hidden"):
            assert table[attribute][subset]["object frames"] > 0
            assert table[attribute][subset]["original"] == 1.0
    assert table["shape"]["mostly hidden"]["as a circle"] == 0.0
    assert table["colour"]["mostly hidden"]["as a circle"] == 1.0  # the colour is still right


def test_object_frames_the_hidden_pixels_cannot_tell_apart_are_left_out():
    indices = _single_non_circles(4)
    clips = scene_batch("val", indices, **GEOMETRY)
    hidden = torch.zeros(len(indices), GEOMETRY["num_frames"], 48, 48, dtype=torch.bool)
    table = recognition.recognition_table({"original": _pixels(clips.frames)}, hidden, clips.meta, "val", indices,
                                          GEOMETRY)
    assert table["shape"]["mostly hidden"]["object frames"] == 0  # nothing hidden: nothing counted
    assert math.isnan(table["shape"]["mostly hidden"]["original"])


def test_the_alternatives_loss_is_low_for_the_true_shape_and_high_for_a_wrong_one():
    indices = _single_non_circles(8)
    clips = scene_batch("val", indices, **GEOMETRY)
    rendered = corpus.scene_variants("val", indices, 0, "shape", **GEOMETRY)  # (6, B, T, H, W, 3)
    variants = {0: (torch.arange(len(indices)), rendered)}
    hidden = _left_hidden(indices)

    def loss(frames: torch.Tensor, temperature: float = 0.01) -> float:
        return float(recognition.alternatives_loss(frames, hidden, clips.meta, "shape", variants, temperature))

    original, circles = _pixels(clips.frames), _pixels(rendered[0])
    assert loss(original) < 0.05 < math.log(len(scenes.SHAPES)) < loss(circles)
    assert loss(circles, temperature=1e3) == pytest.approx(math.log(len(scenes.SHAPES)), abs=1e-3)  # flat logits


def test_the_alternatives_loss_pushes_a_blend_towards_the_true_shape():
    indices = _single_non_circles(4)
    clips = scene_batch("val", indices, **GEOMETRY)
    rendered = corpus.scene_variants("val", indices, 0, "shape", **GEOMETRY)
    variants = {0: (torch.arange(len(indices)), rendered)}
    hidden = _left_hidden(indices)
    blend = _pixels(rendered).mean(dim=0).requires_grad_()  # every shape at once
    recognition.alternatives_loss(blend, hidden, clips.meta, "shape", variants, 0.1).backward()
    step = -blend.grad.movedim(-3, -1)  # (B, T, H, W, 3): the direction that lowers the loss
    towards_truth = (_pixels(clips.frames).movedim(-3, -1) - blend.detach().movedim(-3, -1))
    assert (step * towards_truth).sum() > 0
    assert not blend.grad.movedim(-3, -1)[~hidden].any()  # only hidden pixels are asked for


def test_the_alternatives_loss_is_zero_without_hidden_object_pixels():
    indices = _single_non_circles(2)
    clips = scene_batch("val", indices, **GEOMETRY)
    rendered = corpus.scene_variants("val", indices, 0, "shape", **GEOMETRY)
    frames = _pixels(clips.frames).requires_grad_()
    hidden = torch.zeros(len(indices), GEOMETRY["num_frames"], 48, 48, dtype=torch.bool)
    loss = recognition.alternatives_loss(frames, hidden, clips.meta, "shape", {0: (torch.arange(2), rendered)}, 0.1)
    loss.backward()
    assert float(loss.detach()) == 0.0 and not frames.grad.any()


def test_slot_variants_render_every_used_slot_at_its_batch_rows():
    indices = list(range(6))
    clips = scene_batch("val", indices, **GEOMETRY)
    variants = recognition.slot_variants("val", indices, clips.meta["shape"], "shape", torch.device("cpu"),
                                         first_row=3, **GEOMETRY)
    assert sorted(variants) == [s for s in range(scenes.MAX_OBJECTS) if (clips.meta["shape"][:, s] >= 0).any()]
    for slot, (rows, rendered) in variants.items():
        used = (clips.meta["shape"][:, slot] >= 0).nonzero().flatten()
        assert torch.equal(rows, used + 3)
        expected = corpus.scene_variants("val", [indices[i] for i in used.tolist()], slot, "shape", **GEOMETRY)
        assert torch.equal(rendered, expected)


def test_the_patch_level_loss_reads_the_decoder_patches_and_the_hidden_tokens():
    indices = _single_non_circles(4)
    clips = scene_batch("val", indices, **GEOMETRY)
    rendered = corpus.scene_variants("val", indices, 0, "shape", **GEOMETRY)
    variants = {0: (torch.arange(len(indices)), rendered)}
    layout = TokenLayout.from_config(TvltConfig.tiny(image_size=48, num_frames=4, frequency_length=128))
    hidden = torch.zeros(len(indices), 4, 3, 3, dtype=torch.bool)  # 16 px patches: the left two columns hidden
    hidden[..., :2] = True

    def loss(frames: torch.Tensor) -> float:
        return float(recognition.patch_alternatives_loss(layout, layout.patchify_video(frames), hidden.flatten(1),
                                                         clips.meta, "shape", variants, 0.01))

    pixel_hidden = hidden.repeat_interleave(16, dim=2).repeat_interleave(16, dim=3)  # (B, T, 48, 48)
    circles = _pixels(rendered[0])
    assert loss(_pixels(clips.frames)) < 0.05 < math.log(len(scenes.SHAPES)) < loss(circles)
    expected = recognition.alternatives_loss(circles, pixel_hidden, clips.meta, "shape", variants, 0.01)
    assert loss(circles) == pytest.approx(float(expected))
