"""Train, export, evaluate and probe the bundled TVLT: `python -m tvlt.train COMMAND` (see --help).

A run directory (`--out`) holds `checkpoint.pt` (one resumable file: weights, optimiser, step, clips, wall
time, RNG states), `train.log` (one line per `--log-every` steps: clips/s overall, for data and for training,
each loss, lr; `probe_*` lines every `--probe-every` steps: held-out embedding R@1/R@5 among 100 clips and
matching-head own-vs-timing-twin win rate), `provenance.json` and `export/` (transformers format). A session
stops at `--minutes`, or when the schedule (`--steps` or `--total-minutes`, summed over sessions) ends, and
then checkpoints and exports. It also checkpoints every `--checkpoint-minutes` (10) and on Ctrl-C or SIGTERM
(SIGTERM lets the step in flight finish; then it exits without exporting), so `--resume` loses at most that
much of a killed session. CUDA runs in bf16 autocast with TF32; CPU in fp32.

GPU (one H100; each command <= 10 min; only files copied into $OUT come back, each <= 16 MB, <= 8 files;
the small model's checkpoint is ~42 MB, so it comes back in 15 MB pieces, re-joined here with `cat`).
Measured on an H100 (2026-11-25): ~1000-1100 clips/s overall (corpus ~2000/s, model step ~2250/s, run one
after the other), so a 17-minute schedule sees ~1.07 M clips; sentiment ~3500 clips/s; `evaluate` ~8 s.

    # 1. pretraining, session 1 (the cosine schedule spans --total-minutes of training over all sessions)
    python -m tvlt.train pretrain --out runs/pretrain --total-minutes 17 --minutes 8.5 \
        && cp runs/pretrain/train.log $OUT/ && split -b 15m runs/pretrain/checkpoint.pt $OUT/checkpoint.pt.part-
    # here: mkdir -p runs/pretrain && cat FILES_AT/checkpoint.pt.part-* > runs/pretrain/checkpoint.pt
    # 2. session 2 (same flags + --resume; carry=["runs/pretrain"] if the machine went cold), then sentiment
    #    and the card in the same command; small files come back in one tar
    python -m tvlt.train pretrain --out runs/pretrain --total-minutes 17 --minutes 8.5 --resume \
        && python -m tvlt.train finetune-sentiment --init runs/pretrain --out runs/sentiment --total-minutes 1 \
        && python -m tvlt.train evaluate --pretrain runs/pretrain/export --sentiment runs/sentiment/export \
           --out runs/card/MODEL_CARD.md \
        && cp runs/pretrain/export/model.safetensors $OUT/pretrain.safetensors \
        && cp runs/sentiment/export/model.safetensors $OUT/sentiment.safetensors \
        && tar --exclude=model.safetensors -czf $OUT/small.tgz runs/pretrain/export runs/sentiment/export \
           runs/pretrain/train.log runs/sentiment/train.log runs/card
    # here: untar, move each model.safetensors into its export dir, copy the exports to assets/ (or re-run
    # `evaluate` here on the copies).
    # 3. the encoder lever for hidden shapes (not yet run on a GPU; the CPU runs are below): continued pretraining
    #    of the bundled model, all three objectives on, plus refine-mae's object weight and shape loss; the
    #    encoder and matching head at a tenth of the learning rate; the shape loss at half the CPU run's weight,
    #    which traded object-patch error for shape (on CPU a decoder-only refine-mae run after it won the error
    #    back). Judge it by probe-shape's encoder row, then the card's recognition table (and keep only what the
    #    validation probes in train.log say is better).
    python -m tvlt.train pretrain --init assets/tvlt-small-pretrain --out runs/encoder --total-minutes 8 \
        --minutes 8 --matching-start 0 --matching-ramp 0 --warmup-steps 100 --lr 2e-4 --encoder-lr-scale 0.1 \
        --object-weight 25 --shape-weight 0.15 --contrastive-scale 100 --mae-probe-clips 256 --probe-every 200 \
        && python -m tvlt.train probe-shape --model runs/encoder/export \
        && cp runs/encoder/export/model.safetensors $OUT/ \
        && tar --exclude=model.safetensors -czf $OUT/encoder.tgz runs/encoder/train.log runs/encoder/export

    If `data_clips_per_s` in train.log falls well below `train_clips_per_s`, the corpus is the bottleneck:
    lower `--twin-groups` (each group is one `timing_twins` call). Defaults: batch 256, lr 5e-4, warm-up 300
    steps, 16 groups of 8 timing twins per batch, matching from 15 % of the schedule, ramped over 10 %,
    MAE weight 5.

CPU (here):

    # MAE decoder refinement of the pretrained model (encoder and matching head frozen; ~20 clips/s here)
    python -m tvlt.train refine-mae --init assets/tvlt-small-pretrain --out runs/refine --total-minutes 110 \
        --minutes 110 --batch 48 --object-weight 6 --extra-decoder-layers 2 --log-every 25 --probe-every 100 --device cpu
    # its second session: the schedule lengthened (learning rate back at mid-cosine), objects weighing 11x
    python -m tvlt.train refine-mae --resume --out runs/refine --total-minutes 222 --minutes 112 --batch 48 \
        --object-weight 10 --extra-decoder-layers 2 --log-every 25 --probe-every 100 --device cpu
    # its third session: lengthened again (learning rate back at 3.2e-4), objects weighing 16x
    python -m tvlt.train refine-mae --resume --out runs/refine --total-minutes 347 --minutes 125 --batch 48 \
        --object-weight 15 --extra-decoder-layers 2 --log-every 25 --probe-every 100 --device cpu
    # its fourth session: lengthened again (learning rate back at 2.0e-4), objects weighing 26x
    python -m tvlt.train refine-mae --resume --out runs/refine --total-minutes 472 --minutes 125 --batch 48 \
        --object-weight 25 --extra-decoder-layers 2 --log-every 25 --probe-every 100 --device cpu
    # then a new run from its export with the shape loss (each batch also renders every object's 6 shape variants;
    # ~9 clips/s here), and a second session of it (learning rate back at 1.5e-4); its export went on
    # to the two stages below
    python -m tvlt.train refine-mae --init runs/refine/export --out runs/shape --total-minutes 95 --minutes 95 \
        --lr 3e-4 --batch 48 --object-weight 25 --shape-weight 0.03 --shape-temperature 0.1 --log-every 10 \
        --probe-every 50 --device cpu
    python -m tvlt.train refine-mae --resume --out runs/shape --total-minutes 195 --minutes 100 \
        --lr 3e-4 --batch 48 --object-weight 25 --shape-weight 0.03 --shape-temperature 0.1 --log-every 10 \
        --probe-every 50 --device cpu
    # continued pretraining of that run's export with those MAE levers, the encoder training too at a tenth of the
    # learning rate (~2.7 clips/s here): on 256 validation scenes shape shown 0.49 -> 0.55, but the object ratio
    # 0.480 -> 0.505; probe-shape encoder 0.655 -> 0.668, decoder 0.606 -> 0.637
    python -m tvlt.train pretrain --init runs/shape/export --out runs/encoder --total-minutes 100 \
        --minutes 100 --batch 32 --twin-groups 2 --twin-group-size 4 --matching-batch 32 --matching-start 0 \
        --matching-ramp 0 --lr 2e-4 --encoder-lr-scale 0.1 --warmup-steps 10 --object-weight 25 --shape-weight 0.3 \
        --contrastive-scale 100 --mae-probe-clips 64 --probe-clips 100 --log-every 5 --probe-every 40 --device cpu
    # then the decoder alone again (~11 clips/s here): 256 validation scenes shape 0.53, colour 0.91, ratio 0.472
    python -m tvlt.train refine-mae --init runs/encoder/export --out runs/decoder --total-minutes 90 --minutes 90 \
        --lr 3e-4 --batch 48 --object-weight 25 --shape-weight 0.03 --shape-temperature 0.1 --log-every 10 \
        --probe-every 50 --device cpu
    # then the whole model again, contrastive and matching on every 4th step only (~11 clips/s here): 256
    # validation scenes shape 0.59, colour 0.92, ratio 0.467; the bundled model is this run's export
    # (`export --run runs/encoder3`)
    python -m tvlt.train pretrain --init runs/decoder/export --out runs/encoder3 --total-minutes 100 \
        --minutes 104 --batch 32 --twin-groups 2 --twin-group-size 4 --matching-batch 32 --matching-start 0 \
        --matching-ramp 0 --lr 2e-4 --encoder-lr-scale 0.1 --warmup-steps 10 --object-weight 25 --shape-weight 0.2 \
        --retrieval-every 4 --contrastive-scale 100 --mae-probe-clips 64 --probe-clips 100 --log-every 8 \
        --probe-every 80 --device cpu
    # train.log's MAE probe on more validation scenes (256: how a run's export is judged against the bundled one)
    python -m tvlt.train probe-mae --model runs/encoder3/export --device cpu
    # which stage loses a hidden object's shape: linear probes on the pixels, encoder and decoder (~2 min here)
    python -m tvlt.train probe-shape --model assets/tvlt-small-pretrain --device cpu
    # transformers-format directories from runs brought back (or copy the exported files into them)
    python -m tvlt.train export --run runs/pretrain --out assets/tvlt-small-pretrain
    python -m tvlt.train export --run runs/sentiment --out assets/tvlt-small-sentiment
    # the card and assets/mae_examples.png
    python -m tvlt.train evaluate --pretrain assets/tvlt-small-pretrain --sentiment assets/tvlt-small-sentiment \
        --out assets/MODEL_CARD.md --device cpu
    # a complete tiny run on CPU (smoke; what tests/train runs, a little longer)
    python -m tvlt.train pretrain --out runs/tiny --config tiny --steps 30 --batch 32 --twin-groups 4 \
        --twin-group-size 2 --matching-batch 32 --probe-clips 32 --log-every 5 --probe-every 10 --device cpu
    python -m tvlt.train finetune-sentiment --init runs/tiny --out runs/tiny-sentiment --steps 20 --batch 32 \
        --probe-clips 32 --log-every 5 --device cpu
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Optional, Sequence

from tvlt.config import TvltConfig
from tvlt.train.loop import LoopSettings, Progress, pick_device, provenance, read_checkpoint

# tiny keeps the 128 log-mel bins of the corpus (its spectrogram is 32 frames x 128 bins)
PRESETS = {"small": TvltConfig.small, "tiny": lambda **kw: TvltConfig.tiny(**{"frequency_length": 128, **kw})}


def _add_loop_flags(parser: argparse.ArgumentParser, lr: float, warmup: int) -> None:
    parser.add_argument("--out", required=True, help="run directory: checkpoint.pt, train.log, provenance.json, export/")
    parser.add_argument("--config", choices=sorted(PRESETS), default="small", help="model preset (ignored on --resume)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cuda, cpu")
    parser.add_argument("--steps", type=int, default=0, help="schedule length in steps (0: use --total-minutes)")
    parser.add_argument("--total-minutes", type=float, default=0.0, help="schedule length in training minutes, all sessions")
    parser.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget of this session (0: none)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup-steps", type=int, default=warmup)
    parser.add_argument("--clip-grad", type=float, default=1.0)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--probe-every", type=int, default=500)
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0,
                        help="also save the checkpoint this often (0: only when the session ends)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export-dir", default=None, help="transformers-format export (default OUT/export)")


def _add_options(parser: argparse.ArgumentParser, options_cls: type, skip: tuple[str, ...] = ("seed",)) -> None:
    """One flag per field of an options dataclass, defaults from the dataclass (`seed` is a loop flag)."""
    for f in dataclasses.fields(options_cls):
        if f.name in skip:
            continue
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)


def _options(args: argparse.Namespace, options_cls: type) -> Any:
    return options_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(options_cls)})


def _settings(args: argparse.Namespace) -> LoopSettings:
    return LoopSettings(
        out_dir=args.out, total_steps=args.steps, total_minutes=args.total_minutes, minutes=args.minutes,
        lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, clip_grad=args.clip_grad,
        log_every=args.log_every, probe_every=args.probe_every, checkpoint_minutes=args.checkpoint_minutes,
        resume=args.resume,
    )


def _config(args: argparse.Namespace) -> TvltConfig:
    """The preset, or on --resume the config stored in the checkpoint (so a resume cannot change the model)."""
    if args.resume:
        return TvltConfig.from_dict(read_checkpoint(args.out)["args"]["config"])
    return PRESETS[args.config]()


def _finish(model: Any, progress: Progress, args: argparse.Namespace, kind: str) -> None:
    from tvlt.train.export import export, write_json
    from tvlt.train.loop import PROVENANCE_NAME

    record = provenance(progress, {"kind": kind, "args": read_checkpoint(args.out)["args"]})
    write_json(os.path.join(args.out, PROVENANCE_NAME), record)
    directory = export(model.cpu(), args.export_dir or os.path.join(args.out, "export"), record)
    print(f"exported {directory}")


def cmd_pretrain(args: argparse.Namespace) -> None:
    from tvlt.train import pretrain

    opts = _options(args, pretrain.PretrainOptions)
    config = _config(args) if args.resume else _init_config(args.init, args.config)
    model, progress = pretrain.run(config, opts, _settings(args), pick_device(args.device), args.init)
    _finish(model, progress, args, "pretrain")


def cmd_finetune(args: argparse.Namespace) -> None:
    from tvlt.train import finetune

    opts = _options(args, finetune.FinetuneOptions)
    config = _config(args) if args.resume else _init_config(args.init, args.config)
    model, progress = finetune.run(config, opts, _settings(args), pick_device(args.device), args.init)
    _finish(model, progress, args, "sentiment")


def cmd_refine_mae(args: argparse.Namespace) -> None:
    from tvlt.train import refine_mae

    opts = _options(args, refine_mae.RefineOptions)
    config = _config(args) if args.resume else _init_config(args.init, args.config)
    model, progress = refine_mae.run(config, opts, _settings(args), pick_device(args.device), args.init)
    _finish(model, progress, args, "pretrain")


def _init_config(init: Optional[str], preset: str) -> TvltConfig:
    """The pretraining run's config (checkpoint or export), or the preset when starting from scratch."""
    if not init:
        return PRESETS[preset]()
    if os.path.isfile(os.path.join(init, "config.json")):
        return TvltConfig.from_pretrained(init)
    return TvltConfig.from_dict(read_checkpoint(init)["args"]["config"])


