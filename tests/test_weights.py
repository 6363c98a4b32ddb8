import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tvlt.config import TvltConfig
from tvlt.modeling import TvltForAudioVisualClassification, TvltForPreTraining, TvltModel
from tvlt.weights import CheckpointError, HubUnavailableError, resolve_directory

MODEL_FIXTURES = Path(__file__).parent / "fixtures" / "model"


def checkpoint_copy(tmp_path: Path, case: str, edit=None) -> Path:
    """Copy a fixture checkpoint, optionally editing its state dict."""
    target = tmp_path / case
    shutil.copytree(MODEL_FIXTURES / case / "safetensors", target)
    if edit is not None:
        tensors = load_file(target / "model.safetensors")
        edit(tensors)
        save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_both_formats_load_the_same_tensors(fmt):
    model = TvltForPreTraining.from_pretrained(MODEL_FIXTURES / "pretraining" / fmt)
    reference = load_file(MODEL_FIXTURES / "pretraining" / "safetensors" / "model.safetensors")
    state = model.state_dict()
    assert set(state) == set(reference)
    assert all(torch.equal(state[k], v) for k, v in reference.items())
    assert not model.training


def test_strict_load_lists_missing_unexpected_and_mismatched_keys(tmp_path):
    def edit(tensors):
        del tensors["encoder.layer.1.attention.attention.key.bias"]
        tensors["encoder.layer.9.extra.weight"] = torch.zeros(2)
        tensors["cls_embedding"] = torch.zeros(1, 1, 7)

    with pytest.raises(CheckpointError) as error:
        TvltModel.from_pretrained(checkpoint_copy(tmp_path, "tiny", edit))
    message = str(error.value)
    assert "missing keys (1): encoder.layer.1.attention.attention.key.bias" in message
    assert "unexpected keys (1): encoder.layer.9.extra.weight" in message
    assert "cls_embedding: checkpoint (1, 1, 7) vs model (1, 1, 32)" in message


def test_non_strict_load_reports_what_it_skipped(tmp_path):
    directory = checkpoint_copy(tmp_path, "tiny", lambda t: t.pop("layernorm.bias"))
    model, info = TvltModel.from_pretrained(directory, strict=False, output_loading_info=True)
    assert info.missing_keys == ["layernorm.bias"] and info.unexpected_keys == []
    assert torch.equal(model.layernorm.bias, torch.zeros(32))


def test_missing_key_of_an_existing_head_is_an_error(tmp_path):
    directory = checkpoint_copy(tmp_path, "multiclass", lambda t: t.pop("classifier.3.bias"))
    with pytest.raises(CheckpointError, match="classifier.3.bias"):
        TvltForAudioVisualClassification.from_pretrained(directory)


def test_misspelt_head_is_an_error_not_a_new_head(tmp_path):
    def misspell(tensors):
        for key in [k for k in tensors if k.startswith("classifier.")]:
            tensors["classifer." + key.split(".", 1)[1]] = tensors.pop(key)

    path = checkpoint_copy(tmp_path, "multiclass", misspell)
    with pytest.raises(CheckpointError, match=r"missing keys .*classifier\.0\.weight") as info:
        TvltForAudioVisualClassification.from_pretrained(path)
    assert "unexpected keys" in str(info.value) and "classifer.0.weight" in str(info.value)


def test_own_class_checkpoint_must_hold_every_head(tmp_path):
    def drop_audio_head(tensors):
        for key in [k for k in tensors if k.startswith("audio_mae_head.")]:
            del tensors[key]

    path = checkpoint_copy(tmp_path, "pretraining", drop_audio_head)  # config.json says TvltForPreTraining
    with pytest.raises(CheckpointError, match=r"missing keys \(2\): audio_mae_head.decoder.bias"):
        TvltForPreTraining.from_pretrained(path)


def test_stray_keys_are_errors_for_every_class(tmp_path):
    path = checkpoint_copy(tmp_path, "multiclass", lambda t: t.update({"classifer.0.weight": torch.zeros(1)}))
    for cls in (TvltModel, TvltForPreTraining):
        with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): classifer.0.weight") as info:
            cls.from_pretrained(path)
        assert "missing" not in str(info.value)  # the other class's heads are legitimately new, not noise


def test_bare_model_from_a_checkpoint_with_heads():
    model, info = TvltModel.from_pretrained(MODEL_FIXTURES / "pretraining" / "safetensors", output_loading_info=True)
    full = TvltForPreTraining.from_pretrained(MODEL_FIXTURES / "pretraining" / "safetensors")
    assert info.missing_keys == [] and "matching_head.fc.weight" in info.unexpected_keys
    assert all(torch.equal(v, full.tvlt.state_dict()[k]) for k, v in model.state_dict().items())


def test_classifier_from_pretraining_checkpoint_reports_new_head(caplog):
    with caplog.at_level(logging.WARNING, logger="tvlt.weights"):
        model, info = TvltForAudioVisualClassification.from_pretrained(
            MODEL_FIXTURES / "pretraining" / "safetensors", num_labels=4, output_loading_info=True
        )
    head = sorted(k for k in model.state_dict() if k.startswith("classifier."))
    assert info.missing_keys == head and model.classifier[3].out_features == 4
    assert "pixel_mask_token" in info.unexpected_keys and "matching_head.pooler.dense.bias" in info.unexpected_keys
    assert "newly initialised" in caplog.text and "classifier.3.weight" in caplog.text


