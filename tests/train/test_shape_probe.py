"""Shape probes: the per-stage object features of a tiny model, the linear probe, the command."""

from __future__ import annotations

import pytest
import torch

from tvlt.layout import TokenLayout
from tvlt.mae import default_masking
from tvlt.masking import encoder_masks
from tvlt.modeling import TvltForPreTraining
from tvlt.train import corpus, shape_probe
from tvlt.train.__main__ import PRESETS, main
from tvlt.train.evaluate import object_cover
from tvlt.train.inputs import clip_geometry, model_inputs

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny() -> TvltForPreTraining:
    torch.manual_seed(0)
    return TvltForPreTraining(PRESETS["tiny"]()).eval()


def test_object_features_pool_each_stage_over_the_object_tokens(tiny):
    tiny.train()
    features, shapes = shape_probe.object_features(tiny, "val", list(range(6)), seed=3, device=CPU, chunk=4)
    assert tiny.training  # its mode is left alone (the features themselves come from eval mode)
    tiny.eval()
    config, layout = tiny.config, TokenLayout.from_config(tiny.config)
    n = len(shapes)
    assert n > 0 and ((shapes >= 0) & (shapes < 6)).all()
    (p, q), channels = config.image_patch_size, config.num_image_channels
    assert features["visible pixels"].shape == (n, p * q * channels)
    assert features["encoder"].shape == (n, config.hidden_size)
    assert features["decoder at hidden"].shape == (n, config.decoder_hidden_size)
    # the first object of the first chunk, recomputed: its visible patches' mean
    clips = corpus.scene_batch("val", list(range(4)), CPU, **clip_geometry(config))
    pixel_values, audio_values = model_inputs(clips)
    masks = encoder_masks(config, pixel_values, audio_values, None, None, *default_masking(config, 3))
    hidden = masks.video_is_masked.flatten(1)
    cover = object_cover(clips.meta, layout).flatten(2)
    kept = ((cover & ~hidden[:, None]).any(2) & (cover & hidden[:, None]).any(2)).nonzero()
    b, o = kept[0].tolist()
    visible = cover[b, o] & ~hidden[b]
    torch.testing.assert_close(features["visible pixels"][0], layout.patchify_video(pixel_values)[b, visible].mean(0))
    assert shapes[0] == clips.meta["shape"][b, o]


def test_linear_probe_separates_what_is_separable_and_not_noise():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(600, 12, generator=generator)
    y = x[:, :6].argmax(dim=1)  # a linear function of the features
    before = torch.random.get_rng_state()
    train, test = shape_probe.linear_probe(x[:400], y[:400], x[400:], y[400:], 6)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is untouched
    assert test > 0.9
    noise = torch.randint(0, 6, (600,), generator=generator)
    _, test = shape_probe.linear_probe(x[:400], noise[:400], x[400:], noise[400:], 6)
    assert test < 0.35


def test_probe_shape_command_prints_every_stage(tiny, tmp_path, capsys):
    tiny.save_pretrained(tmp_path)
    main(["probe-shape", "--model", str(tmp_path), "--train-clips", "8", "--val-clips", "6", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "chance 0.167" in out
    for stage in shape_probe.STAGES:
        assert stage in out
