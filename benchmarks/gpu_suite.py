"""Every speed figure a GPU session should take home, in one call and one JSON.

A GPU is lent for minutes, not hours (see benchmarks/README.md, "The GPU
suite"), so this runs everything under one time budget (``--budget-seconds``,
default 420: the call stays under 8 minutes with the interpreter's start and
CUDA's) and writes one JSON. Sections, in this order, each with a share of the
budget (time a section leaves unused passes to the next); a measurement that
would start after its section's deadline is listed under the section's
``skipped`` with the reason, never estimated:

- ``upscale``: images/s of the upscaling networks at 16 -> 128 and 32 -> 128,
  batch sizes 1-64, for each precision (``fp32``, ``bf16`` autocast, ``tf32``)
  and memory layout (``nchw``, ``channels_last``) of
  ``pipeline.upscale.torch_runtime.NetworkUpscaler``: ``network_images_per_second``
  (the forward pass on a float batch already on the device) and
  ``end_to_end_images_per_second`` (uint8 in, uint8 out at 128 px, as the
  upscale stage calls it: transfers, rounding, the x4 output's resampling to
  128 px on the CPU). Networks: MSRResNet 64x16 (the ``srresnet`` and ``srgan``
  methods), RRDBNet 64x23 growth 32 (``esrgan``, ``realesrgan``), and
  ``bicubic`` (Pillow, CPU, end to end only). Variants other than fp32 run on
  CUDA only (on the CPU the runtime ignores bf16 and tf32).
- ``pulse``: PULSE's search at ``--pulse-steps`` (100, as published) steps,
  eps out of reach so that every item runs every step: (image, seed) items/s
  at batch 1 (one search at a time, as PULSE's own ``run.py`` runs) and
  batched, in fp32 and, at the largest batch that ran, bf16 and tf32.
- ``lpips``: LPIPS (AlexNet) pairs/s at 128 px, batched.
- ``identity``: dlib's identity distance per output at 128 px with the ground
  truth's descriptor reused (as a measure job scores the outputs of one
  image), one process on one core: needs ``dlib`` and the model files
  (``--dlib-models``), else the section says why it was skipped.

- ``training``: images/s of a training step (``pipeline.train.loop.time_steps``:
  random batches of the recipe's size and task, 20 timed steps after 3 warm-up
  ones) of each model of the shipped face recipes
  (``workflow/configs/train-celebahq-*.yaml``: the face SRResNet, the 16-block
  SRResNet, SRGAN with the VGG loss and its WGAN-GP variant), in fp32, then, on
  CUDA, bf16 autocast with channels-last and NCHW; and ``projected_hours``, the
  recipe's ``iterations`` at that speed
  (training steps alone: validation, checkpoints and data loading come on top).
  The VGG loss network is the workflow's ``vgg19`` checkpoint under ``--weights``,
  else torchvision's VGG19 with random weights (the recipes' network and layer).

Weights: speed does not depend on their values, so networks whose checkpoint
is not under ``--weights`` (the workflow's ``resources/weights``; a GPU
machine has none) get random weights of the published shapes, and the JSON's
``weights`` says which for each. ``--quick`` (for CI: ``--device cpu
--quick`` runs in well under a minute on 2 cores) is a smoke test of the
code paths, not a measurement of the methods: batch sizes 1 and 2, one call
per figure, CNNs of 8 features and one block, PULSE on a 32 px StyleGAN
of 32 channels for 2 steps, and the training recipes at 4 -> 16 px, batch 2,
8 features and one block, for one timed step; the JSON says so (``quick``, and each
network's ``weights``).

    python benchmarks/gpu_suite.py                          # CUDA, full
    python benchmarks/gpu_suite.py --device cpu --quick --out /tmp/suite.json

Writes ``benchmarks/results/gpu_suite.json`` by default, after each section
too (``complete`` is false until the last one is in). ``benchmarks/gpu_suite.sh``
runs it on a lent GPU machine in one call.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _machine import cpu_name, device_name, run_facts  # noqa: E402

from pipeline.io import write_json  # noqa: E402

TASKS = ((16, 128), (32, 128))
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
# (precision, memory layout), most wanted first: a budget cut drops the last ones.
VARIANTS = (
    ("fp32", "nchw"),
    ("bf16", "channels_last"),
    ("bf16", "nchw"),
    ("fp32", "channels_last"),
    ("tf32", "nchw"),
    ("tf32", "channels_last"),
)
# Shares of the budget per section (what one leaves passes to the next).
SHARES = {"upscale": 0.42, "pulse": 0.33, "lpips": 0.07, "identity": 0.08, "training": 0.10}
# (precision, memory layout) of the training steps, most wanted first.
TRAIN_VARIANTS = (("fp32", "nchw"), ("bf16", "channels_last"), ("bf16", "nchw"))
# The workflow's names of the checkpoints (config.yaml's `weights`), under --weights.
CHECKPOINTS = {
    "msrresnet": "mmedit_msrresnet_x4",
    "rrdbnet": "esrgan_x4",
    "pulse": "pulse_synthesis",
    "lpips_features": "lpips_alex_features",
    "lpips_linear": "lpips_alex_linear",
    "vgg19": "vgg19",
}


@dataclass
class Section:
    """One section's deadline and what it had to leave out."""

    deadline: float
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def open(self, what: dict[str, Any], needs: float = 0.0) -> bool:
        """Whether a measurement expected to take ``needs`` seconds fits; else record the skip."""
        left = self.deadline - time.perf_counter()
        if left > needs:
            return True
        reason = f"time budget: {max(left, 0):.1f} s left of the section"
        if needs:
            reason += f", about {needs:.1f} s needed"
        self.skipped.append({**what, "reason": reason})
        return False


