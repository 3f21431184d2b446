"""The training loop: a generator trained on cached pairs, resumable, with its history.

Conventions:

- Inputs and targets are RGB in [0, 1] (``uint8 / 255``). A ``paper``
  generator with output range [-1, 1] ends in tanh; its output is mapped by
  ``(y + 1) / 2`` before the loss, exactly as the upscale stage maps it
  (:func:`pipeline.upscale.srresnet.make_forward`), so a trained checkpoint
  runs as a method with no further option.
- Batches are drawn without replacement, epoch by epoch: the permutation of
  epoch ``e`` and the flips of iteration ``i`` come from
  ``numpy.random.default_rng([seed, ...])`` and depend on nothing else, so a
  resumed run draws the batches an uninterrupted one would.
- **Checkpoints.** Every ``checkpoint_every`` iterations the whole state is
  written atomically to ``resume.pth`` beside the final checkpoint: the
  generator's weights under ``params`` (the key the upscale loaders read), the
  optimiser and scheduler states, the python, numpy and torch RNG states, the
  iteration, the history so far, and the digest of the model's config. The same
  call with the same config resumes from it (a changed config starts afresh);
  on CPU it reaches the same final weights as an uninterrupted run. The
  final checkpoint (same layout) is written at the end, then ``resume.pth``
  is removed, so that a later rerun (changed code) trains from scratch.
- A non-finite loss stops the run with ``TrainingError`` naming the iteration;
  ``resume.pth`` stays at the last good checkpoint.
- ``srgan`` models: each iteration updates the discriminator (the SRGAN
  paper's, :mod:`pipeline.train.discriminator`) on the HR batch and the
  detached outputs, then the generator on content + ``adversarial.weight`` x
  adversarial loss (:mod:`pipeline.train.losses`; WGAN-GP's penalty draws
  from torch's RNG, whose state the checkpoints keep).
- Several processes (DDP, :func:`pipeline.train.stage.train_processes`):
  process ``r`` of ``w`` takes every ``w``-th item of each batch, gradients
  and logged losses are averaged over the processes, process 0 validates and
  writes the checkpoints and the history.
- History: one row every ``validate_every`` iterations and at the last
  (columns in :data:`pipeline.train.HISTORY_COLUMNS`, plus ``loss_<term>``
  per loss term): validation PSNR-Y / SSIM-Y (BasicSR conventions, on the
  8-bit outputs, ``crop_border`` cut) and LPIPS of the measure stage.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from pipeline.io import atomic_path, write_parquet
from pipeline.measure.perceptual import lpips_distance
from pipeline.measure.quality import psnr_batch, ssim_batch
from pipeline.provenance import config_digest
from pipeline.torch_io import load_weights_file
from pipeline.train import HISTORY_COLUMNS
from pipeline.train.crops import Crops
from pipeline.upscale.srresnet import new_network, resolve_range
from pipeline.upscale.torch_runtime import round_to_uint8, to_tensor

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "facebench-train-1"
RESUME_NAME = "resume.pth"
# Validation batches (inference only; outputs are moved to the CPU per batch).
VAL_BATCH = 16
PIXEL_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


class TrainingError(RuntimeError):
    """A training run that cannot go on (a non-finite loss); the message names the iteration."""


def scale_of(model: Mapping[str, Any]) -> int:
    """The model's factor ``hr / lr`` (the config check makes it a whole 4 or 8)."""
    return int(model["task"]["hr"]) // int(model["task"]["lr"])


def output_range_of(model: Mapping[str, Any]) -> tuple[int, int]:
    return resolve_range(model["variant"], model.get("output_range"))


