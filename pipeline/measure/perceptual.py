"""LPIPS perceptual distance (Zhang et al., CVPR 2018), built entirely offline.

The metric is LPIPS v0.1 as the ``lpips`` package computes it: the input
scaling layer, unit-normalized features of five backbone layers, learned 1x1
"linear" heads, spatial average, summed over the layers. Its weights come from
two local files, so nothing is ever downloaded at run time:

- the backbone: torchvision's ImageNet-trained ``features`` convolutions, as a
  state dict with torchvision keys ``features.N.weight`` / ``features.N.bias``.
  Either a features-only file (``alexnet_features.pth``, ``vgg16_features.pth``)
  or the full torchvision checkpoint (``classifier.*`` keys are ignored). fp16
  tensors are cast to fp32.
- the linear heads: ``lpips/weights/v0.1/<net>.pth`` as shipped inside the
  lpips wheel (keys ``lin0.model.1.weight`` .. ``lin4.model.1.weight``).

The network is :class:`LpipsNetwork`, written here with the ``lpips``
package's module names and state-dict keys (``scaling_layer.*``,
``net.sliceK.N.*``, ``linK.model.1.weight`` and ``lins.K.model.1.weight``),
rather than ``lpips.LPIPS``: importing ``lpips`` imports torchvision, whose
import pulls in ``torch._dynamo`` (about 2 s of CPU, in every metric job,
for five convolutions). ``tests/test_perceptual.py`` checks it against
``lpips.LPIPS`` (the package stays the reference, a test dependency). Both
files are loaded into one complete state dict with ``strict=True``, so every
parameter of the metric provably comes from the two files.

Conventions of :func:`lpips_distance`: inputs are uint8 ``N x H x W x 3`` RGB
(the 8-bit images as saved), scaled to [-1, 1] by ``x / 127.5 - 1`` as the
reference implementation does; float inputs are refused, because feeding
[0, 1] data instead of [-1, 1] is the classic way to get wrong LPIPS values.
Computation in float32; lower is more similar, identical images give 0.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.io import InputError
from pipeline.torch_io import load_weights_file

if TYPE_CHECKING:
    import torch

__all__ = ["NETS", "load_lpips", "lpips_distance"]

# Backbones (lpips names); load_lpips also accepts "alexnet" and "vgg16".
NETS = ("alex", "vgg")
_ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}
_N_HEADS = 5

_WHERE = (
    "The workflow's weights stage puts it under resources/weights/ (backbone: torchvision's "
    "ImageNet checkpoint or its `features` part; heads: lpips/weights/v0.1/<net>.pth from the "
    "lpips 0.1.4 wheel); or set the path of a local copy in the config."
)


def _canonical_net(net: str) -> str:
    try:
        return _ALIASES[net.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown LPIPS backbone {net!r}; expected one of {NETS}") from None


def _read_state_dict(path: Path, what: str) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"{path}: LPIPS {what} weights file not found. {_WHERE}")
    state = load_weights_file(path, f"state dict of LPIPS {what} weights", hint=_WHERE)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, f"is not a flat state dict of tensors (LPIPS {what} weights)")
    return state


def _backbone_entries(model: Any, features: dict[str, Any], path: Path) -> dict[str, Any]:
    """Map torchvision ``features.N.*`` tensors onto the lpips slices ``net.sliceK.N.*``."""
    targets = {}
    for name in model.net.state_dict():
        _slice, index, kind = name.split(".")
        targets[f"features.{index}.{kind}"] = f"net.{name}"
    extra = sorted(k for k in features if not k.startswith(("features.", "classifier.")))
    source = {k: v for k, v in features.items() if k.startswith("features.")}
    if extra or set(source) != set(targets):
        missing = sorted(set(targets) - set(source))
        unexpected = sorted(set(source) - set(targets)) + extra
        raise InputError(
            path,
            f"does not hold the {model.pnet_type} backbone expected by LPIPS "
            f"(missing keys: {missing[:4]}, unexpected keys: {unexpected[:4]})",
        )
    entries = {targets[k]: v.float() for k, v in source.items()}
    _check_shapes(model, entries, path)
    return entries


def _check_shapes(model: Any, entries: dict[str, Any], path: Path) -> None:
    expected = model.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
        for k, v in entries.items()
        if v.shape != expected[k].shape
    ]
    if wrong:
        raise InputError(
            path, f"weights do not fit LPIPS-{model.pnet_type}: {'; '.join(wrong[:3])}"
        )


def _head_entries(model: Any, heads: dict[str, Any], path: Path) -> dict[str, Any]:
    """The linear heads, under both names lpips registers them (``linK`` and ``lins.K``)."""
    expected = {f"lin{k}.model.1.weight" for k in range(_N_HEADS)}
    if set(heads) != expected:
        raise InputError(
            path,
            f"is not an LPIPS v0.1 linear-head file (keys {sorted(heads)[:5]}, "
            f"expected {sorted(expected)})",
        )
    entries = {}
    for k in range(_N_HEADS):
        weight = heads[f"lin{k}.model.1.weight"].float()
        entries[f"lin{k}.model.1.weight"] = weight
        entries[f"lins.{k}.model.1.weight"] = weight
    _check_shapes(model, entries, path)
    return entries


# torchvision's ``features`` of each backbone: a convolution is (in, out, kernel,
# stride, padding), each followed by an in-place ReLU; "M" a max pool (kernel, stride).
_ALEX = [(3, 64, 11, 4, 2), ("M", 3, 2), (64, 192, 5, 1, 2), ("M", 3, 2),
         (192, 384, 3, 1, 1), (384, 256, 3, 1, 1), (256, 256, 3, 1, 1)]  # fmt: skip
_VGG = [(3, 64), (64, 64), "M", (64, 128), (128, 128), "M",
        (128, 256), (256, 256), (256, 256), "M", (256, 512), (512, 512), (512, 512), "M",
        (512, 512), (512, 512), (512, 512)]  # fmt: skip
# Where LPIPS reads each backbone's five layers: slice K holds features[ends[K-1]:ends[K]].
_SLICE_ENDS = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30)}
_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# LPIPS's input scaling (its ScalingLayer): (x - shift) / scale, per RGB channel.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_NORM_EPS = 1e-10


def _features(net: str) -> list[Any]:
    """torchvision's ``features`` layers of the backbone, in order (their index is their key)."""
    from torch import nn

    layers: list[Any] = []
    if net == "alex":
        for spec in _ALEX:
            if spec[0] == "M":
                layers.append(nn.MaxPool2d(kernel_size=spec[1], stride=spec[2]))
            else:
                cin, cout, kernel, stride, padding = spec
                layers += [nn.Conv2d(cin, cout, kernel, stride, padding), nn.ReLU(inplace=True)]
        return layers
    for spec in _VGG:
        if spec == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(*spec, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
    return layers


def _network_class() -> type:
    """:class:`LpipsNetwork`, made on first use so that importing this module needs no torch."""
    import torch
    from torch import nn

    class Backbone(nn.Module):
        def __init__(self, net: str):
            super().__init__()
            layers = _features(net)
            begin = 0
            for k, end in enumerate(_SLICE_ENDS[net], start=1):
                block = nn.Sequential()
                for index in range(begin, end):
                    block.add_module(str(index), layers[index])
                self.add_module(f"slice{k}", block)
                begin = end

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            outputs = []
            for k in range(1, _N_HEADS + 1):
                x = getattr(self, f"slice{k}")(x)
                outputs.append(x)
            return outputs

    class Head(nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            # Dropout is inactive in eval mode; kept so the keys read model.1.weight.
            self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

    class Scaling(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("shift", torch.tensor(_SHIFT)[None, :, None, None])
            self.register_buffer("scale", torch.tensor(_SCALE)[None, :, None, None])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - self.shift) / self.scale

    class Network(nn.Module):
        """LPIPS v0.1 of one backbone: ``forward(a, b)`` gives ``N x 1 x 1 x 1`` distances
        of images in [-1, 1]."""

        def __init__(self, net: str):
            super().__init__()
            self.pnet_type = net
            self.scaling_layer = Scaling()
            self.net = Backbone(net)
            heads = [Head(channels) for channels in _CHANNELS[net]]
            for k, head in enumerate(heads):
                self.add_module(f"lin{k}", head)
            self.lins = nn.ModuleList(heads)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            total = 0
            pairs = zip(
                self.net(self.scaling_layer(a)), self.net(self.scaling_layer(b)), strict=True
            )
            for head, (fa, fb) in zip(self.lins, pairs, strict=True):
                na = fa / (torch.sqrt(torch.sum(fa**2, dim=1, keepdim=True)) + _NORM_EPS)
                nb = fb / (torch.sqrt(torch.sum(fb**2, dim=1, keepdim=True)) + _NORM_EPS)
                total = total + head((na - nb) ** 2).mean([2, 3], keepdim=True)
            return total

    return Network


@functools.lru_cache(maxsize=8)
def _load(net: str, features_path: Path, linear_path: Path, device: str) -> torch.nn.Module:
    import torch

    features = _read_state_dict(features_path, f"{net} backbone")
    heads = _read_state_dict(linear_path, f"{net} linear-head")
    model = _network_class()(net)
    state = {k: v for k, v in model.state_dict().items() if k.startswith("scaling_layer.")}
    state.update(_backbone_entries(model, features, features_path))
    state.update(_head_entries(model, heads, linear_path))
    model.load_state_dict(state, strict=True)
    model.requires_grad_(False)
    return model.eval().to(torch.device(device))


def load_lpips(
    net: str,
    features_path: str | os.PathLike[str],
    linear_path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
) -> torch.nn.Module:
    """The LPIPS v0.1 model for backbone ``net`` ("alex" or "vgg"), in eval mode on ``device``.

    ``features_path``: torchvision backbone weights (``features.N.*`` keys, fp32 or
    fp16); ``linear_path``: the lpips v0.1 linear heads of the same backbone. No
    network access. Cached per (net, resolved paths, device): repeated calls return
    the same module, so treat it as read-only. Raises FileNotFoundError for a
    missing file and InputError for an unreadable or mismatched one, naming the
    file and where it should come from.
    """
    return _load(
        _canonical_net(net),
        Path(features_path).expanduser().resolve(),
        Path(linear_path).expanduser().resolve(),
        str(device),
    )


def _check_stack(imgs: np.ndarray, refs: np.ndarray) -> None:
    for name, arr in (("images", imgs), ("references", refs)):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name} must be a numpy array; got {type(arr).__name__}")
        if arr.dtype != np.uint8:
            raise TypeError(
                f"{name} have dtype {arr.dtype}; LPIPS here takes uint8 RGB in [0, 255] "
                "(it rescales to [-1, 1] itself; float data in [0, 1] would be scored wrongly)"
            )
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"{name} must be N x H x W x 3 RGB; got shape {arr.shape}")
    if imgs.shape != refs.shape:
        raise ValueError(
            f"image and reference stacks differ in shape: {imgs.shape} vs {refs.shape}"
        )


