"""Original zinengtang/TVLT checkpoints (`TVLT.ckpt`, `TVLT-MOSEI-SA.ckpt`, `TVLT-MOSEI-EA.ckpt`) -> our keys.

Our keys are transformers 4.40.2's. The conversion is a pure function: unwrap the Lightning
nesting, split the fused `qkv` projections, rename through an explicit key table, cut the
over-long position tables to the config's sizes, and check every shape against the target model.

The original encoder orders tokens (CLS, audio, video); ours is (CLS, video, audio). Weights do not
depend on the order: position/type embeddings are added per modality before concatenation, and
attention, MLP and norms act per token or are permutation-equivariant.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

import torch
from torch import nn

from tvlt import modeling
from tvlt.config import TvltConfig
from tvlt.modeling import TvltForAudioVisualClassification, TvltForPreTraining, TvltModel

# Original name prefix -> ours (matched on whole dotted components, first match wins).
_KEY_TABLE = (
    ("cls_token", "tvlt.cls_embedding"),
    ("patch_embed_v.proj", "tvlt.pixel_embeddings.patch_embeddings.projection"),
    ("pos_embed_v", "tvlt.pixel_embeddings.pos_embed_v"),
    ("temporal_embed", "tvlt.pixel_embeddings.temporal_embed"),
    ("type_embed_v", "tvlt.pixel_embeddings.type_embed_v"),
    ("patch_embed_a.proj", "tvlt.audio_embeddings.patch_embeddings.projection"),
    ("pos_embed_a", "tvlt.audio_embeddings.pos_embed_a"),
    ("freq_embed", "tvlt.audio_embeddings.freq_embed"),
    ("type_embed_a", "tvlt.audio_embeddings.type_embed_a"),
    ("blocks", "tvlt.encoder.layer"),
    ("norm", "tvlt.layernorm"),
    ("decoder_embed", "encoder_to_decoder"),
    ("mask_token_v", "pixel_mask_token"),
    ("mask_token_a", "audio_mask_token"),
    ("decoder_pos_embed_v", "decoder_pixel_pos_embed"),
    ("decoder_temporal_embed", "decoder_temporal_embed"),
    ("decoder_type_embed_v", "decoder_pixel_type_embed"),
    ("decoder_pos_embed_a", "decoder_audio_pos_embed"),
    ("decoder_freq_embed", "decoder_freq_embed"),
    ("decoder_type_embed_a", "decoder_audio_type_embed"),
    ("decoder_blocks", "decoder.decoder_layers"),
    ("decoder_norm", "decoder.layernorm"),
    ("mae_score_video.decoder", "pixel_mae_head.decoder"),
    ("mae_score_audio.decoder", "audio_mae_head.decoder"),
    ("matching_score.pooler.dense", "matching_head.pooler.dense"),
    ("matching_score.fc", "matching_head.fc"),
    # original classifier = Sequential(Pooler, Linear, LayerNorm, GELU, Linear); ours keeps the pooler apart
    ("classifier.0.dense", "classifier_pooler.dense"),
    ("classifier.1", "classifier.0"),
    ("classifier.2", "classifier.1"),
    ("classifier.4", "classifier.3"),
)
# Inside `blocks.i` / `decoder_blocks.i`, after `_split_qkv` has unfused `attn.qkv`.
_BLOCK_TABLE = (
    ("norm1", "layernorm_before"),
    ("norm2", "layernorm_after"),
    ("attn.q", "attention.attention.query"),
    ("attn.k", "attention.attention.key"),
    ("attn.v", "attention.attention.value"),
    ("attn.proj", "attention.output.dense"),
    ("mlp.fc1", "intermediate.dense"),
    ("mlp.fc2", "output.dense"),
)
# Position tables stored longer than a config needs (64 frames, 1020 time patches): keep the first rows.
_TRUNCATED = (
    "tvlt.pixel_embeddings.temporal_embed",
    "tvlt.audio_embeddings.pos_embed_a",
    "decoder_temporal_embed",
    "decoder_audio_pos_embed",
)
_ORIGINAL_NUM_FRAMES = 8  # TVLT's `num_frames`; `temporal_embed` holds `max_frames` = 64 rows
_HEAD_DIM = 64  # ViT-B convention: heads are not stored in the weights
_DECODER_HEAD_DIM = 32  # original decoder: 512 wide, 16 heads

ModelClass = type[nn.Module]


@dataclass
class ConversionReport:
    """What the conversion did, for logs and the UI."""

    model_class: str  # "TvltForPreTraining", "TvltForAudioVisualClassification" or "TvltModel"
    renamed: dict[str, str] = field(default_factory=dict)  # original key -> ours
    truncated: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)  # ours -> (from, to)
    ignored: list[str] = field(default_factory=list)  # original keys with no counterpart (text, VQA, ...)


def read_original_state_dict(source: Union[str, os.PathLike, Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """A `.ckpt` path or loaded dict -> flat state dict with Lightning's `state_dict`/`model` nesting and
    `transformer.` prefix removed."""
    if isinstance(source, (str, os.PathLike)):
        try:
            source = torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(f"{os.fspath(source)!r} is not a weights-only checkpoint: {error}") from error
    for nest in ("state_dict", "model"):
        if nest in source and isinstance(source[nest], Mapping):
            source = source[nest]
    return {key.removeprefix("transformer."): value for key, value in source.items() if torch.is_tensor(value)}


def _split_qkv(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Unfuse `attn.qkv` (3D, D) rows into `attn.q/k/v` (query, key, value in that order, as the original
    reshapes to (3, heads, head_dim)); `q_bias`/`v_bias` variants get a zero key bias."""
    out = {}
    for key, value in state_dict.items():
        stem, _, leaf = key.rpartition(".")
        if stem.endswith("attn.qkv"):
            base = stem[: -len("qkv")]
            for part, chunk in zip("qkv", value.chunk(3, dim=0)):
                out[f"{base}{part}.{leaf}"] = chunk.clone()
        elif stem.endswith("attn") and leaf in ("q_bias", "v_bias"):
            out[f"{stem}.{leaf[0]}.bias"] = value
            out[f"{stem}.k.bias"] = torch.zeros_like(value)
        else:
            out[key] = value
    return out


