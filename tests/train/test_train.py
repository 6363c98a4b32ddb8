"""Smoke tests of the training pipeline on a tiny model and tiny batches (CPU, seconds each)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import time

import pytest
import torch

from tvlt.config import TvltConfig
from tvlt.layout import TokenLayout
from tvlt.mae import default_masking, reconstruct
from tvlt.modeling import TvltForAudioVisualClassification, TvltForPreTraining
from tvlt.train import corpus, finetune, inputs, loop, objectives, pretrain, refine_mae
from tvlt.train.evaluate import object_patches
from tvlt.train.__main__ import PRESETS, main
from tvlt.train.export import CALIBRATION_CLIPS, export_run, validation_rmse, write_json
from tvlt.train.loop import LoopSettings, cosine_lr, read_checkpoint
from tvlt.train.objectives import (
    BLANK_AUDIO, BLANK_PIXEL, NegativeMix, blank_modality, info_nce, masked_mse, matching_pairs,
)

TINY_PRETRAIN = ["--config", "tiny", "--device", "cpu", "--batch", "8", "--twin-groups", "2", "--twin-group-size", "2",
                 "--matching-batch", "8", "--probe-clips", "8", "--log-every", "1", "--warmup-steps", "1",
                 "--matching-start", "0"]
CPU = torch.device("cpu")


def _log_values(path: str, key: str) -> list[float]:
    """Every value logged for `key` in a train.log."""
    values = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = line.split()
            values += [float(words[i + 1]) for i, w in enumerate(words[:-1]) if w == key]
    return values


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory) -> str:
    """A 2-step tiny pretraining run, then resumed to 3 steps (schedule of 3 steps)."""
    out = str(tmp_path_factory.mktemp("pretrain"))
    main(["pretrain", "--out", out, "--steps", "2", *TINY_PRETRAIN])
    assert read_checkpoint(out)["progress"]["step"] == 2
    main(["pretrain", "--out", out, "--steps", "3", "--resume", *TINY_PRETRAIN])
    return out


def test_pretrain_logs_finite_losses_and_resumes_at_the_right_step(pretrain_run):
    state = read_checkpoint(pretrain_run)
    assert state["progress"]["step"] == 3
    assert state["progress"]["clips"] == 3 * 8
    assert len(state["progress"]["commands"]) == 2
    log = os.path.join(pretrain_run, "train.log")
    for key in ("contrastive", "mae_video", "mae_audio", "matching", "probe_emb_r1"):
        values = _log_values(log, key)
        assert values and all(math.isfinite(v) for v in values), key
    steps = [int(line.split()[2]) for line in open(log) if " step " in line and "fraction" in line]
    assert steps == [1, 2, 3]  # the resumed session continued at step 3, not from 1


def test_resume_restores_weights_and_optimizer(pretrain_run, tmp_path):
    state = read_checkpoint(pretrain_run)
    config = TvltConfig.from_dict(state["args"]["config"])
    model = TvltForPreTraining(config)
    model.load_state_dict(state["modules"]["model"])
    assert state["optimizer"]["state"], "optimizer moments were not saved"
    exported = TvltForPreTraining.from_pretrained(os.path.join(pretrain_run, "export"))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[key], value, msg=key)


def test_export_dir_is_complete_and_loads(pretrain_run, tmp_path):
    out = export_run(pretrain_run, str(tmp_path / "exported"))
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "preprocessor_config.json", "provenance.json"]
    model = TvltForPreTraining.from_pretrained(out)
    assert model.config.image_size == 32 and model.config.spectrogram_length == 32
    processor = json.load(open(os.path.join(out, "preprocessor_config.json")))
    assert processor["crop_size"] == {"height": 32, "width": 32} and processor["spectrogram_length"] == 32
    provenance = json.load(open(os.path.join(out, "provenance.json")))
    assert provenance["steps"] == 3 and provenance["clips_seen"] == 24 and provenance["kind"] == "pretrain"


def test_minutes_budget_stops_the_session_and_checkpoints(tmp_path):
    out = str(tmp_path)
    main(["pretrain", "--out", out, "--steps", "1000", "--minutes", "0.0001", "--probe-every", "0", *TINY_PRETRAIN])
    assert 1 <= read_checkpoint(out)["progress"]["step"] < 1000


def test_finetune_from_pretraining_then_resume(pretrain_run, tmp_path):
    out = str(tmp_path)
    flags = ["--device", "cpu", "--batch", "8", "--probe-clips", "8", "--log-every", "1", "--warmup-steps", "1"]
    main(["finetune-sentiment", "--init", pretrain_run, "--out", out, "--steps", "1", *flags])
    main(["finetune-sentiment", "--init", pretrain_run, "--out", out, "--steps", "2", "--resume", *flags])
    assert read_checkpoint(out)["progress"]["step"] == 2
    values = _log_values(os.path.join(out, "train.log"), "mse")
    assert values and all(math.isfinite(v) for v in values)
    model = TvltForAudioVisualClassification.from_pretrained(os.path.join(out, "export"))
    assert model.config.num_labels == 1 and model.config.loss_type == "regression"
    calibrated = TvltForAudioVisualClassification.from_pretrained(export_run(out, str(tmp_path / "calibrated")))
    rmse = calibrated.config.extra["sentiment_rmse"]  # the app's class confidences use it as their spread
    assert rmse == validation_rmse(model, num_clips=CALIBRATION_CLIPS) and 0 < rmse < 10


def test_finetune_starts_from_the_pretrained_encoder(pretrain_run):
    pretrained = TvltForPreTraining.from_pretrained(os.path.join(pretrain_run, "export"))
    model = finetune.sentiment_model(pretrained.config)
    loop.load_weights(model, pretrain_run)
    key = "tvlt.encoder.layer.0.attention.attention.query.weight"
    torch.testing.assert_close(model.state_dict()[key], pretrained.state_dict()[key])


def test_batches_are_deterministic_and_twins_point_at_each_other():
    config = PRESETS["tiny"]()
    opts = pretrain.PretrainOptions(batch=6, twin_groups=1, twin_group_size=2, matching_batch=6)
    a, b = pretrain.make_batch(3, opts, config, CPU), pretrain.make_batch(3, opts, config, CPU)
    torch.testing.assert_close(a.pixel_values, b.pixel_values)
    assert a.twin_of.tolist() == [1, 0, -1, -1, -1, -1]
    assert not torch.equal(a.pixel_values[0], a.pixel_values[1])  # twins differ in timing
    assert a.pixel_values.shape == (6, 2, 3, 32, 32) and a.audio_values.shape == (6, 1, 32, 128)


def test_pretrain_batches_carry_object_patches_and_the_singles_shape_variants():
    config = PRESETS["tiny"]()
    opts = pretrain.PretrainOptions(batch=6, twin_groups=1, twin_group_size=2, matching_batch=6, object_weight=5.0,
                                    shape_weight=0.5)
    batch = pretrain.make_batch(2, opts, config, CPU)  # 5 scenes per step: scene 10's twins, then scenes 11..14
    geometry = inputs.clip_geometry(config)
    clips = corpus.concat([corpus.timing_twins("train", 10, 2, CPU, **geometry),
                           corpus.scene_batch("train", range(11, 15), CPU, **geometry)])
    expected = object_patches(clips.meta, TokenLayout.from_config(config)).flatten(1).float()
    assert torch.equal(batch.targets.on_objects, expected) and 0 < expected.mean() < 1
    assert torch.equal(batch.targets.meta["centres"], clips.meta["centres"])
    rows, rendered = batch.targets.shape_variants[0]
    assert torch.equal(rows, torch.arange(2, 6))  # the singles' rows; every scene has a first object
    assert torch.equal(rendered, corpus.scene_variants("train", range(11, 15), 0, "shape", CPU, **geometry))
    plain = pretrain.make_batch(2, dataclasses.replace(opts, object_weight=0.0, shape_weight=0.0), config, CPU)
    assert plain.targets.on_objects is None and not plain.targets.shape_variants
    torch.testing.assert_close(plain.pixel_values, batch.pixel_values)


def test_pretrain_step_adds_the_object_weight_and_the_shape_loss():
    config = PRESETS["tiny"]()
    opts = pretrain.PretrainOptions(batch=6, twin_groups=1, twin_group_size=2, matching_batch=6, object_weight=5.0,
                                    shape_weight=0.5)
    batch = pretrain.make_batch(0, opts, config, CPU)
    plain_opts = dataclasses.replace(opts, object_weight=0.0, shape_weight=0.0)
    plain_batch = pretrain.make_batch(0, plain_opts, config, CPU)
    torch.manual_seed(0)
    model, temperature = TvltForPreTraining(config), objectives.Temperature()

    def step(b, o):
        torch.manual_seed(1)  # the same random video mask
        return pretrain.pretrain_step(model, temperature, b, 0.5, o)

    levered, plain = step(batch, opts), step(plain_batch, plain_opts)
    assert "shape" in levered.values and float(levered.values["shape"]) > 0 and "shape" not in plain.values
    assert levered.values["mae_video"] != plain.values["mae_video"]  # same masks, objects weigh more
    torch.testing.assert_close(levered.values["contrastive"], plain.values["contrastive"])
    unweighted = step(batch, dataclasses.replace(opts, object_weight=0.0))  # variants carried, objects not weighed
    torch.testing.assert_close(unweighted.values["mae_video"], plain.values["mae_video"])


def test_retrieval_every_skips_contrastive_and_matching_between_its_steps():
    config = PRESETS["tiny"]()
    opts = pretrain.PretrainOptions(batch=6, twin_groups=1, twin_group_size=2, matching_batch=6, matching_start=0,
                                    retrieval_every=2)
    torch.manual_seed(0)
    model, temperature = TvltForPreTraining(config), objectives.Temperature()
    values = {}
    for step in (0, 1, 2):
        torch.manual_seed(1)
        out = pretrain.pretrain_step(model, temperature, pretrain.make_batch(step, opts, config, CPU), 0.5, opts)
        values[step] = out.values
        if step == 1:  # MAE alone: the loss is its weighted sum, and nothing reaches the temperature
            out.loss.backward()
            assert temperature.log_scale.grad is None
            torch.testing.assert_close(out.loss, opts.mae_weight * (out.values["mae_video"] + out.values["mae_audio"]))
    assert {"contrastive", "matching"} <= values[0].keys() and {"contrastive", "matching"} <= values[2].keys()
    assert not {"contrastive", "matching", "batch_r1"} & values[1].keys() and "mae_video" in values[1]
    with pytest.raises(ValueError, match="retrieval_every"):
        pretrain.PretrainOptions(retrieval_every=0)


def test_the_log_averages_each_value_over_the_steps_that_reported_it():
    meter = loop._Meter()
    meter.add(4, 0.5, 0.5, {"mae": torch.tensor(1.0), "contrastive": torch.tensor(4.0)}, 1e-3)
    meter.add(4, 0.5, 0.5, {"mae": torch.tensor(3.0)}, 1e-3)
    line = meter.flush()
    assert line["mae"] == 2.0 and line["contrastive"] == 4.0 and line["clips_per_s"] == 4.0


def test_pretrain_continues_from_an_init_and_records_it(pretrain_run, tmp_path):
    out = str(tmp_path)
    flags = ["--out", out, "--init", pretrain_run, *TINY_PRETRAIN, "--object-weight", "5", "--shape-weight", "0.5",
             "--mae-probe-clips", "4", "--contrastive-scale", "30"]
    main(["pretrain", "--steps", "1", *flags])
    state = read_checkpoint(out)
    assert state["args"]["init"] == pretrain_run and state["args"]["init_provenance"]["steps"] == 3
    assert state["modules"]["temperature"]["log_scale"].item() == pytest.approx(math.log(30), abs=1e-2)
    main(["pretrain", "--steps", "2", "--resume", *flags])
    state = read_checkpoint(out)
    assert state["progress"]["step"] == 2 and state["args"]["init"] == pretrain_run
    for key in ("shape", "mae_video", "contrastive", "probe_emb_r1", "probe_shape_shown", "probe_object_ratio"):
        values = _log_values(os.path.join(out, "train.log"), key)
        assert values and all(math.isfinite(v) for v in values), key


def test_pretrain_starts_from_the_init_weights(pretrain_run, tmp_path):
    main(["pretrain", "--out", str(tmp_path), "--steps", "1", "--lr", "0", "--init", pretrain_run, *TINY_PRETRAIN])
    continued = TvltForPreTraining.from_pretrained(os.path.join(tmp_path, "export")).state_dict()
    initial = TvltForPreTraining.from_pretrained(os.path.join(pretrain_run, "export")).state_dict()
    assert continued.keys() == initial.keys()
    for key, value in initial.items():  # a step at learning rate 0 leaves the init's weights
        torch.testing.assert_close(continued[key], value, msg=key)


# ---------------------------------------------------------------- objectives and schedule
def test_info_nce_prefers_aligned_pairs():
    video = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    aligned, acc = info_nce(video, video, torch.tensor(20.0))
    shuffled, _ = info_nce(video, video.roll(1, dims=0), torch.tensor(20.0))
    assert aligned < shuffled and acc == 1.0


def test_masked_mse_ignores_visible_patches():
    targets = torch.zeros(1, 4, 3)
    predictions = torch.tensor([[[1.0] * 3, [2.0] * 3, [9.0] * 3, [9.0] * 3]])
    is_masked = torch.tensor([[True, True, False, False]])
    assert masked_mse(predictions, targets, is_masked).item() == pytest.approx((1 + 4) / 2)


def test_masked_mse_with_float_weights_is_the_weighted_mean():
    targets = torch.zeros(1, 3, 2)
    predictions = torch.tensor([[[1.0] * 2, [2.0] * 2, [9.0] * 2]])
    weights = torch.tensor([[1.0, 3.0, 0.0]])
    assert masked_mse(predictions, targets, weights).item() == pytest.approx((1 * 1 + 3 * 4) / 4)


def test_matching_pairs_labels_and_negative_kinds():
    generator = torch.Generator().manual_seed(0)
    n = 400
    twin_of = torch.arange(n) ^ 1  # pairs (0, 1), (2, 3), ...
    similarity = torch.randn(n, n)
    video, labels = matching_pairs(n, n, twin_of, similarity, NegativeMix(0.2, 0.2, 0.2), 4, generator)
    own = torch.arange(n)
    assert torch.equal(labels.bool(), video == own)
    assert 0.3 < labels.mean().item() < 0.5  # 40 % positives expected
    assert (video == twin_of).float().mean().item() > 0.1  # about 20 % twins


def test_matching_pairs_all_hard_negatives_come_from_the_top_k():
    generator = torch.Generator().manual_seed(1)
    similarity = torch.eye(6) + torch.arange(6.0)  # column 5 and then 4 are everyone's most similar
    video, labels = matching_pairs(6, 6, torch.full((6,), -1), similarity, NegativeMix(0, 0, 1), 2, generator)
    assert labels.sum() == 0
    assert all(v in {5, 4, 3} and v != i for i, v in enumerate(video.tolist()))


def test_cosine_lr_warms_up_then_decays():
    assert cosine_lr(0, 0.0, 1.0, 10) == pytest.approx(0.1)
    assert cosine_lr(20, 0.0, 1.0, 10) == pytest.approx(1.0)
    assert cosine_lr(20, 1.0, 1.0, 10) == pytest.approx(0.05)


def test_blank_modality_uses_black_frames_and_silence():
    pixels, audio = torch.zeros(2, 1, 3, 4, 4), torch.zeros(2, 1, 4, 4)
    p, a = blank_modality(pixels, audio, torch.tensor([True, False]), torch.tensor([False, True]))
    assert (p[0] == BLANK_PIXEL).all() and (p[1] == 0).all()
    assert (a[1] == BLANK_AUDIO).all() and (a[0] == 0).all()


def test_loop_settings_need_a_schedule_length(tmp_path):
    with pytest.raises(ValueError, match="total_steps or total_minutes"):
        LoopSettings(out_dir=str(tmp_path))


def _toy_run(out_dir: str, on_batch, **settings) -> loop.Progress:
    """loop.train on a linear layer for 5 steps; on_batch(step) runs inside each step's compute."""
    model = torch.nn.Linear(2, 1)

    def compute(batch: torch.Tensor, fraction: float) -> loop.StepOutput:
        on_batch(int(batch[0, 0]))
        loss = model(batch).pow(2).mean()
        return loop.StepOutput(loss, {"loss": loss.detach()})

    return loop.train({"model": model}, make_batch=lambda step: torch.full((4, 2), float(step)), compute=compute,
                      batch_size=len, device=CPU,
                      settings=LoopSettings(out_dir=out_dir, total_steps=5, warmup_steps=1, log_every=1, **settings))


