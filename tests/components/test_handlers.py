from __future__ import annotations

from components import settings  # noqa: F401

import os
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from components import attention_view, inputs, mae_view, model_view, patches, retrieval_view, sentiment_view
from components.core import CLASSIFICATION, Clip, ClipStore, ModelRegistry
from tvlt.layout import TokenLayout
from tests.components.helpers import TINY


def layout_of(ctx, key):
    model = ctx.registry.default
    x = ctx.clip(key).inputs(model)
    return TokenLayout.from_config(model.config, x["pixel_values"].shape[1], x["audio_values"].shape[2])


# ---------------------------------------------------------------- loading
def test_load_clip_decodes_once_and_reports(ctx, app_files):
    key, status = inputs.load_clip(ctx, str(app_files["clip"]), None, 0.0, 2.0, "default", None)
    clip = ctx.clip(key)
    assert clip.frames.shape[0] == TINY["num_frames"] and clip.frames.dtype == np.uint8
    assert "clip.mp4" in status
    first = clip.inputs(ctx.registry.default)
    assert clip.inputs(ctx.registry.default) is first  # reused, not recomputed


@pytest.mark.parametrize("name, fragment", [("text", "notes.mp4"), ("empty", "empty.mp4"), ("truncated", "truncated.mp4")])
def test_unreadable_media_becomes_a_sentence(ctx, app_files, name, fragment):
    with pytest.raises(gr.Error) as info:
        inputs.load_clip(ctx, str(app_files[name]), None, 0.0, 2.0, "default", None)
    assert fragment in info.value.message
    assert "Traceback" not in info.value.message


def test_gone_upload_and_silent_audio_become_sentences(ctx, app_files, tmp_path):
    with pytest.raises(gr.Error, match="gone.mp4 was not found; upload the file again"):  # e.g. pruned from temp
        inputs.load_clip(ctx, str(tmp_path / "gone.mp4"), None, 0.0, 2.0, "default", None)
    with pytest.raises(gr.Error, match="silent.mp4 has no audio track; upload an audio file"):  # as the audio
        inputs.load_clip(ctx, str(app_files["clip"]), str(app_files["silent"]), 0.0, 2.0, "default", None)


def test_missing_input_and_bad_windows(ctx, app_files):
    with pytest.raises(gr.Error, match="Upload or record"):
        inputs.load_clip(ctx, None, None, 0.0, 2.0, "default", None)
    with pytest.raises(gr.Error, match="duration"):
        inputs.load_clip(ctx, str(app_files["clip"]), None, 0.0, 0.0, "default", None)
    with pytest.raises(gr.Error, match="duration"):
        inputs.load_clip(ctx, str(app_files["clip"]), None, 0.0, settings.MAX_WINDOW_S + 1, "default", None)
    with pytest.raises(gr.Error, match="start"):
        inputs.load_clip(ctx, str(app_files["clip"]), None, -1.0, 2.0, "default", None)
    with pytest.raises(gr.Error, match="nothing is left"):
        inputs.load_clip(ctx, str(app_files["clip"]), None, 50.0, 2.0, "default", None)


def test_upload_size_limit(ctx, app_files, monkeypatch):
    monkeypatch.setattr(settings, "MAX_UPLOAD_MB", 0)
    with pytest.raises(gr.Error, match="MB limit"):
        inputs.load_clip(ctx, str(app_files["clip"]), None, 0.0, 2.0, "default", None)


def test_a_start_past_the_audio(ctx, app_files):
    # a separate short recording replacing a video's sound is taken from 0 s, and the status says so
    _, status = inputs.load_clip(ctx, str(app_files["long"]), str(app_files["tone"]), 4.0, 1.0, "default", None)
    assert "taken from 0 s" in status
    # audio alone has nothing after its end: an error, as for a video
    with pytest.raises(gr.Error, match="nothing is left after start=4"):
        inputs.load_clip(ctx, None, str(app_files["tone"]), 4.0, 1.0, "default", None)


