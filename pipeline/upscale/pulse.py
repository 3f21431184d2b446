"""PULSE: super-resolution by searching the latent space of a StyleGAN v1 face generator.

Menon et al., "PULSE: Self-Supervised Photo Upsampling via Latent Space
Exploration of Generative Models", CVPR 2020. This is a re-implementation of
the published code (``adamian98/pulse``, last commit 40cacb9) that loads its
published ``synthesis.pt`` / ``mapping.pt`` checkpoints. Defaults are those of
PULSE's ``run.py``.

Conventions (as in PULSE):

- Images are float RGB in [0, 1], NCHW. The generator's output ``G`` in
  [-1, 1] is mapped to ``(G + 1) / 2`` and used *unclamped* in the loss; the
  returned images are clamped to [0, 1].
- The LR input is the uint8 image / 255. The downscaling operator is PULSE's
  own separable bicubic filter (Keys kernel, a = -0.5, support 4 * factor taps,
  reflect padding, stride = factor): :func:`bicubic_downsample`.
- The search variable is ``latent`` (B, 18, 512), or (B, 1, 512) tiled to 18
  layers with ``tile_latent``, drawn from N(0, I) and kept on the sphere of its
  initial radius (about sqrt(512)) per latent vector. The synthesis network is
  fed ``lrelu(latent * std + mean, 0.2)``, where ``mean`` / ``std`` are the
  per-dimension moments of ``LeakyReLU(negative_slope=5)(mapping(z))``, z ~ N(0, I):
  the mapping network ends with LeakyReLU(0.2), so a slope of 5 undoes that last
  activation, and the fit is a Gaussian in the *pre-activation* space; the
  search then re-applies LeakyReLU(0.2) (see :func:`fit_gaussian`).
- Loss ``100*L2 + 0.05*GEOCROSS``: L2 is the per-image mean squared error between
  the downscaled generated image and the LR input, clamped below at ``eps``;
  GEOCROSS is the mean squared geodesic distance between the 18 per-layer
  latents fed to the network (times 512 / 8).
- Noise: one tensor per layer (B, 1, s, s); the first 5 layers' noise is optimised,
  layer 17 is zero, the rest stay fixed random. Optimised noise tensors are kept
  on the sphere of their initial radius too (PULSE's SphericalOptimizer projects
  every variable it optimises).
- Adam, learning rate 0.4 with the ``linear1cycledrop`` schedule, 100 steps.

Differences from PULSE's code, all deliberate:

- Every seed is honoured, 0 included (PULSE skips ``manual_seed`` for seed 0),
  and each batch item draws its latent and noise from its own CPU
  ``torch.Generator(seed)`` (PULSE draws the whole batch from the global CUDA
  stream): an item's start does not depend on the batch or the device.
- Each item is tracked on its own. With ``stop_at_eps`` (default), an item stops
  at the first step whose L2 is <= eps and that step's image is returned
  (``converged: True``). PULSE runs all steps and returns the last image if the
  (batch-summed) L2 ever reached eps; ``stop_at_eps=False`` does that per item.
  Items that never reach eps return their lowest-L2 image (``converged: False``);
  PULSE prints a message and returns nothing for them (an older version returned
  the image of lowest total loss).

Reproducibility: items never interact (per-item losses, element-wise Adam), so
in exact arithmetic the result of an (image, seed) does not depend on the batch.
In float32, kernels for other batch sizes, thread counts or devices round
differently, and Adam's first steps move every element by about +-lr whatever
the size of its gradient, so elements with near-zero gradients move by the sign
of rounding noise; over 100 steps the same (image, seed) can end in a visibly
different image. Keep batch composition, device and precision fixed to repeat a run.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from pipeline.io import InputError, atomic_path
from pipeline.resize import KERNELS
from pipeline.torch_io import load_weights_file
from pipeline.upscale import UpscaleBatch, Upscaler
from pipeline.upscale.pulse_spec import (  # noqa: F401 (re-exported: the public API is here)
    DEFAULT_LOSS,
    LOSS_TERMS,
    LR_SCHEDULES,
    lr_factor,
    parse_loss,
)
from pipeline.upscale.stylegan import (
    DLATENT_SIZE,
    StyleGANSynthesis,
    load_mapping,
    load_synthesis,
)

# The noise of layer 17 (the last 1024 px layer) is zeroed: PULSE's ``bad_noise_layers``.
ZERO_NOISE_LAYERS = (17,)

# ---------------------------------------------------------------- downsampler


def bicubic_taps(factor: int, a: float = -0.5) -> torch.Tensor:
    """PULSE's 1-D bicubic reduction filter: 4 * factor taps (Keys kernel), summing to 1.

    Tap ``i`` sits at ``(i - 2 * factor + 0.5) / factor`` source pixels, i.e. the
    kernel is centred between two input pixels and stretched by the factor, so
    it low-passes as it reduces.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    size = 4 * factor
    x = np.abs((np.arange(size) - size // 2 + 0.5) / factor)
    inner = (a + 2) * x**3 - (a + 3) * x**2 + 1
    outer = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    taps = np.where(x <= 1, inner, np.where(x < 2, outer, 0.0))
    return torch.from_numpy(taps / taps.sum()).float()


def bicubic_downsample(images: torch.Tensor, factor: int, padding: str = "reflect") -> torch.Tensor:
    """Downscale (N, C, H, W) float images by an integer ``factor`` as PULSE's loss does.

    Separable: rows first, then columns, each a strided depthwise convolution
    with :func:`bicubic_taps` after padding ``3 * factor`` pixels (``reflect``).
    No clamping or rounding (the negative lobes can overshoot [0, 1]). H and W must be
    multiples of ``factor``.
    """
    if images.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got {tuple(images.shape)}")
    height, width = images.shape[2:]
    if height % factor or width % factor:
        raise ValueError(f"image size {height}x{width} is not a multiple of {factor}")
    channels = images.shape[1]
    taps = bicubic_taps(factor).to(images.device, images.dtype)
    pad = 3 * factor
    before, after = pad // 2, pad - pad // 2
    x = F.pad(images, (0, 0, before, after), mode=padding)
    rows = taps.view(1, 1, -1, 1).expand(channels, -1, -1, -1)
    x = F.conv2d(x, rows, stride=(factor, 1), groups=channels)
    x = F.pad(x, (before, after, 0, 0), mode=padding)
    columns = taps.view(1, 1, 1, -1).expand(channels, -1, -1, -1)
    return F.conv2d(x, columns, stride=(1, factor), groups=channels)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float [0, 1] -> (N, H, W, 3) uint8 as PULSE saves them.

    Clamped to [0, 1], multiplied by 255 and *truncated* (torchvision's
    ``ToPILImage`` on float tensors, which PULSE uses for its outputs and LR inputs).
    """
    array = images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    return (array * 255).astype(np.uint8)


def pulse_reduce(image: np.ndarray, size: int) -> torch.Tensor:
    """PULSE's bicubic reduction of a uint8 (H, W, 3) image to a (1, 3, size, size) float tensor.

    Values / 255 in float32, :func:`bicubic_downsample` by ``H // size``; not
    clamped or rounded (callers choose how). The image must be square and ``size``
    must divide its side (``ValueError`` naming both sizes otherwise).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if height != width or height % size:
        raise ValueError(
            f"PULSE's bicubic downsampler reduces by a whole factor only: it needs a square "
            f"image whose side is a multiple of {size}, got {height}x{width} -> {size}x{size}"
        )
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return bicubic_downsample(tensor, height // size)


def pulse_downscale(image: np.ndarray, size: int) -> np.ndarray:
    """Make an LR input as PULSE's ``align_face.py`` does: uint8 (H, W, 3) -> (size, size, 3).

    :func:`pulse_reduce`, then clamp to [0, 1] and truncation to 8 bits.
    """
    return to_uint8(pulse_reduce(image, size))[0]


# ---------------------------------------------------------------- losses, schedules


def geocross(latents: torch.Tensor) -> torch.Tensor:
    """PULSE's GEOCROSS per item: (B, L, 512) -> (B,).

    The geodesic angle between every pair of layer latents, ``2 * atan2(|x - y|, |x + y|)``
    (a 1e-9 term inside each root keeps the gradient finite), squared, times 512,
    averaged over all L x L pairs (the diagonal included) and divided by 8.
    """
    x = latents[:, None, :, :]
    y = latents[:, :, None, :]
    a = ((x - y).pow(2).sum(-1) + 1e-9).sqrt()
    b = ((x + y).pow(2).sum(-1) + 1e-9).sqrt()
    angle = 2 * torch.atan2(a, b)
    return (angle.pow(2) * latents.shape[-1]).mean((1, 2)) / 8.0


# ---------------------------------------------------------------- Gaussian fit


def fit_gaussian(
    mapping_state_dict: Mapping[str, torch.Tensor],
    n_samples: int = 1_000_000,
    seed: int = 0,
    device: str | torch.device = "cpu",
    chunk_size: int = 65_536,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """PULSE's Gaussian fit of the mapping network's pre-activation output.

    Draws ``n_samples`` z ~ N(0, I) (512-d) from ``torch.Generator(device).manual_seed(seed)``,
    computes ``LeakyReLU(negative_slope=5)(mapping(z))`` and returns its per-dimension
    ``mean`` and unbiased ``std`` (float32, shape (512,), on the CPU). The moments
    are accumulated in float64 over chunks.

    The samples are those of ``torch.manual_seed(seed); torch.randn(n, 512, device=device)``,
    as in PULSE (which used CUDA, seed 0, n = 1e6): on CUDA they are drawn in one
    call (2 GB at 1e6) for that reason; on the CPU the stream is the same drawn in
    chunks. CPU and CUDA streams differ, so a CPU fit differs from PULSE's
    ``gaussian_fit.pt`` by sampling error only (about std / 1000 at 1e6 samples).
    """
    device = torch.device(device)
    mapping = load_mapping(mapping_state_dict).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    all_z = None
    if device.type == "cuda":
        all_z = torch.randn((n_samples, DLATENT_SIZE), generator=generator, device=device)
    count, mean, m2 = 0, None, None
    starts = range(0, n_samples, chunk_size)
    with torch.no_grad():
        for start in tqdm(starts, desc="gaussian fit", disable=not progress, mininterval=10):
            rows = min(chunk_size, n_samples - start)
            if all_z is not None:
                z = all_z[start : start + rows]
            else:
                z = torch.randn((rows, DLATENT_SIZE), generator=generator, device=device)
            out = F.leaky_relu(mapping(z), 5.0).double()
            chunk_mean = out.mean(0)
            chunk_m2 = ((out - chunk_mean) ** 2).sum(0)
            if mean is None:
                count, mean, m2 = rows, chunk_mean, chunk_m2
                continue
            # Chan et al.'s pairwise merge of means and sums of squared deviations.
            total = count + rows
            delta = chunk_mean - mean
            mean = mean + delta * rows / total
            m2 = m2 + chunk_m2 + delta**2 * count * rows / total
            count = total
    if count < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    std = (m2 / (count - 1)).sqrt()
    return {"mean": mean.float().cpu(), "std": std.float().cpu()}


def save_gaussian(
    fit: Mapping[str, torch.Tensor], path: str | os.PathLike[str], **info: Any
) -> None:
    """Write a Gaussian fit atomically, in PULSE's ``gaussian_fit.pt`` layout.

    A ``torch.save`` dict with ``mean`` and ``std`` (float32, (512,), CPU), plus
    any plain-typed ``info`` (e.g. ``n_samples``, ``seed``) for provenance.
    """
    payload = {"mean": fit["mean"].detach().float().cpu(), "std": fit["std"].detach().float().cpu()}
    payload.update(info)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_gaussian(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a Gaussian fit (ours or PULSE's own ``gaussian_fit.pt``) onto the CPU.

    Raises ``InputError`` naming the file unless it holds finite float ``mean``
    and positive ``std`` of shape (512,).
    """
    path = Path(path)
    payload = load_weights_file(path, "Gaussian fit")
    if not isinstance(payload, Mapping) or not {"mean", "std"} <= set(payload):
        raise InputError(path, "expected a dict with 'mean' and 'std' tensors")
    fit = {}
    for key in ("mean", "std"):
        value = payload[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (DLATENT_SIZE,):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise InputError(path, f"{key!r} must be a tensor of shape (512,), got {shape}")
        if not torch.isfinite(value).all():
            raise InputError(path, f"{key!r} has non-finite values")
        fit[key] = value.float()
    if not (fit["std"] > 0).all():
        raise InputError(path, "'std' must be positive")
    return fit


# ---------------------------------------------------------------- search


@dataclass
class PulseResult:
    """Output of :func:`pulse_search`.

    ``images``: (B, 3, R, R) in [0, 1] (clamped), the network's dtype, on the CPU, at the
    generator's resolution R. ``facts``: per item ``converged``, ``final_l2``
    (L2 of the returned image), ``best_step`` (0-based step that produced it),
    ``steps`` (forward passes run for that item). ``latents``: the search
    variable that produced each returned image, (B, 18, 512) or (B, 1, 512) with
    ``tile_latent``, on the sphere (before the Gaussian mapping), on the CPU.
    """

    images: torch.Tensor
    facts: list[dict[str, Any]]
    latents: torch.Tensor


@dataclass
class _Variables:
    """The optimised tensors of the items still searching, and what slices with them."""

    latent: torch.Tensor
    noise: list[torch.Tensor]
    trainable: list[int]  # indices into ``noise`` that are optimised
    radii: list[torch.Tensor]  # per optimised tensor, in ``params`` order
    ref: torch.Tensor
    index: torch.Tensor  # position of each row in the caller's batch

    @property
    def params(self) -> list[torch.Tensor]:
        return [self.latent, *(self.noise[i] for i in self.trainable)]


def _radius(tensor: torch.Tensor) -> torch.Tensor:
    # Norm over everything but the first two dims: one sphere per latent vector / noise map.
    return (tensor.pow(2).sum(tuple(range(2, tensor.ndim)), keepdim=True) + 1e-9).sqrt()


def _initial_variables(
    seeds: Sequence[int],
    num_layers: int,
    tile_latent: bool,
    num_trainable_noise_layers: int,
    zero_noise_layers: Sequence[int],
) -> tuple[torch.Tensor, list[torch.Tensor], list[int]]:
    """Draw each item's latent, then its per-layer noise, from its own CPU generator."""
    latents, noises = [], []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        latent_shape = (1, 1 if tile_latent else num_layers, DLATENT_SIZE)
        latents.append(torch.randn(latent_shape, generator=generator))
        layers = []
        for layer in range(num_layers):
            side = 2 ** (layer // 2 + 2)
            if layer in zero_noise_layers:
                layers.append(torch.zeros((1, 1, side, side)))
            else:
                layers.append(torch.randn((1, 1, side, side), generator=generator))
        noises.append(layers)
    noise = [torch.cat([item[layer] for item in noises]) for layer in range(num_layers)]
    trainable = [
        layer
        for layer in range(min(num_trainable_noise_layers, num_layers))
        if layer not in zero_noise_layers
    ]
    return torch.cat(latents), noise, trainable


@contextlib.contextmanager
def _precision(device: torch.device, tf32: bool) -> Iterator[None]:
    """TF32 on or off for the search only (restored after); deterministic cuDNN as PULSE."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        with torch.backends.cudnn.flags(
            enabled=True, benchmark=False, deterministic=True, allow_tf32=tf32
        ):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def _shrink(variables: _Variables, optimizer: torch.optim.Adam, keep: torch.Tensor, lr: float):
    """Drop finished rows from the search variables and from Adam's moment estimates."""
    old_rows = variables.latent.shape[0]
    state = optimizer.state_dict()
    for entry in state["state"].values():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == old_rows:
                entry[key] = value[keep]
    trainable = set(variables.trainable)
    noise = [
        tensor.detach()[keep].clone().requires_grad_(index in trainable)
        for index, tensor in enumerate(variables.noise)
    ]
    shrunk = _Variables(
        latent=variables.latent.detach()[keep].clone().requires_grad_(True),
        noise=noise,
        trainable=variables.trainable,
        radii=[radius[keep] for radius in variables.radii],
        ref=variables.ref[keep],
        index=variables.index[keep],
    )
    new_optimizer = torch.optim.Adam(shrunk.params, lr=lr)
    new_optimizer.load_state_dict(state)
    return shrunk, new_optimizer


def pulse_search(
    synthesis: StyleGANSynthesis,
    gaussian: Mapping[str, torch.Tensor],
    lr_images: torch.Tensor,
    seeds: Sequence[int],
    *,
    steps: int = 100,
    eps: float = 2e-3,
    learning_rate: float = 0.4,
    loss: str = DEFAULT_LOSS,
    tile_latent: bool = False,
    num_trainable_noise_layers: int = 5,
    zero_noise_layers: Sequence[int] = ZERO_NOISE_LAYERS,
    lr_schedule: str = "linear1cycledrop",
    stop_at_eps: bool = True,
    save_every: int = 0,
    on_intermediate: Callable[[int, int, torch.Tensor], None] | None = None,
    bf16: bool = False,
    tf32: bool = False,
    progress: bool = True,
) -> PulseResult:
    """Search the generator's latent space for images that downscale to ``lr_images``.

    ``lr_images``: (B, 3, h, h) float in [0, 1] on the synthesis network's device;
    ``h`` must divide the network's resolution R. ``seeds[i]`` seeds item ``i``
    (the same image may appear several times with different seeds). Items are
    independent: the loss is a sum of per-item terms, Adam works per element and
    each item stops on its own.

    With ``save_every`` > 0, ``on_intermediate(item, step, image)`` is called at
    every ``save_every``-th step (step 0 included) with the item's current
    (3, R, R) float [0, 1] image on the CPU.
    """
    terms = parse_loss(loss)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; known: {LR_SCHEDULES}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    batch = lr_images.shape[0]
    if len(seeds) != batch:
        raise ValueError(f"got {len(seeds)} seeds for {batch} images")
    size = lr_images.shape[-1]
    resolution = synthesis.resolution
    if lr_images.ndim != 4 or lr_images.shape[-2] != size or resolution % size:
        raise ValueError(
            f"LR images must be (B, 3, h, h) with h dividing {resolution}, "
            f"got {tuple(lr_images.shape)}"
        )
    factor = resolution // size
    device = lr_images.device
    num_layers = synthesis.num_layers
    latent, noise, trainable = _initial_variables(
        seeds, num_layers, tile_latent, num_trainable_noise_layers, zero_noise_layers
    )
    # The search runs in the synthesis network's dtype (float32 as PULSE; float64 for checks).
    dtype = synthesis.torgb.weight.dtype
    mean = gaussian["mean"].to(device, dtype)
    std = gaussian["std"].to(device, dtype)
    variables = _Variables(
        latent=latent.to(device, dtype).requires_grad_(True),
        noise=[tensor.to(device, dtype) for tensor in noise],
        trainable=trainable,
        radii=[],
        ref=lr_images.to(dtype),
        index=torch.arange(batch, device=device),
    )
    for layer in trainable:
        variables.noise[layer].requires_grad_(True)
    with torch.no_grad():
        variables.radii = [_radius(param) for param in variables.params]
    optimizer = torch.optim.Adam(variables.params, lr=learning_rate)

    best_l2 = torch.full((batch,), math.inf, device=device, dtype=dtype)
    best_step = torch.zeros(batch, dtype=torch.long, device=device)
    steps_run = torch.zeros(batch, dtype=torch.long, device=device)
    converged = torch.zeros(batch, dtype=torch.bool, device=device)
    best_images = torch.zeros((batch, 3, resolution, resolution), device=device, dtype=dtype)
    final_images = torch.zeros_like(best_images)
    best_latents = torch.zeros((batch, *variables.latent.shape[1:]), device=device, dtype=dtype)
    final_latents = torch.zeros_like(best_latents)
    final_l2 = torch.full((batch,), math.inf, device=device, dtype=dtype)
    final_step = torch.zeros(batch, dtype=torch.long, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    with _precision(device, tf32):
        bar = tqdm(range(steps), desc="pulse", disable=not progress, mininterval=10, leave=False)
        for step in bar:
            current_lr = learning_rate * lr_factor(lr_schedule, step, steps)
            for group in optimizer.param_groups:
                group["lr"] = current_lr
            optimizer.zero_grad(set_to_none=True)
            rows = variables.latent.shape[0]
            latent_in = variables.latent.expand(-1, num_layers, -1)
            latent_in = F.leaky_relu(latent_in * std + mean, 0.2)
            with autocast:
                generated = synthesis(latent_in, variables.noise)
            generated = (generated.to(dtype) + 1) / 2
            difference = bicubic_downsample(generated, factor) - variables.ref
            mse = difference.pow(2).mean((1, 2, 3))
            per_item = torch.zeros(rows, device=device, dtype=dtype)
            for weight, name in terms:
                if name == "L2":
                    value = mse.clamp(min=eps)
                elif name == "L1":
                    value = 10 * difference.abs().mean((1, 2, 3)).clamp(min=eps)
                else:
                    value = geocross(latent_in)
                per_item = per_item + weight * value

            with torch.no_grad():
                index = variables.index
                images = generated.detach().clamp(0, 1)
                l2 = mse.detach()
                steps_run[index] = step + 1
                better = l2 < best_l2[index]
                best_l2[index[better]] = l2[better]
                best_step[index[better]] = step
                best_images[index[better]] = images[better]
                best_latents[index[better]] = variables.latent.detach()[better]
                if save_every and on_intermediate and step % save_every == 0:
                    for row, item in enumerate(index.tolist()):
                        on_intermediate(item, step, images[row].cpu())
                hit = l2 <= eps
                converged[index[hit]] = True
                finished = hit if stop_at_eps else torch.zeros_like(hit)
                if not stop_at_eps and step == steps - 1:
                    finished = torch.ones_like(hit)
                final_images[index[finished]] = images[finished]
                final_latents[index[finished]] = variables.latent.detach()[finished]
                final_l2[index[finished]] = l2[finished]
                final_step[index[finished]] = step

            if step == steps - 1 or bool(finished.all()):
                break
            per_item.sum().backward()
            optimizer.step()
            with torch.no_grad():
                for param, radius in zip(variables.params, variables.radii, strict=True):
                    param.mul_(radius / _radius(param))
            if bool(finished.any()):
                variables, optimizer = _shrink(variables, optimizer, ~finished, current_lr)

    # Returned image: the eps-hitting (stop_at_eps) or last (PULSE's way) image when the
    # item converged, otherwise its lowest-L2 image.
    use_final = converged
    out = torch.where(use_final[:, None, None, None], final_images, best_images)
    out_latents = torch.where(use_final[:, None, None], final_latents, best_latents)
    out_l2 = torch.where(use_final, final_l2, best_l2)
    out_step = torch.where(use_final, final_step, best_step)
    facts = [
        {
            "converged": bool(converged[i]),
            "final_l2": float(out_l2[i]),
            "best_step": int(out_step[i]),
            "steps": int(steps_run[i]),
        }
        for i in range(batch)
    ]
    return PulseResult(images=out.cpu(), facts=facts, latents=out_latents.cpu())


# ---------------------------------------------------------------- animation


def save_animation(
    frames: Sequence[np.ndarray], path: str | os.PathLike[str], duration_ms: int = 100
) -> None:
    """Write uint8 (H, W, 3) frames as an animated GIF or WebP, atomically.

    The format follows the suffix (``.gif`` or ``.webp``, lossless); loops forever.
    """
    path = Path(path)
    formats = {".gif": "GIF", ".webp": "WEBP"}
    if path.suffix.lower() not in formats:
        raise ValueError(f"{path}: animation must end in .gif or .webp")
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    images = [Image.fromarray(np.asarray(frame, dtype=np.uint8)) for frame in frames]
    options: dict[str, Any] = {"lossless": True} if path.suffix.lower() == ".webp" else {}
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format=formats[path.suffix.lower()],
            save_all=True,
            append_images=images[1:],
            duration=duration_ms,
            loop=0,
            **options,
        )


# ---------------------------------------------------------------- architecture


def _load_state_dict(path: Any, option: str) -> dict[str, torch.Tensor]:
    if not path:
        raise ValueError(f"arch 'pulse': option {option} (a local checkpoint file) is required")
    path = Path(path)
    state = load_weights_file(path, f"{option} checkpoint")
    if not isinstance(state, Mapping):
        raise InputError(path, f"{option}: expected a state dict, got {type(state).__name__}")
    return dict(state)


def load_networks(
    synthesis_path: str | os.PathLike[str],
    gaussian_path: str | os.PathLike[str] | None = None,
    mapping_path: str | os.PathLike[str] | None = None,
    device: str = "cpu",
) -> tuple[StyleGANSynthesis, dict[str, torch.Tensor]]:
    """Load the synthesis network (strict) and the Gaussian fit (or fit it from the mapping)."""
    state = _load_state_dict(synthesis_path, "synthesis_path")
    try:
        synthesis = load_synthesis(state)
    except (RuntimeError, ValueError) as exc:
        raise InputError(
            synthesis_path, f"not a PULSE StyleGAN synthesis checkpoint: {exc}"
        ) from exc
    if gaussian_path:
        gaussian = load_gaussian(gaussian_path)
    elif mapping_path:
        mapping_state = _load_state_dict(mapping_path, "mapping_path")
        gaussian = fit_gaussian(mapping_state, device=device)
    else:
        raise ValueError("arch 'pulse': give gaussian_path, or mapping_path to fit it")
    return synthesis.to(device), gaussian


def build(options: Mapping[str, Any], device: str) -> Upscaler:
    synthesis, gaussian = load_networks(
        options["synthesis_path"],
        options.get("gaussian_path"),
        options.get("mapping_path"),
        device,
    )
    kernel = options["resample_kernel"]
    save_every = int(options["save_every"])
    native = synthesis.resolution

    def resample(image: np.ndarray, size: int) -> np.ndarray:
        return image if size == native else KERNELS[kernel](image, size)

    def upscale(batch: np.ndarray, size: int, seeds: Sequence[int]) -> UpscaleBatch:
        if batch.ndim != 4 or batch.shape[3] != 3 or batch.dtype != np.uint8:
            raise ValueError(f"pulse: expected uint8 (N, h, w, 3), got {batch.dtype} {batch.shape}")
        if batch.shape[1] != batch.shape[2] or native % batch.shape[1]:
            raise ValueError(
                f"pulse: LR inputs must be square with a side dividing {native}, "
                f"got {batch.shape[1]}x{batch.shape[2]}"
            )
        lr = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float() / 255
        frames: dict[int, list[tuple[int, np.ndarray]]] = {i: [] for i in range(len(batch))}

        def keep_frame(item: int, step: int, image: torch.Tensor) -> None:
            frames[item].append((step, resample(to_uint8(image[None])[0], size)))

        result = pulse_search(
            synthesis,
            gaussian,
            lr.to(device),
            seeds,
            steps=int(options["steps"]),
            eps=float(options["eps"]),
            learning_rate=float(options["learning_rate"]),
            loss=options["loss"],
            tile_latent=bool(options["tile_latent"]),
            num_trainable_noise_layers=int(options["num_trainable_noise_layers"]),
            lr_schedule=options["lr_schedule"],
            stop_at_eps=bool(options["stop_at_eps"]),
            save_every=save_every,
            on_intermediate=keep_frame if save_every else None,
            bf16=bool(options["bf16"]),
            tf32=bool(options["tf32"]),
        )
        native_images = to_uint8(result.images)
        images = np.stack([resample(image, size) for image in native_images])
        facts = []
        for item, known in enumerate(result.facts):
            fact = {
                **known,
                "native_size": native,
                "resampled_with": None if size == native else kernel,
            }
            if save_every:
                # (step, uint8 image at the evaluation size); not a table column:
                # the stage must pop it before writing facts.parquet.
                fact["intermediates"] = frames[item]
            facts.append(fact)
        return UpscaleBatch(images.astype(np.uint8), facts)

    return upscale
