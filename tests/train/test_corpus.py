"""Procedural corpus: determinism, splits, shapes, timing twins, audio-visual timing, face labels."""
import json

import pytest
import torch

from tvlt.train import corpus, faces, scenes, synth
from tvlt.train.corpus import face_batch, scene_batch, timing_twins, to_model_inputs

SPEC = synth.ClipSpec()


def _scene_looks(split: str, indices: range) -> dict[str, torch.Tensor]:
    """Object codes of scenes without rendering them (cheap scan for clips with given objects)."""
    rows = synth.uniform_rows(split, synth.SCENE_STREAM, list(indices), scenes.LOOK_WIDTH + scenes.TIMING_WIDTH)
    return scenes.scene_look(rows[:, :scenes.LOOK_WIDTH], SPEC)


def _single_object_scenes(count: int, shape: int | None = None) -> list[int]:
    look = _scene_looks("val", range(400))
    keep = look["num_objects"] == 1
    if shape is not None:
        keep &= look["shape"][:, 0] == shape
    return keep.nonzero()[:count, 0].tolist()


def _rms(waveform: torch.Tensor, start: float, stop: float) -> float:
    a, b = round(start * SPEC.sampling_rate), round(stop * SPEC.sampling_rate)
    return waveform[max(a, 0):max(b, 1)].square().mean().sqrt().item()


@pytest.mark.parametrize("make", [scene_batch, face_batch])
def test_clip_is_identical_in_any_batch_and_order(make):
    alone = make("train", [17, 3])
    mixed = make("train", list(range(18))[::-1])  # > one CPU chunk, reversed order
    for position, index in enumerate([17, 3]):
        other = 17 - index
        assert torch.equal(alone.frames[position], mixed.frames[other])
        assert torch.equal(alone.waveform[position], mixed.waveform[other])
        for name, value in alone.meta.items():
            assert torch.equal(value[position], mixed.meta[name][other]), name


@pytest.mark.parametrize("make", [scene_batch, face_batch])
def test_splits_and_indices_differ(make):
    train, val, test = (make(split, [0, 1]) for split in ("train", "val", "test"))
    assert not torch.equal(train.frames[0], val.frames[0])
    assert not torch.equal(val.waveform[0], test.waveform[0])
    assert not torch.equal(train.frames[0], train.frames[1])
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        make("dev", [0])


def test_shapes_dtypes_and_ranges():
    scene, face = scene_batch("test", torch.arange(3)), face_batch("test", [0, 1, 2])
    for batch in (scene, face):
        assert batch.frames.shape == (3, 8, 96, 96, 3) and batch.frames.dtype == torch.uint8
        assert batch.waveform.shape == (3, 256 * 512) and batch.waveform.dtype == torch.float32
        assert 0.01 < batch.waveform.abs().max() <= 1.0
    assert scene.labels is None
    assert face.labels.dtype == torch.float32 and face.labels.abs().max() <= 3.0
    small = scene_batch("test", [0], image_size=64, num_frames=4)
    assert small.frames.shape == (1, 4, 64, 64, 3) and small.meta["visible"].shape == (1, 3, 4)


def test_model_inputs_have_tvlt_shapes():
    batch = face_batch("val", [0, 1])
    pixels, audio = to_model_inputs(batch)  # tvlt.audio.log_mel_spectrogram
    assert pixels.shape == (2, 8, 3, 96, 96) and pixels.dtype == torch.float32
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0
    assert audio.shape == (2, 1, 256, 128) and -1.0 <= audio.min() and audio.max() <= 1.0
    _, stand_in = to_model_inputs(batch, log_mel=lambda w: w.reshape(2, 256, 512)[..., :4])
    assert stand_in.shape == (2, 1, 256, 4)


def test_objects_differ_within_a_clip_and_codes_are_consistent():
    look = _scene_looks("train", range(200))
    active = look["shape"] >= 0
    assert torch.equal(active.sum(1), look["num_objects"])
    assert set(look["num_objects"].tolist()) == {1, 2, 3}
    for colours, used in zip(look["colour"], active):
        assert len(set(colours[used].tolist())) == int(used.sum())  # distinct colours -> distinct pitches


def test_visibility_matches_sound_events():
    batch = scene_batch("val", range(12))
    times = SPEC.frame_times()[None, None, None]  # (1, 1, 1, T)
    on, off = batch.meta["onsets"][..., None], batch.meta["offsets"][..., None]
    sounding = ((on <= times) & (times < off) & (on >= 0)).any(dim=2)  # (B, O, T)
    assert torch.equal(sounding, batch.meta["visible"])
    assert batch.meta["visible"].any(dim=2).sum() == batch.meta["num_objects"].sum()  # every object appears


def test_single_object_is_drawn_exactly_while_it_sounds():
    indices = _single_object_scenes(4)
    batch = scene_batch("val", indices)
    for b in range(len(indices)):
        visible = batch.meta["visible"][b, 0]
        hidden = batch.frames[b][~visible]
        assert (hidden == hidden[0]).all()  # only the background when silent
        changed = (batch.frames[b][visible] != hidden[0]).any(dim=-1).float().mean(dim=(1, 2))
        diameter = batch.meta["diameter"][b, 0].item()
        assert (changed > 0.4 * diameter**2 / 96**2).all()  # the object covers a good part of its box
        for k, seen in enumerate(visible.tolist()):
            t = SPEC.frame_times()[k].item()
            assert (_rms(batch.waveform[b], t - 0.01, t + 0.01) > 1e-3) == seen


