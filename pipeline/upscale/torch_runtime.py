"""Shared runtime for PyTorch upscalers: tensors, batching, precision, tiling, checkpoints.

Conventions:

- Images enter and leave as ``uint8`` RGB batches, NHWC ``(N, H, W, 3)``.
- Networks see ``float32`` NCHW tensors with values in [0, 1] (no mean/std, no
  BGR swap); their outputs are clamped to [0, 1] and rounded to 8 bits, as
  BasicSR's ``tensor2img`` does.
- A fixed-scale network makes ``scale x input`` pixels; ``resample_to`` brings
  that to the task's evaluation size with a declared Pillow kernel and says so
  in the per-image facts (``native_size``, ``resampled_with``).

torch is imported inside functions, so importing this module (and the
architecture registry) does not load it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.io import InputError
from pipeline.resize import KERNELS
from pipeline.torch_io import load_weights_file
from pipeline.upscale.arch import UpscaleBatch

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Checkpoint wrappers, most specific first: BasicSR saves the EMA weights under
# ``params_ema`` (the ones its own inference uses) beside ``params``.
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "generator", "netG")
# Prefixes added by wrappers around the network (DataParallel).
STRIP_PREFIXES = ("module.",)
# Method options of NetworkUpscaler that only some network specs declare.
OPTIONAL_METHOD_OPTIONS = ("channels_last", "tile", "input_kernel")


def to_tensor(batch: np.ndarray, device: str) -> torch.Tensor:
    """``uint8`` NHWC RGB batch -> ``float32`` NCHW tensor in [0, 1] on ``device``.

    The bytes travel to the device as ``uint8`` (a quarter of the float size)
    and are converted there.
    """
    import torch

    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB (N, H, W, 3), got {batch.dtype} {batch.shape}")
    tensor = torch.from_numpy(np.require(batch, requirements=["C", "W"])).to(device)
    # Contiguous NCHW: a permuted view would be channels-last, which changes
    # the convolution algorithms (slower on CPU, different rounding).
    return tensor.permute(0, 3, 1, 2).contiguous().float().div_(255.0)


def round_to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """NCHW float tensor in [0, 1] -> ``uint8`` NHWC array: clamped, then rounded half to even."""
    import torch

    scaled = tensor.detach().float().clamp(0.0, 1.0).mul(255.0).round()
    return scaled.permute(0, 2, 3, 1).to("cpu", torch.uint8).numpy()


def run_batched(
    fn: Callable[[torch.Tensor], torch.Tensor], tensor: torch.Tensor, max_batch: int
) -> tuple[torch.Tensor, int]:
    """Apply ``fn`` to ``tensor`` in chunks of at most ``max_batch`` items along dim 0.

    On CUDA out-of-memory the failed chunk's size is halved (rounding up;
    logged as a warning) and the chunk retried, down to one item; an OOM at
    one item is re-raised. Each chunk's output is moved to the CPU, so device
    memory holds one chunk at a time. Returns the concatenated output (on the
    CPU) and the last chunk size tried, so a caller can start the next batch
    with it.
    """
    import torch

    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    size = min(max_batch, max(len(tensor), 1))
    outputs = []
    start = 0
    while start < len(tensor):
        chunk = tensor[start : start + size]
        out_of_memory = False
        try:
            outputs.append(fn(chunk).cpu())
        except torch.cuda.OutOfMemoryError:
            if len(chunk) == 1:
                raise
            out_of_memory = True
        if out_of_memory:
            # Outside the except block, so the failed chunk's activations
            # (held by the traceback) are gone before the cache is emptied.
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            size = (len(chunk) + 1) // 2
            log.warning("CUDA out of memory at batch %d: retrying with batch %d", len(chunk), size)
            continue
        start += len(chunk)
    return torch.cat(outputs) if outputs else fn(tensor).cpu(), size


@contextlib.contextmanager
def precision(device: str, tf32: bool = False, bf16: bool = False) -> Iterator[str]:
    """Set the float precision of the enclosed forward passes; yield its label.

    On CUDA, ``tf32`` switches TensorFloat-32 on or off for matmuls and cuDNN
    convolutions (PyTorch enables it for convolutions by default, so ``False``
    is needed for true fp32), and ``bf16`` runs the block under bfloat16
    autocast. The previous TF32 flags are restored afterwards. Both are off by
    default: turn them on only where results stay within the tolerance you
    care about (for RealESRGAN the golden README expects about 1e-2 absolute
    differences under TF32 or half precision, against 1e-4 in fp32), e.g.
    after checking the PSNR of bf16 outputs against fp32 ones on a sample.
    On the CPU both are ignored and the label is ``fp32``.

    Labels: ``fp32``, ``tf32``, ``bf16-autocast``.
    """
    import torch

    if not str(device).startswith("cuda"):
        yield "fp32"
        return
    # The legacy flags, not the newer fp32_precision API: reading the legacy
    # flags after a mixed use of both raises, and other code may read them.
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            yield "bf16-autocast" if bf16 else ("tf32" if tf32 else "fp32")
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    tensor: torch.Tensor,
    scale: int,
    tile: int,
    overlap: int = 16,
) -> torch.Tensor:
    """Run a ``scale``-x network ``fn`` over ``tile`` x ``tile`` input tiles.

    Each tile is cut with ``overlap`` extra input pixels on every side (where
    the image has them), and only the output of its core is kept, so seams
    vanish when ``overlap`` covers the network's receptive field radius and
    are small otherwise. ``tile <= 0``, or an input that fits one tile, runs
    ``fn`` on the whole input.
    """
    _, _, height, width = tensor.shape
    if tile <= 0 or (height <= tile and width <= tile):
        return fn(tensor)
    out = None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            y0, x0 = max(top - overlap, 0), max(left - overlap, 0)
            y1, x1 = min(bottom + overlap, height), min(right + overlap, width)
            part = fn(tensor[:, :, y0:y1, x0:x1])
            if out is None:
                out = part.new_zeros(
                    (tensor.shape[0], part.shape[1], height * scale, width * scale)
                )
            dy, dx = (top - y0) * scale, (left - x0) * scale
            core = part[:, :, dy : dy + (bottom - top) * scale, dx : dx + (right - left) * scale]
            out[:, :, top * scale : bottom * scale, left * scale : right * scale] = core
    return out


def resample_to(
    images: np.ndarray, size: int, kernel: str = "pil-bicubic"
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Resize a network's ``uint8`` NHWC outputs to ``size`` x ``size`` with a declared kernel.

    ``kernel`` is one of ``pipeline.resize.KERNELS`` (Pillow; antialiased
    when reducing), used for enlarging and reducing alike. Returns the images
    and one facts dict per image: ``native_size`` (the network's own output
    size) and ``resampled_with`` (the kernel, or ``None`` when the network
    already made ``size`` pixels).
    """
    if kernel not in KERNELS:
        raise KeyError(f"unknown resampling kernel {kernel!r}; known: {sorted(KERNELS)}")
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB (N, H, W, 3), got {images.dtype} {images.shape}")
    height, width = images.shape[1:3]
    if height != width:
        raise ValueError(f"expected square outputs, got {height}x{width}")
    if height == size:
        return images, [{"native_size": height, "resampled_with": None} for _ in images]
    resized = np.stack([KERNELS[kernel](image, size) for image in images]).astype(np.uint8)
    return resized, [{"native_size": height, "resampled_with": kernel} for _ in images]


