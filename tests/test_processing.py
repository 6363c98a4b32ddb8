"""Parity of our processors with transformers 4.40.2 (fixtures from tests/fixtures/make_media_fixtures.py)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tvlt import audio
from tvlt.audio import mel_frequency_axis
from tvlt.media import AudioClip, InvalidArrayError, VideoClip, load_audio
from tvlt.processing import TvltFeatureExtractor, TvltImageProcessor, TvltProcessor

MEDIA = Path(__file__).parent / "fixtures" / "media"


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(MEDIA / "parity.npz"))


def test_audio_batch_matches_transformers(ref):
    batch = [ref[f"audio_in_{i}"] for i in range(3)]
    out = TvltFeatureExtractor()(batch, sampling_rate=44100, return_tensors="np")
    assert out["audio_values"].shape == ref["audio_values"].shape
    assert np.abs(out["audio_values"] - ref["audio_values"]).max() < 1e-3
    np.testing.assert_array_equal(out["audio_mask"], ref["audio_mask"])
    assert out["audio_mask"].dtype == np.float32 and out["audio_values"].dtype == np.float32


def test_real_recording_file_decodes_like_fixture(ref):
    np.testing.assert_allclose(load_audio(MEDIA / "pluck.wav").waveform, ref["audio_in_1"], atol=1e-6)


def test_other_rates_are_resampled(ref):
    ours = TvltFeatureExtractor()(ref["speech16k"], sampling_rate=16000, return_tensors="np")["audio_values"]
    theirs = ref["speech16k_audio_values"]  # transformers on soxr-resampled audio
    assert ours.shape == theirs.shape
    passband = mel_frequency_axis() < 7000  # resamplers differ only near the 8 kHz Nyquist edge of the source
    assert np.abs(ours - theirs)[..., passband].max() < 5e-3


@pytest.mark.parametrize("name", ["photo", "wide", "small", "video3"])
def test_pixels_match_transformers(ref, name):
    out = TvltImageProcessor()(ref[f"frames_{name}"], return_tensors="np")
    expected = (ref[f"levels_{name}"] / 255.0 - 0.5) / 0.5
    assert out["pixel_values"].shape == expected.shape
    assert np.abs(out["pixel_values"] - expected).max() < 2e-2
    assert out["pixel_mask"].shape == (1, expected.shape[1] * 196) and out["pixel_mask"].all()


def test_ragged_video_batch_mask_matches_and_pads(ref):
    out = TvltImageProcessor()([ref["frames_video3"], ref["frames_wide"]], return_tensors="pt")
    np.testing.assert_array_equal(out["pixel_mask"].numpy(), ref["pixel_mask_batch"])
    assert out["pixel_mask"].dtype == torch.int64 and out.pixel_values.shape == (2, 3, 3, 224, 224)
    assert (out.pixel_values[1, 1:] == 0).all()


def test_long_video_is_subsampled_evenly():
    frames = np.stack([np.full((20, 30, 3), i, np.uint8) for i in range(32)])
    out = TvltImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})(frames, return_tensors="np")
    levels = np.round((out["pixel_values"][0, :, 0, 0, 0] * 0.5 + 0.5) * 255).astype(int)
    assert list(levels) == [2, 6, 10, 14, 18, 22, 26, 30]
    assert out["pixel_mask"].shape == (1, 8 * 4)


def test_processor_accepts_media_clips_and_mixed():
    clip = VideoClip(np.zeros((2, 40, 60, 3), np.uint8), np.array([0.0, 0.5]), 1.0, 2.0, (40, 60))
    sound = AudioClip(np.zeros(44100, np.float32), 44100, 0.0, 1.0, False, 44100, 1)
    out = TvltProcessor(TvltImageProcessor(), TvltFeatureExtractor())(
        images=clip, audio=sound, images_mixed=[clip, clip], return_tensors="pt")
    assert set(out) == {"audio_values", "audio_mask", "pixel_values", "pixel_mask", "pixel_values_mixed", "pixel_mask_mixed"}
    assert out["audio_values"].shape == (1, 1, 96, 128) and out["audio_values"].min() == -1  # silence
    assert out["pixel_values_mixed"].shape == (2, 2, 3, 224, 224)


def test_invalid_audio_raises():
    with pytest.raises(InvalidArrayError):
        TvltFeatureExtractor()(np.array([0.0, np.nan] * 1000, np.float32))
    with pytest.raises(ValueError):
        TvltProcessor(TvltImageProcessor(), TvltFeatureExtractor())()


def test_config_round_trip_and_reads_transformers_json(tmp_path):
    hf = json.loads((MEDIA / "hf_preprocessor_config.json").read_text())
    assert TvltFeatureExtractor.from_dict(hf).spectrogram_length == 2048
    processor = TvltProcessor(TvltImageProcessor(num_frames=4), TvltFeatureExtractor(spectrogram_length=512))
    processor.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert {k: v for k, v in hf.items() if k != "spectrogram_length"}.items() <= written.items()
    loaded = TvltProcessor.from_pretrained(tmp_path)
    assert loaded.image_processor.num_frames == 4 and loaded.feature_extractor.spectrogram_length == 512


def test_long_audio_gives_the_same_features_as_its_model_length_prefix():
    extractor = TvltFeatureExtractor(spectrogram_length=64)
    wave = np.random.default_rng(3).standard_normal(44100 * 4).astype(np.float32) * 0.1
    long = extractor(wave, sampling_rate=44100, return_tensors="np")["audio_values"]
    reference = audio.log_mel_spectrogram_np(wave)[:64]
    assert long.shape[2] == 64
    np.testing.assert_allclose(long[0, 0], reference, atol=1e-6)