def _replace_prefix(name: str, table: tuple[tuple[str, str], ...]) -> Optional[str]:
    for old, new in table:
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return None


def rename_key(key: str) -> Optional[str]:
    """Original key (after `_split_qkv`) -> ours, or None when the key has no counterpart."""
    block = re.match(r"^(decoder_blocks|blocks)\.(\d+)\.(.+)$", key)
    if block:
        inner = _replace_prefix(block.group(3), _BLOCK_TABLE)
        outer = _replace_prefix(block.group(1), _KEY_TABLE)
        return None if inner is None else f"{outer}.{block.group(2)}.{inner}"
    return _replace_prefix(key, _KEY_TABLE)


def _count_blocks(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    indices = {int(m.group(1)) for k in state_dict for m in [re.match(rf"^{prefix}\.(\d+)\.", k)] if m}
    return max(indices) + 1 if indices else 0


def _shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise ValueError(f"original checkpoint lacks {key!r}: cannot infer the config")
    return tuple(state_dict[key].shape)


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> TvltConfig:
    """Config from an original state dict (after `read_original_state_dict`).

    Widths, depths, patch sizes and heads are read from shapes; head counts follow the original
    (64 per encoder head, 32 per decoder head); T = 8 and S = 2048 as TVLT, capped by the stored tables.
    """
    hidden = _shape(state_dict, "cls_token")[-1]
    _, channels, *image_patch = _shape(state_dict, "patch_embed_v.proj.weight")
    _, _, *audio_patch = _shape(state_dict, "patch_embed_a.proj.weight")
    has_decoder = "decoder_embed.weight" in state_dict
    sizes = dict(
        hidden_size=hidden,
        num_hidden_layers=_count_blocks(state_dict, "blocks"),
        num_attention_heads=max(1, hidden // _HEAD_DIM),
        intermediate_size=_shape(state_dict, "blocks.0.mlp.fc1.weight")[0],
        qkv_bias=any(k.startswith("blocks.0.attn.") and "bias" in k and "proj" not in k for k in state_dict),
        image_patch_size=image_patch,
        audio_patch_size=audio_patch,
        num_image_channels=channels,
        image_size=math.isqrt(_shape(state_dict, "pos_embed_v")[1]) * image_patch[0],
        frequency_length=_shape(state_dict, "freq_embed")[1] * audio_patch[1],
        num_frames=min(_ORIGINAL_NUM_FRAMES, _shape(state_dict, "temporal_embed")[1]),
        spectrogram_length=min(TvltConfig.spectrogram_length, _shape(state_dict, "pos_embed_a")[1] * audio_patch[0]),
        task_matching="matching_score.fc.weight" in state_dict,
        task_mae=has_decoder,
    )
    if has_decoder:
        decoder_hidden = _shape(state_dict, "decoder_embed.weight")[0]
        sizes.update(
            decoder_hidden_size=decoder_hidden,
            decoder_num_hidden_layers=_count_blocks(state_dict, "decoder_blocks"),
            decoder_num_attention_heads=max(1, decoder_hidden // _DECODER_HEAD_DIM),
            decoder_intermediate_size=_shape(state_dict, "decoder_blocks.0.mlp.fc1.weight")[0],
        )
    if "classifier.4.weight" in state_dict:
        num_labels = _shape(state_dict, "classifier.4.weight")[0]
        sizes.update(
            num_labels=num_labels,
            loss_type="regression" if num_labels == 1 else "classification",
            classifier_pooler="classifier.0.dense.weight" in state_dict,
        )
    if not (sizes["task_matching"] or sizes["task_mae"]):
        sizes["task_matching"] = True  # irrelevant to the encoder/classifier; the config needs one task
    return TvltConfig(**sizes)


def target_model_class(state_dict: Mapping[str, torch.Tensor]) -> ModelClass:
    """Which of our classes holds the heads present in an original state dict."""
    if any(k.startswith("classifier.") for k in state_dict):
        return TvltForAudioVisualClassification
    if any(k.startswith(("decoder_", "mae_score_", "matching_score.")) for k in state_dict):
        return TvltForPreTraining
    return TvltModel


def _expected_shapes(model_class: ModelClass, config: TvltConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = model_class(config)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _fit(
    key: str, original: str, value: torch.Tensor, expected: tuple[int, ...], report: ConversionReport
) -> torch.Tensor:
    """`value` cut to `expected` rows where the table allows it; ValueError naming both shapes otherwise."""
    longer = value.dim() == 3 and value.shape[1] > expected[1] and value.shape[::2] == expected[::2]
    if key in _TRUNCATED and longer:
        report.truncated[key] = (tuple(value.shape), expected)
        return value[:, : expected[1]].clone()
    if tuple(value.shape) != expected:
        raise ValueError(f"{original!r} -> {key!r}: checkpoint shape {tuple(value.shape)} != model shape {expected}")
    return value


def convert_original_checkpoint(
    source: Union[str, os.PathLike, Mapping[str, torch.Tensor]], config: Optional[TvltConfig] = None
) -> tuple[dict[str, torch.Tensor], TvltConfig, ConversionReport]:
    """Original TVLT checkpoint -> (our state dict, config, report).

    source: a `.ckpt` path or an already loaded dict. config: inferred from the shapes when None.
    Unknown keys (text embeddings, MLM, VQA, retrieval `rank_output`) are dropped with a warning.
    Raises ValueError on a shape mismatch or when the target model would miss keys.
    """
    original = read_original_state_dict(source)
    config = infer_config(original) if config is None else config
    model_class = target_model_class(original)
    expected = _expected_shapes(model_class, config)
    report = ConversionReport(model_class=model_class.__name__)
    converted = {}
    for old, value in _split_qkv(original).items():
        new = rename_key(old)
        if new is not None and model_class is TvltModel:
            new = new.removeprefix("tvlt.")  # a bare encoder has no `tvlt.` submodule
        if new not in expected:
            report.ignored.append(old)
            continue
        converted[new] = _fit(new, old, value, expected[new], report)
        report.renamed[old] = new
    missing = sorted(set(expected) - set(converted))
    if missing:
        raise ValueError(f"original checkpoint lacks weights for {missing} of {model_class.__name__}")
    if report.ignored:
        warnings.warn(f"ignored original keys without a counterpart: {sorted(report.ignored)}", stacklevel=2)
    return converted, config, report


def load_original_checkpoint(
    source: Union[str, os.PathLike, Mapping[str, torch.Tensor]], config: Optional[TvltConfig] = None
) -> tuple[nn.Module, ConversionReport]:
    """Convert and load strictly into the matching model class; returns the model in eval mode."""
    state_dict, config, report = convert_original_checkpoint(source, config)
    model = getattr(modeling, report.model_class)(config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval(), report
