import librosa
import numpy as np
import pytest
import torch

from tvlt import audio


def test_mel_filter_bank_matches_librosa():
    ours = audio.mel_filter_bank()
    ref = librosa.filters.mel(sr=44100, n_fft=2048, n_mels=128, fmin=0.0, fmax=22050.0, htk=False, norm="slaney")
    assert ours.shape == (128, 1025)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-9)


def test_mel_scale_round_trip():
    hz = np.array([0.0, 440.0, 1000.0, 8000.0, 22050.0])
    np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel(hz)), hz, atol=1e-6)


def test_log_mel_shape_range_and_silence():
    wave = np.zeros(44100, np.float32)
    spec = audio.log_mel_spectrogram_np(wave)
    assert spec.shape == (86, 128) and (spec == -1).all()
    tone = 0.003 * np.sin(2 * np.pi * 1000 * np.arange(44100) / 44100).astype(np.float32)
    spec = audio.log_mel_spectrogram_np(tone)  # quiet enough not to saturate at +1
    assert spec.min() >= -1 and -1 < spec.max() < 1
    nearest = np.abs(audio.mel_frequency_axis() - 1000).argmin()
    assert abs(int(spec.mean(0).argmax()) - int(nearest)) <= 1


def test_log_mel_batched_equals_single():
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.standard_normal((2, 3, 5000)).astype(np.float32) * 0.1)
    out = audio.log_mel_spectrogram(batch)
    assert out.shape == (2, 3, 9, 128)
    torch.testing.assert_close(out[1, 2], audio.log_mel_spectrogram(batch[1, 2]))


def test_chunked_banded_mel_power_equals_dense_stft():
    # > FRAME_CHUNK frames, batched: the chunked, banded product must equal torch.stft -> |X|^2 -> dense filters
    wave = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 300 * 512)).astype(np.float32) * 0.1)
    stft = torch.stft(wave, 2048, 512, window=torch.hann_window(2048), center=True, pad_mode="reflect",
                      return_complex=True)  # (2, 1025, 301)
    dense = (torch.from_numpy(audio.mel_filter_bank()).float() @ stft.abs().square()).transpose(1, 2)
    ours = audio.power_mel_spectrogram(wave)
    assert ours.shape == (2, 301, 128) and 301 > audio.FRAME_CHUNK
    torch.testing.assert_close(ours, dense, rtol=1e-4, atol=1e-6 * float(dense.max()))


def test_short_waveforms_use_numpy_reflect_padding():
    wave = torch.arange(5, dtype=torch.float32)
    np.testing.assert_array_equal(audio.reflect_pad(wave, 1024).numpy(), np.pad(wave.numpy(), 1024, mode="reflect"))


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 48000])
def test_resample_keeps_a_tone(rate):
    tone = np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
    out = audio.resample_np(tone, rate, 44100)
    assert out.shape == (44100,)
    ideal = np.sin(2 * np.pi * 440 * np.arange(44100) / 44100)
    assert np.abs(out - ideal)[300:-300].max() < 1e-3


def test_resample_agrees_with_librosa():
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    wave = sum(rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in rng.uniform(50, 6000, 20))
    wave = wave.astype(np.float32)
    ours = audio.resample_np(wave, 16000, 44100)
    ref = librosa.resample(wave, orig_sr=16000, target_sr=44100, res_type="soxr_hq")
    assert len(ours) == len(ref)
    assert np.abs(ours[500:-500] - ref[500:-500]).max() < 1e-3 * np.abs(ref).max()


def test_griffin_lim_inverse_is_deterministic_and_close():
    t = np.arange(44100) / 44100
    wave = (0.3 * np.sin(2 * np.pi * 660 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    spec = audio.log_mel_spectrogram_np(wave)
    rebuilt = audio.mel_to_waveform(spec, n_iter=8)
    assert rebuilt.shape == (86 * 512,) and rebuilt.dtype == np.float32
    np.testing.assert_array_equal(rebuilt, audio.mel_to_waveform(spec, n_iter=8))
    again = audio.log_mel_spectrogram_np(rebuilt)
    assert np.abs(again - spec)[2:-2].mean() < 0.05


def test_db_inverse_of_scaling():
    values = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_allclose(audio.audio_values_to_db(values), [-60.0, -20.0, 20.0])


def test_axes_and_patch_edges():
    times = audio.spectrogram_time_axis(86)
    assert times[0] == 0 and abs(times[-1] - 85 * 512 / 44100) < 1e-12
    freqs = audio.mel_frequency_axis()
    assert freqs.shape == (128,) and np.all(np.diff(freqs) > 0) and 0 < freqs[0] < freqs[-1] < 22050
    time_edges, freq_edges = audio.audio_patch_edges(40)
    assert len(time_edges) == 4 and time_edges[0] == 0 and len(freq_edges) == 9 and freq_edges[-1] == 22050
