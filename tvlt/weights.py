"""Checkpoint I/O in transformers' format: `config.json` + `model.safetensors` (or `pytorch_model.bin`).

`PretrainedMixin` gives every model class `from_pretrained` / `save_pretrained` and the weight init.
State-dict keys are transformers 4.40.2's, so the only remapping is the `tvlt.` prefix between the bare
encoder and the models with heads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tvlt.config import TvltConfig

logger = logging.getLogger(__name__)

BASE_PREFIX = "tvlt."
SAFETENSORS_NAME = "model.safetensors"
PICKLE_NAME = "pytorch_model.bin"
HUB_PATTERNS = ["config.json", "*.safetensors", "*.bin", "*.index.json", "preprocessor_config.json", "README.md",
                "provenance.json"]  # the last two: the model card and how it was made, for the app's Model tab
HUB_TIMEOUT_S = 5.0
_TRUE = {"1", "ON", "YES", "TRUE"}


class CheckpointError(ValueError):
    """A checkpoint does not fit the model (keys or shapes), or no weights file was found."""


class HubUnavailableError(OSError):
    """A hub id was given but the Hugging Face Hub could not be reached (or the repo is not there)."""


@dataclass
class LoadingInfo:
    missing_keys: list[str] = field(default_factory=list)  # newly initialised
    unexpected_keys: list[str] = field(default_factory=list)  # in the checkpoint, ignored
    # (key, checkpoint shape, model shape)
    mismatched_keys: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)


def resolve_directory(path_or_repo_id: str | os.PathLike) -> str:
    """A local directory as is; otherwise a hub repo id, downloaded (or taken from cache when HF_HUB_OFFLINE=1)."""
    path = os.fspath(path_or_repo_id)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise CheckpointError(f"{path!r} is a file; pass the directory holding config.json and the weights")
    import huggingface_hub  # only needed for hub ids

    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE
    try:
        return huggingface_hub.snapshot_download(
            path,
            allow_patterns=HUB_PATTERNS,
            etag_timeout=HUB_TIMEOUT_S,
            local_files_only=offline,
            endpoint=os.environ.get("HF_ENDPOINT") or None,  # read per call, not at import
        )
    except huggingface_hub.errors.HFValidationError as error:
        raise CheckpointError(f"{path!r} is neither a local directory nor a valid hub repo id") from error
    except huggingface_hub.errors.RepositoryNotFoundError as error:  # the hub answered: no such (public) repo
        raise CheckpointError(
            f"the Hugging Face Hub has no public repo {path!r} (check the spelling, or log in for a private one)"
        ) from error
    except (OSError, huggingface_hub.errors.HfHubHTTPError) as error:
        mode = "offline mode (HF_HUB_OFFLINE=1) and no cached copy" if offline else f"{type(error).__name__}"
        raise HubUnavailableError(
            f"could not reach the Hugging Face Hub for {path!r} ({mode}); "
            "download the checkpoint elsewhere and pass its local directory instead"
        ) from error


def _load_file(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        return load_file(path, device="cpu")
    return torch.load(path, weights_only=True, map_location="cpu")


def read_state_dict(directory: str) -> dict[str, torch.Tensor]:
    """Tensors of `directory`: safetensors first, then pytorch_model.bin; sharded `*.index.json` too."""
    for name in (SAFETENSORS_NAME, PICKLE_NAME):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return _load_file(path)
        if os.path.isfile(path + ".index.json"):
            with open(path + ".index.json", encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            return {k: v for shard in shards for k, v in _load_file(os.path.join(directory, shard)).items()}
    raise CheckpointError(f"no {SAFETENSORS_NAME} or {PICKLE_NAME} in {directory!r}")


# Top-level modules of the TVLT classes with heads (transformers' names). Between those classes a checkpoint's head
# the model lacks is dropped and a head the checkpoint lacks is newly initialised, as transformers does; a top-level
# name outside this set (e.g. a misspelt head) is a key mismatch, an error when loading strictly.
HEAD_MODULES = frozenset({
    "matching_head", "encoder_to_decoder", "pixel_mask_token", "audio_mask_token", "decoder", "decoder_pixel_pos_embed",
    "decoder_temporal_embed", "decoder_pixel_type_embed", "decoder_audio_pos_embed", "decoder_freq_embed",
    "decoder_audio_type_embed", "pixel_mae_head", "audio_mae_head", "classifier_pooler", "classifier",
})


def _top(key: str) -> str:
    return key.split(".", 1)[0]


def adapt_state_dict(
    state_dict: dict[str, torch.Tensor], model_shapes: dict[str, torch.Size]
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Map checkpoint keys onto the model's -> (state dict, ignored head keys, newly initialised head keys).

    As transformers: a bare-encoder checkpoint gets the `tvlt.` prefix for a model with heads; a checkpoint with
    heads loses the prefix (and its heads) for the bare encoder. Between models with heads, a `HEAD_MODULES` module
    absent from either side is dropped / newly initialised; every other difference stays for `compare_keys`.
    """
    model_has_heads = any(k.startswith(BASE_PREFIX) for k in model_shapes)
    ckpt_has_heads = any(k.startswith(BASE_PREFIX) for k in state_dict)
    ignored: list[str] = []
    if model_has_heads and not ckpt_has_heads:
        state_dict = {BASE_PREFIX + k: v for k, v in state_dict.items()}
    elif ckpt_has_heads and not model_has_heads:
        ignored = sorted(k for k in state_dict if _top(k) in HEAD_MODULES)
        state_dict = {k[len(BASE_PREFIX):] if k.startswith(BASE_PREFIX) else k: v
                      for k, v in state_dict.items() if _top(k) not in HEAD_MODULES}
    if not model_has_heads:
        return state_dict, ignored, []
    model_tops = {_top(k) for k in model_shapes}
    ckpt_tops = {_top(k) for k in state_dict}
    dropped = {t for t in ckpt_tops - model_tops if t in HEAD_MODULES}
    ignored += sorted(k for k in state_dict if _top(k) in dropped)
    new_heads = sorted(k for k in model_shapes if _top(k) not in ckpt_tops and _top(k) in HEAD_MODULES)
    return {k: v for k, v in state_dict.items() if _top(k) not in dropped}, ignored, new_heads