def make_generator(model: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised generator of the model's variant, width and depth."""
    return new_network(
        model["variant"],
        scale_of(model),
        output_range_of(model),
        int(model["num_feat"]),
        int(model["num_block"]),
    )


def to_unit(output: torch.Tensor, output_range: tuple[int, int]) -> torch.Tensor:
    """A generator's output mapped to [0, 1] (unclamped), as the upscale stage maps it."""
    return (output + 1.0) / 2.0 if output_range == (-1, 1) else output


def batch_indices(n: int, batch_size: int, seed: int, iteration: int) -> np.ndarray:
    """The items of iteration ``iteration``'s batch: positions of per-epoch permutations."""
    positions = np.arange(iteration * batch_size, (iteration + 1) * batch_size)
    epochs, offsets = np.divmod(positions, n)
    out = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        order = np.random.default_rng([seed, 0, int(epoch)]).permutation(n)
        chosen = epochs == epoch
        out[chosen] = order[offsets[chosen]]
    return out


def flips(batch_size: int, seed: int, iteration: int) -> np.ndarray:
    """Which items of iteration ``iteration``'s batch are mirrored left-right."""
    return np.random.default_rng([seed, 1, iteration]).random(batch_size) < 0.5


def training_batch(
    crops: Crops,
    model: Mapping[str, Any],
    iteration: int,
    device: str,
    channels_last: bool,
    rank: int = 0,
    world: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (LR, HR) float batches of an iteration on ``device``, in [0, 1]: process
    ``rank``'s share (every ``world``-th item) of the iteration's batch."""
    index = batch_indices(len(crops), int(model["batch_size"]), int(model["seed"]), iteration)
    mirror = flips(len(index), int(model["seed"]), iteration)[rank::world]
    index = index[rank::world]
    lr, hr = np.asarray(crops.lr[index]), np.asarray(crops.hr[index])
    if model["flip"]:
        lr[mirror], hr[mirror] = lr[mirror, :, ::-1], hr[mirror, :, ::-1]
    lr_t, hr_t = to_tensor(lr, device), to_tensor(hr, device)
    if channels_last:
        lr_t = lr_t.contiguous(memory_format=torch.channels_last)
        hr_t = hr_t.contiguous(memory_format=torch.channels_last)
    return lr_t, hr_t


def make_optimiser(params: Any, options: Mapping[str, Any]) -> torch.optim.Optimizer:
    if options["name"] != "adam":
        raise ValueError(f"optimiser.name: unknown optimiser {options['name']!r}")
    return torch.optim.Adam(
        params,
        lr=float(options["lr"]),
        betas=tuple(float(b) for b in options["betas"]),
        weight_decay=float(options["weight_decay"]),
    )


def make_scheduler(
    optimiser: torch.optim.Optimizer, options: Mapping[str, Any], iterations: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-iteration schedule; ``constant`` is a step schedule without milestones
    (every scheduler here saves and restores its state as plain numbers)."""
    kind = options["kind"]
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=iterations, eta_min=float(options["eta_min"])
        )
    milestones = list(options["milestones"]) if kind == "step" else []
    return torch.optim.lr_scheduler.MultiStepLR(
        optimiser, milestones=milestones, gamma=float(options["gamma"])
    )


def autocast(device: str, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on ``device``'s type when ``bf16`` (torch runs it on CPU too)."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


# --------------------------------------------------------------------------- state


@dataclass
class Adversary:
    """An srgan model's discriminator, its optimiser and schedule, and the loss kind."""

    discriminator: nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    options: Mapping[str, Any]


@dataclass
class Run:
    """What a training run holds between iterations (everything a checkpoint saves)."""

    model: Mapping[str, Any]
    generator: nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    content: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    adversary: Adversary | None = None
    iteration: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    # The modules the steps call: the networks themselves, or their DDP wrappers
    # (the checkpoints save the networks' own state dicts, without `module.`).
    net: nn.Module | None = None
    critic: nn.Module | None = None

    @property
    def digest(self) -> str:
        return config_digest(dict(self.model))


def rng_states() -> dict[str, Any]:
    """The python, numpy (legacy global) and torch RNG states, as plain values and tensors."""
    version, internal, gauss = random.getstate()
    numpy = np.random.get_state(legacy=False)
    states: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "state": numpy["state"]["key"].tolist(),
            "pos": int(numpy["state"]["pos"]),
            "has_gauss": int(numpy["has_gauss"]),
            "gauss": float(numpy["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Mapping[str, Any]) -> None:
    python = states["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    numpy = states["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np.array(numpy["state"], dtype=np.uint32), "pos": numpy["pos"]},
            "has_gauss": numpy["has_gauss"],
            "gauss": numpy["gauss"],
        }
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(run: Run, path: str | Path) -> None:
    """Write the run's whole state to ``path`` atomically (layout in the module docstring)."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "model_digest": run.digest,
        "iteration": run.iteration,
        "params": {k: v.detach().cpu() for k, v in run.generator.state_dict().items()},
        "optimiser": run.optimiser.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": rng_states(),
        "history": list(run.history),
    }
    if run.adversary is not None:
        # Beside `params`: the upscale loaders read the generator only.
        state["discriminator"] = run.adversary.discriminator.state_dict()
        state["discriminator_optimiser"] = run.adversary.optimiser.state_dict()
        state["discriminator_scheduler"] = run.adversary.scheduler.state_dict()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def try_resume(run: Run, path: Path) -> bool:
    """Load ``path`` into ``run`` when it holds a checkpoint of the same model config."""
    if not path.is_file():
        return False
    state = load_weights_file(path, "training checkpoint")
    if state.get("format") != CHECKPOINT_FORMAT or state.get("model_digest") != run.digest:
        log.warning("%s: a checkpoint of another model config; training from scratch", path)
        return False
    run.generator.load_state_dict(state["params"])
    run.optimiser.load_state_dict(state["optimiser"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.adversary is not None:
        run.adversary.discriminator.load_state_dict(state["discriminator"])
        run.adversary.optimiser.load_state_dict(state["discriminator_optimiser"])
        run.adversary.scheduler.load_state_dict(state["discriminator_scheduler"])
    set_rng_states(state["rng"])
    run.iteration = int(state["iteration"])
    run.history = list(state["history"])
    log.info("%s: resuming at iteration %d", path, run.iteration)
    return True


# --------------------------------------------------------------------------- validation


@dataclass
class Validation:
    """The validation pairs and how they are scored."""

    crops: Crops
    crop_border: int
    lpips: torch.nn.Module | None = None


def validate(run: Run, validation: Validation, device: str) -> dict[str, float]:
    """Mean PSNR-Y, SSIM-Y and LPIPS (NaN when off) of the generator's 8-bit outputs."""
    output_range = output_range_of(run.model)
    net = run.generator
    net.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(validation.crops), VAL_BATCH):
            lr = to_tensor(np.asarray(validation.crops.lr[start : start + VAL_BATCH]), device)
            outputs.append(round_to_uint8(to_unit(net(lr), output_range)))
    net.train()
    sr, hr = np.concatenate(outputs), np.asarray(validation.crops.hr)
    metrics = {
        "val_psnr_y": float(np.mean(psnr_batch(sr, hr, validation.crop_border, y_channel=True))),
        "val_ssim_y": float(np.mean(ssim_batch(sr, hr, validation.crop_border, y_channel=True))),
        "val_lpips": float("nan"),
    }
    if validation.lpips is not None:
        metrics["val_lpips"] = float(np.mean(lpips_distance(validation.lpips, sr, hr)))
    return metrics


# --------------------------------------------------------------------------- steps


def distributed() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _all_mean(values: dict[str, float], device: str) -> dict[str, float]:
    """The mean of each value over the processes (themselves outside a process group)."""
    if distributed()[1] == 1:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return dict(zip(keys, (tensor / distributed()[1]).tolist(), strict=True))


def _finite(run: Run, what: str, value: float, device: str = "cpu") -> None:
    # Every process stops together: one that raised alone would leave the
    # others waiting in their next gradient exchange.
    value = _all_mean({"v": value}, device)["v"]
    if not np.isfinite(value):
        raise TrainingError(
            f"iteration {run.iteration + 1}: the {what} is {value}; stopped (the last good "
            "checkpoint is kept: lower optimiser.lr, or check the data)"
        )


def step(run: Run, lr: torch.Tensor, hr: torch.Tensor, device: str) -> dict[str, float]:
    """One optimiser step (the discriminator's first, for srgan); the loss terms as floats.

    Raises ``TrainingError`` before an update when a loss is not finite.
    """
    model = run.model
    with autocast(device, bool(model["bf16"])):
        sr = to_unit((run.net or run.generator)(lr), output_range_of(model))
    sr = sr.float()
    values: dict[str, float] = {}
    if run.adversary is not None:
        values["loss_discriminator"] = discriminator_step(run, sr, hr, device)
    content = run.content(sr, hr)
    loss = content
    values[f"loss_{model['loss']}"] = float(content.detach())
    if run.adversary is not None:
        adversarial = adversarial_generator_loss(run, sr, device)
        values["loss_adversarial"] = float(adversarial.detach())
        loss = content + float(run.adversary.options["weight"]) * adversarial
    values["loss"] = float(loss.detach())
    _finite(
        run, f"{model['loss']} loss" if run.adversary is None else "generator loss", values["loss"]
    )
    run.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    run.optimiser.step()
    run.scheduler.step()
    return values


def discriminator_step(run: Run, sr: torch.Tensor, hr: torch.Tensor, device: str) -> float:
    """One update of the discriminator on real ``hr`` and detached ``sr``; its loss."""
    from pipeline.train import losses

    adversary = run.adversary
    assert adversary is not None
    critic, options = run.critic or adversary.discriminator, adversary.options
    with autocast(device, bool(run.model["bf16"])):
        real, fake = critic(hr).float(), critic(sr.detach()).float()
    if options["kind"] == "nsgan":
        loss = losses.nsgan_discriminator_loss(real, fake)
    else:
        loss = losses.wgan_discriminator_loss(real, fake) + losses.gradient_penalty(
            critic, hr, sr.detach(), weight=float(options["gp_weight"])
        )
    value = float(loss.detach())
    _finite(run, "discriminator loss", value, device)
    adversary.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    adversary.optimiser.step()
    adversary.scheduler.step()
    return value


def adversarial_generator_loss(run: Run, sr: torch.Tensor, device: str) -> torch.Tensor:
    """The generator's adversarial term on the discriminator's scores of ``sr``."""
    from pipeline.train import losses

    adversary = run.adversary
    assert adversary is not None
    # The discriminator's parameters get gradients here too; its next step
    # zeroes them before its own backward pass.
    with autocast(device, bool(run.model["bf16"])):
        fake = (run.critic or adversary.discriminator)(sr).float()
    if adversary.options["kind"] == "nsgan":
        return losses.nsgan_generator_loss(fake)
    return losses.wgan_generator_loss(fake)


def content_loss(
    model: Mapping[str, Any], vgg_path: str | Path | None, device: str
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The model's content loss: ``PIXEL_LOSSES`` for srresnet's mse and l1 (on [0, 1]),
    the SRGAN paper's scales (:mod:`pipeline.train.losses`) otherwise."""
    kind = model["loss"]
    if kind == "l1" or (kind == "mse" and model["arch"] == "srresnet"):
        pixel = PIXEL_LOSSES[kind]
        return lambda sr, hr: pixel(sr, hr)
    from pipeline.train import losses

    vgg = None
    if kind != "mse":
        if vgg_path is None:
            raise ValueError(f"loss {kind!r} needs the VGG weights (models.<name>.vgg.weights)")
        options = model["vgg"]
        vgg = losses.VGGFeatureLoss.from_file(vgg_path, options["layer"], options["net"])
        vgg = vgg.to(device)
    return losses.content_loss(kind, vgg)


def make_adversary(model: Mapping[str, Any], device: str) -> Adversary:
    """The SRGAN paper's discriminator for the model's HR side, with Adam and the
    generator's schedule (``adversarial.lr`` or ``optimiser.lr``)."""
    from pipeline.train.discriminator import SRGANDiscriminator

    options = model["adversarial"]
    critic = SRGANDiscriminator(
        3, int(model["task"]["hr"]), batch_norm=bool(options["batch_norm"])
    ).to(device)
    if model["channels_last"]:
        critic = critic.to(memory_format=torch.channels_last)
    critic.train()
    lr = options["lr"] if options["lr"] is not None else model["optimiser"]["lr"]
    optimiser = make_optimiser(critic.parameters(), {**model["optimiser"], "lr": lr})
    scheduler = make_scheduler(optimiser, model["schedule"], int(model["iterations"]))
    return Adversary(critic, optimiser, scheduler, options)


def new_run(
    model: Mapping[str, Any],
    device: str,
    *,
    vgg: str | Path | None = None,
    init: str | Path | None = None,
) -> Run:
    """A run at iteration 0: the networks initialised from ``torch.manual_seed(seed)``,
    the generator's weights then replaced by those of checkpoint ``init`` when given
    (``init_from``). ``vgg``: the VGG weights of the vgg losses."""
    seed = int(model["seed"])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    generator = make_generator(model)
    if init is not None:
        state = load_weights_file(init, "checkpoint of init_from")
        generator.load_state_dict(state.get("params", state))
        log.info("%s: the generator starts from these weights", init)
    generator = generator.to(device)
    if model["channels_last"]:
        generator = generator.to(memory_format=torch.channels_last)
    generator.train()
    optimiser = make_optimiser(generator.parameters(), model["optimiser"])
    scheduler = make_scheduler(optimiser, model["schedule"], int(model["iterations"]))
    adversary = make_adversary(model, device) if model["arch"] == "srgan" else None
    return Run(
        model=model,
        generator=generator,
        optimiser=optimiser,
        scheduler=scheduler,
        content=content_loss(model, vgg, device),
        adversary=adversary,
    )


def train(
    model: Mapping[str, Any],
    train_crops: Crops,
    validation: Validation,
    checkpoint: str | Path,
    history: str | Path,
    *,
    device: str = "cpu",
    name: str = "model",
    vgg: str | Path | None = None,
    init: str | Path | None = None,
) -> pd.DataFrame:
    """Train ``model`` (a checked ``models.<name>`` block) and write its outputs.

    Resumes from ``resume.pth`` beside ``checkpoint`` when it holds this model
    config's state. ``vgg`` and ``init``: see :func:`new_run`. Writes
    ``checkpoint`` and ``history`` (parquet) atomically and returns the history.
    """
    checkpoint = Path(checkpoint)
    resume = checkpoint.with_name(RESUME_NAME)
    run = new_run(model, device, vgg=vgg, init=init)
    try_resume(run, resume)
    rank, world = distributed()
    if world > 1:
        wrap_distributed(run, device)
    iterations = int(model["iterations"])
    every_checkpoint = int(model["checkpoint_every"])
    every_row = int(model["validate_every"])
    channels_last = bool(model["channels_last"])
    terms: dict[str, float] = {}
    steps, images, seconds = 0, 0, 0.0
    bar = tqdm(
        total=iterations,
        initial=run.iteration,
        desc=f"train {name}" + (f" [rank {rank}/{world}]" if world > 1 else ""),
        mininterval=5,
        disable=rank > 0,
    )
    while run.iteration < iterations:
        began = time.perf_counter()
        lr, hr = training_batch(
            train_crops, model, run.iteration, device, channels_last, rank, world
        )
        values = _all_mean(step(run, lr, hr, device), device)
        run.iteration += 1
        seconds += time.perf_counter() - began
        steps, images = steps + 1, images + int(model["batch_size"])
        for key, value in values.items():
            terms[key] = terms.get(key, 0.0) + value
        bar.update(1)
        bar.set_postfix(loss=f"{values['loss']:.4g}", img_s=f"{images / seconds:.1f}")
        if rank > 0:  # process 0 validates, keeps the history and writes the checkpoints
            continue
        if run.iteration % every_row == 0 or run.iteration == iterations:
            row = {
                "iteration": run.iteration,
                **{key: total / steps for key, total in terms.items()},
                "lr": float(run.optimiser.param_groups[0]["lr"]),
                "images_per_s": images / seconds,
                **validate(run, validation, device),
            }
            run.history.append(row)
            log.info("%s", ", ".join(f"{k} {v:.5g}" for k, v in row.items()))
            terms, steps, images, seconds = {}, 0, 0, 0.0
        if run.iteration % every_checkpoint == 0 and run.iteration < iterations:
            save_checkpoint(run, resume)
    bar.close()
    if rank == 0:
        save_checkpoint(run, checkpoint)
        write_parquet(history, history_frame(run.history))
        resume.unlink(missing_ok=True)
    if world > 1:
        torch.distributed.barrier()
    return history_frame(run.history)


def wrap_distributed(run: Run, device: str) -> None:
    """Wrap the run's networks in DDP (gradients averaged over the processes each step).

    Every process starts from the same weights (the seed, ``init_from`` or the
    resumed checkpoint), and DDP broadcasts process 0's besides. Batch
    normalisation becomes synchronised on CUDA (the statistics of the whole
    batch, as in one process); on the CPU each process normalises its share.
    """
    from torch.nn.parallel import DistributedDataParallel

    cuda = torch.device(device).type == "cuda"
    ids = [torch.device(device).index] if cuda else None

    def wrap(module: nn.Module) -> nn.Module:
        if cuda:
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return DistributedDataParallel(module, device_ids=ids)

    run.net = wrap(run.generator)
    if run.adversary is not None:
        run.critic = wrap(run.adversary.discriminator)


def history_frame(rows: list[dict[str, float]]) -> pd.DataFrame:
    """The history rows as a table: :data:`HISTORY_COLUMNS` first, then the loss terms."""
    frame = pd.DataFrame(rows)
    for column in HISTORY_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    extra = sorted(c for c in frame.columns if c not in HISTORY_COLUMNS)
    frame = frame[[*HISTORY_COLUMNS, *extra]]
    return frame.astype({"iteration": "int64"})


# --------------------------------------------------------------------------- timing


def time_steps(
    recipe: Mapping[str, Any],
    device: str = "cpu",
    bf16: bool = False,
    channels_last: bool = False,
    steps: int = 5,
    warmup: int = 1,
    vgg: str | Path | None = None,
) -> dict[str, float]:
    """Time training steps of ``recipe`` (a checked model block) on random data.

    For benchmarks: no data set is read; batches of the recipe's size and task
    are drawn from a fixed seed (an srgan recipe trains its discriminator too; a
    vgg loss needs ``vgg``, the VGG weights file). Returns ``images_per_s``, ``seconds_per_step``
    (wall clock, after ``warmup`` steps; CUDA synchronised) and
    ``cpu_seconds_per_step`` (this process's CPU time).
    """
    model = {**recipe, "bf16": bf16, "channels_last": channels_last}
    run = new_run(model, device, vgg=vgg)
    batch, lr_size, hr_size = int(model["batch_size"]), model["task"]["lr"], model["task"]["hr"]
    rng = np.random.default_rng(0)
    lr = to_tensor(rng.integers(0, 256, (batch, lr_size, lr_size, 3), dtype=np.uint8), device)
    hr = to_tensor(rng.integers(0, 256, (batch, hr_size, hr_size, 3), dtype=np.uint8), device)
    if channels_last:
        lr = lr.contiguous(memory_format=torch.channels_last)
        hr = hr.contiguous(memory_format=torch.channels_last)

    def sync() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step(run, lr, hr, device)
    sync()
    began, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step(run, lr, hr, device)
    sync()
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {
        "images_per_s": batch * steps / wall,
        "seconds_per_step": wall / steps,
        "cpu_seconds_per_step": cpu / steps,
    }