def cmd_export(args: argparse.Namespace) -> None:
    from tvlt.train.export import export_run

    print(f"exported {export_run(args.run, args.out)}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from tvlt.train import evaluate

    settings = evaluate.EvalSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(evaluate.EvalSettings)})
    path = evaluate.write_model_card(args.pretrain, args.sentiment, args.out, settings, pick_device(args.device))
    print(f"wrote {path}")


def _probed_model(args: argparse.Namespace) -> tuple[Any, Any]:
    """(the exported pretraining model at --model on --device, that device) for the probe commands."""
    from tvlt.modeling import TvltForPreTraining

    device = pick_device(args.device)
    return TvltForPreTraining.from_pretrained(args.model).to(device), device


def cmd_probe_shape(args: argparse.Namespace) -> None:
    from tvlt.train.scenes import SHAPES
    from tvlt.train.shape_probe import shape_probe

    model, device = _probed_model(args)
    objects, table = shape_probe(model, args.train_clips, args.val_clips, device)
    print(f"shape from ... (linear probe; {objects['train']} train / {objects['val']} val objects; "
          f"chance {1 / len(SHAPES):.3f})")
    for stage, accuracy in table.items():
        print(f"  {stage:<18} train {accuracy['train']:.3f}  val {accuracy['val']:.3f}")


