"""Recognising hidden objects in reconstructions: squares, identification, and the table on real scenes."""
import torch

from tvlt.train import corpus, recognition, scenes
from tvlt.train.corpus import scene_batch

GEOMETRY = {"image_size": 48, "num_frames": 4}
INDICES = list(range(8))


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


def test_the_original_frames_show_every_object_and_a_wrong_shape_is_caught():
    clips = scene_batch("val", INDICES, **GEOMETRY)
    circles = corpus.scene_variants("val", INDICES, 0, "shape", **GEOMETRY)[0]  # slot 0 drawn as a circle
    hidden = torch.zeros(len(INDICES), GEOMETRY["num_frames"], 48, 48, dtype=torch.bool)
    hidden[..., :, :30] = True  # the left part of every frame
    predictions = {"original": _pixels(clips.frames), "slot 0 as circle": _pixels(circles)}
    table = recognition.recognition_table(predictions, hidden, clips.meta, "val", INDICES, GEOMETRY)
    assert table["shape"]["chance"] == 1 / len(scenes.SHAPES)
    for attribute in ("shape", "colour"):
        for subset in ("mostly hidden", "wholly hidden"):
            assert table[attribute][subset]["original"] == 1.0
    assert table["colour"]["mostly hidden"]["slot 0 as circle"] == 1.0  # the colour is still right
    # only the slot-0 objects that are not circles are shown wrong
    mostly = table["shape"]["mostly hidden"]
    counted = 0
    not_circles = 0
    for slot in range(scenes.MAX_OBJECTS):
        square = recognition.object_squares(clips.meta, slot, 48)
        share = (square & hidden).sum(dim=(-2, -1)) / square.sum(dim=(-2, -1)).clamp_min(1)
        where = share >= recognition.MOSTLY_HIDDEN
        counted += int(where.sum())
        if slot == 0:
            not_circles += int((where & (clips.meta["shape"][:, :1] != 0)).sum())
    assert mostly["objects"] == counted > 0 and not_circles > 0
    assert mostly["slot 0 as circle"] == (counted - not_circles) / counted