def compare_keys(state_dict: dict[str, torch.Tensor], model_shapes: dict[str, torch.Size]) -> LoadingInfo:
    """Missing, unexpected and shape-mismatched keys of an (adapted) state dict against the model."""
    return LoadingInfo(
        missing_keys=sorted(set(model_shapes) - set(state_dict)),
        unexpected_keys=sorted(set(state_dict) - set(model_shapes)),
        mismatched_keys=[
            (k, tuple(v.shape), tuple(model_shapes[k]))
            for k, v in sorted(state_dict.items())
            if k in model_shapes and v.shape != model_shapes[k]
        ],
    )


def _format_errors(info: LoadingInfo, source: str) -> str:
    lines = [f"checkpoint {source!r} does not fit the model:"]
    if info.missing_keys:
        lines.append(f"  missing keys ({len(info.missing_keys)}): {', '.join(info.missing_keys)}")
    if info.unexpected_keys:
        lines.append(f"  unexpected keys ({len(info.unexpected_keys)}): {', '.join(info.unexpected_keys)}")
    for key, ckpt_shape, model_shape in info.mismatched_keys:
        lines.append(f"  shape mismatch {key}: checkpoint {ckpt_shape} vs model {model_shape}")
    return "\n".join(lines)


class PretrainedMixin:
    """Weight init and transformers-format checkpoint I/O for `nn.Module`s with a `config: TvltConfig`."""

    config: TvltConfig

    def post_init(self) -> None:
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """Linear/conv ~ N(0, initializer_range), LayerNorm = identity (as transformers); embeddings, CLS and mask
        tokens ~ truncated N(0, initializer_range) (transformers leaves them at zero, which stalls training)."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        else:
            for parameter in module.parameters(recurse=False):
                nn.init.trunc_normal_(parameter, std=std, a=-2 * std, b=2 * std)

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        config: Optional[TvltConfig] = None,
        strict: bool = True,
        output_loading_info: bool = False,
        **config_overrides: Any,
    ):
        """Load a transformers-format checkpoint (local directory or hub id); `config_overrides` e.g. num_labels=6.

        strict: missing/unexpected keys (beyond heads the other architecture lacks) and shape mismatches raise
        `CheckpointError` listing them; otherwise loadable tensors are loaded and the rest reported.
        Newly initialised and ignored keys are logged; `output_loading_info=True` returns (model, LoadingInfo).
        """
        directory = resolve_directory(path_or_repo_id)
        config = config or TvltConfig.from_pretrained(directory)
        if config_overrides:
            unknown = sorted(set(config_overrides) - {f.name for f in dataclasses.fields(TvltConfig)})
            if unknown:
                raise ValueError(f"unknown TvltConfig field(s) in from_pretrained overrides: {', '.join(unknown)}")
            config = dataclasses.replace(config, **config_overrides)
        model = cls(config)
        info = model.load_checkpoint_state_dict(read_state_dict(directory), strict=strict, source=str(path_or_repo_id),
                                                architectures=config.extra.get("architectures"))
        model.eval()
        return (model, info) if output_loading_info else model

    def load_checkpoint_state_dict(
        self, state_dict: dict[str, torch.Tensor], strict: bool = True, source: str = "state dict",
        architectures: Optional[list[str]] = None,
    ) -> LoadingInfo:
        """Load a transformers-keyed state dict into this model (rules of `adapt_state_dict`) -> what was skipped.

        architectures: the checkpoint's class names (its config.json). A checkpoint of this model's own class must
        hold every head: none is newly initialised.
        """
        model_shapes = {k: v.shape for k, v in self.state_dict().items()}
        state_dict, ignored, new_heads = adapt_state_dict(state_dict, model_shapes)
        if type(self).__name__ in (architectures or []):
            new_heads = []
        info = compare_keys(state_dict, model_shapes)
        missing = sorted(set(info.missing_keys) - set(new_heads))
        if strict and (missing or info.unexpected_keys or info.mismatched_keys):
            raise CheckpointError(_format_errors(dataclasses.replace(info, missing_keys=missing), source))
        bad = {k for k, _, _ in info.mismatched_keys} | set(info.unexpected_keys)
        self.load_state_dict({k: v for k, v in state_dict.items() if k not in bad}, strict=False)
        info.missing_keys += [k for k, _, _ in info.mismatched_keys]
        info.unexpected_keys += ignored
        if info.missing_keys:
            logger.warning("%s: newly initialised (not in %s): %s", type(self).__name__, source, info.missing_keys)
        if info.unexpected_keys:
            logger.warning("%s: ignored checkpoint keys of %s: %s", type(self).__name__, source, info.unexpected_keys)
        return info

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write config.json + model.safetensors that transformers 4.40.2 loads."""
        state_dict = self.state_dict()
        if any(not torch.is_tensor(v) or v.is_quantized for v in state_dict.values()):
            raise CheckpointError(
                "this model has quantized layers (tvlt.quantize_for_cpu) and cannot be saved in transformers' format;"
                " save the fp32 model it was made from"
            )
        if self.config.classifier_pooler:
            warnings.warn(
                "classifier_pooler=True (the original TVLT's pooler before the classifier) has no place in transformers"
                " 4.40.2: transformers would load this directory without it and give other outputs; tvlt loads it"
                " exactly", UserWarning, stacklevel=2)
        os.makedirs(directory, exist_ok=True)
        extra = {**self.config.extra, "architectures": [type(self).__name__]}
        dataclasses.replace(self.config, extra=extra).save_pretrained(directory)
        # clone: safetensors refuses tensors that share storage, and views must be contiguous
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
        save_file(tensors, os.path.join(directory, SAFETENSORS_NAME), metadata={"format": "pt"})