def cmd_probe_mae(args: argparse.Namespace) -> None:
    from tvlt.train.evaluate import mae_probe

    model, device = _probed_model(args)
    metrics = mae_probe(model, "val", list(range(args.val_clips)), device)
    print(f"MAE probe on {args.val_clips} val scenes: " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))


def build_parser() -> argparse.ArgumentParser:
    from tvlt.train.evaluate import EvalSettings
    from tvlt.train.finetune import FinetuneOptions
    from tvlt.train.pretrain import PretrainOptions
    from tvlt.train.refine_mae import RefineOptions

    parser = argparse.ArgumentParser(prog="python -m tvlt.train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pretrain", help="contrastive + MAE + matching pretraining on procedural scenes")
    _add_loop_flags(p, lr=5e-4, warmup=300)
    _add_options(p, PretrainOptions)
    p.add_argument("--init", default=None, help="continue from this pretraining run or export (default: from scratch)")
    p.set_defaults(func=cmd_pretrain)
    f = sub.add_parser("finetune-sentiment", help="sentiment regression on talking faces")
    _add_loop_flags(f, lr=2e-4, warmup=100)
    _add_options(f, FinetuneOptions)
    f.add_argument("--init", default=None, help="pretraining run directory, checkpoint or export")
    f.set_defaults(func=cmd_finetune)
    r = sub.add_parser("refine-mae", help="train only the MAE decoder of a pretrained model, the encoder frozen")
    _add_loop_flags(r, lr=1e-3, warmup=30)
    _add_options(r, RefineOptions)
    r.add_argument("--init", default=None, help="pretraining run directory, checkpoint or export")
    r.set_defaults(func=cmd_refine_mae)
    e = sub.add_parser("export", help="transformers-format directory from a run's checkpoint")
    e.add_argument("--run", required=True, help="run directory or checkpoint.pt")
    e.add_argument("--out", required=True)
    e.set_defaults(func=cmd_export)
    v = sub.add_parser("evaluate", help="compute every metric and write the model card")
    v.add_argument("--pretrain", required=True, help="exported pretraining directory")
    v.add_argument("--sentiment", required=True, help="exported sentiment directory")
    v.add_argument("--out", default="assets/MODEL_CARD.md")
    v.add_argument("--device", default="auto", help="auto (cuda if available), cuda, cpu")
    _add_options(v, EvalSettings, skip=())
    v.set_defaults(func=cmd_evaluate)
    s = sub.add_parser("probe-shape", help="linear probes: how much of a hidden object's shape each stage keeps")
    s.add_argument("--model", required=True, help="exported pretraining directory")
    s.add_argument("--train-clips", type=int, default=2048, help="train scenes the probes fit on")
    s.add_argument("--val-clips", type=int, default=192, help="val scenes they are scored on")
    s.add_argument("--device", default="auto", help="auto (cuda if available), cuda, cpu")
    s.set_defaults(func=cmd_probe_shape)
    m = sub.add_parser("probe-mae", help="train.log's MAE probe (object ratio, shape and colour shown) on val scenes")
    m.add_argument("--model", required=True, help="exported pretraining directory")
    m.add_argument("--val-clips", type=int, default=256, help="val scenes 0..N-1")
    m.add_argument("--device", default="auto", help="auto (cuda if available), cuda, cpu")
    m.set_defaults(func=cmd_probe_mae)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
