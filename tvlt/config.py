"""TVLT configuration: the fields and defaults of transformers 4.40.2 `TvltConfig`, validated in one place.

A `config.json` written by transformers loads here (unknown keys are kept in `extra` and written back), and
`to_json_file` writes a file that transformers 4.40.2 `TvltConfig.from_pretrained` reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

CONFIG_NAME = "config.json"
MODEL_TYPE = "tvlt"

# transformers' activation names that TVLT configs can use (their definitions: tvlt.layers.ACT_LAYERS)
ACTIVATIONS = ("gelu", "gelu_python", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "quick_gelu", "relu", "relu6",
               "leaky_relu", "silu", "swish", "mish", "sigmoid", "tanh", "linear")
LOSS_TYPES = ("classification", "regression")
# One internal spelling per audio mask type; transformers 4.40.2 only accepts the spellings on the right.
_AUDIO_MASK_TYPES = {
    "frame-level": "frame-level",
    "frame_level": "frame-level",
    "patch-level": "patch-level",
    "patch_level": "patch-level",
}
_AUDIO_MASK_TYPE_FOR_TRANSFORMERS = {"frame-level": "frame-level", "patch-level": "patch_level"}


_POSITIVE_INTS = (
    "image_size", "spectrogram_length", "frequency_length", "num_image_channels", "num_audio_channels", "num_frames",
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "decoder_num_attention_heads",
    "decoder_hidden_size", "decoder_num_hidden_layers", "decoder_intermediate_size",
)


def _require_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _require_real(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value or abs(value) == float("inf"):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def _default_labels(num_labels: int) -> dict[int, str]:
    return {i: f"LABEL_{i}" for i in range(num_labels)}


# (image px, frames, spectrogram frames x mel bins, encoder width / layers / heads / MLP, decoder likewise)
_SMALL = dict(
    image_size=96, num_frames=8, spectrogram_length=256, frequency_length=128,
    hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    decoder_hidden_size=128, decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=512,
)
_TINY = dict(
    image_size=32, num_frames=2, spectrogram_length=32, frequency_length=32,
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=64,
)


@dataclass
class TvltConfig:
    # input geometry
    image_size: int = 224  # H = W of every frame
    spectrogram_length: int = 2048  # S, max spectrogram time steps
    frequency_length: int = 128  # F, mel bins
    image_patch_size: list[int] = field(default_factory=lambda: [16, 16])
    audio_patch_size: list[int] = field(default_factory=lambda: [16, 16])  # (time, freq)
    num_image_channels: int = 3
    num_audio_channels: int = 1
    num_frames: int = 8  # max T
    # encoder
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    use_mean_pooling: bool = False  # as in transformers, only drops the final layernorm
    # MAE decoder
    decoder_num_attention_heads: int = 16
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_intermediate_size: int = 2048
    pixel_mask_ratio: float = 0.75
    audio_mask_ratio: float = 0.15
    audio_mask_type: str = "frame-level"  # or "patch-level" (both spellings accepted)
    # pretraining tasks / fine-tuning loss
    task_matching: bool = True
    task_mae: bool = True
    loss_type: str = "classification"
    # classifier head size (transformers' PretrainedConfig); id2label wins unless it is the generated default
    num_labels: Optional[int] = None
    id2label: Optional[dict[int, str]] = None
    label2id: Optional[dict[str, int]] = None
    # original-repo classifier: dense + tanh pooler on CLS before the MLP head (not in transformers)
    classifier_pooler: bool = False
    # keys of a config.json we do not model (kept and written back)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_sizes()
        self._check_options()
        self.audio_mask_type = _AUDIO_MASK_TYPES[self.audio_mask_type]
        self._resolve_labels()

    def _check_sizes(self) -> None:
        for name in _POSITIVE_INTS:
            _require_positive_int(name, getattr(self, name))
        for name in ("image_patch_size", "audio_patch_size"):
            patch = getattr(self, name)
            if not isinstance(patch, (list, tuple)) or len(patch) != 2:
                raise ValueError(f"{name} must have two entries, got {patch!r}")
            for i, value in enumerate(patch):
                _require_positive_int(f"{name}[{i}]", value)
        (p, q), (pa, qa) = self.image_patch_size, self.audio_patch_size
        for name, size, divisor in (
            ("image_size", self.image_size, p),
            ("image_size", self.image_size, q),
            ("spectrogram_length", self.spectrogram_length, pa),
            ("frequency_length", self.frequency_length, qa),
            ("hidden_size", self.hidden_size, self.num_attention_heads),
            ("decoder_hidden_size", self.decoder_hidden_size, self.decoder_num_attention_heads),
        ):
            if size % divisor:
                raise ValueError(f"{name}={size} is not divisible by {divisor} (its patch size or head count)")

    def _check_options(self) -> None:
        for name in ("pixel_mask_ratio", "audio_mask_ratio", "hidden_dropout_prob", "attention_probs_dropout_prob",
                     "initializer_range", "layer_norm_eps"):
            _require_real(name, getattr(self, name))
        for name in ("qkv_bias", "use_mean_pooling", "task_matching", "task_mae", "classifier_pooler"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra must be a dict of unmodelled config keys, got {self.extra!r}")
        for name in ("pixel_mask_ratio", "audio_mask_ratio", "hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        for name in ("initializer_range", "layer_norm_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name, allowed in (
            ("hidden_act", ACTIVATIONS), ("loss_type", LOSS_TYPES), ("audio_mask_type", tuple(_AUDIO_MASK_TYPES))
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    def _resolve_labels(self) -> None:
        if self.id2label is not None:
            try:
                self.id2label = {int(k): str(v) for k, v in dict(self.id2label).items()}
            except (TypeError, ValueError) as error:
                raise ValueError(f"id2label must map integer ids to names, got {self.id2label!r}") from error
            generated = self.id2label == _default_labels(len(self.id2label))
            if self.num_labels is not None and self.num_labels != len(self.id2label) and not generated:
                raise ValueError(f"num_labels={self.num_labels} disagrees with id2label of {len(self.id2label)} labels")
            if self.num_labels is None or not generated:
                self.num_labels = len(self.id2label)
        if self.num_labels is None:
            self.num_labels = 2
        if not isinstance(self.num_labels, int) or self.num_labels <= 0:
            raise ValueError(f"num_labels must be a positive int, got {self.num_labels!r}")
        if self.id2label is None or len(self.id2label) != self.num_labels:
            self.id2label = _default_labels(self.num_labels)
            self.label2id = None
        if self.label2id is None:
            self.label2id = {v: k for k, v in self.id2label.items()}
        try:
            self.label2id = {str(k): int(v) for k, v in dict(self.label2id).items()}
        except (TypeError, ValueError) as error:
            raise ValueError(f"label2id must map names to integer ids, got {self.label2id!r}") from error

    # ---- presets ----
    @classmethod
    def base(cls, **overrides: Any) -> "TvltConfig":
        """ZinengTang/tvlt-base (the transformers defaults)."""
        return cls(**overrides)

    @classmethod
    def small(cls, **overrides: Any) -> "TvltConfig":
        """The bundled model trained by this project."""
        return cls(**{**_SMALL, **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> "TvltConfig":
        """A few-thousand-parameter model for tests."""
        return cls(**{**_TINY, **overrides})

    # ---- derived sizes ----
    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # ---- (de)serialisation ----
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TvltConfig":
        """Build from a transformers-style dict; keys we do not model go to `extra`."""
        data = dict(data)
        model_type = data.pop("model_type", MODEL_TYPE)
        if model_type != MODEL_TYPE:
            raise ValueError(f"model_type must be {MODEL_TYPE!r}, got {model_type!r}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {**data.pop("extra", {}), **{k: v for k, v in data.items() if k not in names and k != "extra"}}
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """A transformers 4.40.2-readable dict (num_labels is implied by id2label, as transformers writes it)."""
        skip = ("extra", "num_labels")
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        data["audio_mask_type"] = _AUDIO_MASK_TYPE_FOR_TRANSFORMERS[self.audio_mask_type]
        data["id2label"] = {str(k): v for k, v in self.id2label.items()}
        return {**self.extra, **data, "model_type": MODEL_TYPE}

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "TvltConfig":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_json_file(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "TvltConfig":
        """Read `directory/config.json` (a local directory; `tvlt.weights` resolves hub ids)."""
        path = os.path.join(directory, CONFIG_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no {CONFIG_NAME} in {os.fspath(directory)!r}")
        return cls.from_json_file(path)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        os.makedirs(directory, exist_ok=True)
        self.to_json_file(os.path.join(directory, CONFIG_NAME))
