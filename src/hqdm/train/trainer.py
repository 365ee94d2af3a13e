"""The training loop: deterministic, checkpointed, resumable mid-epoch and across the transfer boundary.

Randomness is split so that a resumed run replays the uninterrupted one bit for bit:

* model initialisation: ``torch.manual_seed(seed + phase)`` right before each model is built;
* data order: epoch ``e`` is the permutation drawn by a fresh generator seeded ``(seed, e)``, so a
  resume only needs the epoch and the batch position, not a generator state;
* timesteps and noise: one CPU generator (``"noise"``) whose state is saved with every checkpoint;
* sample grids: a generator seeded from ``seed`` alone, so sampling never disturbs training.

Data parallel (under ``torchrun``, see :mod:`hqdm.train.distributed`): ``training.batch_size`` is the
global batch. Every rank walks the same permutation and trains on its contiguous slice of each global
batch, and every rank draws the *global* batch's t and noise from the shared generator and keeps its
slice, so the run is the same computation whatever the number of processes and a checkpoint (global
step, epoch, batch, generator state) resumes under any world size. Rank 0 alone writes checkpoints,
logs and grids.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from hqdm.config import Config, config_to_dict
from hqdm.diffusion import EMA, GaussianDiffusion, SamplingPipeline, make_noise_source, make_schedule
from hqdm.diffusion.noise import sample_noise
from hqdm.files import atomic_write_text
from hqdm.precision import set_precision
from hqdm.progress import progress_bar
from hqdm.train.checkpoint import (
    CheckpointError,
    TrainState,
    find_checkpoints,
    latest_checkpoint,
    load_rng,
    load_weights,
    read_state,
    remove_temporaries,
    save_checkpoint,
    verify_checkpoint,
)
from hqdm.train.distributed import DistContext, join_process_group
from hqdm.train.io import save_grid_png
from hqdm.train.lock import RunLock
from hqdm.train.logs import LogRow, MetricsLog, plot_loss_curve, read_log
from hqdm.train.setup import (
    ModelFactory,
    Phase,
    check_batch_split,
    default_model_factory,
    epoch_permutation,
    load_training_images,
    plan_phases,
    resolve_device,
)
from hqdm.train.stopping import StopRequests, TrainingInterrupted
from hqdm.train.transfer import transfer_weights

__all__ = ["NonFiniteLossError", "RunDirError", "RunResult", "Trainer", "train"]

StepHook = Callable[[int, float], None]  # (global step just completed, its loss)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stops before the bad step touches any weights."""


class RunDirError(RuntimeError):
    """The output directory cannot be used as asked (e.g. it already holds a run and --resume is absent)."""


@dataclass
class RunResult:
    run_dir: Path
    state: TrainState
    final_checkpoint: Path | None
    grids: list[Path] = field(default_factory=list)
    loss_plot: Path | None = None
    completed: bool = False  # False when stopped early by max_steps / time_limit


def _wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """The module the loss is computed through: DDP all-reduces the gradients of every parameter
    (quantum weights included); the unwrapped model stays the one that is saved and EMA-averaged."""
    if not ctx.is_distributed:
        return model
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _seeded_model(
    factory: ModelFactory, name: str, cfg: Config, phase: int, device: torch.device
) -> nn.Module:
    torch.manual_seed(cfg.training.seed + phase)
    model = factory(dataclasses.replace(cfg.model, name=name)).to(device)
    set_precision(model, cfg.training.precision, device)  # the EMA copy inherits it
    return model