def test_heads_from_bare_checkpoint_are_new():
    model, info = TvltForPreTraining.from_pretrained(MODEL_FIXTURES / "tiny" / "safetensors", output_loading_info=True)
    assert "matching_head.fc.weight" in info.missing_keys and "decoder.layernorm.weight" in info.missing_keys
    assert not any(k.startswith("tvlt.") for k in info.missing_keys)


def test_head_size_mismatch_is_listed():
    with pytest.raises(CheckpointError, match=r"classifier.3.weight: checkpoint \(6, 64\) vs model \(3, 64\)"):
        TvltForAudioVisualClassification.from_pretrained(MODEL_FIXTURES / "multiclass" / "safetensors", num_labels=3)


def test_save_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    model = TvltForAudioVisualClassification(TvltConfig.tiny(num_labels=3, classifier_pooler=True))
    with pytest.warns(UserWarning, match="transformers would load this directory without it"):
        model.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["architectures"] == ["TvltForAudioVisualClassification"] and written["model_type"] == "tvlt"
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        assert f.metadata() == {"format": "pt"}
    loaded = TvltForAudioVisualClassification.from_pretrained(tmp_path)
    assert loaded.config.classifier_pooler and loaded.config.num_labels == 3
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("case", ["tiny", "odd", "regression", "multiclass", "pretraining"])
def test_save_pretrained_writes_what_transformers_wrote(case, tmp_path):
    """Same tensors (keys, shapes, dtypes, values) and the same config values as the directory transformers 4.40.2
    saved; the numeric check that transformers then gives the same outputs is `roundtrip.json` below."""
    source = MODEL_FIXTURES / case / "safetensors"
    theirs_config = json.loads((source / "config.json").read_text())
    cls = {"TvltModel": TvltModel, "TvltForPreTraining": TvltForPreTraining,
           "TvltForAudioVisualClassification": TvltForAudioVisualClassification}[theirs_config["architectures"][0]]
    cls.from_pretrained(source).save_pretrained(tmp_path)
    theirs, ours = load_file(source / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert set(ours) == set(theirs)
    assert all(ours[k].dtype == v.dtype and torch.equal(ours[k], v) for k, v in theirs.items())
    ours_config = json.loads((tmp_path / "config.json").read_text())
    volatile = {"transformers_version", "_name_or_path", "torch_dtype"}  # written by transformers about itself
    assert {k: v for k, v in theirs_config.items() if k not in volatile} == {
        k: v for k, v in ours_config.items() if k in theirs_config and k not in volatile}


def test_transformers_loads_our_save_pretrained():
    """make_model_fixtures.py reloads every fixture with tvlt, saves it with tvlt, loads that with transformers."""
    record = json.loads((MODEL_FIXTURES / "roundtrip.json").read_text())
    assert record["transformers"] == "4.40.2"
    assert set(record["max_abs_diff"]) == {"tiny", "odd", "regression", "multiclass", "pretraining"}
    assert max(record["max_abs_diff"].values()) < 1e-6


def test_offline_hub_id_fails_fast_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailableError, match="could not reach the Hugging Face Hub.*local directory"):
        TvltModel.from_pretrained("tvlt-test/not-cached-anywhere")


def test_unreachable_hub_fails_fast_with_a_clear_message(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(HubUnavailableError, match="could not reach the Hugging Face Hub.*local directory"):
        resolve_directory("tvlt-test/not-cached-anywhere")


def test_bad_paths(tmp_path):
    with pytest.raises(CheckpointError, match="neither a local directory nor a valid hub repo id"):
        resolve_directory("not/a/repo/id")
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is a file"):
        resolve_directory(tmp_path / "weights.bin")
    TvltConfig.tiny().save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="no model.safetensors or pytorch_model.bin"):
        TvltModel.from_pretrained(tmp_path)


def test_unknown_config_override_names_the_key():
    with pytest.raises(ValueError, match="num_label_s"):
        TvltForAudioVisualClassification.from_pretrained(MODEL_FIXTURES / "multiclass" / "safetensors", num_label_s=3)
    model = TvltForAudioVisualClassification.from_pretrained(
        MODEL_FIXTURES / "pretraining" / "safetensors", num_labels=3)  # a known override still works
    assert model.config.num_labels == 3


def test_a_repo_the_hub_does_not_have_is_named_as_such(monkeypatch):
    import httpx
    import huggingface_hub

    def not_found(*args, **kwargs):
        request = httpx.Request("GET", "https://huggingface.co/api/models/tvlt-test/typo")
        raise huggingface_hub.errors.RepositoryNotFoundError(
            "404 Repository Not Found", response=httpx.Response(404, request=request))

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_found)
    with pytest.raises(CheckpointError, match="has no public repo 'tvlt-test/typo'"):
        resolve_directory("tvlt-test/typo")


def test_head_table_names_every_head_module_of_the_model_classes():
    from tvlt.weights import HEAD_MODULES

    config = TvltConfig.tiny(classifier_pooler=True)
    tops = {key.split(".", 1)[0] for cls in (TvltForPreTraining, TvltForAudioVisualClassification)
            for key in cls(config).state_dict()}
    assert tops - {"tvlt"} == HEAD_MODULES
