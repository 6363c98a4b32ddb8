"""Helpers every view's handlers share: looking up the user's clip and model, array conversions."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Optional

import gradio as gr
import numpy as np
import torch

from components.core import CLASSIFICATION, PRETRAINING, Clip, ClipStore, LoadedModel, ModelRegistry
from tvlt import media

logger = logging.getLogger("tvlt_explorer")

UNEXPECTED = "Something went wrong on the server while doing this; it has been logged. Try again, or load the clip again."
NO_CLIP = ("Load a clip first: upload or record a video (or audio), or pick a bundled example, then press “Load clip”. "
           "(Loaded one already? The server keeps only the most recent clips of all visitors: load it again.)")


@dataclass
class AppContext:
    """Everything the handlers need, built once per app (tests build several)."""

    registry: ModelRegistry
    clips: ClipStore
    examples: dict  # name -> path of a bundled example video
    example_clips: dict = field(default_factory=dict)  # (name, frames) -> decoded Clip, shared: examples are public
    example_lock: threading.Lock = field(default_factory=threading.Lock)
    attention_cache: OrderedDict = field(default_factory=OrderedDict)  # (clip, model, layer) -> AttentionMaps

    def clip(self, key: Optional[str]) -> Clip:
        clip = self.clips.get(key)
        if clip is None:
            raise gr.Error(NO_CLIP, title="No clip loaded")
        return clip

    def model(self, key: Optional[str], need: str = PRETRAINING) -> LoadedModel:
        """The user's picked model (or the default); `need` = the model class the view requires."""
        model = self.registry.get(key)
        if need == PRETRAINING and model.kind != PRETRAINING:
            model = self.registry.default
        if need == CLASSIFICATION and model.kind != CLASSIFICATION:
            model = self.registry.sentiment
            if model is None:
                raise gr.Error("No sentiment model is loaded: pick a classification checkpoint in the model picker.")
        return model


def pixel_values_to_frames(pixel_values: torch.Tensor) -> np.ndarray:
    """(T, C, H, W) normalised to about [-1, 1] (mean 0.5, std 0.5) -> uint8 (T, H, W, 3)."""
    frames = (pixel_values.detach().float().cpu().numpy() * 0.5 + 0.5).clip(0, 1) * 255
    return frames.round().astype(np.uint8).transpose(0, 2, 3, 1)


def audio_values_to_spectrogram(audio_values: torch.Tensor) -> np.ndarray:
    """(1, S, F) or (S, F) model audio values -> float32 (S, F) in [-1, 1]."""
    values = audio_values.detach().float().cpu().numpy()
    return values.reshape(values.shape[-2], values.shape[-1])


def valid_time_patches(audio_mask: Optional[torch.Tensor], freq_patches: int, time_patches: int) -> int:
    """How many audio time-patch columns hold real audio (the rest is padding)."""
    if audio_mask is None:
        return time_patches
    valid = audio_mask.reshape(-1, freq_patches)[:, 0] > 0.5
    return int(valid.sum())


def user_error(error: Exception, what: str) -> gr.Error:
    """A library ValueError (bad value named in a sentence) as a message for the page."""
    message = str(error).strip() or type(error).__name__
    return gr.Error(f"{what}: {message[0].upper()}{message[1:]}" if what else message)


def bind(fn: Callable, ctx: AppContext) -> Callable:
    """`fn(ctx, *rest)` as a function of `rest` that keeps names, defaults and annotations.

    gradio reads the signature (API parameter names, `gr.Progress` defaults) and the type hints
    (`gr.SelectData`); a functools.partial hides the hints, so event handlers are bound with this.
    Errors no handler turned into a sentence still reach the page as one: a media error as its own message,
    anything unexpected as a generic sentence, with the traceback in the server log.
    """
    @functools.wraps(fn)
    def bound(*args, **kwargs):
        try:
            return fn(ctx, *args, **kwargs)
        except gr.Error:
            raise
        except media.MediaError as error:
            raise gr.Error(str(error), title="Cannot read this media") from error
        except Exception as error:
            logger.exception("%s failed", fn.__name__)
            raise gr.Error(UNEXPECTED) from error

    signature = inspect.signature(fn)
    bound.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    return bound