class Trainer:
    """Owns one run directory; :meth:`run` trains (or resumes) to the end or to a step/time limit."""

    def __init__(
        self,
        cfg: Config,
        *,
        images: Tensor | None = None,
        model_factory: ModelFactory = default_model_factory,
        progress: bool = True,
        on_step: StepHook | None = None,
        dist: DistContext | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.output_dir)
        self.dist = dist or DistContext()
        self.device = device or resolve_device(cfg.training.device)
        self.factory = model_factory
        self.progress = progress and self.dist.is_main
        self.on_step = on_step
        self.images = images if images is not None else load_training_images(cfg)
        check_batch_split(cfg.training.batch_size, len(self.images), self.dist.world_size)
        self.phases = plan_phases(cfg)
        schedule = make_schedule(
            cfg.diffusion.schedule, cfg.diffusion.num_timesteps, **cfg.diffusion.schedule_options
        )
        self.diffusion = GaussianDiffusion(
            schedule,
            p2_gamma=cfg.diffusion.p2_gamma,
            p2_k=cfg.diffusion.p2_k,
            noise=make_noise_source(cfg.diffusion.noise, **cfg.diffusion.noise_options),
        )
        self.noise_gen = torch.Generator().manual_seed(cfg.training.seed)
        self.state = TrainState()
        self.grids: list[Path] = []

    # --- set-up ----------------------------------------------------------------------------------

    def _new_optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        return torch.optim.Adam(self.model.parameters(), lr=o.lr, betas=o.betas, eps=o.eps)

    def _new_ema(self) -> EMA:
        e = self.cfg.ema
        return EMA(
            self.model,
            warmup_steps=e.warmup_steps,
            update_every=e.update_every,
            max_decay=e.max_decay,
            power=e.power,
        )

    def _start_fresh(self) -> None:
        if find_checkpoints(self.run_dir):
            raise RunDirError(
                f"{self.run_dir} already holds checkpoints; pass --resume to continue it, or another --out"
            )
        phase = self.phases[0]
        self.model = _seeded_model(self.factory, phase.model_name, self.cfg, 0, self.device)
        self.optimizer, self.ema = self._new_optimizer(), self._new_ema()
        self.forward_model = _wrap(self.model, self.dist, self.device)
        self.state = TrainState(model_name=phase.model_name)

    def _resume(self) -> Path:
        """Resume from the newest intact checkpoint. A damaged one (checksum, unreadable or foreign files)
        is moved aside to ``.<name>.damaged`` and the next older one is tried; the skip is reported."""
        candidates = find_checkpoints(self.run_dir)[::-1]
        if not candidates:
            raise CheckpointError(f"nothing to resume: {self.run_dir} has no complete checkpoint")
        skipped: list[str] = []
        for checkpoint in candidates:
            reason = verify_checkpoint(checkpoint)
            if reason is None:
                try:
                    self._load(checkpoint)
                except CheckpointError as err:
                    reason = str(err)
                else:
                    return checkpoint
            skipped.append(f"{checkpoint.name}: {reason}")
            if self.dist.is_main:
                tqdm.write(f"warning: skipping damaged checkpoint {checkpoint} ({reason})")
                checkpoint.rename(checkpoint.with_name(f".{checkpoint.name}.damaged"))
            self.dist.barrier()
        raise CheckpointError(f"no intact checkpoint to resume in {self.run_dir}: {'; '.join(skipped)}")

    def _load(self, checkpoint: Path) -> None:
        self.state, saved = read_state(checkpoint)
        saved_model = saved.get("model", {}).get("name")
        if saved_model != self.cfg.model.name:
            raise RunDirError(
                f"{self.run_dir} trains {saved_model!r} but the config names {self.cfg.model.name!r}: "
                "resume with the run's own config, or train the new model into another --out"
            )
        if self.dist.is_main:
            _warn_config_changes(saved, config_to_dict(self.cfg))
        self.model = _seeded_model(
            self.factory, self.state.model_name, self.cfg, self.state.phase, self.device
        )
        load_weights(self.model, checkpoint / "model.safetensors")
        self.optimizer, self.ema = self._new_optimizer(), self._new_ema()
        load_weights(self.ema.shadow, checkpoint / "ema.safetensors")
        try:
            self.optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
            load_rng(checkpoint, {"noise": self.noise_gen})
        except (OSError, RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(f"optimizer.pt or rng.pt cannot be read ({type(err).__name__})") from err
        self.forward_model = _wrap(self.model, self.dist, self.device)

    def _enter_transfer_phase(self, phase: Phase) -> None:
        """Classical -> hybrid: new model, weights copied except the vertex, fresh Adam, EMA = new params."""
        source = self.model
        self.model = _seeded_model(self.factory, phase.model_name, self.cfg, phase.index, self.device)
        report = transfer_weights(source, self.model, exclude_prefixes=self.cfg.transfer.exclude_prefixes)
        if self.dist.is_main:
            atomic_write_text(self.run_dir / "transfer.json", json.dumps(report.as_dict(), indent=2) + "\n")
            tqdm.write(f"transfer to {phase.model_name}: {report.summary()}")
        self.optimizer, self.ema = self._new_optimizer(), self._new_ema()
        self.forward_model = _wrap(self.model, self.dist, self.device)
        self.state.phase, self.state.phase_start_step = phase.index, self.state.step
        self.state.model_name = phase.model_name

    # --- the loop --------------------------------------------------------------------------------

    def run(
        self, *, resume: bool = False, max_steps: int | None = None, time_limit: float | None = None
    ) -> RunResult:
        """Train to the end of the last epoch, or stop (with a checkpoint) after ``max_steps`` global
        steps or ``time_limit`` seconds of this process's training. SIGTERM or Ctrl-C stops after the
        current step with a checkpoint of it and raises :class:`TrainingInterrupted`
        (:mod:`hqdm.train.stopping`). Rank 0 holds the run folder's lock
        (:class:`hqdm.train.lock.RunLock`) throughout: a second process training into it gets an error."""
        with RunLock(self.run_dir) if self.dist.is_main else contextlib.nullcontext():
            return self._run(resume, max_steps, time_limit)

    def _run(self, resume: bool, max_steps: int | None, time_limit: float | None) -> RunResult:
        if self.dist.is_main:
            remove_temporaries(self.run_dir)  # of writes killed halfway; no other writer: we hold the lock
        resumed_from = self._resume() if resume else None
        if resumed_from is None:
            self._start_fresh()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log: MetricsLog | None = None
        if self.dist.is_main:
            atomic_write_text(
                self.run_dir / "config.json", json.dumps(config_to_dict(self.cfg), indent=2) + "\n"
            )
            self.log = MetricsLog(self.run_dir, resume_step=self.state.step if resumed_from else None)
        self._t0, self._elapsed0 = time.perf_counter(), self.state.elapsed
        total = self._total_steps() if max_steps is None else min(max_steps, self._total_steps())
        if time_limit is not None and max_steps is None:
            total = None  # the run ends on the clock, so an ETA over all epochs would be misleading
        self._bar = progress_bar(
            total, initial=self.state.step, enabled=self.progress, unit="step",
            desc=f"training ({time_limit / 60:g} min)" if total is None else "training",
        )  # fmt: skip
        try:
            if resumed_from is not None and self.log is not None:
                self._catch_up_grid(self.log)
            with StopRequests() as self._stop:
                completed = self._run_phases(max_steps, time_limit)
        finally:
            self._bar.close()
            if self.log is not None:
                self.log.close()
        plot = self.run_dir / "loss.png"
        if self.log is not None:
            plot_loss_curve(read_log(self.log.csv_path), plot)
        self.dist.barrier()  # the other ranks return once rank 0's files are complete
        result = RunResult(
            self.run_dir, self.state, latest_checkpoint(self.run_dir), self.grids, plot, completed
        )
        if self._stop.requested and not completed:
            raise TrainingInterrupted(result)
        return result

    def _total_steps(self) -> int:
        per_epoch = math.ceil(len(self.images) / self.cfg.training.batch_size)
        return per_epoch * self.cfg.training.epochs

    def _run_phases(self, max_steps: int | None, time_limit: float | None) -> bool:
        for phase in self.phases:
            if self.state.epoch >= phase.end_epoch:
                continue
            if phase.index > self.state.phase:
                self._enter_transfer_phase(phase)
            for epoch in range(self.state.epoch, phase.end_epoch):
                if not self._run_epoch(epoch, max_steps, time_limit):
                    self._save_unless_saved()
                    return False
                self._end_epoch(epoch)
        return True

    def _run_epoch(self, epoch: int, max_steps: int | None, time_limit: float | None) -> bool:
        """Train the remaining batches of ``epoch``; False if a step/time limit stopped it early."""
        batch_size = self.cfg.training.batch_size
        order = epoch_permutation(self.cfg.training.seed, epoch, len(self.images))
        num_batches = math.ceil(len(order) / batch_size)
        self.model.train()
        self._interval_start, self._interval_images = time.perf_counter(), 0
        for b in range(self.state.batch, num_batches):
            if self._should_stop(max_steps, time_limit):
                return False
            # the distributed sampler: this rank's contiguous slice of the global batch
            batch = order[b * batch_size : (b + 1) * batch_size]
            lo, hi = self.dist.bounds(len(batch))
            loss = self._train_step(self.images[batch[lo:hi]].to(self.device), len(batch))
            self.state.epoch, self.state.batch = epoch, b + 1
            self._after_step(epoch, loss, len(batch), last_of_epoch=b + 1 == num_batches)
        return True

    def _should_stop(self, max_steps: int | None, time_limit: float | None) -> bool:
        if max_steps is not None and self.state.step >= max_steps:
            return True
        stop = self._stop.requested
        if time_limit is not None:
            stop = stop or time.perf_counter() - self._t0 >= time_limit
        # the ranks' clocks and signals differ: all stop as soon as one is out of time or asked to stop
        return self.dist.any(stop, self.device)

    def _global_draws(self, n: int, x0: Tensor) -> tuple[Tensor, Tensor]:
        """t and noise of the whole global batch of ``n`` (same order as ``training_loss`` draws them),
        sliced to this rank: the random stream does not depend on the number of processes."""
        t = self.diffusion.sample_timesteps(n, device=self.device, generator=self.noise_gen)
        shape = (n, *x0.shape[1:])
        noise = sample_noise(
            self.diffusion.noise, shape, generator=self.noise_gen, device=self.device, dtype=x0.dtype
        )
        lo, hi = self.dist.bounds(n)
        return t[lo:hi], noise[lo:hi]

    def _train_step(self, x0: Tensor, global_n: int) -> float:
        t, noise = self._global_draws(global_n, x0)
        loss = self.diffusion.training_loss(self.forward_model, x0, t=t, noise=noise)
        value = loss.item()
        if self.dist.is_distributed:
            # DDP averages gradients over ranks; weighting each rank's mean by its share of the global
            # batch makes that average the gradient of the global-batch mean (shards may be uneven)
            share = len(x0) / global_n
            loss = loss * (share * self.dist.world_size)
            value = self.dist.sum(value * share, self.device)  # the global-batch loss, on every rank
        if not math.isfinite(value):
            last = latest_checkpoint(self.run_dir)
            raise NonFiniteLossError(
                f"loss is {value} at step {self.state.step + 1} (epoch {self.state.epoch + 1}); stopped "
                f"before updating the weights. Last good checkpoint: {last or 'none'}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.state.step += 1
        self.ema.update(self.model, self.state.step - 1 - self.state.phase_start_step)
        return value

    def _after_step(self, epoch: int, loss: float, n_images: int, *, last_of_epoch: bool) -> None:
        s, t = self.state, self.cfg.training
        s.log_loss_sum += loss
        s.log_loss_count += 1
        self._interval_images += n_images
        self._bar.update(1)
        if s.step % t.log_every == 0 or last_of_epoch:
            self._write_log_row(epoch)
        if s.step % t.checkpoint_every == 0 and not last_of_epoch:
            self._save()
        if self.on_step is not None:
            self.on_step(s.step, loss)

    def _write_log_row(self, epoch: int) -> None:
        s = self.state
        now = time.perf_counter()
        rate = self._interval_images / max(now - self._interval_start, 1e-9)
        row = LogRow(s.step, epoch + 1, s.log_loss_sum / s.log_loss_count, rate, self._elapsed())
        if self.log is not None:
            self.log.write(row)
        self._bar.set_postfix(loss=f"{row.loss:.4f}", img_s=f"{rate:.1f}", epoch=epoch + 1)
        s.log_loss_sum, s.log_loss_count = 0.0, 0
        self._interval_start, self._interval_images = now, 0

    def _end_epoch(self, epoch: int) -> None:
        self.state.epoch, self.state.batch = epoch + 1, 0
        self._save()
        # progress snapshots by rank 0; the others wait for it in their next collective
        if epoch + 1 in self.cfg.training.grid_epochs and self.log is not None:
            self.grids.append(self._write_grid(epoch + 1, self.log))
            plot_loss_curve(read_log(self.log.csv_path), self.run_dir / "loss.png")

    def _save_unless_saved(self) -> None:
        if self.dist.is_main:
            last = latest_checkpoint(self.run_dir)
            saved = read_state(last)[0] if last is not None else None
            if saved is None or (saved.step, saved.phase) != (self.state.step, self.state.phase):
                self._write_checkpoint()
        self.dist.barrier()

    def _catch_up_grid(self, log: MetricsLog) -> None:
        """A run killed while drawing an epoch's grid resumes from the checkpoint written just before it."""
        done = self.state.epoch
        if (
            self.state.batch == 0
            and done in self.cfg.training.grid_epochs
            and not self._grid_path(done).exists()
        ):
            self.grids.append(self._write_grid(done, log))

    def _grid_path(self, epoch: int) -> Path:
        return self.run_dir / "samples" / f"epoch_{epoch:03d}.png"

    def _elapsed(self) -> float:
        return self._elapsed0 + time.perf_counter() - self._t0

    def _save(self) -> None:
        """Rank 0 writes the checkpoint; no rank goes on before it is complete on disk."""
        if self.dist.is_main:
            self._write_checkpoint()
        self.dist.barrier()

    def _write_checkpoint(self) -> Path:
        self.state.elapsed = self._elapsed()
        return save_checkpoint(
            self.run_dir,
            self.state,
            model=self.model,
            ema=self.ema.shadow,
            optimizer=self.optimizer,
            generators={"noise": self.noise_gen},
            config=config_to_dict(self.cfg),
            keep_last=self.cfg.training.keep_last,
        )

    # --- sample grids ----------------------------------------------------------------------------

    def _write_grid(self, epoch: int, log: MetricsLog) -> Path:
        sc = self.cfg.sampling
        pipe = SamplingPipeline(
            self.ema.shadow,
            self.diffusion.schedule,
            image_shape=(self.cfg.model.in_channels, *self.images.shape[-2:]),
            sampler=sc.sampler,
            steps=sc.steps,
            eta=sc.eta,
            noise=self.diffusion.noise,
        )
        images = pipe(sc.num_images, seed=self.cfg.training.seed)  # the same images every epoch
        path = self._grid_path(epoch)
        grid = save_grid_png(images.numpy(), path)
        log.add_grid("samples/ema", grid, self.state.step)
        return path


def _flatten(d: dict[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        out |= _flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def _warn_config_changes(saved: dict[str, object], current: dict[str, object]) -> None:
    """Resuming with a different config is allowed (e.g. more epochs) but breaks exact replay: say so."""
    old, new = _flatten(saved), _flatten(current)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        tqdm.write(f"warning: resuming with config changes in {', '.join(changed)}")


def train(
    cfg: Config,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    time_limit: float | None = None,
    images: Tensor | None = None,
    model_factory: ModelFactory = default_model_factory,
    progress: bool = True,
    on_step: StepHook | None = None,
) -> RunResult:
    """Train (or resume) the run described by ``cfg`` in ``cfg.output_dir``; see :class:`Trainer`.

    Under ``torchrun`` every process calls this; the process group is joined (or created) here."""
    ctx, device = join_process_group(resolve_device(cfg.training.device))
    trainer = Trainer(
        cfg,
        images=images,
        model_factory=model_factory,
        progress=progress,
        on_step=on_step,
        dist=ctx,
        device=device,
    )
    return trainer.run(resume=resume, max_steps=max_steps, time_limit=time_limit)