def test_the_loop_checkpoints_during_a_session(tmp_path):
    ckpt, seen = str(tmp_path / loop.CHECKPOINT_NAME), []

    def on_batch(step: int) -> None:  # what a SIGKILL at this step would leave on disk
        if os.path.exists(ckpt):
            progress = read_checkpoint(ckpt)["progress"]
            seen.append((step, progress["step"], progress["wall_seconds"] > 0))

    _toy_run(str(tmp_path), on_batch, checkpoint_minutes=1e-9)  # due after every step
    assert seen == [(step, step, True) for step in range(1, 5)]
    assert open(tmp_path / loop.LOG_NAME).read().count("(every 1e-09 min)") == 5


def test_sigterm_finishes_the_step_checkpoints_then_exits(tmp_path):
    previous = signal.getsignal(signal.SIGTERM)

    def on_batch(step: int) -> None:
        if step == 2:
            try:  # code in a step that swallows every exception must not swallow the stop
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler runs here
            except BaseException:
                pass

    with pytest.raises(SystemExit) as stopped:
        _toy_run(str(tmp_path), on_batch, checkpoint_minutes=0)  # so only the exit path saves
    assert stopped.value.code == 128 + signal.SIGTERM
    assert read_checkpoint(str(tmp_path))["progress"]["step"] == 3  # step 2 (the third) finished, no more
    assert "stopped by SIGTERM after step 3" in open(tmp_path / loop.LOG_NAME).read()
    assert signal.getsignal(signal.SIGTERM) is previous