@dataclass
class NetworkUpscaler:
    """An ``Upscaler`` around a fixed-scale network.

    ``forward`` maps an NCHW float batch in [0, 1] to the network's output in
    [0, 1] (unclamped), ``scale`` times larger. Batches are cut on OOM
    (``run_batched``), optionally tiled (``tile`` input pixels, 0 = off), run
    under ``precision(device, tf32, bf16)``, rounded to 8 bits and resampled
    to the requested size with ``resample_kernel``. Facts per image:
    ``native_size``, ``resampled_with``, ``precision``. ``network`` is the
    module whose weights ``forward`` runs (for inspection; may be ``None``).

    ``channels_last``: the network's weights and its input batches use the
    channels-last memory layout (NHWC strides, same NCHW shape), which lets
    cuDNN pick its NHWC convolution kernels (tensor cores under bf16). It
    changes the algorithms, not the arithmetic: outputs differ from NCHW
    ones by float rounding only. It needs ``network`` (or a ``forward`` that
    is a module) to convert; the per-image facts add ``memory_format``.

    ``input_size``: the network's fixed input side (face restoration models
    trained on 512 px crops; GLEAN's 64 px). When set, each low-resolution
    image is first brought to ``input_size`` x ``input_size`` with
    ``input_kernel`` (``pipeline.resize.KERNELS``), and the facts add
    ``input_size`` and ``input_resized_with`` (``None`` when it was that size).
    """

    forward: Callable[[torch.Tensor], torch.Tensor]
    scale: int
    device: str
    resample_kernel: str = "pil-bicubic"
    tf32: bool = False
    bf16: bool = False
    tile: int = 0
    network: torch.nn.Module | None = None
    input_size: int | None = None
    input_kernel: str = "pil-bicubic"
    channels_last: bool = False
    # Largest chunk that fit so far; shrinks after an OOM and stays shrunk.
    max_batch: int = field(default=1 << 30)

    def __post_init__(self) -> None:
        if (self.tf32 or self.bf16) and not str(self.device).startswith("cuda"):
            log.warning("tf32/bf16 apply to CUDA only: running in fp32 on %s", self.device)
        if self.channels_last:
            import torch

            module = self.network if self.network is not None else self.forward
            if not isinstance(module, torch.nn.Module):
                raise ValueError(
                    "channels_last needs the network module: pass `network` when `forward` "
                    "is a function"
                )
            module.to(memory_format=torch.channels_last)

    @classmethod
    def of_method(
        cls,
        options: Mapping[str, Any],
        forward: Callable[[torch.Tensor], torch.Tensor],
        network: torch.nn.Module | None,
        scale: int,
        device: str,
        input_size: int | None = None,
    ) -> NetworkUpscaler:
        """The upscaler of a method's network, from its options (spec defaults
        applied): ``resample_kernel``, ``tf32`` and ``bf16``, which every network
        spec declares, and those of ``OPTIONAL_METHOD_OPTIONS`` its spec declares
        (``channels_last`` and ``tile`` in ``specs.cnn``, ``input_kernel`` in the
        fixed-input specs, which pass their network's ``input_size``)."""
        declared = {key: options[key] for key in OPTIONAL_METHOD_OPTIONS if key in options}
        return cls(
            forward=forward,
            network=network,
            scale=scale,
            device=device,
            resample_kernel=options["resample_kernel"],
            tf32=options["tf32"],
            bf16=options["bf16"],
            input_size=input_size,
            **declared,
        )

    def _run(self, tensor: torch.Tensor) -> torch.Tensor:
        return tiled(self.forward, tensor, self.scale, self.tile).float()

    def __call__(self, batch: np.ndarray, size: int, seeds: Sequence[int]) -> UpscaleBatch:
        import torch

        brought: list[dict[str, Any]] = [{} for _ in batch]
        if self.input_size is not None:
            batch, brought = resample_to(batch, self.input_size, self.input_kernel)
            brought = [
                {"input_size": self.input_size, "input_resized_with": known["resampled_with"]}
                for known in brought
            ]
        tensor = to_tensor(batch, self.device)
        if self.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), precision(self.device, self.tf32, self.bf16) as label:
            output, used = run_batched(self._run, tensor, self.max_batch)
        if used < min(self.max_batch, len(tensor)):
            # It ran out of memory: later batches start at the size that fit.
            self.max_batch = used
        images, facts = resample_to(round_to_uint8(output), size, self.resample_kernel)
        for known, before in zip(facts, brought, strict=True):
            known.update(before, precision=label)
            if self.channels_last:
                known["memory_format"] = "channels_last"
        return UpscaleBatch(images, facts)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint's state dict, unwrapped and with wrapper prefixes removed.

    Only ``weights_only`` loading is used (no pickled code runs). Wrappers
    ``params_ema`` (preferred, as BasicSR's inference does), ``params``,
    ``state_dict``, ``model``, ``generator``, ``netG`` are unwrapped; a
    ``module.`` prefix on every key (DataParallel) is removed. Errors name the
    file.
    """
    import torch

    path = Path(path)
    loaded = load_weights_file(
        path,
        "checkpoint file",
        hint="a file holding a pickled model object must first be converted to a state dict",
    )
    state = loaded
    while isinstance(state, Mapping):
        inner = next((key for key in WRAPPER_KEYS if isinstance(state.get(key), Mapping)), None)
        if inner is None:
            break
        state = state[inner]
    if not isinstance(state, Mapping) or not state:
        raise InputError(path, f"holds no state dict (found {type(loaded).__name__})")
    tensors = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise InputError(path, f"holds no tensors; top-level keys: {sorted(state)[:8]}")
    for prefix in STRIP_PREFIXES:
        if all(key.startswith(prefix) for key in tensors):
            tensors = {key.removeprefix(prefix): value for key, value in tensors.items()}
    return tensors


def _listing(keys: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def identify(state: Mapping[str, Any]) -> str | None:
    """The architecture spandrel recognises in a state dict, or ``None``.

    Only a hint for error messages, by key names. spandrel is a dependency of
    the project; it is imported here, when a checkpoint failed to load, so that
    a bare machine running the benchmarks without it (``benchmarks/gpu_suite.sh``)
    still gets the error itself, without the hint.
    """
    try:
        from spandrel import MAIN_REGISTRY
    except ImportError:
        return None
    for support in MAIN_REGISTRY.architectures("detection"):
        try:
            if support.detect(state):
                return str(support.architecture.id)
        except Exception:  # a detector tripping over foreign keys is no detection
            continue
    return None


def load_strict(
    module: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, what: str
) -> None:
    """Load ``state`` into ``module`` requiring the exact same keys and shapes.

    Raises ``InputError`` naming the file, ``what`` was expected, and the
    missing and unexpected keys, and each mis-shaped key with the shape found
    in the file and the shape expected.
    """
    expected = module.state_dict()
    # BN's batch counter is unused in eval mode, and checkpoints saved before
    # PyTorch 0.4.1 lack it.
    state = {
        **{k: v for k, v in expected.items() if k.endswith("num_batches_tracked")},
        **state,
    }
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [
        f"{key} has shape {tuple(state[key].shape)} in the file, {tuple(value.shape)} expected"
        for key, value in expected.items()
        if key in state and tuple(state[key].shape) != tuple(value.shape)
    ]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_listing(unexpected)}")
        if shapes:
            problems.append(f"shape mismatches: {_listing(shapes, 3)}")
        hint = identify(state)
        if hint:
            problems.append(f"spandrel identifies the file as {hint!r}")
        raise InputError(path, f"does not fit the {what} network: " + "; ".join(problems))
    module.load_state_dict(dict(state), strict=True)
