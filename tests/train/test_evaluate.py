"""Evaluation metrics on hand-made inputs, and the model card written from tiny exported models."""

from __future__ import annotations

import os

import pytest
import torch

from tvlt.layout import TokenLayout
from tvlt.modeling import TvltForPreTraining
from tvlt.train import evaluate, finetune
from tvlt.train.__main__ import PRESETS, main
from tvlt.train.export import export


def test_retrieval_metrics_from_score_matrices():
    logits = torch.eye(10) * 5  # head: every query finds its own video
    cosine = -torch.eye(10)  # cosine: own video always last
    out = evaluate.retrieval_metrics(logits, cosine, shortlist=(5,))
    assert out["matching head"]["R@1"] == 1.0 and out["matching head"]["median rank"] == 1.0
    assert out["embedding"]["R@10"] == 1.0 and out["embedding"]["R@5"] == 0.0 and out["embedding"]["median rank"] == 10
    assert out["two-stage"][5]["R@1"] == 0.0  # the own video never reaches the head
    assert out["two-stage"][5]["top-K keeps head's first"] == 0.0


def test_sentiment_scores():
    label = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.5])
    perfect = evaluate.sentiment_scores(label, label)
    assert perfect["Acc2"] == 1.0 and perfect["Acc7"] == 1.0 and perfect["MAE"] == 0.0
    assert perfect["Pearson r"] == pytest.approx(1.0)
    flipped = evaluate.sentiment_scores(-label, label)
    assert flipped["Acc2"] == 0.0 and flipped["Pearson r"] == pytest.approx(-1.0)


def test_baselines_copy_the_nearest_and_average_the_visible():
    patches = torch.tensor([[[0.0], [10.0], [20.0], [30.0]]])  # 4 tokens on a line
    is_masked = torch.tensor([[False, True, True, False]])
    positions = torch.arange(4.0)[:, None]
    nearest = evaluate.nearest_visible_baseline(patches, is_masked, positions)
    assert nearest[0, :, 0].tolist() == [0.0, 0.0, 30.0, 30.0]
    mean = evaluate.mean_visible_baseline(patches, is_masked)
    assert mean[0, :, 0].tolist() == [15.0] * 4


def test_object_patches_follow_the_corpus_metadata():
    layout = TokenLayout.from_config(PRESETS["tiny"]())  # 2 frames of 2 x 2 patches of 16 px
    meta = {
        "centres": torch.tensor([[[[8.0, 8.0], [24.0, 24.0]]]]),  # (B=1, O=1, T=2, (x, y))
        "diameter": torch.tensor([[4.0]]),
        "visible": torch.tensor([[[True, False]]]),
        "shape": torch.tensor([[0]]),
    }
    covered = evaluate.object_patches(meta, layout)
    assert covered.shape == (1, 2, 2, 2)
    assert covered[0, 0].tolist() == [[True, False], [False, False]]
    assert not covered[0, 1].any()  # invisible in frame 1


def test_glimpsed_objects_keep_an_unmasked_patch_in_their_frame():
    cover = torch.zeros(1, 2, 2, 2, 2, dtype=torch.bool)  # (B=1, O=2, T=2, h=2, w=2)
    cover[0, 0, :, 0, :] = True  # object 0: top row, both frames
    cover[0, 1, 0, 1, 1] = True  # object 1: bottom-right, frame 0
    is_masked = torch.ones(1, 2, 2, 2, dtype=torch.bool)
    is_masked[0, 0, 0, 0] = False  # frame 0 shows one patch of object 0; frame 1 shows nothing
    glimpsed = evaluate.glimpsed_object_patches(cover, is_masked)
    assert glimpsed[0, 0].tolist() == [[True, True], [False, False]]  # object 1 is wholly hidden
    assert not glimpsed[0, 1].any()


def test_model_card_from_tiny_exports(tmp_path):
    config = PRESETS["tiny"](num_frames=4)
    torch.manual_seed(0)
    record = {"device": "cpu (test)", "steps": 0, "clips_seen": 0, "wall_seconds": 0.0, "commands": ["(test)"]}
    pre = export(TvltForPreTraining(config), str(tmp_path / "pre"), record)
    sent = export(finetune.sentiment_model(config), str(tmp_path / "sent"), record)
    card = str(tmp_path / "card" / "MODEL_CARD.md")
    main(["evaluate", "--pretrain", pre, "--sentiment", sent, "--out", card, "--device", "cpu", "--num-clips", "6",
          "--twin-groups", "2", "--twin-group-size", "3", "--sentiment-clips", "8", "--mae-clips", "3",
          "--figure-clips", "2"])
    text = open(card, encoding="utf-8").read()
    assert "| metric | target | measured | met |" in text
    assert "| matching head (all pairs) |" in text and "| video zeroed |" in text and "masked on objects" in text
    assert "on objects wholly hidden in the frame" in text and "| shape | mostly hidden |" in text
    assert "never seen real video" in text and "cpu (test)" in text
    assert os.path.getsize(os.path.join(tmp_path, "card", evaluate.FIGURE_NAME)) > 1000