@dataclass
class Settings:
    device: str
    quick: bool
    min_seconds: float
    batch_sizes: tuple[int, ...]
    weights: Path
    dlib_models: Path | None
    pulse_steps: int
    pulse_batches: tuple[int, ...]
    lpips_batches: tuple[int, ...]
    identity_images: int
    train_steps: int
    train_warmup: int

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(call: Callable[[], Any], device: str, min_seconds: float) -> tuple[int, float]:
    """(calls, seconds) of ``call`` run after one warm-up until ``min_seconds`` passed."""
    call()
    synchronize(device)
    calls, began = 0, time.perf_counter()
    while calls < 1 or time.perf_counter() - began < min_seconds:
        call()
        calls += 1
    synchronize(device)
    return calls, time.perf_counter() - began


@contextmanager
def peak_memory(device: str) -> Iterator[dict[str, int]]:
    """Yield a dict that holds ``peak_device_bytes`` (CUDA's allocator) after the block."""
    import torch

    found: dict[str, int] = {}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    yield found
    if device.startswith("cuda"):
        found["peak_device_bytes"] = int(torch.cuda.max_memory_allocated())


def failure(exc: Exception) -> str:
    """Why a measurement failed, for its ``skipped`` entry (one call is all a GPU session
    has, so a failure is recorded and the suite goes on)."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "CUDA out of memory"
    print(f"measurement failed: {exc!r}", file=sys.stderr, flush=True)
    return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"


def free_cuda(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


# ------------------------------------------------------------------ upscale


def checkpoint(settings: Settings, network: str) -> Path | None:
    path = settings.weights / f"{CHECKPOINTS[network]}.pth"
    return path if path.is_file() else None


def cnn_networks(settings: Settings) -> dict[str, dict[str, Any]]:
    """The CNNs of the default methods: module (fetched weights, else random), methods, label."""
    import torch

    from pipeline.upscale import rrdbnet, srresnet

    torch.manual_seed(0)
    # Quick: a CI smoke test of the code paths, on shapes far smaller than the published.
    feat, blocks, rrdb_blocks, growth = (8, 1, 1, 4) if settings.quick else (64, 16, 23, 32)
    nets = {
        "msrresnet": {
            "module": srresnet.MSRResNet(num_feat=feat, num_block=blocks),
            "shape": f"MSRResNet x4, {feat} features, {blocks} blocks",
            "methods": ["srresnet", "srgan"],
        },
        "rrdbnet": {
            "module": rrdbnet.RRDBNet(num_feat=feat, num_block=rrdb_blocks, num_grow_ch=growth),
            "shape": f"RRDBNet x4, {feat} features, {rrdb_blocks} blocks, growth {growth}",
            "methods": ["esrgan", "realesrgan"],
        },
    }
    for name, net in nets.items():
        path = None if settings.quick else checkpoint(settings, name)
        if settings.quick:
            net["weights"] = f"quick: random weights of a reduced shape ({net['shape']})"
        elif path is None:
            net["weights"] = f"random weights of the published shape ({net['shape']})"
        if path is None:
            continue
        if name == "msrresnet":
            net["module"] = srresnet.load_network(str(path), "mmedit", 4, (0, 1))
        else:
            net["module"] = rrdbnet.load_rrdbnet(str(path), 4)
        net["weights"] = f"{path.name} ({net['shape']})"
    for net in nets.values():
        net["module"] = net["module"].eval().requires_grad_(False).to(settings.device)
    return nets


def upscale_section(settings: Settings, section: Section) -> dict[str, Any]:
    import torch

    from pipeline.upscale import build_method
    from pipeline.upscale.torch_runtime import NetworkUpscaler, precision

    rng = np.random.default_rng(0)
    top = max(settings.batch_sizes)
    inputs = {lr: rng.integers(0, 256, (top, lr, lr, 3), dtype=np.uint8) for lr, _ in TASKS}
    figures: list[dict[str, Any]] = []
    bicubic = build_method({"arch": "interpolate", "filter": "bicubic"}, "cpu")
    for lr, hr in TASKS:
        for batch in settings.batch_sizes:
            what = {"network": "bicubic", "task": f"{lr}->{hr}", "batch_size": batch}
            if not section.open(what):
                continue
            images = inputs[lr][:batch]
            calls, seconds = timed(
                lambda images=images, hr=hr: bicubic(images, hr, [0] * len(images)),
                "cpu",
                settings.min_seconds,
            )
            figures.append(
                {
                    **what,
                    "methods": ["bicubic"],
                    "device": "cpu",
                    "precision": "uint8 (Pillow)",
                    "memory_format": None,
                    "calls": calls,
                    "end_to_end_images_per_second": round(calls * batch / seconds, 3),
                }
            )
    nets = cnn_networks(settings)
    variants = VARIANTS if settings.cuda else [v for v in VARIANTS if v[0] == "fp32"]
    for kind, layout in variants:
        for name, net in nets.items():
            # A copy per variant: channels_last converts the module's weights in place.
            module = copy.deepcopy(net["module"])
            model = NetworkUpscaler(
                forward=module,
                network=module,
                scale=4,
                device=settings.device,
                tf32=kind == "tf32",
                bf16=kind == "bf16",
                channels_last=layout == "channels_last",
            )
            memory = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            for lr, hr in TASKS:
                for batch in settings.batch_sizes:
                    what = {
                        "network": name,
                        "task": f"{lr}->{hr}",
                        "precision": kind,
                        "memory_format": layout,
                        "batch_size": batch,
                    }
                    if not section.open(what):
                        continue
                    images = inputs[lr][:batch]
                    tensor = torch.from_numpy(images).to(settings.device)
                    tensor = tensor.permute(0, 3, 1, 2).float().div(255)
                    tensor = tensor.contiguous(memory_format=memory)

                    def forward(tensor=tensor, model=model, kind=kind) -> None:
                        with (
                            torch.inference_mode(),
                            precision(settings.device, kind == "tf32", kind == "bf16"),
                        ):
                            model.forward(tensor)

                    def end_to_end(images=images, model=model, hr=hr) -> None:
                        model(images, hr, [0] * len(images))

                    try:
                        with peak_memory(settings.device) as peak:
                            net_calls, net_seconds = timed(
                                forward, settings.device, settings.min_seconds
                            )
                            calls, seconds = timed(
                                end_to_end, settings.device, settings.min_seconds
                            )
                    except Exception as exc:
                        # Larger batches of the same variant would fail as well.
                        section.skipped.append({**what, "reason": failure(exc)})
                        free_cuda(settings.device)
                        break
                    figures.append(
                        {
                            **what,
                            "methods": net["methods"],
                            "device": settings.device,
                            "calls": calls,
                            "network_images_per_second": round(net_calls * batch / net_seconds, 3),
                            "end_to_end_images_per_second": round(calls * batch / seconds, 3),
                            **peak,
                        }
                    )
            del module, model
            free_cuda(settings.device)
    return {
        "input": "uniform random uint8 RGB",
        "weights": {name: net["weights"] for name, net in nets.items()},
        "min_seconds_per_figure": settings.min_seconds,
        "figures": figures,
        "skipped": section.skipped,
    }


# ------------------------------------------------------------------ pulse


def pulse_network(settings: Settings) -> tuple[Any, dict[str, Any], str]:
    import torch

    from pipeline.torch_io import load_weights_file
    from pipeline.upscale.stylegan import StyleGANSynthesis, load_synthesis

    torch.manual_seed(0)
    path = checkpoint(settings, "pulse")
    if settings.quick:
        synthesis = StyleGANSynthesis(resolution=32, fmap_max=32)
        label = "quick: random StyleGAN synthesis of 32 px, 32 channels (not PULSE's shape)"
    elif path is not None:
        synthesis = load_synthesis(load_weights_file(path, "PULSE synthesis checkpoint"))
        label = f"{path.name}: StyleGAN synthesis 1024 px"
    else:
        synthesis = StyleGANSynthesis()
        label = "random weights of PULSE's StyleGAN synthesis, 1024 px"
    gaussian = {
        "mean": torch.zeros(512, device=settings.device),
        "std": torch.ones(512, device=settings.device),
    }
    synthesis = synthesis.eval().requires_grad_(False).to(settings.device)
    return synthesis, gaussian, label


def pulse_section(settings: Settings, section: Section) -> dict[str, Any]:
    import torch

    from pipeline.upscale.pulse import pulse_search

    synthesis, gaussian, label = pulse_network(settings)
    lr_side = 8 if settings.quick else 32
    generator = torch.Generator().manual_seed(0)

    def search(batch: int, steps: int, kind: str) -> float:
        lr = torch.rand(batch, 3, lr_side, lr_side, generator=generator).to(settings.device)
        synchronize(settings.device)
        began = time.perf_counter()
        # eps out of reach: every item runs every step.
        pulse_search(
            synthesis,
            gaussian,
            lr,
            list(range(batch)),
            steps=steps,
            eps=1e-12,
            bf16=kind == "bf16",
            tf32=kind == "tf32",
            progress=False,
        )
        synchronize(settings.device)
        return time.perf_counter() - began

    search(1, 1, "fp32")  # warm-up: CUDA context, kernels, allocator
    figures: list[dict[str, Any]] = []

    def measure(batch: int, kind: str) -> bool:
        what = {"batch_size": batch, "precision": kind, "steps": settings.pulse_steps}
        if not section.open(what):
            return False
        try:
            with peak_memory(settings.device) as peak:
                probe = search(batch, 2, kind) / 2
                if not section.open(what, probe * settings.pulse_steps):
                    return False
                seconds = search(batch, settings.pulse_steps, kind)
        except Exception as exc:
            section.skipped.append({**what, "reason": failure(exc)})
            free_cuda(settings.device)
            return False
        figures.append(
            {
                **what,
                "seconds": round(seconds, 3),
                "seconds_per_step": round(seconds / settings.pulse_steps, 5),
                "items_per_second": round(batch / seconds, 5),
                **peak,
            }
        )
        return True

    ran = [batch for batch in settings.pulse_batches if measure(batch, "fp32") and batch > 1]
    if ran and settings.cuda:
        # bf16 autocast and tf32 at the largest batch that ran in fp32.
        for kind in ("bf16", "tf32"):
            measure(max(ran), kind)
    return {
        "network": label,
        "lr_size": lr_side,
        "steps": settings.pulse_steps,
        "items": "(image, seed) pairs: a batch of B searches B pairs",
        "batch_1": "one search at a time, as PULSE's run.py",
        "figures": figures,
        "skipped": section.skipped,
    }


# ------------------------------------------------------------------ metrics


def smooth_images(count: int, size: int, seed: int) -> np.ndarray:
    """Smooth random RGB images (enlarged noise), so that resampling is not trivial."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, size // 16, size // 16, 3), dtype=np.uint8)
    resize = Image.Resampling.BICUBIC
    return np.stack([np.asarray(Image.fromarray(s).resize((size, size), resize)) for s in small])


