"""GFPGAN v1.4, CodeFormer and RestoreFormer, loaded through ``spandrel``.

The networks are spandrel's (``spandrel_extra_arches`` for CodeFormer, whose
code carries a non-commercial licence and is kept out of spandrel itself);
this module checks that a checkpoint is the architecture a method declares,
and calls each network the way its authors' inference does:

- input: RGB in [-1, 1], i.e. ``(x - 0.5) / 0.5`` of the [0, 1] image (GFPGAN's
  and CodeFormer's ``normalize(..., (0.5,)*3, (0.5,)*3)``); output in [-1, 1],
  mapped back with ``(y + 1) / 2``. spandrel's own call functions of GFPGAN and
  CodeFormer feed [0, 1] unchanged, so the models are called directly here.
- GFPGAN (the ``GFPGANv1Clean`` network of v1.3/v1.4): ``return_rgb=False``;
  its StyleGAN2 decoder adds noise in every layer. GFPGAN's own inference
  draws fresh noise at each call (``randomize_noise=True``), so its outputs
  differ from run to run; here the fixed noise stored in the checkpoint
  (``stylegan_decoder.noises.noise<i>``) is used, so the same input gives the
  same output.
- CodeFormer: the fidelity weight ``w`` (CodeFormer's ``--fidelity_weight``),
  with AdaIN on (as its inference script).
- RestoreFormer: ``model(x)[0]``.

All three take 512 x 512 inputs and make 512 x 512 outputs (scale 1):
:class:`~pipeline.upscale.torch_runtime.NetworkUpscaler` brings each input to
512 px with the method's ``input_kernel`` and each output to the evaluation
size with its ``resample_kernel``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.io import InputError
from pipeline.upscale.torch_runtime import NetworkUpscaler, read_state_dict

if TYPE_CHECKING:
    import torch

# The spandrel architecture id each method's checkpoint must have.
ARCHITECTURES = {"gfpgan": "GFPGAN", "codeformer": "CodeFormer", "restoreformer": "RestoreFormer"}
# The side of the square faces every one of these networks was trained at.
INPUT_SIZE = 512
# The hyperparameters of the published checkpoints (GFPGAN v1.4, CodeFormer
# v0.1.0, RestoreFormer of GFPGAN v1.3.4), as the authors' inference scripts
# build the networks; spandrel builds the same from the files' shapes.
PUBLISHED: dict[str, dict[str, Any]] = {
    "gfpgan": {
        "out_size": 512,
        "num_style_feat": 512,
        "channel_multiplier": 2,
        "decoder_load_path": None,
        "fix_decoder": False,
        "num_mlp": 8,
        "input_is_latent": True,
        "different_w": True,
        "narrow": 1,
        "sft_half": True,
    },
    "codeformer": {
        "dim_embd": 512,
        "n_head": 8,
        "n_layers": 9,
        "codebook_size": 1024,
        "latent_size": 256,
        "connect_list": ["32", "64", "128", "256"],
        "fix_modules": ["quantize", "generator"],
    },
    "restoreformer": {
        "n_embed": 1024,
        "embed_dim": 256,
        "ch": 64,
        "out_ch": 3,
        "ch_mult": (1, 2, 2, 4, 4, 8),
        "num_res_blocks": 2,
        "attn_resolutions": (16,),
        "resolution": 512,
        "z_channels": 256,
        "double_z": False,
        "enable_mid": True,
        "head_size": 8,
    },
}


def registry() -> Any:
    """spandrel's architectures with the extra ones (CodeFormer), in a registry of
    its own (spandrel's global ``MAIN_REGISTRY`` is left as it is)."""
    from spandrel import MAIN_REGISTRY
    from spandrel_extra_arches import EXTRA_REGISTRY

    combined = MAIN_REGISTRY.copy()
    combined.add(*EXTRA_REGISTRY)
    return combined


def untrained(arch: str) -> torch.nn.Module:
    """A randomly initialised network of ``arch`` at the published size (for
    benchmarks and tests: speed and plumbing do not depend on the weights)."""
    from spandrel.architectures.GFPGAN import GFPGAN
    from spandrel.architectures.RestoreFormer import RestoreFormer
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    classes = {"gfpgan": GFPGAN, "codeformer": CodeFormer, "restoreformer": RestoreFormer}
    return classes[arch](**PUBLISHED[arch])


def detected(state: Mapping[str, Any], known: Any) -> list[str]:
    """The ids of the architectures of ``known`` (a spandrel registry) whose
    key patterns ``state`` matches, in the registry's detection order."""
    found = []
    for support in known.architectures("detection"):
        try:
            if support.detect(state):
                found.append(str(support.architecture.id))
        except Exception:  # a detector tripping over foreign keys is no detection
            continue
    return found


def _keys(state: Mapping[str, Any], limit: int = 5) -> str:
    keys = sorted(state)
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} keys)" if len(keys) > limit else shown


