"""Server-side objects shared by every view: loaded models and decoded clips.

Models are loaded once and shared read-only; a per-model lock serialises forward passes (attention
capture installs hooks, which other requests must not see). Users hold only small keys in `gr.State`:
a clip key (random, unguessable, into `ClipStore`) and a model key (into `ModelRegistry`).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr
import numpy as np
import torch

from components import settings

PRETRAINING = "TvltForPreTraining"
CLASSIFICATION = "TvltForAudioVisualClassification"


# ---------------------------------------------------------------- models
@dataclass
class LoadedModel:
    """One checkpoint in memory: model in eval mode, its processor and how to describe it."""

    key: str
    source: str  # what the user typed / the directory
    model: torch.nn.Module
    kind: str  # PRETRAINING or CLASSIFICATION
    config: Any  # tvlt.config.TvltConfig
    processor: Any  # tvlt.processing.TvltProcessor
    trained_on: str
    not_for: str
    directory: Optional[Path] = None  # where its files are (config, provenance, model card); None for a .ckpt
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def encoder(self) -> torch.nn.Module:
        return self.model.tvlt

    def banner(self) -> str:
        c = self.config
        return (
            f"**{self.kind}** from `{self.source}` · {self.num_parameters / 1e6:.1f} M parameters · "
            f"{c.num_frames} frames of {c.image_size}×{c.image_size} px + {c.spectrogram_length}×{c.frequency_length} "
            f"spectrogram · trained on: {self.trained_on} · not for: {self.not_for}"
        )


BUNDLED_TRAINED_ON = "this project's procedural synthetic audio-visual corpus (see the Model tab and its model card)"
BUNDLED_NOT_FOR = "real speech, emotion or sentiment judgements about people; it is a small teaching model"
UNKNOWN_TRAINED_ON = "unknown (see the checkpoint's own documentation)"
RANDOM_NOTE = "nothing: its weights are random, so every output is meaningless"


def _describe(directory: Optional[Path], config: Any, source: str) -> tuple[str, str]:
    """(trained on, not for) from the config's extra keys, the bundled defaults, or 'unknown'."""
    extra = getattr(config, "extra", {}) or {}
    if extra.get("trained_on"):
        return str(extra["trained_on"]), str(extra.get("not_for", BUNDLED_NOT_FOR))
    if extra.get("random_init"):
        return RANDOM_NOTE, "anything but testing the app"
    if directory is not None and settings.ASSETS_DIR in directory.resolve().parents:
        return BUNDLED_TRAINED_ON, BUNDLED_NOT_FOR
    if source.lower().startswith("zinengtang/"):
        return "HowTo100M + YTTemporal180M videos (the TVLT paper's pretraining)", "production use without your own evaluation"
    return UNKNOWN_TRAINED_ON, "anything until you have evaluated it yourself"


def _architecture(directory: Path) -> str:
    import json

    with open(directory / "config.json", encoding="utf-8") as f:
        archs = json.load(f).get("architectures") or [PRETRAINING]
    if not any(a.startswith("Tvlt") for a in archs):
        raise ValueError(f"{directory.name} holds a {archs[0]}, not a TVLT model; pick a TVLT checkpoint.")
    return CLASSIFICATION if any("Classification" in a for a in archs) else PRETRAINING


def _processor_for(directory: Optional[Path], config: Any) -> Any:
    """The checkpoint's preprocessor_config.json, else a processor sized from the model config."""
    from tvlt.processing import TvltFeatureExtractor, TvltImageProcessor, TvltProcessor

    if directory is not None and (directory / "preprocessor_config.json").is_file():
        return TvltProcessor.from_pretrained(directory)
    size = config.image_size
    return TvltProcessor(
        TvltImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                           patch_size=config.image_patch_size, num_frames=config.num_frames),
        TvltFeatureExtractor(spectrogram_length=config.spectrogram_length, patch_size=config.audio_patch_size,
                             feature_size=config.frequency_length),
    )


def load_checkpoint(source: str) -> LoadedModel:
    """A local transformers-format directory, an original `.ckpt`, or a hub id -> LoadedModel.

    Raises ValueError with a sentence for the user when the source cannot be used.
    """
    from tvlt import modeling

    source = str(source).strip()
    path = Path(source).expanduser()
    if path.is_file() and path.suffix in (".ckpt", ".pt", ".pth"):
        from tvlt.convert import load_original_checkpoint

        model, report = load_original_checkpoint(path)
        return _wrap(source, model.eval(), report.model_class, None)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{source} is a directory without a config.json, so it is not a transformers-format checkpoint.")
        kind = _architecture(path)
        model = getattr(modeling, kind).from_pretrained(path)
        return _wrap(source, model.eval(), kind, path)
    if path.exists():
        raise ValueError(f"{source} is neither a checkpoint directory nor an original .ckpt file.")
    if source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise ValueError(f"No checkpoint found at {source!r}: give a local directory, a .ckpt file or a hub id like ZinengTang/tvlt-base.")
    from tvlt import weights

    try:
        local = Path(weights.resolve_directory(source))
    except (weights.HubUnavailableError, weights.CheckpointError) as error:
        raise ValueError(f"Could not load {source!r}: {error}.") from error
    kind = _architecture(local)
    return _wrap(source, getattr(modeling, kind).from_pretrained(local).eval(), kind, local)