def lpips_files(settings: Settings, folder: Path) -> tuple[Path, Path, str]:
    """LPIPS's checkpoints: the workflow's, else a random AlexNet backbone with the
    linear heads the lpips package ships (the published v0.1 ones)."""
    import torch
    import torchvision

    features = settings.weights / f"{CHECKPOINTS['lpips_features']}.pth"
    linear = settings.weights / f"{CHECKPOINTS['lpips_linear']}.pth"
    if features.is_file() and linear.is_file():
        return features, linear, f"{features.name}, {linear.name}"
    import lpips

    torch.manual_seed(0)
    features = folder / "alexnet_random.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), features)
    linear = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    return features, linear, "random AlexNet backbone; the lpips package's v0.1 linear heads"


def lpips_section(settings: Settings, section: Section) -> dict[str, Any]:
    from pipeline.measure import perceptual

    with tempfile.TemporaryDirectory() as folder:
        features, linear, weights = lpips_files(settings, Path(folder))
        model = perceptual.load_lpips("alex", features, linear, device=settings.device)
    pairs = max(settings.lpips_batches) * (1 if settings.quick else 2)
    sr, hr = smooth_images(pairs, 128, 1), smooth_images(pairs, 128, 2)
    figures = []
    for batch in settings.lpips_batches:
        what = {"batch_size": batch, "pairs_per_call": pairs}
        if not section.open(what):
            continue
        with peak_memory(settings.device) as peak:
            calls, seconds = timed(
                lambda batch=batch: perceptual.lpips_distance(model, sr, hr, batch),
                settings.device,
                settings.min_seconds,
            )
        figures.append(
            {**what, "calls": calls, "images_per_second": round(calls * pairs / seconds, 3), **peak}
        )
    return {
        "net": "alex",
        "size": 128,
        "device": settings.device,
        "weights": weights,
        "figures": figures,
        "skipped": section.skipped,
    }


