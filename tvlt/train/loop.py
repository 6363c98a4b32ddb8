"""Training machinery shared by pretraining and fine-tuning: device, optimiser, schedule, checkpoints, logs.

A run is a directory: `checkpoint.pt` (one resumable file: modules, optimiser, step, clips seen, wall time,
RNG states), `train.log` (one line per logged step) and `provenance.json`. `train()` stops cleanly at a
step budget or a wall-clock budget, whichever comes first, and always leaves a checkpoint behind: at the end,
on an exception, Ctrl-C or SIGTERM (after the step in flight), and every `checkpoint_minutes` on the way, so
even a killed process (SIGKILL, a lost machine) loses at most that much training.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
from torch import nn

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train.log"
PROVENANCE_NAME = "provenance.json"


# ---------------------------------------------------------------- device
def pick_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; TF32 matmuls are switched on for cuda."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on cuda; plain fp32 elsewhere (CPU bf16 is slower than fp32 on the dev machines)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- optimiser and schedule
def build_optimizer(modules: dict[str, nn.Module], lr: float, weight_decay: float,
                    lr_scales: Optional[dict[str, float]] = None) -> torch.optim.AdamW:
    """AdamW; matrices decay, vectors (biases, norms, embeddings, tokens, temperatures) do not. lr_scales maps
    parameter-name prefixes ("module.name.", e.g. "model.tvlt.") to a factor on the learning rate (the first
    matching prefix wins; others get 1); each group keeps its factor as "lr_scale"."""
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for module_name, module in modules.items():
        for name, param in module.named_parameters():
            if param.requires_grad:
                full = f"{module_name}.{name}"
                scale = next((s for prefix, s in (lr_scales or {}).items() if full.startswith(prefix)), 1.0)
                groups.setdefault((scale, param.dim() >= 2 and param.shape[0] > 1), []).append(param)
    return torch.optim.AdamW([{"params": params, "weight_decay": weight_decay if decays else 0.0, "lr_scale": scale}
                              for (scale, decays), params in sorted(groups.items(), reverse=True)],
                             lr=lr, betas=(0.9, 0.98))


def cosine_lr(step: int, fraction: float, base_lr: float, warmup_steps: int, min_ratio: float = 0.05) -> float:
    """Linear warm-up over the first `warmup_steps` steps, then cosine decay to `min_ratio * base_lr` as the
    schedule `fraction` (0..1, see `LoopSettings.fraction`) goes to 1."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, fraction)))
    return base_lr * (min_ratio + (1 - min_ratio) * cosine)


# ---------------------------------------------------------------- checkpoints
def step_seed(seed: int, step: int) -> int:
    """The random seed of one training step: a function of the run's seed and the step, so a resumed run draws
    exactly what an uninterrupted one would."""
    return seed * 1_000_003 + step


def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),  # loadable weights_only
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Progress:
    """What a run has done so far; stored in the checkpoint and the provenance file."""

    step: int = 0
    clips: int = 0  # training clips seen (each clip counted once per step it is in)
    wall_seconds: float = 0.0  # summed over resumed sessions
    device: str = ""  # where the last session ran
    commands: list[str] = field(default_factory=list)  # command line of each session
    options: list[dict] = field(default_factory=list)  # resolved options of each session (flags + defaults)


def command_line() -> str:
    return " ".join(["python", "-m", "tvlt.train", *sys.argv[1:]])


def save_checkpoint(
    path: str, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer, progress: Progress, args: dict
) -> None:
    """One file with everything `load_checkpoint` needs to continue bit-for-bit on the same device."""
    state = {
        "modules": {name: m.state_dict() for name, m in modules.items()},
        "optimizer": optimizer.state_dict(),
        "progress": asdict(progress),
        "rng": rng_state(),
        "args": args,
    }
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind


def read_checkpoint(path: str) -> dict[str, Any]:
    """The raw checkpoint dict (tensors on CPU). A directory means its `checkpoint.pt`."""
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_checkpoint(
    path: str, modules: dict[str, nn.Module], optimizer: Optional[torch.optim.Optimizer] = None
) -> Progress:
    """Restore modules (strict), optimiser and RNG states in place; returns the stored progress."""
    state = read_checkpoint(path)
    missing = set(modules) - set(state["modules"])
    if missing:
        raise ValueError(f"checkpoint {path!r} lacks modules {sorted(missing)}; it has {sorted(state['modules'])}")
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
    return Progress(**state["progress"])


def load_weights(model: nn.Module, source: str) -> None:
    """Weights from a run directory / checkpoint file, or a transformers-format export, into a tvlt model
    (`load_checkpoint_state_dict` rules: heads the model lacks are dropped, heads it adds stay initialised)."""
    try:
        state = read_checkpoint(source)["modules"]["model"]
    except FileNotFoundError:
        from tvlt.weights import read_state_dict

        state = read_state_dict(source)
    model.load_checkpoint_state_dict(state, strict=True, source=source)


