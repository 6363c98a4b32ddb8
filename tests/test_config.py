import dataclasses
import json

import pytest

from tvlt.config import TvltConfig


def test_defaults_match_transformers_base():
    config = TvltConfig.base()
    assert (config.image_size, config.spectrogram_length, config.frequency_length) == (224, 2048, 128)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert (config.decoder_hidden_size, config.decoder_num_hidden_layers) == (512, 8)
    assert config.image_patch_size == [16, 16] and config.audio_patch_size == [16, 16]
    assert config.audio_mask_type == "frame-level" and config.layer_norm_eps == 1e-6
    assert config.num_labels == 2 and config.id2label == {0: "LABEL_0", 1: "LABEL_1"}


def test_presets():
    small = TvltConfig.small()
    assert (small.image_size, small.hidden_size, small.num_hidden_layers, small.decoder_hidden_size) == (96, 192, 6, 128)
    tiny = TvltConfig.tiny(num_labels=3)
    assert (tiny.image_size, tiny.hidden_size, tiny.num_labels) == (32, 32, 3)


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(image_size=40), "image_size"),
        (dict(spectrogram_length=40), "spectrogram_length"),
        (dict(hidden_size=33), "hidden_size"),
        (dict(decoder_hidden_size=33), "decoder_hidden_size"),
        (dict(num_frames=0), "num_frames"),
        (dict(intermediate_size=-1), "intermediate_size"),
        (dict(pixel_mask_ratio=1.0), "pixel_mask_ratio"),
        (dict(audio_mask_ratio=-0.1), "audio_mask_ratio"),
        (dict(hidden_act="swish2"), "hidden_act"),
        (dict(loss_type="ranking"), "loss_type"),
        (dict(audio_mask_type="tube"), "audio_mask_type"),
        (dict(image_patch_size=[16]), "image_patch_size"),
        (dict(num_labels=0), "num_labels"),
        # wrong types from a hand-edited config.json: still a ValueError naming the field
        (dict(pixel_mask_ratio="0.5"), "pixel_mask_ratio"),
        (dict(layer_norm_eps=float("nan")), "layer_norm_eps"),
        (dict(initializer_range=float("inf")), "initializer_range"),
        (dict(image_patch_size=16), "image_patch_size"),
        (dict(qkv_bias="yes"), "qkv_bias"),
        (dict(task_mae=None), "task_mae"),
        (dict(id2label={"a": "cat"}), "id2label"),
        (dict(extra=5), "extra"),
    ],
)
def test_invalid_values_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        TvltConfig.tiny(**overrides)


@pytest.mark.parametrize("spelling, internal, written", [
    ("frame-level", "frame-level", "frame-level"), ("frame_level", "frame-level", "frame-level"),
    ("patch-level", "patch-level", "patch_level"), ("patch_level", "patch-level", "patch_level"),
])
def test_audio_mask_type_spellings(spelling, internal, written):
    config = TvltConfig.tiny(audio_mask_type=spelling)
    assert config.audio_mask_type == internal
    assert config.to_dict()["audio_mask_type"] == written


def test_labels_follow_transformers():
    config = TvltConfig.from_dict({"id2label": {"0": "neg", "1": "neu", "2": "pos"}})
    assert config.num_labels == 3 and config.id2label[2] == "pos" and config.label2id == {"neg": 0, "neu": 1, "pos": 2}
    assert dataclasses.replace(TvltConfig.tiny(), num_labels=6).num_labels == 6
    with pytest.raises(ValueError, match="num_labels"):
        TvltConfig(num_labels=2, id2label={0: "a", 1: "b", 2: "c"})


def test_json_round_trip_keeps_unknown_keys(tmp_path):
    raw = {**TvltConfig.tiny(audio_mask_type="patch-level").to_dict(), "torch_dtype": "float32", "architectures": ["TvltModel"]}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    config = TvltConfig.from_pretrained(tmp_path)
    assert config.extra == {"torch_dtype": "float32", "architectures": ["TvltModel"]}
    config.save_pretrained(tmp_path / "out")
    written = json.loads((tmp_path / "out" / "config.json").read_text())
    assert written == raw and written["model_type"] == "tvlt" and "num_labels" not in written
    assert TvltConfig.from_pretrained(tmp_path / "out") == config


def test_wrong_model_type_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="model_type"):
        TvltConfig.from_dict({"model_type": "vilt"})
    with pytest.raises(FileNotFoundError, match="config.json"):
        TvltConfig.from_pretrained(tmp_path)