def test_options_reject_twin_groups_larger_than_the_batch():
    with pytest.raises(ValueError, match="do not fit"):
        pretrain.PretrainOptions(batch=8, twin_groups=4, twin_group_size=4, matching_batch=8)


def test_pretrain_step_with_tube_masks_and_matching_gives_finite_losses():
    config = PRESETS["tiny"](num_frames=4)
    opts = pretrain.PretrainOptions(batch=6, twin_groups=1, twin_group_size=3, matching_batch=6, video_mask="tube",
                                    matching_start=0.0, matching_ramp=0.0)
    model, temperature = TvltForPreTraining(config), pretrain.Temperature()
    out = pretrain.pretrain_step(model, temperature, pretrain.make_batch(0, opts, config, CPU), 0.5, opts)
    out.loss.backward()
    assert set(out.values) >= {"contrastive", "mae_video", "mae_audio", "matching", "pair_accuracy"}
    assert all(math.isfinite(float(v)) for v in out.values.values())
    assert model.matching_head.fc.weight.grad is not None


def test_tube_mask_hides_the_same_positions_in_every_frame():
    config = PRESETS["tiny"](num_frames=4)
    mask = pretrain.tube_mask(config, 3, 0.5, seed=1, device=CPU).view(3, 4, 2, 2)
    assert torch.equal(mask, mask[:, :1].expand_as(mask))
    assert mask[:, 0].flatten(1).sum(dim=1).tolist() == [2, 2, 2]