def test_media_length_limit(ctx, app_files, monkeypatch):
    monkeypatch.setattr(settings, "MAX_MEDIA_S", 0.5)
    with pytest.raises(gr.Error, match=r"more than the 0.5 s limit"):
        inputs.load_clip(ctx, str(app_files["clip"]), None, 0.0, 2.0, "default", None)
    with pytest.raises(gr.Error, match=r"more than the 0.5 s limit"):
        inputs.load_clip(ctx, None, str(app_files["tone"]), 0.0, 2.0, "default", None)


def test_silent_video_separate_audio_and_audio_only(ctx, app_files):
    _, status = inputs.load_clip(ctx, str(app_files["silent"]), None, 0.0, 2.0, "default", None)
    assert "no sound track" in status
    key, status = inputs.load_clip(ctx, str(app_files["silent"]), str(app_files["tone"]), 0.0, 2.0, "default", None)
    assert "replaces" in status
    assert np.abs(ctx.clip(key).waveform).max() > 0.1  # the tone, not silence
    key, status = inputs.load_clip(ctx, None, str(app_files["tone"]), 0.0, 2.0, "default", None)
    assert "grey frames" in status
    assert (ctx.clip(key).frames == 128).all()
    _, status = inputs.load_clip(ctx, str(app_files["tone"]), None, 0.0, 2.0, "default", None)  # audio as "video"
    assert "grey frames" in status
    with pytest.raises(gr.Error, match="no video track"):  # with a separate audio, a video is really needed
        inputs.load_clip(ctx, str(app_files["tone"]), str(app_files["tone"]), 0.0, 2.0, "default", None)


def test_window_of_long_media(ctx, app_files):
    key, _ = inputs.load_clip(ctx, str(app_files["long"]), None, 3.0, 2.0, "default", None)
    clip = ctx.clip(key)
    assert clip.timestamps.min() >= 3.0 and clip.timestamps.max() <= 5.0
    heard = inputs.audio_capacity_s(ctx.registry.default.config)  # audio is decoded only as far as the model hears
    assert len(clip.waveform) == pytest.approx(min(2.0, heard) * 44100, abs=2048)


def test_reloading_drops_the_old_clip(ctx, app_files):
    old, _ = inputs.load_clip(ctx, str(app_files["clip"]), None, 0.0, 2.0, "default", None)
    new, _ = inputs.load_clip(ctx, str(app_files["other"]), None, 0.0, 2.0, "default", old)
    assert ctx.clips.get(old) is None and ctx.clips.get(new) is not None


def test_pick_example(ctx, app_files):
    assert inputs.pick_example(ctx, "square one") == str(app_files["clip"])
    with pytest.raises(gr.Error, match="no bundled example"):
        inputs.pick_example(ctx, "nope")


def test_find_examples_reads_manifest_names(tmp_path, app_files):
    import shutil

    shutil.copy(app_files["clip"], tmp_path / "a_clip.mp4")
    (tmp_path / "manifest.json").write_text('{"examples": [{"file": "a_clip.mp4", "name": "Bouncing square"}]}')
    assert inputs.find_examples(tmp_path) == {"Bouncing square": str(tmp_path / "a_clip.mp4")}
    scene = {"kind": "scene", "index": 3, "objects": [{"shape": "star", "colour": "red"}]}
    assert inputs.example_name("scene_test_003.mp4", scene) == "scene 003: red star"
    face = {"kind": "face", "index": 1, "face_valence": -0.5, "voice_valence": 0.9, "label": 0.2}
    assert inputs.example_name("face_test_001.mp4", face) == "face 001: face -0.5, voice +0.9"
    assert inputs.find_examples(tmp_path / "missing") == {}