def _wrap(source: str, model: torch.nn.Module, kind: str, directory: Optional[Path]) -> LoadedModel:
    if kind not in (PRETRAINING, CLASSIFICATION):
        raise ValueError(f"{source} holds a {kind}, but the app needs a pretraining or a classification model.")
    for p in model.parameters():
        p.requires_grad_(False)
    trained_on, not_for = _describe(directory, model.config, source)
    return LoadedModel(
        key=source, source=source, model=model, kind=kind, config=model.config,
        processor=_processor_for(directory, model.config), trained_on=trained_on, not_for=not_for,
        directory=directory,
    )


class ModelRegistry:
    """The default models (kept forever) plus a few user-picked checkpoints (LRU)."""

    def __init__(self, pretrain: LoadedModel, sentiment: Optional[LoadedModel],
                 loader: Callable[[str], LoadedModel] = load_checkpoint, max_extra: int = settings.MAX_LOADED_MODELS):
        pretrain.key, self.default_key = "default", "default"
        self.sentiment_key = None
        self._pinned = {"default": pretrain}
        if sentiment is not None:
            sentiment.key = self.sentiment_key = "default-sentiment"
            self._pinned[sentiment.key] = sentiment
        self._extra: OrderedDict[str, LoadedModel] = OrderedDict()
        self._loader, self._max_extra = loader, max_extra
        self._lock = threading.Lock()

    def get(self, key: Optional[str]) -> LoadedModel:
        if key in self._pinned:
            return self._pinned[key]
        with self._lock:
            if key in self._extra:
                self._extra.move_to_end(key)
                return self._extra[key]
        if key is None:
            return self._pinned["default"]
        # an evicted pick: say so rather than quietly answering with another model
        raise gr.Error("The model you picked was unloaded to make room for others; load it again in the Model "
                       "panel (or clear the picker for the bundled model).", title="Model no longer loaded")

    def load(self, source: str) -> LoadedModel:
        pinned = next((m for m in self._pinned.values() if m.source == source), None)
        if pinned is not None:  # e.g. a bundled directory picked from the dropdown: no second copy in memory
            return pinned
        with self._lock:
            if source in self._extra:
                self._extra.move_to_end(source)
                return self._extra[source]
        loaded = self._loader(source)  # slow: outside the lock
        with self._lock:
            self._extra[loaded.key] = loaded
            while len(self._extra) > self._max_extra:
                self._extra.popitem(last=False)
        return loaded

    @property
    def default(self) -> LoadedModel:
        return self._pinned["default"]

    @property
    def sentiment(self) -> Optional[LoadedModel]:
        return self._pinned.get("default-sentiment")


# ---------------------------------------------------------------- clips
@dataclass
class Clip:
    """One decoded clip: frames uint8 (T, H, W, 3) + timestamps, a 44.1 kHz mono waveform, and notes."""

    name: str
    frames: np.ndarray  # (T, H, W, 3) uint8, decoded at the window's native size
    timestamps: np.ndarray  # (T,) seconds into the file
    waveform: np.ndarray  # (L,) float32 at sampling_rate
    sampling_rate: int
    start: float
    duration: float  # seconds actually decoded
    notes: list[str] = field(default_factory=list)  # e.g. "no audio track: silence is used"
    video_clip: Any = None  # tvlt.media.VideoClip, handed to the processor
    audio_clip: Any = None  # tvlt.media.AudioClip
    _inputs: dict = field(default_factory=dict)  # model geometry -> processed tensors
    embeddings: dict = field(default_factory=dict)  # (model key, model id) -> first-stage video embedding (D,)
    derived: dict = field(default_factory=dict)  # views' per-clip results that no control changes (e.g. audio)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def audio_start(self) -> float:
        """Seconds into the file where the audio the model hears begins (0 when the audio had to start there)."""
        return float(self.audio_clip.start) if self.audio_clip is not None else self.start

    def derive(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """A per-clip result that no control changes: computed once, under the clip's lock, and kept with the clip."""
        with self._lock:
            if key not in self.derived:
                self.derived[key] = compute()
            return self.derived[key]

    def inputs(self, model: LoadedModel) -> dict[str, torch.Tensor]:
        """Model inputs for this clip (computed once per model geometry, then reused by every view)."""
        key = (model.config.image_size, model.config.num_frames, model.config.spectrogram_length, id(model.processor))
        with self._lock:
            if key not in self._inputs:
                self._inputs[key] = model.processor(self.video_clip, self.audio_clip, return_tensors="pt")
            return self._inputs[key]


class ClipStore:
    """Decoded clips keyed by random ids; bounded LRU shared by all users (each only knows its own keys)."""

    def __init__(self, max_items: int = settings.MAX_CLIPS):
        self._items: OrderedDict[str, Clip] = OrderedDict()
        self._max = max_items
        self._lock = threading.Lock()

    def put(self, clip: Clip) -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._items[key] = clip
            while len(self._items) > self._max:
                self._items.popitem(last=False)
        return key

    def get(self, key: Optional[str]) -> Optional[Clip]:
        with self._lock:
            clip = self._items.get(key) if key else None
            if clip is not None:
                self._items.move_to_end(key)
            return clip

    def drop(self, key: Optional[str]) -> None:
        with self._lock:
            self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)