def test_refine_mae_trains_only_the_decoder_then_resumes(pretrain_run, tmp_path):
    init, out = str(tmp_path / "init"), str(tmp_path / "refine")
    shutil.copytree(os.path.join(pretrain_run, "export"), init)
    flags = ["--device", "cpu", "--batch", "8", "--probe-clips", "8", "--log-every", "1", "--warmup-steps", "1",
             "--lr", "1e-2"]
    main(["refine-mae", "--init", init, "--out", out, "--steps", "2", "--extra-decoder-layers", "1", *flags])
    # the init is overwritten (as the bundled model is by its own refinement) before the run resumes
    write_json(os.path.join(init, loop.PROVENANCE_NAME), {"kind": "overwritten"})
    # --init, its provenance and the deepened config come from the checkpoint: resuming appends no further block
    # the resumed session adds the shape loss (its weight recorded per session)
    main(["refine-mae", "--out", out, "--steps", "3", "--resume", "--extra-decoder-layers", "1", "--shape-weight", "0.1",
          *flags])
    state = read_checkpoint(out)
    assert state["progress"]["step"] == 3 and state["args"]["init"] == init
    assert state["args"]["init_provenance"]["kind"] == "pretrain"  # where the weights first came from
    sessions = state["progress"]["options"]
    assert len(sessions) == 2 and not any("init_provenance" in s for s in sessions)  # recorded once, not per session
    assert [s["refine_mae"]["shape_weight"] for s in sessions] == [0.0, 0.1]
    before = TvltForPreTraining.from_pretrained(os.path.join(pretrain_run, "export")).state_dict()
    after = TvltForPreTraining.from_pretrained(os.path.join(out, "export")).state_dict()
    frozen = [k for k in before if k.startswith(("tvlt.", "matching_head."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    changed = [k for k in before if k not in frozen and not torch.equal(before[k], after[k])]
    assert "decoder.decoder_layers.0.attention.attention.query.weight" in changed
    assert "pixel_mae_head.decoder.weight" in changed
    depth = TvltConfig.from_pretrained(os.path.join(pretrain_run, "export")).decoder_num_hidden_layers
    assert TvltConfig.from_pretrained(os.path.join(out, "export")).decoder_num_hidden_layers == depth + 1
    assert set(after) - set(before) == {k for k in after if k.startswith(f"decoder.decoder_layers.{depth}.")}
    for key in ("mae_video", "shape", "probe_video_objects", "probe_object_ratio", "probe_shape_shown"):
        values = _log_values(os.path.join(out, "train.log"), key)
        assert values and all(math.isfinite(v) for v in values), key


def test_deepened_decoder_reconstructs_exactly_as_before():
    torch.manual_seed(0)
    model = TvltForPreTraining(PRESETS["tiny"]()).eval()
    deeper = refine_mae.deepen_decoder(model, 2).eval()
    assert len(deeper.decoder.decoder_layers) == len(model.decoder.decoder_layers) + 2
    pixel_values, audio_values = inputs.scene_inputs("val", [0, 1], model.config, CPU)
    video_spec, audio_spec = default_masking(model.config, seed=3)
    before = reconstruct(model, pixel_values, audio_values, video_spec, audio_spec)
    after = reconstruct(deeper, pixel_values, audio_values, video_spec, audio_spec)
    torch.testing.assert_close(after.pixel_predictions, before.pixel_predictions)
    torch.testing.assert_close(after.audio_predictions, before.audio_predictions)


def test_refine_batches_weigh_the_patches_on_objects():
    config = PRESETS["tiny"]()
    opts = refine_mae.RefineOptions(batch=4, object_weight=5.0)
    batch = refine_mae.make_batch(0, opts, config, CPU)
    clips = corpus.scene_batch("train", range(4), CPU, **inputs.clip_geometry(config))
    expected = object_patches(clips.meta, TokenLayout.from_config(config)).flatten(1).float()
    assert torch.equal(batch.targets.on_objects, expected) and 0 < expected.mean() < 1
    torch.manual_seed(0)
    model = TvltForPreTraining(config)
    weighted = refine_mae.refine_step(model, batch, opts).values["mae_video"]
    torch.manual_seed(0)
    plain = refine_mae.refine_step(model, batch, dataclasses.replace(opts, object_weight=0.0)).values["mae_video"]
    assert weighted != plain  # same masks (same seed), other weights


def test_refine_mae_needs_a_model_to_refine(tmp_path):
    with pytest.raises(ValueError, match="--init"):
        main(["refine-mae", "--out", str(tmp_path), "--steps", "1", "--device", "cpu", "--batch", "8"])


def test_refine_batches_carry_shape_variants_and_the_step_adds_the_shape_loss():
    config = PRESETS["tiny"]()
    opts = refine_mae.RefineOptions(batch=4, shape_weight=0.5)
    batch = refine_mae.make_batch(1, opts, config, CPU)  # step 1: scenes 4..7 of the training split
    geometry = inputs.clip_geometry(config)
    clips, rendered = batch.targets.shape_variants[0]
    assert torch.equal(clips, torch.arange(4))  # every scene has a first object
    assert torch.equal(rendered, corpus.scene_variants("train", range(4, 8), 0, "shape", CPU, **geometry))
    for slot, (present, variants) in batch.targets.shape_variants.items():
        assert (batch.targets.meta["shape"][present, slot] >= 0).all()
        scenes_of_slot = [4 + i for i in present.tolist()]
        assert torch.equal(variants, corpus.scene_variants("train", scenes_of_slot, slot, "shape", CPU, **geometry))
    model = TvltForPreTraining(config)
    torch.manual_seed(0)  # the same random video mask for both steps
    output = refine_mae.refine_step(model, batch, opts)
    assert set(output.values) == {"mae_video", "mae_audio", "shape"} and float(output.values["shape"]) > 0
    torch.manual_seed(0)
    plain = refine_mae.refine_step(model, batch, dataclasses.replace(opts, shape_weight=0.0))
    expected = plain.loss + opts.shape_weight * output.values["shape"]
    torch.testing.assert_close(output.loss.detach(), expected.detach())
    assert not refine_mae.make_batch(1, dataclasses.replace(opts, shape_weight=0.0), config, CPU).targets.shape_variants


def test_lr_scales_give_the_encoder_its_own_learning_rate():
    model = TvltForPreTraining(PRESETS["tiny"]())
    optimizer = loop.build_optimizer({"model": model}, 1e-3, 0.05, {"model.tvlt.": 0.1})
    scale_of = {id(p): group["lr_scale"] for group in optimizer.param_groups for p in group["params"]}
    for name, param in model.named_parameters():
        assert scale_of[id(param)] == (0.1 if name.startswith("tvlt.") else 1.0), name
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(model.parameters()))
    decays = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert decays[id(model.tvlt.encoder.layer[0].attention.attention.query.weight)] == 0.05
    assert decays[id(model.tvlt.encoder.layer[0].attention.attention.query.bias)] == 0.0


def test_pretrain_encoder_lr_scale_reaches_the_optimizer(pretrain_run, tmp_path):
    main(["pretrain", "--out", str(tmp_path), "--steps", "2", "--init", pretrain_run, *TINY_PRETRAIN,
          "--encoder-lr-scale", "0.25", "--lr", "1e-3"])
    groups = read_checkpoint(str(tmp_path))["optimizer"]["param_groups"]
    assert sorted({group["lr_scale"] for group in groups}) == [0.25, 1.0]
    base = [group["lr"] / group["lr_scale"] for group in groups]  # one schedule, scaled per group
    assert max(base) == pytest.approx(min(base)) and max(base) > 0