def test_a_refined_export_reports_both_training_stages():
    pretraining = {"device": "gpu", "steps": 10, "commands": ["python -m tvlt.train pretrain ..."]}
    refined = {"device": "cpu", "steps": 5, "commands": ["python -m tvlt.train refine-mae ..."],
               "args": {"init_provenance": pretraining}}
    assert evaluate.pretraining_stages(refined) == {"pretraining": pretraining, evaluate.REFINEMENT: refined}
    assert evaluate.pretraining_stages(pretraining) == {"pretraining": pretraining}
    rows = evaluate._compute_rows(evaluate.pretraining_stages(refined))
    assert [row[0] for row in rows] == ["pretraining", evaluate.REFINEMENT] and [row[3] for row in rows] == [10, 5]
    assert evaluate.refinement_data([]) == ""
    refined["args"]["refine_mae"] = {"object_weight": 6.0, "extra_decoder_layers": 2}
    text = evaluate.refinement_data([refined])
    assert "2 appended decoder blocks" in text and "weighing 7x" in text and "encoder and the matching head frozen" in text
    assert "shape loss" not in text
    refined["session_options"] = [{"refine_mae": {"object_weight": w}} for w in (6.0, 10.0)]
    assert "weighing 7x, then 11x over its 2 sessions" in evaluate.refinement_data([refined])


def test_a_refinement_of_a_refinement_reports_every_stage_in_order():
    pretraining = {"steps": 10}
    first = {"steps": 5, "args": {"init_provenance": pretraining,
                                  "refine_mae": {"object_weight": 25.0, "extra_decoder_layers": 2}}}
    second = {"steps": 3, "args": {"init_provenance": first, "refine_mae": {"object_weight": 25.0, "shape_weight": 0.03}}}
    stages = evaluate.pretraining_stages(second)
    assert list(stages) == ["pretraining", f"{evaluate.REFINEMENT} 1", f"{evaluate.REFINEMENT} 2"]
    assert [stage["steps"] for stage in stages.values()] == [10, 5, 3]
    text = evaluate.refinement_data([first, second])
    assert text.index("first on the MAE loss") < text.index("then, in a further run, on the MAE loss")
    assert "shape loss weighing 0.03" in text and text.count("weighing 26x") == 2 and "2 appended" in text


def test_continued_pretraining_after_refinements_is_its_own_stage():
    pretraining = {"steps": 10, "args": {"pretrain": {"batch": 256}}}
    refined = {"steps": 5, "args": {"init_provenance": pretraining,
                                    "refine_mae": {"object_weight": 25.0, "shape_weight": 0.03}}}
    continued = {"steps": 4, "args": {"init_provenance": refined,
                                      "pretrain": {"object_weight": 25.0, "shape_weight": 0.3}}}
    stages = evaluate.pretraining_stages(continued)
    assert list(stages) == ["pretraining", evaluate.REFINEMENT, evaluate.CONTINUED]
    assert [stage["steps"] for stage in stages.values()] == [10, 5, 4]
    text = evaluate.later_stages_data([refined, continued])
    assert text.index("MAE decoder alone") < text.index("Then the whole model")
    assert "the shape loss weighing 0.3 on the single scenes" in text and "retrieval and matching changed too" in text
    assert "every" not in text  # retrieval on every step (the option predates that run)
    sparse = {"steps": 4, "args": {"init_provenance": refined, "pretrain": {"retrieval_every": 4}}}
    assert "the contrastive and matching losses on every 4th step only" in evaluate.later_stages_data([sparse])
    sparse["args"]["pretrain"]["retrieval_every"] = 2
    assert "on every 2nd step only" in evaluate.later_stages_data([sparse])
    assert text.count("a cross-entropy on telling") == 1  # explained once, at the refinement
    alone = evaluate.later_stages_data([continued])
    assert "MAE decoder alone" not in alone and "a shape loss weighing 0.3 on the single scenes: a cross-entropy" in alone
    assert evaluate.later_stages_data([]) == ""
    decoder_again = {"steps": 3, "args": {"init_provenance": continued, "refine_mae": {"object_weight": 25.0}}}
    again = evaluate.later_stages_data([refined, continued, decoder_again])
    assert again.startswith(" After pretraining, the MAE decoder alone") and again.count("After pretraining") == 1
    assert again.index("Then the whole model") < again.index("Then, the MAE decoder alone")


def test_probe_mae_command_prints_the_training_probe(tmp_path, capsys):
    torch.manual_seed(0)
    model = TvltForPreTraining(PRESETS["tiny"]()).eval()
    model.save_pretrained(tmp_path)
    main(["probe-mae", "--model", str(tmp_path), "--val-clips", "4", "--device", "cpu"])
    out = capsys.readouterr().out
    expected = evaluate.mae_probe(model, "val", list(range(4)), torch.device("cpu"))
    assert out.startswith("MAE probe on 4 val scenes:")
    assert f"object_ratio {expected['object_ratio']:.4f}" in out and f"shape_shown {expected['shape_shown']:.4f}" in out
