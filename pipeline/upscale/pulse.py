"""PULSE: super-resolution by searching the latent space of a StyleGAN v1 face generator.

Menon et al., "PULSE: Self-Supervised Photo Upsampling via Latent Space
Exploration of Generative Models", CVPR 2020. This is a re-implementation of
the published code (``adamian98/pulse``, last commit 40cacb9) that loads its
published ``synthesis.pt`` / ``mapping.pt`` checkpoints (and, optionally, its
``gaussian_fit.pt``). Defaults are those of PULSE's ``run.py``, and by default the
search returns what PULSE returns. Run in float64 from the same start, it matches
the original code step by step (``tests/test_pulse_conformance.py``, against the
fixture made by the original code in ``shared/fixtures/pulse``).

Conventions (as in PULSE):

- Images are float RGB in [0, 1], NCHW. The generator's output ``G`` in
  [-1, 1] is mapped to ``(G + 1) / 2`` and used *unclamped* in the loss; the
  returned images are clamped to [0, 1].
- The LR input is the uint8 image / 255. The downscaling operator is PULSE's
  own separable bicubic filter: :func:`pipeline.resize_pulse.bicubic_downsample`.
- The search variable is ``latent`` (B, 18, 512), or (B, 1, 512) tiled to 18
  rows with ``tile_latent``, drawn from N(0, I) and kept on the sphere of its
  initial radius (about sqrt(512)) per row. PULSE always searches 18 rows, the
  layers of its 1024 px generator; a smaller generator reads the first
  ``num_layers`` of them, and the others are moved by GEOCROSS alone. The
  synthesis network is fed ``lrelu(latent * std + mean, 0.2)``, where ``mean`` /
  ``std`` are the per-dimension moments of ``LeakyReLU(negative_slope=5)(mapping(z))``,
  z ~ N(0, I): the mapping network ends with LeakyReLU(0.2), so a slope of 5
  undoes that last activation, and the fit is a Gaussian in the *pre-activation*
  space; the search then re-applies LeakyReLU(0.2) (see :func:`fit_gaussian`).
- Loss ``100*L2 + 0.05*GEOCROSS``: L2 is the per-image mean squared error between
  the downscaled generated image and the LR input, clamped below at ``eps``;
  GEOCROSS is the mean squared geodesic distance between the 18 per-row
  latents fed to the network (times 512 / 8).
- Noise: one tensor per layer (B, 1, s, s); the first 5 layers' noise is optimised,
  layer 17 is zero, the rest stay fixed random. Optimised noise tensors are kept
  on the sphere of their initial radius too (PULSE's SphericalOptimizer projects
  every variable it optimises, after each Adam step: divide by the norm, multiply
  by the initial radius).
- Adam, learning rate 0.4 with the ``linear1cycledrop`` schedule, 100 steps; every
  step updates the variables, the last one included.
- What is returned (PULSE's ``forward``): the search runs all ``steps``; if the
  lowest L2 of any step reached ``eps`` (``converged``), the image of the LAST
  forward pass is returned, which is neither the best nor, in general, one whose
  L2 is below eps. Otherwise PULSE returns nothing; here the item keeps PULSE's
  ``best_im``, the image of its lowest total loss (first such step), flagged
  ``converged: False``, so that the failures page can show it (the workflow
  leaves it out of the metric tables by default).

Differences from PULSE's code, all deliberate:

- Every item is decided on its own. PULSE sums the clamped L2 over the batch, so
  with B >= 2 its L2 can never fall below ``B * eps`` and it returns nothing,
  even when every item reached eps; its ``best_im`` is chosen on the batch total.
  Here ``converged``, the best image and the returned image are per item: each
  item gets what PULSE returns for it alone (batch size 1, ``run.py``'s default).
  The per-item trajectories are the same in both (the loss is a sum of per-item
  terms; Adam and the projection act element-wise).
- Seeds: each item draws its latent, then its noise layers, from its own CPU
  ``torch.Generator(seed)`` in the search's dtype (:func:`draw_start`), so an
  item's start does not depend on the batch or the device, and seed 0 is
  honoured. PULSE draws the whole batch from the global CUDA stream after
  ``torch.manual_seed(seed)``, and only ``if seed:`` (seed 0 means unseeded).
  Seed N here is therefore not seed N there (for one item, the start equals what
  PULSE draws with a CPU generator). ``start=`` takes any starting tensors.
- ``stop_at_eps`` (off by default): an item stops at the first step whose L2 is
  <= eps and returns that image, a different image from PULSE's (and faster). It
  is a different method: the registry accepts it only under a method name that
  ends in ``_early`` (e.g. ``pulse_early``).

Reproducibility: items never interact, so in exact arithmetic the result of an
(image, seed) does not depend on the batch. In float32, kernels for other batch
sizes, thread counts or devices round differently, and Adam's first steps move
every element by about +-lr whatever the size of its gradient, so elements with
near-zero gradients move by the sign of rounding noise; over 100 steps the same
(image, seed) can end in a visibly different image. Keep batch composition,
device and precision fixed to repeat a run. In float64 (``synthesis.double()``)
the search follows the original code to about 1e-12.
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
from tqdm import tqdm

from pipeline.io import InputError, atomic_path
from pipeline.resize import KERNELS
from pipeline.resize_pulse import (  # noqa: F401 (re-exported: PULSE's downsampler)
    bicubic_downsample,
    bicubic_taps,
    pulse_downscale,
    pulse_reduce,
    truncate_to_uint8,
)
from pipeline.torch_io import load_weights_file
from pipeline.upscale.arch import UpscaleBatch, Upscaler
from pipeline.upscale.pulse_loss import (  # noqa: F401 (re-exported: the public API is here)
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

# PULSE searches 18 latent rows whatever the generator (its 1024 px one has 18 layers).
LATENT_ROWS = 18
# The noise of layer 17 (the last 1024 px layer) is zeroed: PULSE's ``bad_noise_layers``.
ZERO_NOISE_LAYERS = (17,)

# ---------------------------------------------------------------- losses


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


def fit_gaussian_file(
    mapping_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    n_samples: int,
    seed: int,
    threads: int = 1,
) -> None:
    """Fit the Gaussian of a mapping checkpoint on the CPU and save it with its provenance.

    The derived file of PULSE methods that name no ``gaussian`` checkpoint
    (:func:`fit_gaussian` with ``threads`` torch threads, :func:`save_gaussian`
    recording ``n_samples`` and ``seed``).
    """
    torch.set_num_threads(threads)
    mapping = torch.load(mapping_path, map_location="cpu", weights_only=True)
    fit = fit_gaussian(mapping, n_samples, seed, "cpu")
    save_gaussian(fit, out, n_samples=n_samples, seed=seed)


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


def noise_side(layer: int) -> int:
    """Side of the noise map of synthesis layer ``layer``: 4, 4, 8, 8, ..., 1024, 1024."""
    return 2 ** (layer // 2 + 2)


@dataclass
class PulseStart:
    """A search's starting point (the batch's rows in order).

    ``latent``: (B, 18, 512), or (B, 1, 512) for ``tile_latent``. ``noise``: one
    tensor (B, 1, s, s) per synthesis layer, s = :func:`noise_side`; entries beyond
    the network's ``num_layers`` are ignored (PULSE always builds 18). The search
    copies them; the caller's tensors are never changed.
    """

    latent: torch.Tensor
    noise: Sequence[torch.Tensor]


def draw_start(
    seeds: Sequence[int],
    num_layers: int,
    *,
    tile_latent: bool = False,
    zero_noise_layers: Sequence[int] = ZERO_NOISE_LAYERS,
    dtype: torch.dtype = torch.float32,
) -> PulseStart:
    """Each item's start from its own CPU generator, in PULSE's draw order.

    For item ``i``: ``g = torch.Generator().manual_seed(seeds[i])``, the latent
    ``randn((1, 18 or 1, 512), generator=g, dtype=dtype)``, then the noise of each
    layer ``0 .. num_layers - 1`` in order, ``randn((1, 1, s, s), ...)``, except the
    ``zero_noise_layers``, which are zeros and draw nothing (PULSE's ``torch.zeros``).
    For one item this is what PULSE draws after ``torch.manual_seed(seed)`` on a
    CPU generator; PULSE itself draws on CUDA, one stream for the whole batch.
    """
    latents, noises = [], []
    rows = 1 if tile_latent else LATENT_ROWS
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        latents.append(torch.randn((1, rows, DLATENT_SIZE), generator=generator, dtype=dtype))
        layers = []
        for layer in range(num_layers):
            shape = (1, 1, noise_side(layer), noise_side(layer))
            if layer in zero_noise_layers:
                layers.append(torch.zeros(shape, dtype=dtype))
            else:
                layers.append(torch.randn(shape, generator=generator, dtype=dtype))
        noises.append(layers)
    noise = [torch.cat([item[layer] for item in noises]) for layer in range(num_layers)]
    return PulseStart(latent=torch.cat(latents), noise=noise)


@dataclass
class StepRecord:
    """What one step of :func:`pulse_search` computed, for ``on_step`` (checks, benchmarks).

    Rows are the items still searching (all of them unless ``stop_at_eps`` dropped
    some); ``items[r]`` is row ``r``'s position in the batch. Per row: ``mse``
    (unclamped L2), ``terms`` (each term of the loss string, unweighted: ``L2`` and
    ``L1`` clamped at eps, ``GEOCROSS``), ``total`` (the weighted sum). ``latent``
    and ``noise`` (the optimised layers) are the search variables this forward pass
    used; ``generated`` is ``(G + 1) / 2`` unclamped, ``downsampled`` its
    reduction to the LR size; ``latent_grad`` / ``noise_grad`` the gradients of the
    summed loss (None where no backward pass ran: the step at which every row
    stopped). Tensors share memory with the search: valid during the call only,
    clone what you keep.
    """

    step: int
    lr: float
    items: torch.Tensor
    mse: torch.Tensor
    terms: dict[str, torch.Tensor]
    total: torch.Tensor
    latent: torch.Tensor
    noise: list[torch.Tensor]
    generated: torch.Tensor
    downsampled: torch.Tensor
    latent_grad: torch.Tensor | None
    noise_grad: list[torch.Tensor | None]


@dataclass
class PulseResult:
    """Output of :func:`pulse_search`.

    ``images``: (B, 3, R, R) in [0, 1] (clamped), the network's dtype, on the CPU, at
    the generator's resolution R: the returned image of each item (module docstring).
    ``facts``: per item ``converged`` (its lowest L2 reached eps), ``final_l2`` (L2 of
    the returned image), ``min_l2`` (lowest L2 of any step), ``best_step`` (first step
    of its lowest total loss, PULSE's ``best_im``), ``returned_step`` (the step whose
    image is returned), ``steps`` (forward passes run), ``eps``; steps are 0-based.
    ``latents``: the search variable that produced each returned image, (B, 18, 512)
    or (B, 1, 512), on the sphere (before the Gaussian mapping), on the CPU.
    ``end_latents`` / ``end_noise`` (the optimised noise layers): the search variables
    when the item stopped: after its last update, or, when ``stop_at_eps`` stopped
    it, those that produced its returned image.
    """

    images: torch.Tensor
    facts: list[dict[str, Any]]
    latents: torch.Tensor
    end_latents: torch.Tensor
    end_noise: list[torch.Tensor]


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
    # Norm over everything but the first two dims: one sphere per latent row / noise map.
    return (tensor.pow(2).sum(tuple(range(2, tensor.ndim)), keepdim=True) + 1e-9).sqrt()


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


def _check_start(start: PulseStart, batch: int, num_layers: int, tile_latent: bool) -> None:
    rows = 1 if tile_latent else LATENT_ROWS
    if tuple(start.latent.shape) != (batch, rows, DLATENT_SIZE):
        raise ValueError(
            f"start latent must be ({batch}, {rows}, {DLATENT_SIZE}), "
            f"got {tuple(start.latent.shape)}"
        )
    if len(start.noise) < num_layers:
        raise ValueError(f"start noise: need {num_layers} layers, got {len(start.noise)}")
    for layer in range(num_layers):
        side = noise_side(layer)
        if tuple(start.noise[layer].shape) != (batch, 1, side, side):
            raise ValueError(
                f"start noise layer {layer} must be ({batch}, 1, {side}, {side}), "
                f"got {tuple(start.noise[layer].shape)}"
            )


def pulse_search(
    synthesis: StyleGANSynthesis,
    gaussian: Mapping[str, torch.Tensor],
    lr_images: torch.Tensor,
    seeds: Sequence[int] | None = None,
    *,
    start: PulseStart | None = None,
    steps: int = 100,
    eps: float = 2e-3,
    learning_rate: float = 0.4,
    loss: str = DEFAULT_LOSS,
    tile_latent: bool = False,
    num_trainable_noise_layers: int = 5,
    zero_noise_layers: Sequence[int] = ZERO_NOISE_LAYERS,
    lr_schedule: str = "linear1cycledrop",
    stop_at_eps: bool = False,
    save_every: int = 0,
    on_intermediate: Callable[[int, int, torch.Tensor], None] | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    bf16: bool = False,
    tf32: bool = False,
    progress: bool = True,
) -> PulseResult:
    """Search the generator's latent space for images that downscale to ``lr_images``.

    ``lr_images``: (B, 3, h, h) float in [0, 1] on the synthesis network's device;
    ``h`` must divide the network's resolution R (any power-of-two R up to 1024).
    The search runs in the network's dtype (float32 as PULSE; ``synthesis.double()``
    for conformance checks). The start is ``start`` when given, else
    :func:`draw_start` of ``seeds`` (one per item; an image may appear several
    times with different seeds). Items are independent: the loss is a sum of
    per-item terms, Adam works per element, and each item is decided on its own.
    What each item returns: see the module docstring.

    ``stop_at_eps``: stop each item at its first step with L2 <= eps and return that
    image (not PULSE's result; see the module docstring). With ``save_every`` > 0,
    ``on_intermediate(item, step, image)`` is called at every ``save_every``-th step
    (step 0 included) with the item's current (3, R, R) float [0, 1] image on the
    CPU. ``on_step(record)`` is called at every step after the backward pass and
    before the update (:class:`StepRecord`).
    """
    terms = parse_loss(loss)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; known: {LR_SCHEDULES}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    batch = lr_images.shape[0]
    size = lr_images.shape[-1]
    resolution = synthesis.resolution
    num_layers = synthesis.num_layers
    if num_layers > LATENT_ROWS:
        raise ValueError(f"PULSE searches {LATENT_ROWS} latent rows; the network has {num_layers}")
    if lr_images.ndim != 4 or lr_images.shape[-2] != size or resolution % size:
        raise ValueError(
            f"LR images must be (B, 3, h, h) with h dividing {resolution}, "
            f"got {tuple(lr_images.shape)}"
        )
    factor = resolution // size
    device = lr_images.device
    # The search runs in the synthesis network's dtype (float32 as PULSE; float64 for checks).
    dtype = synthesis.torgb.weight.dtype
    if start is None:
        if seeds is None or len(seeds) != batch:
            raise ValueError(
                f"got {None if seeds is None else len(seeds)} seeds for {batch} images"
            )
        start = draw_start(
            seeds,
            num_layers,
            tile_latent=tile_latent,
            zero_noise_layers=zero_noise_layers,
            dtype=dtype,
        )
    _check_start(start, batch, num_layers, tile_latent)
    trainable = [
        layer
        for layer in range(min(num_trainable_noise_layers, num_layers))
        if layer not in zero_noise_layers
    ]
    mean = gaussian["mean"].to(device, dtype)
    std = gaussian["std"].to(device, dtype)
    # Copies: Adam and the projection change the variables in place.
    variables = _Variables(
        latent=start.latent.detach().to(device, dtype).clone().requires_grad_(True),
        noise=[
            start.noise[layer].detach().to(device, dtype).clone().requires_grad_(layer in trainable)
            for layer in range(num_layers)
        ],
        trainable=trainable,
        radii=[],
        ref=lr_images.to(dtype),
        index=torch.arange(batch, device=device),
    )
    with torch.no_grad():
        variables.radii = [_radius(param) for param in variables.params]
    optimizer = torch.optim.Adam(variables.params, lr=learning_rate)

    def per_item() -> torch.Tensor:
        return torch.zeros(batch, device=device, dtype=dtype)

    image_shape = (batch, 3, resolution, resolution)
    best_total = torch.full((batch,), math.inf, device=device, dtype=dtype)
    best_step = torch.zeros(batch, dtype=torch.long, device=device)
    best_l2 = per_item()
    best_images = torch.zeros(image_shape, device=device, dtype=dtype)
    best_latents = torch.zeros((batch, *variables.latent.shape[1:]), device=device, dtype=dtype)
    min_l2 = torch.full((batch,), math.inf, device=device, dtype=dtype)
    converged = torch.zeros(batch, dtype=torch.bool, device=device)
    steps_run = torch.zeros(batch, dtype=torch.long, device=device)
    final_images = torch.zeros_like(best_images)
    final_latents = torch.zeros_like(best_latents)
    final_l2 = per_item()
    final_step = torch.zeros(batch, dtype=torch.long, device=device)
    end_latents = torch.zeros_like(best_latents)
    end_noise = [torch.zeros((batch, *variables.noise[i].shape[1:]), device=device, dtype=dtype)
                 for i in trainable]  # fmt: skip
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def put(target: torch.Tensor, value: torch.Tensor, where: torch.Tensor | None) -> None:
        # target[item of each row] = value where ``where`` (all rows for None). torch.where
        # rather than boolean indexing: no device synchronisation.
        index = variables.index
        if where is not None:
            value = torch.where(where.view(-1, *[1] * (value.ndim - 1)), value, target[index])
        target[index] = value

    def keep_end(where: torch.Tensor | None) -> None:
        put(end_latents, variables.latent.detach(), where)
        for slot, layer in enumerate(trainable):
            put(end_noise[slot], variables.noise[layer].detach(), where)

    with _precision(device, tf32):
        bar = tqdm(range(steps), desc="pulse", disable=not progress, mininterval=10, leave=False)
        for step in bar:
            current_lr = learning_rate * lr_factor(lr_schedule, step, steps)
            for group in optimizer.param_groups:
                group["lr"] = current_lr
            optimizer.zero_grad(set_to_none=True)
            latent_in = variables.latent.expand(-1, LATENT_ROWS, -1)
            latent_in = F.leaky_relu(latent_in * std + mean, 0.2)
            with autocast:
                generated = synthesis(latent_in, variables.noise)
            generated = (generated.to(dtype) + 1) / 2
            downsampled = bicubic_downsample(generated, factor)
            difference = downsampled - variables.ref
            mse = difference.pow(2).mean((1, 2, 3))
            values: dict[str, torch.Tensor] = {}
            total = torch.zeros_like(mse)
            for weight, name in terms:
                if name not in values:
                    if name == "L2":
                        values[name] = mse.clamp(min=eps)
                    elif name == "L1":
                        values[name] = 10 * difference.abs().mean((1, 2, 3)).clamp(min=eps)
                    else:
                        values[name] = geocross(latent_in)
                total = total + weight * values[name]

            with torch.no_grad():
                index = variables.index
                images = generated.detach().clamp(0, 1)
                latent = variables.latent.detach()
                l2 = mse.detach()
                totals = total.detach()
                steps_run[index] = step + 1
                # PULSE's best_im: the first step of the lowest total loss (`loss < min_loss`).
                better = totals < best_total[index]
                put(best_total, totals, better)
                put(best_step, torch.full_like(best_step[index], step), better)
                put(best_l2, l2, better)
                put(best_images, images, better)
                put(best_latents, latent, better)
                min_l2[index] = torch.minimum(min_l2[index], l2)
                hit = l2 <= eps
                converged[index] = converged[index] | hit
                if save_every and on_intermediate and step % save_every == 0:
                    for row, item in enumerate(index.tolist()):
                        on_intermediate(item, step, images[row].cpu())
                last = step == steps - 1
                # The image returned when converged: the last one (PULSE's), or the
                # first at eps with stop_at_eps.
                returned = (hit | last) if stop_at_eps else None
                if stop_at_eps or last:
                    put(final_images, images, returned)
                    put(final_latents, latent, returned)
                    put(final_l2, l2, returned)
                    put(final_step, torch.full_like(final_step[index], step), returned)
                if stop_at_eps:
                    keep_end(hit)

            all_stopped = stop_at_eps and bool(hit.all())
            if not all_stopped:
                total.sum().backward()
            if on_step is not None:
                on_step(
                    StepRecord(
                        step=step,
                        lr=current_lr,
                        items=variables.index,
                        mse=l2,
                        terms={name: value.detach() for name, value in values.items()},
                        total=totals,
                        latent=variables.latent.detach(),
                        noise=[variables.noise[layer].detach() for layer in trainable],
                        generated=generated.detach(),
                        downsampled=downsampled.detach(),
                        latent_grad=variables.latent.grad,
                        noise_grad=[variables.noise[layer].grad for layer in trainable],
                    )
                )
            if all_stopped:
                break
            # PULSE's SphericalOptimizer: Adam, then each variable back onto its sphere.
            optimizer.step()
            with torch.no_grad():
                for param, radius in zip(variables.params, variables.radii, strict=True):
                    param.div_(_radius(param))
                    param.mul_(radius)
            if last:
                keep_end(~hit if stop_at_eps else None)
            elif stop_at_eps and bool(hit.any()):
                variables, optimizer = _shrink(variables, optimizer, ~hit, current_lr)

    # Converged: the final image (PULSE's), or the first at eps with stop_at_eps;
    # otherwise the best image (PULSE's best_im, lowest total loss).
    out = torch.where(converged[:, None, None, None], final_images, best_images)
    out_latents = torch.where(converged[:, None, None], final_latents, best_latents)
    out_l2 = torch.where(converged, final_l2, best_l2)
    out_step = torch.where(converged, final_step, best_step)
    facts = [
        {
            "converged": bool(converged[i]),
            "final_l2": float(out_l2[i]),
            "min_l2": float(min_l2[i]),
            "best_step": int(best_step[i]),
            "returned_step": int(out_step[i]),
            "steps": int(steps_run[i]),
            "eps": float(eps),
        }
        for i in range(batch)
    ]
    return PulseResult(
        images=out.cpu(),
        facts=facts,
        latents=out_latents.cpu(),
        end_latents=end_latents.cpu(),
        end_noise=[tensor.cpu() for tensor in end_noise],
    )


# ---------------------------------------------------------------- animation


# ---------------------------------------------------------------- architecture


def _load_state_dict(path: Any, option: str) -> dict[str, torch.Tensor]:
    if not path:
        raise ValueError(f"arch 'pulse': option {option} (a local checkpoint file) is required")
    path = Path(path)
    state = load_weights_file(path, f"{option} checkpoint")
    if not isinstance(state, Mapping):
        raise InputError(path, f"{option}: expected a state dict, got {type(state).__name__}")
    return dict(state)


def gaussian_provenance(path: str | os.PathLike[str]) -> str:
    """How a Gaussian fit file was made, in words: the ``n_samples`` and ``seed`` that
    :func:`save_gaussian` records, or "no provenance recorded" (e.g. PULSE's own file)."""
    payload = load_weights_file(path, "Gaussian fit")
    name = Path(path).name
    if isinstance(payload, Mapping) and "n_samples" in payload and "seed" in payload:
        return f"{name}: fitted, {payload['n_samples']} samples, seed {payload['seed']}"
    return f"{name}: given, no provenance recorded"


def load_networks(
    synthesis_path: str | os.PathLike[str],
    gaussian_path: str | os.PathLike[str] | None = None,
    mapping_path: str | os.PathLike[str] | None = None,
    device: str = "cpu",
) -> tuple[StyleGANSynthesis, dict[str, torch.Tensor], str]:
    """Load the synthesis network (strict) and the Gaussian fit: the given file (PULSE's
    ``gaussian_fit.pt`` or the workflow's fit), else fitted from the mapping network.

    Returns the network, the fit and where the fit came from (:func:`gaussian_provenance`).
    """
    state = _load_state_dict(synthesis_path, "synthesis_path")
    try:
        synthesis = load_synthesis(state)
    except (RuntimeError, ValueError) as exc:
        raise InputError(
            synthesis_path, f"not a PULSE StyleGAN synthesis checkpoint: {exc}"
        ) from exc
    if gaussian_path:
        gaussian = load_gaussian(gaussian_path)
        source = gaussian_provenance(gaussian_path)
    elif mapping_path:
        mapping_state = _load_state_dict(mapping_path, "mapping_path")
        gaussian = fit_gaussian(mapping_state, device=device)
        source = "fitted now: 1000000 samples, seed 0"
    else:
        raise ValueError("arch 'pulse': give gaussian_path, or mapping_path to fit it")
    return synthesis.to(device), gaussian, source


def build(options: Mapping[str, Any], device: str) -> Upscaler:
    synthesis, gaussian, gaussian_source = load_networks(
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
        # As PULSE's run.py reads its inputs (ToTensor): uint8 / 255 in float32.
        lr = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float() / 255
        frames: dict[int, list[tuple[int, np.ndarray]]] = {i: [] for i in range(len(batch))}

        def keep_frame(item: int, step: int, image: torch.Tensor) -> None:
            frames[item].append((step, resample(truncate_to_uint8(image[None])[0], size)))

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
        native_images = truncate_to_uint8(result.images)
        images = np.stack([resample(image, size) for image in native_images])
        facts = []
        for item, known in enumerate(result.facts):
            fact = {
                **known,
                "gaussian_fit": gaussian_source,
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