def _to_input(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    import torch

    # Move the uint8 data (4x smaller than float32) and convert on the device. The copy
    # makes the array writable and contiguous, as torch.from_numpy wants.
    tensor = torch.from_numpy(np.array(batch, dtype=np.uint8, order="C")).to(device)
    return tensor.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def lpips_distance(
    model: torch.nn.Module, imgs: np.ndarray, refs: np.ndarray, batch_size: int = 32
) -> np.ndarray:
    """LPIPS distance of each pair of two uint8 ``N x H x W x 3`` RGB stacks.

    Pixel values 0..255 are mapped to [-1, 1] (``x / 127.5 - 1``); the pairs are
    run ``batch_size`` at a time under ``torch.no_grad`` on the model's device.
    Returns a float64 array of N distances (computed in float32), 0 for identical
    images. Raises TypeError for non-uint8 input.
    """
    import torch

    _check_stack(imgs, refs)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    device = next(model.parameters()).device
    out = np.empty(imgs.shape[0], dtype=np.float64)
    with torch.no_grad():
        for start in range(0, imgs.shape[0], batch_size):
            stop = start + batch_size
            dist = model(_to_input(imgs[start:stop], device), _to_input(refs[start:stop], device))
            out[start:stop] = dist.reshape(-1).double().cpu().numpy()
    return out