def test_views_need_a_clip(ctx):
    for call in (lambda: patches.patches_view(ctx, None, "default"),
                 lambda: mae_view.run_mae(ctx, "unknown", "default", 0.5, "random", 0.5, "time", 0),
                 lambda: attention_view.attention_view(ctx, None, "default", 0, "mean of heads"),
                 lambda: sentiment_view.sentiment_view(ctx, None, "default")):
        with pytest.raises(gr.Error, match="Load a clip first"):
            call()


def test_bound_handlers_never_show_a_stack_trace(ctx, caplog):
    from components.common import UNEXPECTED, bind
    from tvlt import media

    def broken(ctx, clip_key: str) -> str:
        raise {"media": media.NoVideoStreamError("x.wav has no video track"), "bug": RuntimeError("boom")}[clip_key]

    handler = bind(broken, ctx)
    with pytest.raises(gr.Error, match="x.wav has no video track"):
        handler("media")
    with caplog.at_level("ERROR", logger="tvlt_explorer"), pytest.raises(gr.Error) as info:
        handler("bug")
    assert info.value.message == UNEXPECTED and "boom" not in info.value.message
    assert "broken failed" in caplog.text and "RuntimeError: boom" in caplog.text  # the trace stays in the server log
    with pytest.raises(gr.Error, match="Load a clip first"):  # sentences pass through unchanged
        bind(patches.patches_view, ctx)(None, "default")


