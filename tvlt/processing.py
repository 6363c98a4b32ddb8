"""transformers-compatible TVLT processors (4.40.2 constructor/call arguments, output keys, preprocessor_config.json).

Only numpy + torch at import. Beyond transformers: audio at any sampling rate is resampled (transformers
raises), videos with more than `num_frames` frames are subsampled evenly (transformers raises), videos of
different lengths are zero-padded so they batch, `tvlt.media.VideoClip` / `AudioClip` are accepted directly,
and `return_tensors=None` gives numpy arrays. `pixel_mask` counts the patches of the frames it returns (the crop);
transformers counts them from `size["shortest_edge"]`, which gives a mask that does not fit the model whenever the
two sizes differ (they are equal in every published TVLT config).
"""

from __future__ import annotations

import json
import os
from math import ceil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tvlt import audio, video
from tvlt.media import AudioClip, InvalidArrayError, VideoClip

CONFIG_NAME = "preprocessor_config.json"
_PIL_BILINEAR = 2  # PILImageResampling.BILINEAR, the only filter implemented


class BatchFeature(dict):
    """dict of model inputs with attribute access and `.to(device)` (like transformers' BatchFeature)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(name) from error

    def to(self, device: str | torch.device) -> "BatchFeature":
        return BatchFeature({k: v.to(device) if torch.is_tensor(v) else v for k, v in self.items()})


def _as_tensors(data: dict[str, np.ndarray], return_tensors: str | None) -> BatchFeature:
    if return_tensors not in (None, "np", "pt"):
        raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
    return BatchFeature({k: torch.from_numpy(v) if return_tensors == "pt" else v for k, v in data.items()})


class _JsonConfig:
    """save_pretrained / from_pretrained through preprocessor_config.json (keys as transformers writes them)."""

    _type_key: str
    _init_keys: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {self._type_key: type(self).__name__, **{key: getattr(self, key) for key in self._init_keys}}

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def from_dict(cls, config: dict[str, Any], **overrides: Any):
        known = {key: config[key] for key in cls._init_keys if key in config}
        return cls(**{**known, **overrides})

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **overrides: Any):
        return cls.from_dict(json.loads((Path(directory) / CONFIG_NAME).read_text()), **overrides)


class TvltFeatureExtractor(_JsonConfig):
    """Audio -> `audio_values` (B, 1, S, 128) float32 in [-1, 1] and `audio_mask` (B, ceil(S/16) * 8) float32.

    S is the longest clip's frame count (44.1 kHz samples // 512, at most `spectrogram_length`) rounded up to
    a multiple of 16; shorter clips are padded with `padding_value` and masked with 0 (1 = real patch).
    """

    _type_key = "feature_extractor_type"
    _init_keys = ("spectrogram_length", "num_channels", "patch_size", "feature_size", "sampling_rate",
                  "hop_length_to_sampling_rate", "n_fft", "padding_value")
    model_input_names = ["audio_values", "audio_mask"]

    def __init__(
        self,
        spectrogram_length: int = audio.MAX_SPECTROGRAM_FRAMES,
        num_channels: int = 1,
        patch_size: Sequence[int] = audio.PATCH_SIZE,
        feature_size: int = audio.N_MELS,
        sampling_rate: int = audio.SAMPLING_RATE,
        hop_length_to_sampling_rate: int = 86,
        n_fft: int = audio.N_FFT,
        padding_value: float = 0.0,
        **kwargs: Any,
    ):
        fixed = {"feature_size": (feature_size, audio.N_MELS), "sampling_rate": (sampling_rate, audio.SAMPLING_RATE),
                 "n_fft": (n_fft, audio.N_FFT), "hop_length": (sampling_rate // hop_length_to_sampling_rate,
                                                              audio.HOP_LENGTH)}
        for name, (given, supported) in fixed.items():
            if given != supported:
                raise ValueError(f"{name}={given} is not supported; TVLT's log-mel recipe uses {supported}")
        self.spectrogram_length, self.num_channels = spectrogram_length, num_channels
        self.patch_size, self.feature_size, self.sampling_rate = list(patch_size), feature_size, sampling_rate
        self.hop_length_to_sampling_rate, self.n_fft, self.padding_value = hop_length_to_sampling_rate, n_fft, padding_value
        self.hop_length, self.freq_len = audio.HOP_LENGTH, feature_size // self.patch_size[1]

    def to_dict(self) -> dict[str, Any]:  # transformers also writes these derived keys
        return {**super().to_dict(), "hop_length": self.hop_length, "freq_len": self.freq_len,
                "padding_side": "right", "return_attention_mask": True}

    def __call__(
        self,
        raw_speech: Any,
        return_tensors: str | None = None,
        return_attention_mask: bool = True,
        sampling_rate: int | None = None,
        resample: bool = True,
        mask_audio: bool = False,
        **kwargs: Any,
    ) -> BatchFeature:
        """raw_speech: (L,) / list of floats (one clip), (B, L) array or list of clips, or AudioClip(s).

        sampling_rate: rate of array inputs (default 44100); other rates are resampled to 44100.
        `resample` and `mask_audio` are accepted for compatibility (resampling always happens).
        """
        features = [self._features(waveform) for waveform in self._waveforms(raw_speech, sampling_rate)]
        patches = [ceil(len(feature) / self.patch_size[0]) for feature in features]  # time patches per clip
        frames = max(patches) * self.patch_size[0]
        values = np.full((len(features), 1, frames, self.feature_size), self.padding_value, dtype=np.float32)
        for row, feature in enumerate(features):
            values[row, 0, : len(feature)] = feature
        data = {"audio_values": values}
        if return_attention_mask:
            valid = np.arange(max(patches) * self.freq_len)[None] < np.asarray(patches)[:, None] * self.freq_len
            data["audio_mask"] = valid.astype(np.float32)  # (B, time patches * freq patches), 1 = real
        return _as_tensors(data, return_tensors)

    def _waveforms(self, raw_speech: Any, sampling_rate: int | None) -> list[np.ndarray]:
        """Inputs as a list of 44.1 kHz float32 (L,) arrays."""
        clips = raw_speech if isinstance(raw_speech, (list, tuple)) and raw_speech and isinstance(
            raw_speech[0], (AudioClip, np.ndarray, torch.Tensor, list, tuple)) else [raw_speech]
        if isinstance(raw_speech, (np.ndarray, torch.Tensor)) and raw_speech.ndim == 2:
            clips = list(raw_speech)  # a 2-D array is a batch, as in transformers
        return [self._waveform(clip, sampling_rate) for clip in clips]

    def _waveform(self, clip: Any, sampling_rate: int | None) -> np.ndarray:
        if isinstance(clip, AudioClip):
            clip, sampling_rate = clip.waveform, clip.sampling_rate
        samples = clip.detach().cpu().numpy() if torch.is_tensor(clip) else np.asarray(clip, dtype=np.float32)
        if samples.ndim != 1 or samples.dtype.kind != "f":
            raise InvalidArrayError(f"each audio clip must be a 1-D float array (mono), got {samples.dtype} {samples.shape}")
        if not np.isfinite(samples).all():
            raise InvalidArrayError("the audio has NaN or infinite samples")
        rate = self.sampling_rate if sampling_rate is None else int(sampling_rate)
        return audio.resample_np(samples.astype(np.float32), rate, self.sampling_rate)

    def _features(self, waveform: np.ndarray) -> np.ndarray:
        """(L,) -> (min(L // 512, spectrogram_length), 128) float32."""
        # Frames past spectrogram_length are dropped anyway: skip computing them. Frame i reads samples up to
        # i * hop + n_fft / 2, so this crop leaves every kept frame (and its reflect padding) unchanged.
        needed = self.spectrogram_length * audio.HOP_LENGTH + audio.N_FFT
        return audio.log_mel_spectrogram_np(waveform[:needed])[: self.spectrogram_length]


class TvltImageProcessor(_JsonConfig):
    """Frames -> `pixel_values` (B, T, 3, h, w) float32 (≈ [-1, 1]) and `pixel_mask` (B, T * patches) int64.

    T is the longest video's frame count (at most `num_frames`; longer videos are subsampled evenly);
    shorter videos are zero-padded and their missing frames masked with 0 (1 = real patch).
    """

    _type_key = "image_processor_type"
    _init_keys = ("do_resize", "size", "patch_size", "num_frames", "resample", "do_center_crop", "crop_size",
                  "do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std")
    model_input_names = ["pixel_values", "pixel_mask", "pixel_values_mixed", "pixel_mask_mixed"]

    def __init__(
        self,
        do_resize: bool = True,
        size: dict[str, int] | None = None,
        patch_size: Sequence[int] = (video.PATCH_SIZE, video.PATCH_SIZE),
        num_frames: int = video.NUM_FRAMES,
        resample: int = _PIL_BILINEAR,
        do_center_crop: bool = True,
        crop_size: dict[str, int] | None = None,
        do_rescale: bool = True,
        rescale_factor: float = video.RESCALE_FACTOR,
        do_normalize: bool = True,
        image_mean: Sequence[float] = video.IMAGE_MEAN,
        image_std: Sequence[float] = video.IMAGE_STD,
        init_mask_generator: bool = False,
        **kwargs: Any,
    ):
        if int(resample) != _PIL_BILINEAR:
            raise ValueError(f"resample={resample} is not supported; only bilinear (2) is implemented")
        self.do_resize, self.size = do_resize, dict(size or {"shortest_edge": video.IMAGE_SIZE})
        self.patch_size, self.num_frames, self.resample = list(patch_size), num_frames, int(resample)
        self.do_center_crop = do_center_crop
        self.crop_size = dict(crop_size or {"height": video.IMAGE_SIZE, "width": video.IMAGE_SIZE})
        self.do_rescale, self.rescale_factor = do_rescale, rescale_factor
        self.do_normalize, self.image_mean, self.image_std = do_normalize, list(image_mean), list(image_std)

    def __call__(self, videos: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(videos, **kwargs)

    def preprocess(self, videos: Any, is_mixed: bool = False, return_tensors: str | None = None,
                   **overrides: Any) -> BatchFeature:
        """videos: an image (H, W, 3), a video (T, H, W, 3) / list of frames, a batch (B, T, H, W, 3) / list of
        videos, or VideoClip(s); uint8 or 0..255 floats, channels last or first, PIL images.

        overrides: any constructor argument for this call (do_resize, size, num_frames, crop_size, ...).
        """
        options = {**{key: getattr(self, key) for key in self._init_keys}, **overrides}
        clips = [_frames_array(clip) for clip in _as_video_list(videos)]
        clips = [clip[video.sample_indices(len(clip), options["num_frames"])] for clip in clips]
        pixels = [self._pixel_values(clip, options) for clip in clips]
        longest = max(len(clip) for clip in pixels)
        values = np.zeros((len(pixels), longest, *pixels[0].shape[1:]), dtype=np.float32)
        for row, clip in enumerate(pixels):
            values[row, : len(clip)] = clip
        per_frame = (values.shape[-2] // options["patch_size"][0]) * (values.shape[-1] // options["patch_size"][1])
        frames_valid = np.arange(longest)[None] < np.asarray([len(clip) for clip in pixels])[:, None]
        mask = np.repeat(frames_valid, per_frame, axis=1).astype(np.int64)  # (B, T * patches), 1 = real
        keys = ("pixel_values_mixed", "pixel_mask_mixed") if is_mixed else ("pixel_values", "pixel_mask")
        return _as_tensors(dict(zip(keys, (values, mask))), return_tensors)

    @staticmethod
    def _pixel_values(frames: np.ndarray, options: dict[str, Any]) -> np.ndarray:
        size, crop = options["size"], options["crop_size"]
        resized = options["do_resize"] and "shortest_edge" not in size
        if resized:  # an explicit {"height", "width"} resize, done before the shortest-edge step is skipped
            frames = video.resize(torch.as_tensor(frames).permute(0, 3, 1, 2).float(), size["height"],
                                  size["width"]).permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8)
        return video.frames_to_pixel_values(
            frames,
            shortest_edge=size["shortest_edge"] if options["do_resize"] and not resized else None,
            crop_size=(crop["height"], crop["width"]) if options["do_center_crop"] else None,
            rescale_factor=options["rescale_factor"] if options["do_rescale"] else None,
            mean=options["image_mean"] if options["do_normalize"] else None,
            std=options["image_std"],
        ).numpy()


def _as_video_list(videos: Any) -> list[Any]:
    """Split the accepted input forms into a list of single videos (each still in its own form)."""
    if isinstance(videos, VideoClip):
        return [videos]
    if isinstance(videos, (list, tuple)):
        if not videos:
            raise InvalidArrayError("no videos or images were given")
        first = videos[0]
        if isinstance(first, (VideoClip, list, tuple)) or np.ndim(first) == 4:
            return list(videos)
        return [videos]  # a list of frames is one video
    ndim = np.ndim(videos)
    if ndim == 5:
        return list(videos)
    if ndim in (3, 4):
        return [videos]
    raise InvalidArrayError(f"expected an image, a video or a batch of videos, got shape {np.shape(videos)}")


def _frames_array(clip: Any) -> np.ndarray:
    """One video in any accepted form -> (T, H, W, 3) uint8 or float32 (0..255), channels last."""
    if isinstance(clip, VideoClip):
        return clip.frames
    if isinstance(clip, (list, tuple)):
        frames = np.stack([_frame_array(frame) for frame in clip])
    else:
        array = clip.detach().cpu().numpy() if torch.is_tensor(clip) else np.asarray(clip)
        frames = np.stack([_frame_array(frame) for frame in (array[None] if array.ndim == 3 else array)])
    if not np.isfinite(frames).all():
        raise InvalidArrayError("the frames have NaN or infinite values")
    return frames


def _frame_array(frame: Any) -> np.ndarray:
    """One image -> (H, W, 3); channels-first input is detected as transformers does (leading 1 or 3)."""
    array = np.asarray(frame.detach().cpu() if torch.is_tensor(frame) else frame)
    if array.ndim != 3 or array.dtype.kind not in "fiu":
        raise InvalidArrayError(f"each frame must be (H, W, 3) or (3, H, W) numbers, got {array.dtype} {array.shape}")
    if array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.shape[-1] != 3:
        raise InvalidArrayError(f"frames must have 1 or 3 colour channels, got shape {array.shape}")
    return array if array.dtype == np.uint8 else array.astype(np.float32)


class TvltProcessor:
    """Wraps a TvltImageProcessor and a TvltFeatureExtractor; outputs the union of their keys."""

    attributes = ["image_processor", "feature_extractor"]

    def __init__(self, image_processor: TvltImageProcessor, feature_extractor: TvltFeatureExtractor):
        self.image_processor, self.feature_extractor = image_processor, feature_extractor

    @property
    def model_input_names(self) -> list[str]:
        return list(dict.fromkeys(self.image_processor.model_input_names + self.feature_extractor.model_input_names))

    def __call__(
        self,
        images: Any = None,
        audio: Any = None,
        images_mixed: Any = None,
        sampling_rate: int | None = None,
        mask_audio: bool = False,
        mask_pixel: bool = False,
        return_tensors: str | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """images -> pixel_values/pixel_mask, images_mixed -> pixel_values_mixed/pixel_mask_mixed, audio ->
        audio_values/audio_mask (see the two wrapped classes for shapes). `mask_*` are accepted and ignored,
        as in transformers."""
        if images is None and audio is None:
            raise ValueError("You need to specify either an `images` or `audio` input to process.")
        outputs = BatchFeature()
        if audio is not None:
            outputs.update(self.feature_extractor(audio, return_tensors=return_tensors, sampling_rate=sampling_rate))
        if images is not None:
            outputs.update(self.image_processor(images, return_tensors=return_tensors, **kwargs))
        if images_mixed is not None:
            outputs.update(self.image_processor(images_mixed, is_mixed=True, return_tensors=return_tensors, **kwargs))
        return outputs

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """One preprocessor_config.json holding both halves' keys (transformers reads it for either class)."""
        path = Path(directory) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {**self.image_processor.to_dict(), **self.feature_extractor.to_dict(), "processor_class": "TvltProcessor"}
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "TvltProcessor":
        return cls(TvltImageProcessor.from_pretrained(directory), TvltFeatureExtractor.from_pretrained(directory))
