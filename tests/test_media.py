"""Decoding real containers with PyAV: formats, seeking, rotation, VFR, errors (clips generated per test run)."""

from pathlib import Path

import numpy as np
import pytest

from tests import media_clips as mc
from tvlt import media
from tvlt.media import (
    CorruptMediaError, EmptyMediaError, InvalidArrayError, MediaError, MediaTooLongError, NoAudioStreamError,
    NotMediaError, NoVideoStreamError, load_audio, load_video, save_clip,
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {
        "mp4": mc.write_media(d / "av.mp4", "mp4", num_frames=25, audio=mc.tone(1.0, 44100)),
        "video_only": mc.write_media(d / "silent.mp4", "mp4", num_frames=25),
        "webm": mc.write_media(d / "clip.webm", "webm", num_frames=25, audio=mc.tone(1.0, 48000), audio_rate=48000),
        "wav": mc.write_media(d / "stereo.wav", "wav", audio=mc.tone(1.0, 48000, 2), audio_rate=48000),
        "mp3": mc.write_media(d / "voice.mp3", "mp3", audio=mc.tone(1.0, 8000, freq=300), audio_rate=8000),
        "ogg": mc.write_media(d / "voice.ogg", "ogg", audio=mc.tone(1.0, 48000), audio_rate=48000),
        "flac": mc.write_media(d / "voice.flac", "flac", audio=mc.tone(1.0, 22050, 2), audio_rate=22050),
        "m4a": mc.write_media(d / "voice.m4a", "m4a", audio=mc.tone(1.0, 44100, 2)),
        "aac": mc.write_media(d / "voice.aac", "aac", audio=mc.tone(1.0, 44100)),
        "long": mc.write_media(d / "long.mp4", "mp4", num_frames=28, fps=4, gop=4),  # 7 s, keyframe every 1 s
        "dir": d,
    }


@pytest.mark.parametrize("kind", ["mp4", "webm", "wav", "mp3", "ogg", "flac", "m4a", "aac"])
def test_audio_from_every_container(clips, kind):
    clip = load_audio(clips[kind])
    assert clip.sampling_rate == 44100 and clip.waveform.dtype == np.float32 and clip.waveform.ndim == 1
    assert abs(len(clip.waveform) / 44100 - 1.0) < 0.1 and not clip.clipped
    assert 0.2 < np.abs(clip.waveform[4410:-4410]).max() < 0.8  # a 0.5 tone (stereo: average of two tones)


def test_audio_source_metadata(clips):
    wav = load_audio(clips["wav"])
    assert (wav.source_rate, wav.source_channels) == (48000, 2)
    assert load_audio(clips["mp3"]).source_rate == 8000


def test_file_and_array_parity(clips):
    from_file = load_audio(clips["wav"]).waveform
    pcm = (np.clip(mc.tone(1.0, 48000, 2), -1, 1) * 32767).astype(np.int16)
    from_array = load_audio(pcm.T, sampling_rate=48000).waveform  # (L, C) int16 like a wav reader gives
    assert from_file.shape == from_array.shape
    np.testing.assert_allclose(from_file, from_array, atol=1e-5)


def test_audio_window_and_clipping():
    wave = np.random.default_rng(0).standard_normal(44100 * 3).astype(np.float32) * 0.1
    clip = load_audio(wave, sampling_rate=44100, start=1.0, clip_seconds=0.5)
    assert clip.clipped and clip.start == 1.0 and len(clip.waveform) == 22050
    np.testing.assert_array_equal(clip.waveform, wave[44100:66150])
    assert not load_audio(wave, sampling_rate=44100, duration=2.0, clip_seconds=None).clipped


def test_long_file_is_clipped_to_the_spectrogram_length(tmp_path):
    path = mc.write_media(tmp_path / "speech.wav", "wav", audio=mc.tone(25.0, 8000), audio_rate=8000)
    clip = load_audio(path)  # default clip_seconds: TVLT's 2048 spectrogram frames
    assert clip.clipped and clip.start == 0.0 and abs(clip.duration - media.MAX_AUDIO_SECONDS) < 1e-3
    assert len(clip.waveform) // 512 == 2048
    later = load_audio(path, start=20.0)  # 5 s left: not clipped, span reported
    assert not later.clipped and later.start == 20.0 and abs(later.duration - 5.0) < 1e-3


def test_audio_start_in_file_seeks(clips):
    full, tail = load_audio(clips["wav"]).waveform, load_audio(clips["wav"], start=0.5).waveform
    assert abs(len(tail) - 22050) <= 2
    np.testing.assert_allclose(tail[1000:2000], full[23050:24050], atol=1e-4)


def test_silent_audio_is_valid():
    assert (load_audio(np.zeros(1000, np.float32), sampling_rate=16000).waveform == 0).all()


def test_video_sampling_returns_frames_at_targets(clips):
    clip = load_video(clips["long"], num_frames=7)
    assert clip.frames.shape == (7, 32, 48, 3) and clip.frames.dtype == np.uint8
    targets = (np.arange(7) + 0.5) * 7 / 7
    np.testing.assert_allclose(clip.timestamps, np.floor(targets * 4) / 4)
    assert [mc.colour_index(f) for f in clip.frames] == list((clip.timestamps * 4).astype(int))
    assert clip.fps == 4 and clip.source_size == (32, 48)


def test_video_window(clips):
    clip = load_video(clips["long"], num_frames=2, start=2.0, duration=2.0)
    assert [mc.colour_index(f) for f in clip.frames] == [10, 14]  # 2.5 s and 3.5 s at 4 fps


def test_webm_video(clips):
    clip = load_video(clips["webm"], num_frames=4)
    targets = (np.arange(4) + 0.5) * clip.duration / 4  # webm's duration includes the audio's tail
    assert np.all(np.abs(clip.timestamps - targets) <= 1 / 25) and np.all(clip.timestamps <= targets + 1e-6)
    assert [mc.colour_index(f) for f in clip.frames] == list(np.round(clip.timestamps * 25).astype(int))


def test_browser_recording_without_duration_or_index(tmp_path):
    path = mc.write_live_webm(tmp_path / "webcam.webm", num_frames=20, fps=10)
    import av

    with av.open(str(path)) as container:  # the case under test: no length anywhere, at most one index entry
        stream = container.streams.video[0]
        assert container.duration is None and stream.duration is None and len(stream.index_entries) <= 1
    clip = load_video(path, num_frames=8)
    assert clip.duration == pytest.approx(2.0, abs=0.05)
    assert [mc.colour_index(frame) for frame in clip.frames] == [1, 3, 6, 8, 11, 13, 16, 18]  # shown at 0.125 + k/4 s
    window = load_video(path, num_frames=4, start=1.0, duration=0.5)
    assert [mc.colour_index(frame) for frame in window.frames] == [10, 11, 13, 14]  # at 1.0625 + k/8 s
    assert load_audio(path).duration == pytest.approx(2.0, abs=0.05)


def test_rotated_phone_clip_is_upright(tmp_path):
    path = mc.write_media(tmp_path / "phone.mp4", "mp4", num_frames=3, size=(16, 32), rotation=90)
    clip = load_video(path, num_frames=1)
    assert clip.rotation == 90 and clip.frames.shape == (1, 32, 16, 3)  # wide becomes tall


def test_rotation_direction(tmp_path):
    import av

    path = tmp_path / "marked.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)  # counter-clockwise
        pixels = np.zeros((32, 64, 3), np.uint8)
        pixels[:, :32] = 255  # left half white
        container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    frame = load_video(path, num_frames=1).frames[0]
    assert frame.shape == (64, 32, 3)
    assert frame[40:].mean() > 200 and frame[:24].mean() < 50  # turned counter-clockwise: left goes to the bottom


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
@pytest.mark.parametrize("hflip, vflip", [(False, False), (True, False), (False, True)])
def test_display_matrix_with_mirror_is_applied(tmp_path, degrees, hflip, vflip):
    import av

    pixels = np.zeros((32, 64, 3), np.uint8)  # four quadrants of different colours: every orientation differs
    pixels[:16, :32], pixels[:16, 32:], pixels[16:, :32], pixels[16:, 32:] = [255, 0, 0], [0, 255, 0], [0, 0, 255], 255
    path = tmp_path / "oriented.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)  # turn counter-clockwise, then mirror
        container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    expected = np.rot90(pixels, k=degrees // 90)
    expected = expected[:, ::-1] if hflip else expected
    expected = expected[::-1] if vflip else expected
    clip = load_video(path, num_frames=1)
    assert clip.frames.shape == (1, *expected.shape)
    assert np.abs(clip.frames[0].astype(int) - expected).mean() < 12
    assert clip.mirrored == (hflip != vflip)
    assert clip.rotation == (degrees + 180 * vflip) % 360  # a vertical flip is a half turn + a mirror


def test_variable_frame_rate(tmp_path):
    times = [0.0, 0.05, 0.3, 0.31, 0.9, 1.5]
    path = mc.write_media(tmp_path / "vfr.mp4", "mp4", num_frames=6, frame_times=times)
    clip = load_video(path, num_frames=6)
    shown = [mc.colour_index(f) for f in clip.frames]
    for stamp, index in zip(clip.timestamps, shown):
        assert abs(stamp - times[index]) < 2e-3
    assert shown == sorted(set(shown)) and shown[-1] >= 4


def test_one_frame_video_and_image(tmp_path):
    clip = load_video(mc.write_media(tmp_path / "one.mp4", "mp4", num_frames=1))
    assert clip.frames.shape == (1, 32, 48, 3)
    from PIL import Image

    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / "still.png")
    image = load_video(tmp_path / "still.png")
    assert image.frames.shape == (1, 20, 30, 3) and image.fps is None and (image.frames == 200).all()


def test_save_clip_round_trip(tmp_path):
    frames = np.stack([np.full((24, 40, 3), mc.index_colour(i), np.uint8) for i in range(10)])
    wave = mc.tone(0.4, 44100)[0]
    path = save_clip(tmp_path / "out.mp4", frames, fps=10, waveform=wave)
    video = load_video(path, num_frames=10)
    assert [mc.colour_index(f) for f in video.frames] == list(range(10))
    sound = load_audio(path)
    assert abs(sound.duration - 0.4) < 0.05 and np.abs(sound.waveform[4000:12000]).max() > 0.3


# ---------------------------------------------------------------- errors

def test_errors_are_value_errors_naming_the_file(clips):
    with pytest.raises(NoAudioStreamError, match="silent.mp4 has no audio track") as info:
        load_audio(clips["video_only"])
    assert isinstance(info.value, MediaError) and isinstance(info.value, ValueError)
    with pytest.raises(NoVideoStreamError, match="stereo.wav"):
        load_video(clips["wav"])


def test_not_media(tmp_path):
    with pytest.raises(NotMediaError, match="notes.mp4"):
        load_video(mc.write_text(tmp_path / "notes.mp4"))
    with pytest.raises(NotMediaError, match="notes.txt"):
        load_audio(mc.write_text(tmp_path / "notes.txt"))
    # FFmpeg's tty demuxer renders any longer .txt/.nfo file as video frames; subtitles hold neither track
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    subtitles = "1\n00:00:01,000 --> 00:00:02,000\nhello\n"
    for name, text in (("readme.txt", readme), ("readme.nfo", readme), ("captions.srt", subtitles),
                       ("captions.mp4", subtitles)):
        for load in (load_video, load_audio):
            with pytest.raises(NotMediaError, match=name):
                load(mc.write_text(tmp_path / name, text))


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(EmptyMediaError, match="empty.mp4 is empty"):
        load_video(tmp_path / "empty.mp4")
    with pytest.raises(EmptyMediaError):
        load_audio(tmp_path / "empty.mp4")


def test_truncated_files(clips, tmp_path):
    with pytest.raises(CorruptMediaError, match="cut.mp4"):
        load_video(mc.truncate(clips["mp4"], tmp_path / "cut.mp4"))
    with pytest.raises(CorruptMediaError):
        load_video(mc.truncate(clips["mp4"], tmp_path / "head.mp4", 0.02))
    clip = load_audio(mc.truncate(clips["wav"], tmp_path / "cut.wav"))  # a cut wav still plays: what is there
    assert 0.3 < clip.duration < 0.7


def test_corrupt_image(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "ok.png")
    mc.truncate(tmp_path / "ok.png", tmp_path / "bad.png", 0.5)
    with pytest.raises(CorruptMediaError, match="bad.png"):
        load_video(tmp_path / "bad.png")


def test_too_long(clips):
    with pytest.raises(MediaTooLongError, match="long.mp4"):
        load_video(clips["long"], max_seconds=5)
    with pytest.raises(MediaTooLongError):
        load_audio(clips["wav"], max_seconds=0.5)
    with pytest.raises(MediaTooLongError):
        load_audio(np.zeros(44100 * 2, np.float32), sampling_rate=44100, max_seconds=1.0)


@pytest.mark.parametrize("bad", [
    np.array([0.0, np.nan, 0.0]), np.array([0.0, np.inf]), np.zeros((2, 3, 4)), np.array(["a", "b"]),
    np.zeros((10, 10)) + 1j, np.zeros((20, 20)),
])
def test_invalid_arrays(bad):
    with pytest.raises(InvalidArrayError):
        load_audio(bad, sampling_rate=16000)


def test_array_needs_rate_and_samples():
    with pytest.raises(InvalidArrayError, match="sampling_rate"):
        load_audio(np.zeros(100, np.float32))
    with pytest.raises(EmptyMediaError):
        load_audio(np.zeros(0, np.float32), sampling_rate=16000)


def test_save_clip_rejects_bad_frames(tmp_path):
    with pytest.raises(InvalidArrayError):
        save_clip(tmp_path / "x.mp4", np.zeros((2, 8, 8), np.uint8), fps=5)


def test_containers_are_closed(clips):
    import gc

    import av

    for _ in range(3):
        with pytest.raises(NoAudioStreamError):
            load_audio(clips["video_only"])
    gc.collect()
    # type(), not isinstance(): gc may hold dead weak proxies, which raise ReferenceError on attribute access
    assert not [o for o in gc.get_objects() if type(o) is av.container.InputContainer]


def test_sampling_seeks_so_cost_follows_frames_not_length(tmp_path, monkeypatch):
    decoded = []
    seek = media._FrameCursor.seek

    def counting_seek(self, seconds):  # count every frame pulled from the decoder after each seek
        seek(self, seconds)
        frames = self._frames
        self._frames = (decoded.append(1) or frame for frame in frames)

    monkeypatch.setattr(media._FrameCursor, "seek", counting_seek)
    counts = {}
    for seconds in (4, 40):  # keyframe every second (25 frames)
        path = mc.write_media(tmp_path / f"{seconds}s.mp4", num_frames=25 * seconds, gop=25)
        decoded.clear()
        clip = load_video(path, num_frames=8)
        assert len(clip.frames) == 8
        counts[seconds] = len(decoded)
    # 8 targets, each at most a keyframe interval (25 frames) past its keyframe: bounded, whatever the length
    assert counts[40] <= 8 * 26 < 25 * 40
    assert counts[40] < 2 * counts[4] + 50
