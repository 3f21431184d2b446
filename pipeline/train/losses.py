"""Losses for training super-resolution networks: content (pixel MSE, VGG feature) and adversarial.

Conventions shared by every function here:

- Images are float NCHW RGB tensors in [0, 1] (what the generators output and
  the data loader gives); ``sr`` is the network's output, ``hr`` the target.
- Scales follow the SRGAN paper (Ledig et al., CVPR 2017, section 3.2), so that
  its loss weights (adversarial 1e-3 beside the content loss) keep their
  meaning: the pixel MSE is taken on the [-1, 1] range the paper normalises HR
  images to (:func:`pixel_mse`, 4 x the MSE of the [0, 1] tensors), and VGG
  feature maps are multiplied by 1/12.75 before their MSE
  (:class:`VGGFeatureLoss`).
- Adversarial losses are pure functions of discriminator logits (the
  pre-sigmoid score of :class:`pipeline.train.discriminator.SRGANDiscriminator`);
  every loss returns a 0-dimensional tensor, averaged over the batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.io import InputError
from pipeline.torch_io import load_weights_file

__all__ = [
    "CONTENT_LOSSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SRGAN_FEATURE_SCALE",
    "VGG_ARCHS",
    "VGGFeatureLoss",
    "content_loss",
    "gradient_penalty",
    "nsgan_discriminator_loss",
    "nsgan_generator_loss",
    "pixel_mse",
    "vgg_layer_names",
    "wgan_discriminator_loss",
    "wgan_generator_loss",
]

ContentLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# The `features` part of torchvision's VGG16 (configuration "D") and VGG19 ("E"): five
# blocks of 3x3 convolutions (each followed by a ReLU) closed by a 2x2 max-pool; this is
# the number of convolutions per block. The module index of each layer in `nn.Sequential`
# follows from it, and with it the keys `features.N.weight` of torchvision's checkpoints.
VGG_ARCHS: dict[str, tuple[int, ...]] = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_BLOCK_CHANNELS = (64, 128, 256, 512, 512)
# The statistics torchvision's ImageNet VGG weights were trained with (RGB, [0, 1] input).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# SRGAN paper, section 3.2: VGG feature maps rescaled by 1/12.75 (the loss by ~0.006).
SRGAN_FEATURE_SCALE = 1 / 12.75
CONTENT_LOSSES = ("mse", "vgg", "mse+vgg")


def _vgg_layers(arch: str) -> list[tuple[str, int, int]]:
    """``(name, index in features, output channels)`` of every layer of ``arch``, in order.

    Names as in the VGG and SRGAN papers: ``conv{i}_{j}`` is the j-th convolution
    of block i (before the i-th max-pool), ``relu{i}_{j}`` its activation,
    ``pool{i}`` the max-pool closing block i.
    """
    if arch not in VGG_ARCHS:
        raise ValueError(f"unknown VGG architecture {arch!r}; expected one of {sorted(VGG_ARCHS)}")
    layers = []
    index = 0
    blocks = zip(VGG_ARCHS[arch], _BLOCK_CHANNELS, strict=True)
    for block, (convs, channels) in enumerate(blocks, start=1):
        for conv in range(1, convs + 1):
            layers.append((f"conv{block}_{conv}", index, channels))
            layers.append((f"relu{block}_{conv}", index + 1, channels))
            index += 2
        layers.append((f"pool{block}", index, channels))
        index += 1
    return layers


def vgg_layer_names(arch: str = "vgg19") -> list[str]:
    """The layer names :class:`VGGFeatureLoss` accepts for ``arch`` (``relu5_4``, ...)."""
    return [name for name, _, _ in _vgg_layers(arch)]


def _build_features(arch: str, last: int) -> nn.Sequential:
    """torchvision's ``vgg*().features`` cut after module ``last``, with parameters on "meta"."""
    modules: list[nn.Module] = []
    channels = 3
    with torch.device("meta"):  # no memory, no random init: the weights are assigned after
        for name, _, out_channels in _vgg_layers(arch)[: last + 1]:
            if name.startswith("conv"):
                modules.append(nn.Conv2d(channels, out_channels, kernel_size=3, padding=1))
                channels = out_channels
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=True))
            else:
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*modules)