def test_audio_energy_rises_at_onsets():
    indices = _single_object_scenes(6)
    batch = scene_batch("val", indices)
    for b in range(len(indices)):
        for onset in batch.meta["onsets"][b, 0].tolist():
            if onset < 0:
                continue
            before, after = _rms(batch.waveform[b], onset - 0.02, onset - 0.001), _rms(batch.waveform[b], onset + 0.006, onset + 0.02)
            assert after > 1e-3 and before < 1e-4 * max(after, 1.0) + 1e-6


def test_colour_sets_pitch_of_a_sine_object():
    index = _single_object_scenes(1, shape=scenes.SHAPES.index("circle"))[0]
    batch = scene_batch("val", [index])
    spectrum = torch.fft.rfft(batch.waveform[0]).abs()
    peak_hz = spectrum.argmax().item() * SPEC.sampling_rate / SPEC.num_samples
    assert peak_hz == pytest.approx(scenes.PITCHES[batch.meta["colour"][0, 0]], rel=0.01)


def test_timing_twins_share_objects_but_not_timing():
    twins = timing_twins("train", 11, 4)
    original = scene_batch("train", [11])
    assert torch.equal(twins.frames[0], original.frames[0]) and torch.equal(twins.waveform[0], original.waveform[0])
    for name in ("shape", "colour", "size", "texture", "centres", "background"):
        assert (twins.meta[name] == twins.meta[name][:1]).all(), name
    active = twins.meta["shape"][0] >= 0
    patterns = {tuple(p[active].tolist()) for p in twins.meta["pattern"]}
    assert len(patterns) == 4
    for j in range(1, 4):
        assert not torch.equal(twins.meta["onsets"][0], twins.meta["onsets"][j])
        same_frame = (twins.meta["visible"][0] == twins.meta["visible"][j]).all(dim=0)  # (T,)
        frames_equal = (twins.frames[0] == twins.frames[j]).flatten(1).all(dim=1)
        assert torch.equal(frames_equal, same_frame)
    assert torch.equal(timing_twins("train", 11, 2).waveform[1], twins.waveform[1])  # twin j fixed


@pytest.mark.parametrize("attribute", ["shape", "colour"])
def test_scene_variants_change_one_object_and_keep_the_rest(attribute, monkeypatch):
    indices = [0, 1, 2, 3, 4, 5]
    original = scene_batch("val", indices, image_size=48, num_frames=4)
    monkeypatch.setattr(corpus, "CPU_CHUNK", 4)  # two chunks
    variants = corpus.scene_variants("val", indices, 1, attribute, image_size=48, num_frames=4)  # (K, B, T, H, W, 3)
    assert variants.shape == (len(scenes.SHAPES if attribute == "shape" else scenes.COLOURS), *original.frames.shape)
    for b in range(len(indices)):
        code, shown = int(original.meta[attribute][b, 1]), original.meta["visible"][b, 1].any()
        if code < 0:  # no second object: every variant is the clip itself
            assert all(torch.equal(v[b], original.frames[b]) for v in variants)
            continue
        assert torch.equal(variants[code, b], original.frames[b])
        other = (code + 1) % len(variants)
        assert torch.equal(variants[other, b], original.frames[b]) != bool(shown)
    assert (original.meta["shape"][:, 1] >= 0).any()


def test_scene_variants_reject_other_attributes():
    with pytest.raises(ValueError, match="attribute must be one of"):
        corpus.scene_variants("val", [0], 0, "size")


def test_timing_twin_count_is_validated():
    with pytest.raises(ValueError, match="count 0"):
        timing_twins("train", 0, 0)


def test_face_label_is_sum_of_cues_and_conflicts_are_as_documented():
    rows = synth.uniform_rows("train", synth.FACE_STREAM, list(range(3000)), faces.WIDTH)
    params = faces.face_params(rows)
    face, voice = params["face_valence"], params["voice_valence"]
    assert torch.equal(params["label"], (face + voice).clamp(-3, 3))
    assert face.abs().min() >= faces.MIN_MAGNITUDE and face.abs().max() <= faces.MAX_VALENCE
    assert voice.abs().min() >= faces.MIN_MAGNITUDE and voice.abs().max() <= faces.MAX_VALENCE
    assert torch.equal(params["conflict"], face.sign() != voice.sign())
    assert params["conflict"].float().mean().item() == pytest.approx(faces.CONFLICT_FRACTION, abs=0.03)
    batch = face_batch("train", [0, 1])
    assert torch.equal(batch.labels, params["label"][:2])


def test_mouth_opening_follows_voice_envelope():
    batch = face_batch("test", range(6))
    lips = torch.tensor([round(255 * c) for c in faces.LIPS])
    correlations = []
    for b in range(6):
        lip_pixels = ((batch.frames[b].int() - lips).abs().max(dim=-1).values < 12).flatten(1).sum(1).float()
        loudness = torch.tensor([_rms(batch.waveform[b], t - 0.01, t + 0.01) for t in SPEC.frame_times().tolist()])
        assert torch.corrcoef(torch.stack([lip_pixels, batch.meta["mouth_opening"][b]]))[0, 1] > 0.95
        correlations.append(torch.corrcoef(torch.stack([lip_pixels, loudness]))[0, 1])
    assert torch.stack(correlations).mean() > 0.8


def test_render_examples_writes_clips_and_manifest(tmp_path):
    pytest.importorskip("tvlt.media")
    manifest = json.loads(corpus.render_examples(tmp_path, n=4).read_text())
    assert [entry["kind"] for entry in manifest] == ["scene", "scene", "face", "face"]
    for entry in manifest:
        assert (tmp_path / entry["file"]).stat().st_size > 1000
    assert manifest[0]["objects"] and manifest[2]["label"] is not None