# ---------------------------------------------------------------- logging and provenance
class RunLog:
    """One line per call to `write`, to stdout and `<out>/train.log` (appended across resumes)."""

    def __init__(self, out_dir: str) -> None:
        os.makedirs(out_dir, exist_ok=True)
        self._file = open(os.path.join(out_dir, LOG_NAME), "a", encoding="utf-8")

    def write(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {text}"
        print(line, flush=True)
        self._file.write(line + "\n")
        self._file.flush()

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.write(f"step {step} " + " ".join(f"{k} {_fmt(v)}" for k, v in values.items()))

    def close(self) -> None:
        self._file.close()


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def git_commit() -> Optional[str]:
    """The repository's HEAD commit, or None (no git, no commits yet)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(progress: Progress, extra: dict[str, Any]) -> dict[str, Any]:
    """What produced a run: command lines, steps, clips, wall time, device, git commit, plus `extra`."""
    return {
        "commands": progress.commands,
        "session_options": progress.options,
        "steps": progress.step,
        "clips_seen": progress.clips,
        "wall_seconds": round(progress.wall_seconds, 1),
        "device": progress.device,
        "torch": torch.__version__,
        "git_commit": git_commit(),  # HEAD when this record is written (training machines may have no git)
        "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


# ---------------------------------------------------------------- the loop
@dataclass
class LoopSettings:
    """Schedule length is `total_steps` or `total_minutes` of training wall time (summed over resumed sessions),
    whichever ends first (0 = unused; at least one must be set). `minutes` bounds this session only."""

    out_dir: str
    total_steps: int = 0
    total_minutes: float = 0.0
    minutes: float = 0.0
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 200
    clip_grad: float = 1.0
    log_every: int = 50
    probe_every: int = 500  # 0 = never (a probe also runs at the end)
    checkpoint_minutes: float = 10.0  # save the checkpoint this often during a session (0 = only at its end)
    lr_scales: dict = field(default_factory=dict)  # parameter-name prefix -> learning-rate factor (build_optimizer)
    resume: bool = False
    args: dict = field(default_factory=dict)  # stored with the checkpoint and provenance

    def __post_init__(self) -> None:
        if self.total_steps <= 0 and self.total_minutes <= 0:
            raise ValueError(f"set total_steps or total_minutes (got {self.total_steps}, {self.total_minutes})")

    def fraction(self, progress: Progress, session_seconds: float) -> float:
        """How far through the schedule a run is, in [0, 1]: the larger of the step and the time fractions."""
        by_steps = progress.step / self.total_steps if self.total_steps > 0 else 0.0
        seconds = progress.wall_seconds + session_seconds
        by_time = seconds / (60 * self.total_minutes) if self.total_minutes > 0 else 0.0
        return min(1.0, max(by_steps, by_time))


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar to minimise
    values: dict[str, torch.Tensor]  # detached scalars to log (each loss term, accuracies)


@dataclass
class _Session:
    """One training session's state, so the step function needs one argument."""

    modules: dict[str, nn.Module]
    optimizer: torch.optim.Optimizer
    settings: LoopSettings
    device: torch.device
    progress: Progress
    meter: "_Meter"


def train(
    modules: dict[str, nn.Module],
    make_batch: Callable[[int], Any],
    compute: Callable[[Any, float], StepOutput],
    batch_size: Callable[[Any], int],
    settings: LoopSettings,
    device: torch.device,
    probe: Optional[Callable[[], dict[str, float]]] = None,
) -> Progress:
    """Optimise `modules` until the schedule ends or the session's `minutes` run out; checkpoint; return progress.

    make_batch(step) -> batch (deterministic in step, so resumed runs see the same data);
    compute(batch, fraction) -> StepOutput, run under autocast, `fraction` = schedule position in [0, 1]
    (loss-weight curricula key on it). Data time and train time are measured apart.
    """
    optimizer = build_optimizer(modules, settings.lr, settings.weight_decay, settings.lr_scales)
    ckpt = os.path.join(settings.out_dir, CHECKPOINT_NAME)
    log = RunLog(settings.out_dir)
    progress = load_checkpoint(ckpt, modules, optimizer) if settings.resume else Progress()
    progress.device = device_name(device)
    progress.commands.append(command_line())
    # per session: what flags may change; the config and the init's provenance stay in the args, once
    progress.options.append({k: v for k, v in settings.args.items() if k not in ("config", "init_provenance")})
    log.write(f"start step {progress.step} on {progress.device}; args {settings.args}")
    session, probed = _Session(modules, optimizer, settings, device, progress, _Meter()), -1
    start = saved = time.perf_counter()
    deadline = start + settings.minutes * 60 if settings.minutes > 0 else math.inf
    with _sigterm_stops() as stop:
        try:
            while not stop and time.perf_counter() < deadline and \
                    (fraction := settings.fraction(progress, time.perf_counter() - start)) < 1:
                _one_step(session, make_batch, compute, batch_size, fraction)
                if settings.checkpoint_minutes > 0 and time.perf_counter() - saved >= 60 * settings.checkpoint_minutes:
                    so_far = replace(progress, wall_seconds=progress.wall_seconds + time.perf_counter() - start)
                    save_checkpoint(ckpt, modules, optimizer, so_far, settings.args)
                    log.write(f"saved {ckpt} at step {progress.step} (every {settings.checkpoint_minutes:g} min)")
                    saved = time.perf_counter()
                if progress.step % settings.log_every == 0:
                    log.metrics(progress.step, {"fraction": fraction, **session.meter.flush()})
                if probe is not None and settings.probe_every and progress.step % settings.probe_every == 0:
                    log.metrics(progress.step, _run_probe(probe, modules))
                    probed = progress.step
        finally:
            progress.wall_seconds += time.perf_counter() - start
            if session.meter.clips:  # steps since the last log line
                log.metrics(progress.step, session.meter.flush())
            save_checkpoint(ckpt, modules, optimizer, progress, settings.args)
            log.write(f"saved {ckpt} at step {progress.step} ({progress.clips} clips, {progress.wall_seconds:.0f} s)")
    if stop:
        log.write(f"stopped by SIGTERM after step {progress.step}")
        log.close()
        raise SystemExit(128 + signal.SIGTERM)
    if probe is not None and probed != progress.step:
        log.metrics(progress.step, _run_probe(probe, modules))
    log.close()
    return progress


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[list[int]]:
    """While inside, SIGTERM (`kill`, a job scheduler) appends to the yielded list, so the loop stops after the
    step in flight, checkpoints and exits with 143. A flag and not an exception raised from the handler: that
    could land in any `except` or finaliser on the way and be swallowed. The first SIGTERM restores the previous
    handler, so a second one ends the process at once. Signal handlers can only be set from the main thread;
    elsewhere SIGTERM keeps its handler."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        received.append(signum)
        signal.signal(signal.SIGTERM, previous)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_step(
    session: _Session, make_batch: Callable[[int], Any], compute: Callable[[Any, float], StepOutput],
    batch_size: Callable[[Any], int], fraction: float,
) -> None:
    progress, optimizer, device = session.progress, session.optimizer, session.device
    t0 = time.perf_counter()
    batch = make_batch(progress.step)
    synchronize(device)
    t1 = time.perf_counter()
    lr = cosine_lr(progress.step, fraction, session.settings.lr, session.settings.warmup_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)  # (checkpoints from before lr_scales have none)
    for m in session.modules.values():
        m.train()
    with autocast(device):
        out = compute(batch, fraction)
    if not torch.isfinite(out.loss):
        raise FloatingPointError(f"loss is {out.loss.item()} at step {progress.step}: {_values(out.values)}")
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    params = [p for m in session.modules.values() for p in m.parameters() if p.grad is not None]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, session.settings.clip_grad)
    optimizer.step()
    synchronize(device)
    n = batch_size(batch)
    progress.step += 1
    progress.clips += n
    session.meter.add(n, t1 - t0, time.perf_counter() - t1, {**out.values, "grad_norm": grad_norm.detach()}, lr)


def _values(values: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


def _run_probe(probe: Callable[[], dict[str, float]], modules: dict[str, nn.Module]) -> dict[str, float]:
    with evaluating(*modules.values()):
        return {f"probe_{k}": v for k, v in probe().items()}


class _Meter:
    """Averages logged values between log lines, each over the steps that reported it (a step may leave a loss
    out); data and train throughput measured separately."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.clips, self.data_s, self.train_s, self.sums, self.counts, self.lr = 0, 0.0, 0.0, {}, {}, 0.0

    def add(self, clips: int, data_s: float, train_s: float, values: dict[str, torch.Tensor], lr: float) -> None:
        self.clips += clips
        self.data_s += data_s
        self.train_s += train_s
        self.lr = lr
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.detach().float()  # stays on device: no sync per step
            self.counts[k] = self.counts.get(k, 0) + 1

    def flush(self) -> dict[str, float]:
        total = self.data_s + self.train_s
        out = {
            "clips_per_s": self.clips / max(total, 1e-9),
            "data_clips_per_s": self.clips / max(self.data_s, 1e-9),
            "train_clips_per_s": self.clips / max(self.train_s, 1e-9),
            "lr": self.lr,
            **{k: float(v) / self.counts[k] for k, v in self.sums.items()},
        }
        self._reset()
        return out


@contextlib.contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """eval() + no_grad for the block, then back to the previous train/eval modes."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