def load(path: str | Path, arch: str) -> torch.nn.Module:
    """The network of method architecture ``arch`` with the weights of ``path``, in eval mode.

    The checkpoint is read weights-only (``params_ema`` preferred over
    ``params``, as BasicSR's inference) and must be the architecture
    ``ARCHITECTURES[arch]`` by spandrel's key patterns; spandrel then builds
    the network at the published hyperparameters and loads it strictly.
    Raises ``InputError`` naming the file, the architecture expected and the
    one detected with a few keys, or the missing, unexpected or mis-shaped
    tensors.
    """
    expected = ARCHITECTURES[arch]
    state = read_state_dict(path)
    known = registry()
    found = detected(state, known)
    if expected not in found:
        what = ", ".join(found) if found else "no architecture"
        raise InputError(
            path,
            f"is not a {expected} checkpoint (methods of arch {arch!r} need one): "
            f"spandrel detects {what}; keys: {_keys(state)}",
        )
    try:
        descriptor = known[expected].architecture.load(dict(state))
    except (RuntimeError, KeyError, ValueError, IndexError) as exc:
        # torch's load_state_dict lists the missing, unexpected and mis-shaped keys.
        detail = " ".join(str(exc).split())
        if len(detail) > 800:
            detail = detail[:800] + " ..."
        raise InputError(
            path, f"does not fit spandrel's {expected} network at its published size: {detail}"
        ) from exc
    return descriptor.model.eval()


def forward_of(arch: str, net: torch.nn.Module, w: float = 0.5) -> Callable[[Any], Any]:
    """The [0, 1] -> [0, 1] forward of a loaded network (see the module docstring)."""
    if arch == "gfpgan":

        def restore(x: torch.Tensor) -> torch.Tensor:
            return net(x * 2 - 1, return_rgb=False, randomize_noise=False)[0]

    elif arch == "codeformer":

        def restore(x: torch.Tensor) -> torch.Tensor:
            return net(x * 2 - 1, weight=w)[0]

    elif arch == "restoreformer":

        def restore(x: torch.Tensor) -> torch.Tensor:
            return net(x * 2 - 1)[0]

    else:
        raise KeyError(f"no face restoration architecture {arch!r}; known: {sorted(ARCHITECTURES)}")

    def forward(x: torch.Tensor) -> torch.Tensor:
        return (restore(x) + 1) / 2

    return forward


def upscaler(net: torch.nn.Module, options: Mapping[str, Any], device: str) -> NetworkUpscaler:
    """The ``Upscaler`` of a loaded network ``net`` (on ``device``) of ``options["arch"]``."""
    forward = forward_of(options["arch"], net, float(options.get("w", 0.5)))
    return NetworkUpscaler.of_method(options, forward, net, 1, device, input_size=INPUT_SIZE)


def build(options: Mapping[str, Any], device: str) -> NetworkUpscaler:
    """A method of ``options["arch"]``: options as declared in
    ``pipeline.upscale.specs.face_restoration`` (with ``weights_path``)."""
    net = load(options["weights_path"], options["arch"]).to(device)
    return upscaler(net, options, device)
