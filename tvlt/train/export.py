"""Transformers-format export of a run: config.json + model.safetensors (`save_pretrained`),
preprocessor_config.json (the processor's `save_pretrained`) and provenance.json (what produced it)."""

from __future__ import annotations

import json
import os
from typing import Any

from torch import nn

from tvlt.config import TvltConfig
from tvlt.train.loop import PROVENANCE_NAME, Progress, provenance, read_checkpoint


def write_json(path: str, record: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, default=str)
        f.write("\n")


def save_processor(config: TvltConfig, directory: str) -> None:
    """preprocessor_config.json for the config's frame size, frame count and spectrogram length."""
    from tvlt.processing import TvltFeatureExtractor, TvltImageProcessor, TvltProcessor

    size = config.image_size
    frames = TvltImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                patch_size=config.image_patch_size, num_frames=config.num_frames)
    sound = TvltFeatureExtractor(spectrogram_length=config.spectrogram_length, patch_size=config.audio_patch_size,
                                 feature_size=config.frequency_length)
    TvltProcessor(frames, sound).save_pretrained(directory)


def export(model: nn.Module, directory: str, record: dict[str, Any]) -> str:
    """Write `model` (a tvlt model with `save_pretrained`) and `record` as provenance.json; returns directory."""
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(directory)
    save_processor(model.config, directory)
    write_json(os.path.join(directory, PROVENANCE_NAME), record)
    return directory


def export_run(run: str, directory: str) -> str:
    """Export the model of a run's checkpoint (pretraining or sentiment, told apart by the stored args)."""
    from tvlt.modeling import TvltForPreTraining
    from tvlt.train.finetune import sentiment_model

    state = read_checkpoint(run)
    args = state["args"]
    config = TvltConfig.from_dict(args["config"])
    kind = "sentiment" if "finetune" in args else "pretrain"
    model = sentiment_model(config) if kind == "sentiment" else TvltForPreTraining(config)
    model.load_state_dict(state["modules"]["model"])
    if kind == "sentiment":
        model.config.extra["sentiment_rmse"] = validation_rmse(model.eval())
    return export(model, directory, provenance(Progress(**state["progress"]), {"kind": kind, "args": args}))


CALIBRATION_CLIPS = 500  # validation faces whose error sets the spread of the app's class confidences


def validation_rmse(model: nn.Module, num_clips: int = CALIBRATION_CLIPS) -> float:
    """Root-mean-square error of a sentiment model on the validation split (never the test split)."""
    import torch

    from tvlt.train import finetune, inputs

    with torch.no_grad():
        clips = inputs.face_inputs(finetune.PROBE_SPLIT, list(range(num_clips)), model.config, torch.device("cpu"))
        mse = finetune.probe(model, finetune.FaceBatch(*clips, step=-1))["mse"]
    return round(mse ** 0.5, 4)


def read_provenance(directory: str) -> dict[str, Any]:
    """The provenance.json of an export (empty dict when there is none)."""
    path = os.path.join(directory, PROVENANCE_NAME)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)