# ---------------------------------------------------------------- model picker
def test_load_model_errors_are_sentences(ctx, tmp_path, monkeypatch):
    with pytest.raises(gr.Error, match="No checkpoint found"):
        inputs.load_model(ctx, str(tmp_path / "missing"))
    with pytest.raises(gr.Error, match="without a config.json"):
        inputs.load_model(ctx, str(tmp_path))
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}')
    with pytest.raises(gr.Error, match="gpt holds a GPT2LMHeadModel, not a TVLT model"):
        inputs.load_model(ctx, str(tmp_path / "gpt"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(gr.Error, match="could not reach the Hugging Face Hub"):
        inputs.load_model(ctx, "nobody-here/no-such-model")


def test_public_server_refuses_local_paths_in_the_picker(ctx, app_files, monkeypatch):
    monkeypatch.setattr(settings, "PICKER_LOCAL_PATHS", False)
    for source in (str(app_files["sentiment"]), "/etc", "../x.ckpt"):
        with pytest.raises(gr.Error, match="local paths are switched off"):
            inputs.load_model(ctx, source)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(gr.Error, match="could not reach the Hugging Face Hub"):  # hub ids still go through
        inputs.load_model(ctx, "nobody-here/no-such-model")


def test_load_model_picks_a_classifier_for_sentiment(ctx, app_files):
    key, banner = inputs.load_model(ctx, str(app_files["sentiment"]))
    assert ctx.registry.get(key).kind == CLASSIFICATION
    assert "Sentiment model:** **TvltForAudioVisualClassification** from `" + str(app_files["sentiment"]) in banner
    assert inputs.load_model(ctx, "")[0] == "default"
    assert "random" in inputs.model_banner(ctx, None)  # the page says what the model is (here: random weights)


# ---------------------------------------------------------------- views
def test_patches_view(ctx, clip_key):
    frames, spec, layout_fig, counts = patches.patches_view(ctx, clip_key, "default")
    assert all(isinstance(f, Figure) for f in (frames, spec, layout_fig))
    layout = layout_of(ctx, clip_key)
    assert f"**{layout.num_tokens}**" in counts and str(layout.num_video_tokens) in counts


def test_mae_generated_masks(ctx, clip_key):
    video_img, audio_img, (sr, original), (sr1, vocoded), (sr2, recon), stats, video_text, audio_text = \
        mae_view.run_mae(ctx, clip_key, "default", 0.5, "random", 0.5, "time", 3)
    layout = layout_of(ctx, clip_key)
    assert video_img.shape == (*mae_view.video_grid(layout).size, 3)
    assert audio_img.shape == (*mae_view.audio_grid(layout).size, 3)
    assert sr == sr1 == sr2 == 44100 and recon.dtype == vocoded.dtype == np.int16 and len(recon) > 0
    assert len(original) == len(vocoded) == len(recon)
    assert not np.array_equal(vocoded, recon)  # half the spectrogram is the model's guess
    hidden = mae_view.parse_indices(video_text, layout.num_video_tokens, "video")
    assert len(hidden) == layout.num_video_tokens // 2
    assert f"saw **{layout.num_video_tokens - len(hidden)} of {layout.num_video_tokens} video**" in stats
    # the same seed gives the same mask; another seed another
    assert mae_view.run_mae(ctx, clip_key, "default", 0.5, "random", 0.5, "time", 3)[6] == video_text
    # frame masking hides whole frames
    frame_text = mae_view.run_mae(ctx, clip_key, "default", 0.5, "frame", 0.5, "frequency", 0)[6]
    frames = {i // layout.patches_per_frame for i in mae_view.parse_indices(frame_text, layout.num_video_tokens, "v")}
    assert len(frames) == layout.num_frames // 2


def test_mae_explicit_masks_and_clicks(ctx, clip_key):
    layout = layout_of(ctx, clip_key)
    out = mae_view.run_mae_explicit(ctx, clip_key, "default", "0-2, 7", "1")
    assert out[6] == "0-2, 7" and out[7] == "1"
    # a click in the centre of frame 1, patch (1, 0) of any column toggles token video_index(1, 1, 0)
    grid = mae_view.video_grid(layout)
    y, x = grid.origin(1, 2)
    cell_h, cell_w = grid.cell_h, grid.cell_w
    px, py = x + cell_w * 0.25, y + cell_h * 0.75
    token = mae_view.video_click_to_token(layout, px, py)
    assert token == layout.video_index(1, 1, 0)
    assert token == 6
    assert mae_view.toggle_token("0-2, 7", token, layout.num_video_tokens, "video") == "0-2, 6-7"
    assert mae_view.toggle_token("0-2, 6-7", token, layout.num_video_tokens, "video") == "0-2, 7"
    # the top-left of the spectrogram is the first time patch and the highest frequency band
    agrid = mae_view.audio_grid(layout)
    y, x = agrid.origin(0, 0)
    assert mae_view.audio_click_to_token(layout, x + 1, y + 1) == layout.audio_index(0, layout.audio_freq_patches - 1)


def test_mae_bad_input(ctx, clip_key):
    with pytest.raises(gr.Error, match="only 16 video tokens"):
        mae_view.run_mae_explicit(ctx, clip_key, "default", "99", "")
    with pytest.raises(gr.Error, match="token numbers"):
        mae_view.run_mae_explicit(ctx, clip_key, "default", "two", "")
    with pytest.raises(gr.Error, match="ratio"):
        mae_view.run_mae(ctx, clip_key, "default", 1.0, "random", 0.5, "time", 0)
    with pytest.raises(gr.Error, match="Mask types"):
        mae_view.run_mae(ctx, clip_key, "default", 0.5, "diagonal", 0.5, "time", 0)


def test_attention_views(ctx, clip_key):
    layout = layout_of(ctx, clip_key)
    cls_f, cls_s, roll_f, roll_s, notes = attention_view.attention_view(ctx, clip_key, "default", 1, "0")
    assert cls_f.shape == roll_f.shape == (*attention_view.frames_grid(layout).size, 3)
    assert cls_s.ndim == 3 and "Layer 1, head 0" in notes
    image, note = attention_view.audio_to_video(ctx, clip_key, "default", 0, "mean of heads", 0.0, 0.2)
    assert image.shape == cls_f.shape and "time patches 0–" in note
    image, note = attention_view.video_to_audio(ctx, clip_key, "default", 0, "1", 0, 1, 1, 0)
    assert image.shape == cls_s.shape and "Frame 0" in note


def test_attention_bad_input(ctx, clip_key, monkeypatch):
    with pytest.raises(gr.Error, match="Layer 9 does not exist"):
        attention_view.attention_view(ctx, clip_key, "default", 9, "mean of heads")
    with pytest.raises(gr.Error, match="Head 5 does not exist"):
        attention_view.attention_view(ctx, clip_key, "default", 0, "5")
    with pytest.raises(gr.Error, match=r"audio span between 0.00 and \d"):
        attention_view.audio_to_video(ctx, clip_key, "default", 0, "0", 30.0, 31.0)
    with pytest.raises(gr.Error, match="inside the frames"):
        attention_view.video_to_audio(ctx, clip_key, "default", 0, "0", 9, 0, 0, 0)

    def only_padding(*args, **kwargs):
        raise ValueError("no visible query token in the selection for batch rows [0]")

    monkeypatch.setattr(attention_view.attention, "video_to_audio_attention", only_padding)
    with pytest.raises(gr.Error, match="No video to use there: No visible query token"):
        attention_view.video_to_audio(ctx, clip_key, "default", 0, "0", 0, 0, 0, 0)


def test_attention_span_is_in_file_seconds_like_the_patches_axis(ctx, app_files):
    from components import inputs

    key, _ = inputs.load_clip(ctx, str(app_files["clip"]), None, 0.5, 1.0, "default", None)  # window 0.5-1.5 s
    _, note = attention_view.audio_to_video(ctx, key, "default", 0, "0", 0.5, 0.7)
    assert "Audio 0.50–" in note and "time patches 0–" in note
    with pytest.raises(gr.Error, match="between 0.50 and .* got 0–0.2 s") as info:
        attention_view.audio_to_video(ctx, key, "default", 0, "0", 0.0, 0.2)  # before the window
    assert "-0.5" not in str(info.value)  # no window-relative numbers leak out
    assert attention_view.default_span(ctx, key) == (0.5, 1.0)  # what a new clip's span starts at


def test_spectrogram_click_picks_a_time_patch_in_file_seconds(ctx, app_files):
    from components import inputs

    key, _ = inputs.load_clip(ctx, str(app_files["clip"]), None, 0.5, 1.0, "default", None)
    layout = layout_of(ctx, key)
    S = ctx.clips.get(key).inputs(ctx.model("default"))["audio_values"].shape[-2]
    patch_s = layout.audio_patch_size[0] * 512 / 44100
    width = attention_view.spectrogram_width(S)
    start, end = attention_view.click_spectrogram(ctx, key, "default", gr.SelectData(None, {"index": [width - 1, 5], "value": None}))
    last = S // layout.audio_patch_size[0] - 1
    assert start == pytest.approx(0.5 + last * patch_s, abs=1e-3) and end == pytest.approx(start + patch_s, abs=1e-3)
    first = attention_view.click_spectrogram(ctx, key, "default", gr.SelectData(None, {"index": [0, 5], "value": None}))
    assert first[0] == pytest.approx(0.5)
    odd, _ = inputs.load_clip(ctx, str(app_files["clip"]), None, 0.2345, 1.0, "default", None)  # not a round start
    column0 = attention_view.click_spectrogram(ctx, odd, "default", gr.SelectData(None, {"index": [0, 5], "value": None}))
    assert column0[0] == pytest.approx(0.2345)
    assert "time patches 0–0" in attention_view.audio_to_video(ctx, odd, "default", 0, "0", *column0)[1]
    _, note = attention_view.audio_to_video(ctx, key, "default", 0, "0", *first)  # the click's span is valid as is
    assert "time patches 0–0" in note


def test_retrieval_and_swap(ctx, clip_key, app_files):
    gallery, summary = retrieval_view.retrieve(ctx, clip_key, "default", [], None)
    assert len(gallery) == len(ctx.examples)  # the current clip is example "square one": listed once
    assert sum("✓ true match" in caption for _, caption in gallery) == 1
    assert "true match landed at **rank" in summary
    keys, note = retrieval_view.add_to_gallery(ctx, str(app_files["other"]), [], "default")
    assert len(keys) == 1 and "other.mp4" in note
    gallery, _ = retrieval_view.retrieve(ctx, clip_key, "default", keys, str(app_files["tone"]))
    assert len(gallery) == 1 + len(ctx.examples)
    table = retrieval_view.swap_audio(ctx, clip_key, "default", [], "current clip", "square two")
    assert table.count("|") > 8 and "swapped" in table
    with pytest.raises(gr.Error, match="two different"):
        retrieval_view.swap_audio(ctx, clip_key, "default", [], "square two", "square two")
    with pytest.raises(gr.Error, match="not in the gallery"):
        retrieval_view.swap_audio(ctx, clip_key, "default", [], "current clip", "nope")
    with pytest.raises(gr.Error, match="Choose a video"):
        retrieval_view.add_to_gallery(ctx, None, [], "default")
    with pytest.raises(gr.Error, match="two different"):  # the current clip is example "square one", same window
        retrieval_view.swap_audio(ctx, clip_key, "default", [], "current clip", "square one")


def test_retrieval_and_swap_with_clips_of_fewer_frames(ctx, app_files, tmp_path):
    from PIL import Image

    short, _ = inputs.load_clip(ctx, str(app_files["clip"]), None, 0.0, 0.3, "default", None)
    assert len(ctx.clip(short).inputs(ctx.model("default"))["pixel_values"][0]) < 4  # fewer frames than the model's
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(tmp_path / "still.png")
    keys, _ = retrieval_view.add_to_gallery(ctx, str(tmp_path / "still.png"), [], "default")  # a 1-frame clip
    gallery, summary = retrieval_view.retrieve(ctx, short, "default", keys, None)
    assert len(gallery) == 1 + len(ctx.examples) and "true match landed at **rank" in summary  # one example deduped
    assert "swapped" in retrieval_view.swap_audio(ctx, short, "default", keys, "current clip", "square two")


def test_bundled_examples_say_what_their_sentiment_label_is():
    assert "reference label: **" in sentiment_view.reference_label("face_test_000.mp4")
    assert "no sentiment" in sentiment_view.reference_label("scene_test_000.mp4")
    assert sentiment_view.reference_label("my_own_video.mp4") == ""


def test_mae_stats_with_nothing_hidden(ctx, clip_key):
    stats = mae_view.run_mae(ctx, clip_key, "default", 0.0, "random", 0.0, "time", 0)[5]
    assert "nan" not in stats and "nothing hidden" in stats


def test_sentiment_view(ctx, clip_key):
    text, seven, binary, fig = sentiment_view.sentiment_view(ctx, clip_key, "default")
    assert "Score" in text and isinstance(fig, Figure)
    assert sum(seven.values()) == pytest.approx(1.0) and len(seven) == 7
    assert sum(binary.values()) == pytest.approx(1.0)


def test_sentiment_confidences_follow_the_documented_rule():
    seven = sentiment_view.seven_class_confidences(2.0, 0.05)
    assert max(seven, key=seven.get).startswith("+2") and seven[max(seven, key=seven.get)] > 0.99
    assert sentiment_view.binary_confidences(0.0, 1.0)["positive (≥ 0)"] == pytest.approx(0.5)
    assert sentiment_view.binary_confidences(3.0, 1.0)["positive (≥ 0)"] > 0.99


def test_sentiment_without_a_sentiment_model(ctx, clip_key):
    registry = ModelRegistry(ctx.registry.default, None)
    bare = type(ctx)(registry, ctx.clips, {})
    with pytest.raises(gr.Error, match="No sentiment model"):
        sentiment_view.sentiment_view(bare, clip_key, "default")


def test_model_info(ctx):
    info, card = model_view.model_info(ctx, None)
    assert "| **total** |" in info and "`hidden_size` | 32" in info
    assert "Sentiment model" in info and "**Provenance:**" in info
    assert "not a bundled model" in card  # the test models are not the bundled ones: no borrowed metrics


def test_model_card_belongs_to_the_checkpoint(ctx, tmp_path):
    import dataclasses

    bundled = dataclasses.replace(ctx.registry.default, directory=settings.DEFAULT_PRETRAIN_DIR)
    assert model_view.model_card(bundled) == settings.MODEL_CARD_PATH.read_text(encoding="utf-8")
    assert "R@1" in model_view.model_card(bundled)
    (tmp_path / "README.md").write_text("# my checkpoint\nmeasured elsewhere\n")
    (tmp_path / "provenance.json").write_text('{"steps": 7, "clips_seen": 70, "wall_seconds": 60, "device": "cpu"}')
    own = dataclasses.replace(ctx.registry.default, directory=tmp_path)
    assert model_view.model_card(own).startswith("# my checkpoint")
    assert "7 steps, 70 clips, 1.0 min on cpu" in model_view.provenance_line(own)
    for broken in ("not json", "[1, 2]", '{"steps": 7, "wall_seconds": null}'):
        (tmp_path / "provenance.json").write_text(broken)
        assert "could not be read" in model_view.provenance_line(own)


# ---------------------------------------------------------------- shared state
def test_clip_store_is_a_bounded_lru():
    store = ClipStore(max_items=2)
    clip = Clip("x", np.zeros((1, 2, 2, 3), np.uint8), np.zeros(1), np.zeros(4, np.float32), 44100, 0.0, 1.0)
    a, b = store.put(clip), store.put(clip)
    store.get(a)  # a is now the most recent
    c = store.put(clip)
    assert store.get(b) is None and store.get(a) is clip and store.get(c) is clip
    assert len({a, b, c}) == 3 and len(a) == 32


def test_registry_evicts_and_says_so(ctx):
    loaded = []

    def loader(source):
        loaded.append(source)
        return type(ctx.registry.default)(**{**ctx.registry.default.__dict__, "key": source, "source": source})

    registry = ModelRegistry(ctx.registry.default, None, loader=loader, max_extra=1)
    one = registry.load("one")
    assert registry.get("one") is one and registry.load("one") is one and loaded == ["one"]
    registry.load("two")
    with pytest.raises(gr.Error, match="unloaded to make room"):  # evicted: never another model's answers
        registry.get("one")
    assert registry.get(None) is registry.default
    assert registry.load(registry.default.source) is registry.default and loaded == ["one", "two"]  # no second copy


def test_prune_temp_removes_only_old_files(tmp_path):
    old, new = tmp_path / "old.png", tmp_path / "new.png"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert settings.prune_temp(3600, tmp_path) == 1
    assert not old.exists() and new.exists()


def test_settings_point_everything_into_one_temp_dir():
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert Path(os.environ["GRADIO_TEMP_DIR"]).is_relative_to(settings.TEMP_ROOT)


def test_model_controls_follow_the_picked_model(ctx):
    layer, head = attention_view.model_controls(ctx, "default")
    config = ctx.registry.default.config
    assert layer.maximum == config.num_hidden_layers - 1
    assert len(head.choices) == 1 + config.num_attention_heads


def test_app_queues_with_the_settings(demo):
    assert demo._queue.max_size == settings.QUEUE_MAX_SIZE
    assert demo._queue.default_concurrency_limit == settings.CONCURRENCY_LIMIT
    assert all(fn.concurrency_limit == "default" for fn in demo.fns.values())  # no handler escapes the limit


def test_views_leave_the_shared_models_untouched(ctx, clip_key):
    models = [ctx.registry.default, ctx.registry.sentiment]
    before = [{k: v.clone() for k, v in m.model.state_dict().items()} for m in models]
    mae_view.run_mae(ctx, clip_key, "default", 0.5, "random", 0.5, "time", 0)
    attention_view.attention_view(ctx, clip_key, "default", 0, "mean of heads")
    retrieval_view.retrieve(ctx, clip_key, "default", [], None)
    sentiment_view.sentiment_view(ctx, clip_key, "default")
    for model, weights in zip(models, before):
        assert not model.model.training and not any(p.requires_grad for p in model.model.parameters())
        assert all(torch.equal(weights[k], v) for k, v in model.model.state_dict().items())
        assert not model.model._forward_hooks and all(not m._forward_hooks for m in model.model.modules())


def test_a_bad_checkpoint_stops_the_app_with_one_sentence(monkeypatch, tmp_path):
    import app

    monkeypatch.setenv(settings.CHECKPOINT_ENV, str(tmp_path / "nowhere" / "model"))
    with pytest.raises(SystemExit) as info:
        app.main()
    message = str(info.value)
    assert message.startswith("TVLT Explorer could not start: ") and "nowhere" in message
    assert "Traceback" not in message and "\n" not in message


def test_one_pass_capture_matches_the_library(ctx, clip_key):
    from tvlt import attention

    model = ctx.registry.default
    x = ctx.clip(clip_key).inputs(model)
    maps, rollout = attention_view.capture(model, x, 1, rollout=True)
    reference = attention.layer_attention(model.model, x["pixel_values"], x["audio_values"], 1, x.get("pixel_mask"),
                                          x.get("audio_mask"))
    full_rollout = attention.attention_rollout(model.model, x["pixel_values"], x["audio_values"], x.get("pixel_mask"),
                                               x.get("audio_mask"))
    for ours, theirs in ((attention.cls_attention(maps, 0), attention.cls_attention(reference, 0)),
                         (attention.cls_attention(rollout), attention.cls_attention(full_rollout))):
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a.nan_to_num(), b.nan_to_num(), atol=1e-5, rtol=1e-4)


def test_sentiment_conditions_match_padding_masks(ctx, clip_key):
    model = ctx.registry.sentiment
    x = ctx.clip(clip_key).inputs(model)
    both, no_video, _ = sentiment_view._condition_inputs(x, model)
    masked = dict(both, pixel_mask=torch.zeros_like(both["pixel_mask"]))
    with torch.no_grad():
        torch.testing.assert_close(model.model(**no_video).logits, model.model(**masked).logits, atol=1e-5, rtol=1e-4)


def test_original_ckpt_loads_through_the_picker(ctx, clip_key, tmp_path):
    from tests.test_convert import original_pretraining
    from tvlt.config import TvltConfig
    from tvlt.modeling import TvltForPreTraining

    torch.manual_seed(0)
    reference = TvltForPreTraining(TvltConfig.tiny(**TINY)).eval()
    path = tmp_path / "TVLT.ckpt"
    torch.save({"state_dict": original_pretraining(reference)}, path)
    key, banner = inputs.load_model(ctx, str(path))
    assert ctx.registry.get(key).kind == "TvltForPreTraining" and str(path) in banner
    assert "| **total** |" in patches.patches_view(ctx, clip_key, key)[3]  # the views run on the converted model


def test_checkpoint_environment_variable(monkeypatch, tmp_path):
    import app

    monkeypatch.setenv(settings.CHECKPOINT_ENV, str(tmp_path / "mine"))
    assert app.default_sources()[0] == str(tmp_path / "mine")
    monkeypatch.delenv(settings.CHECKPOINT_ENV)
    assert app.default_sources()[0] == str(settings.DEFAULT_PRETRAIN_DIR)


def test_retrieval_first_stage_caches_video_embeddings(ctx, clip_key, monkeypatch):
    monkeypatch.setattr(retrieval_view, "FIRST_STAGE_K", 1)
    retrieval_view.warm_gallery(ctx)
    examples = [c for c in ctx.example_clips.values()]
    assert examples and all(c.embeddings for c in examples)
    gallery, summary = retrieval_view.retrieve(ctx, clip_key, "default", [], None)
    assert "kept the top 1" in summary and sum("✓" in caption for _, caption in gallery) == 1
    assert any("not re-scored" in caption for _, caption in gallery)