def _conv_entries(state_dict: Mapping[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """The state dict's convolution tensors under bare keys ``N.weight`` / ``N.bias``.

    Accepts torchvision's ``features.N.*`` keys or bare ``N.*`` keys;
    ``classifier.*`` (a full torchvision checkpoint) is ignored. Anything else,
    or a key that is no convolution of ``arch``, is refused.
    """
    expected = _conv_keys(arch)
    entries: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in state_dict.items():
        if key.startswith("classifier."):
            continue
        bare = key.removeprefix("features.")
        if bare not in expected or not isinstance(value, torch.Tensor):
            unexpected.append(key)
        elif bare in entries:
            raise ValueError(f"the state dict holds {bare} twice (as features.{bare} and {bare})")
        else:
            entries[bare] = value
    if unexpected:
        others = [
            other
            for other in VGG_ARCHS
            if other != arch
            and all(k.removeprefix("features.") in _conv_keys(other) for k in unexpected)
        ]
        hint = f"; the keys fit {others[0]}: choose that architecture" if others else ""
        raise ValueError(
            f"not a torchvision {arch} `features` state dict: unexpected keys "
            f"{sorted(unexpected)[:4]}{hint}"
        )
    return entries


def _conv_keys(arch: str) -> set[str]:
    return {
        f"{index}.{kind}"
        for name, index, _ in _vgg_layers(arch)
        if name.startswith("conv")
        for kind in ("weight", "bias")
    }


class VGGFeatureLoss(nn.Module):
    """MSE between VGG feature maps of ``sr`` and ``hr`` (SRGAN's VGG loss, e.g. VGG54, VGG22).

    Built from the ImageNet weights of torchvision's VGG ``features``
    (``state_dict``: keys ``features.N.weight`` / ``features.N.bias`` or bare
    ``N.weight``; ``classifier.*`` ignored; fp16 is cast to fp32). Only the
    convolutions up to ``layer`` are needed and kept, so a cut state dict serves
    shallow layers; one that stops before ``layer`` is refused with a ValueError
    naming the missing convolutions.

    ``layer``: ``relu{i}_{j}`` is the paper's phi_{i,j}, the activation of the j-th
    convolution before the i-th max-pool (``relu5_4``: VGG54, the SRGAN paper's
    choice, VGG19 only; ``relu2_2``: VGG22; VGG16's deepest is ``relu5_3``);
    ``conv{i}_{j}`` (pre-activation, as ESRGAN uses) and ``pool{i}`` are accepted
    too (see :func:`vgg_layer_names`). ``arch``: ``"vgg19"`` (default) or ``"vgg16"``.

    Conventions. Inputs: float NCHW RGB in [0, 1], of equal shapes. They are
    normalised by ImageNet's mean and std (``IMAGENET_MEAN``, ``IMAGENET_STD``),
    which is what torchvision's weights were trained on; feeding them any other
    range (the paper's Caffe VGG took mean-subtracted [0, 255] BGR) would show
    the network inputs it never saw. The feature maps are then multiplied by
    ``feature_scale`` (default ``SRGAN_FEATURE_SCALE`` = 1/12.75, the paper's
    factor, so that the loss is ``feature_scale ** 2`` times the plain feature
    MSE) and compared by their mean squared difference over all elements
    (batch, channels, positions). The paper chose 1/12.75 to make the VGG loss
    of its Caffe network comparable to its pixel MSE on [-1, 1]; torchvision's
    features have their own magnitudes, so the factor keeps the paper's recipe
    readable, not its exact loss values (on bicubic x4 faces against their HR,
    torchvision VGG16's scaled relu2_2 and relu5_3 losses are of the same order as
    the [-1, 1] pixel MSE, as the paper intended): tune the content/adversarial
    balance with the loss weights, or pass another ``feature_scale``.

    The network is frozen (``requires_grad`` False) and stays in eval mode even
    when a parent module calls ``train()``; gradients flow to ``sr`` only (the
    ``hr`` features are computed without autograd). The weights are registered
    parameters, so ``.to(device)`` moves them; keep this module out of state
    dicts you save as checkpoints (it is rebuilt from its weights file).
    """

    def __init__(
        self,
        state_dict: Mapping[str, torch.Tensor],
        layer: str = "relu5_4",
        arch: Literal["vgg19", "vgg16"] = "vgg19",
        feature_scale: float = SRGAN_FEATURE_SCALE,
    ) -> None:
        super().__init__()
        layers = _vgg_layers(arch)
        by_name = {name: (index, channels) for name, index, channels in layers}
        if layer not in by_name:
            raise ValueError(f"{arch} has no layer {layer!r}; its layers are {', '.join(by_name)}")
        last, _ = by_name[layer]
        entries = _conv_entries(state_dict, arch)
        needed = [(name, index) for name, index, _ in layers if name.startswith("conv")]
        needed = [(name, index) for name, index in needed if index <= last]
        missing = [
            f"{name} (features.{index})"
            for name, index in needed
            if f"{index}.weight" not in entries or f"{index}.bias" not in entries
        ]
        if missing:
            raise ValueError(
                f"the {arch} state dict is too short for layer {layer!r}: it lacks the "
                f"weights of {', '.join(missing)}"
            )
        features = _build_features(arch, last)
        expected = {k: v.shape for k, v in features.state_dict().items()}
        wrong = [
            f"features.{k} {tuple(entries[k].shape)} (expected {tuple(shape)})"
            for k, shape in expected.items()
            if entries[k].shape != shape
        ]
        if wrong:
            raise ValueError(f"{arch} weights of the wrong shape: {'; '.join(wrong[:3])}")
        weights = {k: entries[k].detach().to(torch.float32, copy=True) for k in expected}
        features.load_state_dict(weights, strict=True, assign=True)
        features.requires_grad_(False)
        self.features = features.eval()
        self.arch = arch
        self.layer = layer
        self.feature_scale = float(feature_scale)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        layer: str = "relu5_4",
        arch: Literal["vgg19", "vgg16"] = "vgg19",
        feature_scale: float = SRGAN_FEATURE_SCALE,
    ) -> VGGFeatureLoss:
        """The loss built from a weights file (a torchvision VGG state dict, read weights-only).

        Raises ``InputError`` naming ``path`` when the file is missing, unreadable
        or does not hold the weights ``layer`` needs.
        """
        state = load_weights_file(path, f"{arch} state dict (VGG feature loss)")
        if not isinstance(state, Mapping):
            raise InputError(path, f"is not a state dict of {arch} weights")
        try:
            return cls(state, layer=layer, arch=arch, feature_scale=feature_scale)
        except ValueError as exc:
            raise InputError(path, str(exc)) from exc

    def train(self, mode: bool = True) -> VGGFeatureLoss:
        """Kept in eval mode: the loss network is fixed, whatever its parent's mode."""
        super().train(mode)
        self.features.eval()
        return self

    def feature_maps(self, images: torch.Tensor) -> torch.Tensor:
        """``feature_scale`` times the ``layer`` activations of RGB ``images`` in [0, 1], NCHW."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"VGGFeatureLoss: expected RGB images of shape (N, 3, H, W), "
                f"got {tuple(images.shape)}"
            )
        return self.features((images - self.mean) / self.std) * self.feature_scale

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Mean squared difference of the scaled feature maps of ``sr`` and ``hr`` (a scalar)."""
        if sr.shape != hr.shape:
            raise ValueError(
                f"VGGFeatureLoss: sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ in shape"
            )
        with torch.no_grad():
            target = self.feature_maps(hr)
        return F.mse_loss(self.feature_maps(sr), target)


def pixel_mse(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """MSE of ``sr`` and ``hr`` (in [0, 1]) on the SRGAN paper's [-1, 1] scale: 4 x their MSE.

    The paper computes its MSE loss on HR images normalised to [-1, 1]; keeping
    that scale keeps its adversarial weight (1e-3) and VGG rescaling meaningful.
    For MSE alone with Adam the factor changes nothing but the logged value.
    """
    if sr.shape != hr.shape:
        raise ValueError(f"pixel_mse: sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ")
    return 4 * F.mse_loss(sr, hr)


def content_loss(kind: str, vgg: VGGFeatureLoss | None = None) -> ContentLoss:
    """The content loss ``(sr, hr) -> scalar`` named ``kind``, one of ``CONTENT_LOSSES``.

    ``"mse"``: :func:`pixel_mse` (SRResNet-MSE, SRGAN-MSE); ``"vgg"``: ``vgg``
    (SRGAN-VGG22/54); ``"mse+vgg"``: their sum. ``vgg`` is required by the last
    two and must be None for ``"mse"`` (so a configured VGG is never silently unused).
    """
    if kind not in CONTENT_LOSSES:
        raise ValueError(f"unknown content loss {kind!r}; expected one of {CONTENT_LOSSES}")
    if kind == "mse":
        if vgg is not None:
            raise ValueError("content loss 'mse' takes no VGG network; choose 'vgg' or 'mse+vgg'")
        return pixel_mse
    if vgg is None:
        raise ValueError(f"content loss {kind!r} needs a VGGFeatureLoss (vgg=...)")
    if kind == "vgg":
        return vgg

    def mse_plus_vgg(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return pixel_mse(sr, hr) + vgg(sr, hr)

    return mse_plus_vgg


def nsgan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The GAN discriminator loss (Goodfellow et al. 2014) from logits, BCE with logits.

    ``mean(-log sigmoid(real)) + mean(-log(1 - sigmoid(fake)))``: the sum of the
    two halves' means, not their average. Pass the fake logits of detached
    generator outputs.
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def nsgan_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ``mean(-log sigmoid(fake))`` (SRGAN's adversarial loss).

    The paper's ``-log D(G(I_LR))``, computed from logits with BCE, which stays
    finite where the sigmoid saturates.
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def wgan_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The WGAN critic loss ``mean(fake) - mean(real)`` from critic scores.

    Add :func:`gradient_penalty` for WGAN-GP.
    """
    return fake.mean() - real.mean()


def wgan_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """The WGAN generator loss ``-mean(fake)`` from critic scores of generated images."""
    return -fake.mean()


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017): ``weight * mean((||grad D(x_hat)||_2 - 1)^2)``.

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1)`` per
    sample, drawn from ``generator`` when given (on its own device, then moved
    to ``real``'s, so a CPU generator makes the draw reproducible on any device)
    and from torch's global RNG otherwise. The norm is taken over all of a
    sample's elements. ``real`` and ``fake`` are detached; the penalty carries a
    graph to the discriminator's parameters (``create_graph``), so add it to the
    critic loss before ``backward()``. ``weight`` is the paper's lambda (10).
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ"
        )
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    device = generator.device if generator is not None else real.device
    eps = torch.rand(shape, generator=generator, device=device, dtype=real.dtype)
    eps = eps.to(real.device)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    with torch.enable_grad():
        scores = discriminator(mixed)
        (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = grads.flatten(1).norm(2, dim=1)
    return weight * ((norms - 1) ** 2).mean()