def identity_section(settings: Settings, section: Section) -> dict[str, Any]:
    try:
        import dlib
    except ImportError as exc:
        return {"skipped": [{"reason": f"dlib is not installed ({exc})"}]}
    from pipeline.measure import identity

    search = [settings.dlib_models] if settings.dlib_models else []
    count = settings.identity_images
    sr, hr = smooth_images(count, 128, 3), smooth_images(count, 128, 4)
    try:
        hr_faces = [identity.face_descriptor(image, model_search=search) for image in hr]
    except FileNotFoundError as exc:
        return {"skipped": [{"reason": f"dlib's model files are missing: {exc}"}]}
    what = {"images_per_call": count}
    figures = []
    if section.open(what):
        calls, seconds = timed(
            lambda: [
                identity.identity_distance(s, h, hr_face=f, model_search=search)
                for s, h, f in zip(sr, hr, hr_faces, strict=True)
            ],
            "cpu",
            settings.min_seconds,
        )
        figures.append(
            {**what, "calls": calls, "images_per_second": round(calls * count / seconds, 3)}
        )
    detected = sum(identity.face_descriptor(s, model_search=search)[1] for s in sr)
    return {
        "size": 128,
        "device": "cpu (dlib, one thread)",
        "cpu": cpu_name(),
        "dlib_uses_blas": bool(getattr(dlib, "DLIB_USE_BLAS", False)),
        "what": "identity distance per output, the ground truth's descriptor reused",
        "inputs": "smooth random images: no face is found, so detection runs twice "
        "(at 1x, then upsampled) and the aligned-face box is used, as for an output "
        "without a detectable face",
        "faces_detected": f"{detected}/{count}",
        "figures": figures,
        "skipped": section.skipped,
    }


# ------------------------------------------------------------------ training


def face_recipes(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each model of the shipped face recipes by name: its checked block and ``configs``,
    the config files that hold it (the SRGAN one repeats the SRResNet it starts from;
    it is measured once). Quick: reduced shapes."""
    import yaml

    from pipeline.config import apply_definition

    recipes: dict[str, dict[str, Any]] = {}
    for path in sorted((REPO / "workflow" / "configs").glob("train-celebahq-*.yaml")):
        where = f"workflow/configs/{path.name}"
        for name, block in yaml.safe_load(path.read_text())["models"].items():
            if name in recipes:
                recipes[name]["configs"].append(where)
                continue
            model = apply_definition("model", block, f"{where}: models.{name}")
            if settings.quick:
                model.update(num_feat=8, num_block=1, batch_size=2, task={"lr": 4, "hr": 16})
            recipes[name] = {"model": model, "configs": [where]}
    return recipes


def vgg_file(settings: Settings, folder: Path) -> tuple[Path, str]:
    """The VGG loss's weights: the workflow's ``vgg19`` checkpoint, else torchvision's
    VGG19 features with random weights, saved under ``folder``."""
    import torch
    import torchvision

    path = checkpoint(settings, "vgg19")
    if path is not None:
        return path, f"{path.name} (VGG19)"
    torch.manual_seed(0)
    path = folder / "vgg19_random.pth"
    torch.save(torchvision.models.vgg19(weights=None).features.state_dict(), path)
    return path, "random weights of torchvision's VGG19"


def training_section(settings: Settings, section: Section) -> dict[str, Any]:
    from pipeline.train.loop import time_steps

    recipes = face_recipes(settings)
    variants = TRAIN_VARIANTS if settings.cuda else [v for v in TRAIN_VARIANTS if v[0] == "fp32"]
    figures: list[dict[str, Any]] = []
    # Wall seconds of each recipe's last measurement: what the next variant needs.
    needs: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        vgg, vgg_weights = None, None
        if any(r["model"]["loss"] in ("vgg", "mse+vgg") for r in recipes.values()):
            vgg, vgg_weights = vgg_file(settings, Path(folder))
        for kind, layout in variants:
            for label, recipe in recipes.items():
                model = recipe["model"]
                what = {"recipe": label, "precision": kind, "memory_format": layout}
                if not section.open(what, needs.get(label, 0.0)):
                    continue
                began = time.perf_counter()
                try:
                    with peak_memory(settings.device) as peak:
                        timed = time_steps(
                            model,
                            settings.device,
                            bf16=kind == "bf16",
                            channels_last=layout == "channels_last",
                            steps=settings.train_steps,
                            warmup=settings.train_warmup,
                            vgg=vgg,
                        )
                except Exception as exc:
                    section.skipped.append({**what, "reason": failure(exc)})
                    free_cuda(settings.device)
                    continue
                needs[label] = time.perf_counter() - began
                seconds_per_step = timed["seconds_per_step"]
                figures.append(
                    {
                        **what,
                        "configs": recipe["configs"],
                        "arch": model["arch"],
                        "loss": model["loss"],
                        "adversarial": model["adversarial"]["kind"]
                        if model["arch"] == "srgan"
                        else None,
                        "num_feat": model["num_feat"],
                        "num_block": model["num_block"],
                        "task": f"{model['task']['lr']}->{model['task']['hr']}",
                        "batch_size": model["batch_size"],
                        "device": settings.device,
                        "steps": settings.train_steps,
                        "images_per_second": round(timed["images_per_s"], 3),
                        "seconds_per_step": round(seconds_per_step, 5),
                        "cpu_seconds_per_step": round(timed["cpu_seconds_per_step"], 5),
                        "iterations": model["iterations"],
                        "projected_hours": round(model["iterations"] * seconds_per_step / 3600, 2),
                        **peak,
                    }
                )
                free_cuda(settings.device)
    return {
        "what": "optimiser steps on random batches of each recipe's size and task "
        "(an srgan step updates its discriminator too)",
        "warmup_steps": settings.train_warmup,
        "vgg_weights": vgg_weights,
        "projected_hours": "the recipe's iterations x seconds per step: training steps "
        "alone, without validation, checkpoints or data loading",
        "figures": figures,
        "skipped": section.skipped,
    }


# One function per section (name -> run(settings, section) -> JSON object), in order.
SECTIONS: dict[str, Callable[[Settings, Section], dict[str, Any]]] = {
    "upscale": upscale_section,
    "pulse": pulse_section,
    "lpips": lpips_section,
    "identity": identity_section,
    "training": training_section,
}


def cuda_facts(device: str) -> dict[str, Any] | None:
    import torch

    if not device.startswith("cuda"):
        return None
    index = torch.device(device).index or 0
    return {
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(index))),
        "memory_bytes": torch.cuda.get_device_properties(index).total_memory,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda if any)")
    parser.add_argument("--quick", action="store_true", help="CI size (see the docstring)")
    parser.add_argument("--budget-seconds", type=float, default=420.0)
    parser.add_argument("--min-seconds", type=float, default=None, help="per figure (0.3; quick 0)")
    parser.add_argument("--weights", type=Path, default=REPO / "resources" / "weights")
    parser.add_argument("--dlib-models", type=Path, default=None, help="folder of dlib's .dat")
    parser.add_argument("--pulse-steps", type=int, default=None, help="100; quick 3")
    parser.add_argument("--pulse-batches", type=int, nargs="+", default=None)
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu_suite.json"
    )
    args = parser.parse_args(argv)

    import torch

    began = time.perf_counter()
    load_before = os.getloadavg()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    quick = args.quick
    settings = Settings(
        device=device,
        quick=quick,
        min_seconds=args.min_seconds if args.min_seconds is not None else (0 if quick else 0.3),
        batch_sizes=(1, 2) if quick else BATCH_SIZES,
        weights=args.weights,
        dlib_models=args.dlib_models,
        pulse_steps=args.pulse_steps or (2 if quick else 100),
        pulse_batches=tuple(args.pulse_batches or ((1, 2) if quick else (1, 16, 32))),
        lpips_batches=(4,) if quick else (1, 32, 128),
        identity_images=2 if quick else 16,
        train_steps=1 if quick else 20,
        train_warmup=1 if quick else 3,
    )
    report: dict[str, Any] = {
        "suite": "benchmarks/gpu_suite.py",
        "device": device,
        "device_name": device_name(device),
        "quick": quick,
        "budget_seconds": args.budget_seconds,
        "cuda_facts": cuda_facts(device),
    }
    shares = {name: SHARES[name] for name in args.sections}
    left_over = 0.0
    for name in args.sections:
        start, cpu_start = time.perf_counter(), time.process_time()
        allotted = args.budget_seconds * shares[name] / sum(shares.values()) + left_over
        section = Section(deadline=start + allotted)
        try:
            report[name] = SECTIONS[name](settings, section)
        except Exception:
            # Record it and go on to the next section: the session has no second call.
            traceback.print_exc()
            report[name] = {"failed": traceback.format_exc(limit=8)[-3000:]}
        spent = time.perf_counter() - start
        report[name]["seconds"] = round(spent, 2)
        # CPU time of this process: on a shared machine, what other processes change least.
        report[name]["cpu_seconds"] = round(time.process_time() - cpu_start, 2)
        left_over = max(allotted - spent, 0.0)
        print(f"{name}: {spent:.1f} s", flush=True)
        # After each section: a call killed at its time limit still brings the rest home.
        write_json(args.out, {**report, "complete": False, **run_facts(load_before)})
    report["seconds_total"] = round(time.perf_counter() - began, 2)
    report.update(complete=True, **run_facts(load_before))
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
