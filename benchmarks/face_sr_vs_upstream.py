"""DIC and GLEAN side by side with OpenMMLab's own module code: same weights, same input.

Imports the network modules of an mmediting 0.x checkout (``--mmedit``, the
folder holding ``mmedit/``; the published DIC and GLEAN checkpoints were made
with 0.x, and mmagic keeps the modules unchanged; never part of this
repository) without installing mmediting or mmcv: the few mmcv names the
modules import are replaced by plain PyTorch (the two compiled operators
``fused_bias_leakyrelu`` and ``upfirdn2d`` as their CPU definitions; registries
and initialisers as minimal stand-ins, which the comparison does not depend
on). Then, for each network, the project's module and OpenMMLab's are built
at the same sizes, OpenMMLab's loads the project's state dict with
``strict=True`` (the key names and shapes are the same, or it fails), both run
on the same random input in float32 on the CPU, and the largest absolute
difference of the outputs is recorded (DIC: the last step's image).

Weights: each network's own initialisation, with every all-zero tensor
(biases, noise strengths) filled with small random values so that no path is
switched off. Sizes: DIC as published (48 channels, 6 blocks, hourglass 256,
68 landmarks, 16 px in); GLEAN at 16 -> 128 px with a 16-wide style and two
RRDBs (every code path of the published 64 -> 1024 network, with half its
parameters and 1/64 of its output pixels), and with ``--full-glean`` also at
the published 64 -> 1024 size (about 1 min of CPU and 8 GB of memory).

    git clone --branch v0.16.0 --depth 1 https://github.com/open-mmlab/mmediting
    python benchmarks/face_sr_vs_upstream.py --mmedit mmediting [--full-glean]

Writes ``benchmarks/results/face_sr_vs_upstream.json``; ``pass`` when every
difference is at most 1e-5 of the output's largest magnitude.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _machine import run_facts  # noqa: E402

from pipeline.io import write_json  # noqa: E402

TOLERANCE = 1e-5
FILES = {
    "sr_backbone_utils": "mmedit/models/common/sr_backbone_utils.py",
    "upsample": "mmedit/models/common/upsample.py",
    "feedback_hour_glass": "mmedit/models/extractors/feedback_hour_glass.py",
    "rrdb_net": "mmedit/models/backbones/sr_backbones/rrdb_net.py",
    "stylegan2_common": "mmedit/models/components/stylegan2/common.py",
    "stylegan2_modules": "mmedit/models/components/stylegan2/modules.py",
    "generator_discriminator": "mmedit/models/components/stylegan2/generator_discriminator.py",
    "dic_net": "mmedit/models/backbones/sr_backbones/dic_net.py",
    "glean_styleganv2": "mmedit/models/backbones/sr_backbones/glean_styleganv2.py",
}


class Registry:
    """Stands in for mmcv's registries: remembers classes by name."""

    def __init__(self) -> None:
        self.classes: dict[str, type] = {}

    def register_module(self, *args: Any, **kwargs: Any) -> Callable[[type], type]:
        def register(cls: type) -> type:
            self.classes[cls.__name__] = cls
            return cls

        return register


def install_mmcv_stand_ins(components: Registry, backbones: Registry) -> None:
    """Modules under mmcv's and mmedit's names holding what the network files import."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def fused_bias_leakyrelu(x, bias, negative_slope=0.2, scale=2**0.5):
        shape = [1, bias.shape[0]] + [1] * (x.ndim - 2)
        return F.leaky_relu(x + bias.view(*shape), negative_slope) * scale

    class FusedBiasLeakyReLU(nn.Module):
        def __init__(self, num_channels, negative_slope=0.2, scale=2**0.5):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(num_channels))
            self.negative_slope, self.scale = negative_slope, scale

        def forward(self, x):
            return fused_bias_leakyrelu(x, self.bias, self.negative_slope, self.scale)

    def upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
        # mmcv's CPU path: zero insertion, padding (negative: cropping), the
        # flipped kernel as a correlation, decimation; same pad on both axes.
        n, c, h, w = x.shape
        planes = x.new_zeros(n * c, 1, h * up, w * up)
        planes[:, 0, ::up, ::up] = x.reshape(n * c, h, w)
        before, after = pad
        planes = F.pad(planes, [max(before, 0), max(after, 0)] * 2)
        planes = planes[
            :,
            :,
            max(-before, 0) : planes.shape[2] - max(-after, 0),
            max(-before, 0) : planes.shape[3] - max(-after, 0),
        ]
        weight = torch.flip(kernel, [0, 1]).view(1, 1, *kernel.shape).to(planes)
        planes = F.conv2d(planes, weight)[:, :, ::down, ::down]
        return planes.reshape(n, c, planes.shape[2], planes.shape[3])

    def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    def is_seq_of(seq: Any, kind: type) -> bool:
        return isinstance(seq, list | tuple) and all(isinstance(item, kind) for item in seq)

    def build_component(cfg: dict) -> nn.Module:
        options = dict(cfg)
        return components.classes[options.pop("type")](**options)

    stand_ins = {
        "mmcv": {"is_seq_of": is_seq_of, "print_log": nothing},
        "mmcv.runner": {"load_checkpoint": nothing},
        "mmcv.runner.checkpoint": {"_load_checkpoint_with_prefix": nothing},
        "mmcv.cnn": {"ConvModule": nn.Module, "constant_init": nothing, "kaiming_init": nothing},
        "mmcv.cnn.bricks": {},
        "mmcv.cnn.bricks.activation": {"build_activation_layer": nothing},
        "mmcv.cnn.utils": {"normal_init": nothing},
        "mmcv.ops": {},
        "mmcv.ops.fused_bias_leakyrelu": {
            "FusedBiasLeakyReLU": FusedBiasLeakyReLU,
            "fused_bias_leakyrelu": fused_bias_leakyrelu,
        },
        "mmcv.ops.upfirdn2d": {"upfirdn2d": upfirdn2d},
        "mmcv.utils": {},
        "mmcv.utils.parrots_wrapper": {"_BatchNorm": nn.modules.batchnorm._BatchNorm},
        "mmedit": {},
        "mmedit.models": {},
        "mmedit.utils": {"get_root_logger": nothing},
        "mmedit.models.registry": {"BACKBONES": backbones, "COMPONENTS": components},
        "mmedit.models.builder": {"build_component": build_component},
        "mmedit.models.backbones": {},
        "mmedit.models.backbones.sr_backbones": {},
        "upstream_stylegan2": {},
    }
    for name, attributes in stand_ins.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        sys.modules[name] = module


def load_file(name: str, path: Path, package: str | None = None) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    if package:
        module.__package__ = package
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def upstream_modules(checkout: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """OpenMMLab's ``dic_net`` and ``glean_styleganv2`` modules, imported from ``checkout``."""
    for relative in FILES.values():
        if not (checkout / relative).is_file():
            raise SystemExit(f"{checkout}: no {relative} (an mmediting 0.x checkout is needed)")
    install_mmcv_stand_ins(Registry(), Registry())
    file = {key: checkout / relative for key, relative in FILES.items()}
    utils = load_file("mmedit.models.common.sr_backbone_utils", file["sr_backbone_utils"])
    upsample = load_file(
        "mmedit.models.common.upsample", file["upsample"], package="mmedit.models.common"
    )
    common = types.ModuleType("mmedit.models.common")
    common.__dict__.update(
        make_layer=utils.make_layer,
        default_init_weights=utils.default_init_weights,
        PixelShufflePack=upsample.PixelShufflePack,
    )
    # Later 0.x releases' rrdb_net.py also imports pixel_unshuffle (unused by RRDB).
    downsample = checkout / "mmedit/models/common/downsample.py"
    if downsample.is_file():
        common.pixel_unshuffle = load_file(
            "mmedit.models.common.downsample", downsample
        ).pixel_unshuffle
    sys.modules["mmedit.models.common"] = common
    hourglass = load_file(
        "mmedit.models.extractors.feedback_hour_glass", file["feedback_hour_glass"]
    )
    extractors = types.ModuleType("mmedit.models.extractors")
    extractors.__dict__.update(
        FeedbackHourglass=hourglass.FeedbackHourglass,
        reduce_to_five_heatmaps=hourglass.reduce_to_five_heatmaps,
    )
    sys.modules["mmedit.models.extractors"] = extractors
    load_file("mmedit.models.backbones.sr_backbones.rrdb_net", file["rrdb_net"])
    # The StyleGAN2 files import each other relatively: give them a package.
    sys.modules["upstream_stylegan2"].__path__ = [str(file["stylegan2_modules"].parent)]
    load_file("upstream_stylegan2.common", file["stylegan2_common"], "upstream_stylegan2")
    load_file("upstream_stylegan2.modules", file["stylegan2_modules"], "upstream_stylegan2")
    load_file(
        "upstream_stylegan2.generator_discriminator",
        file["generator_discriminator"],
        "upstream_stylegan2",
    )
    return load_file("upstream_dic_net", file["dic_net"]), load_file(
        "upstream_glean", file["glean_styleganv2"]
    )


def weights(net: Any, seed: int) -> dict[str, Any]:
    """The network's own initialisation, all-zero tensors filled with small random values."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in net.state_dict().items():
        if not value.any():
            value = (torch.rand(value.shape, generator=generator) - 0.5) * 0.2
        state[key] = value.clone()
    return state


def compare(name: str, ours: Any, theirs: Any, x: Any, pick: Callable) -> dict[str, Any]:
    import torch

    state = weights(ours, 0)
    ours.load_state_dict(state, strict=True)
    theirs.load_state_dict(state, strict=True)
    with torch.inference_mode():
        mine = ours.eval()(x)
        upstream = pick(theirs.eval()(x))
    difference = (mine - upstream).abs().max().item()
    magnitude = upstream.abs().max().item()
    result = {
        "keys": len(state),
        "parameters": sum(value.numel() for value in state.values()),
        "input": list(x.shape),
        "output": list(upstream.shape),
        "max_abs_difference": difference,
        "output_max_abs": magnitude,
        "pass": difference <= TOLERANCE * magnitude,
    }
    print(f"{name}: {result}", flush=True)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mmedit", type=Path, required=True, help="an mmediting 0.x checkout")
    parser.add_argument("--full-glean", action="store_true", help="also GLEAN at 64 -> 1024 px")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "face_sr_vs_upstream.json"
    )
    args = parser.parse_args(argv)

    import os

    import torch

    from pipeline.upscale.dic import DICNet
    from pipeline.upscale.glean import GLEANStyleGANv2

    load_before = os.getloadavg()
    upstream_dic, upstream_glean = upstream_modules(args.mmedit)
    torch.manual_seed(1)
    results = {
        "dic": compare(
            "DIC 16 -> 128 px (published size)",
            DICNet(),
            upstream_dic.DICNet(3, 3, 48),
            torch.rand(2, 3, 16, 16) - 0.5,
            lambda out: out[0][-1],
        )
    }
    small = {"in_size": 16, "out_size": 128, "style_channels": 16}
    small.update(rrdb_channels=16, num_rrdbs=2)
    results["glean_16_to_128"] = compare(
        "GLEAN 16 -> 128 px",
        GLEANStyleGANv2(**small),
        upstream_glean.GLEANStyleGANv2(**small),
        torch.rand(2, 3, 16, 16) * 2 - 1,
        lambda out: out,
    )
    if args.full_glean:
        results["glean_64_to_1024"] = compare(
            "GLEAN 64 -> 1024 px (published size)",
            GLEANStyleGANv2(),
            upstream_glean.GLEANStyleGANv2(in_size=64, out_size=1024, style_channels=512),
            torch.rand(1, 3, 64, 64) * 2 - 1,
            lambda out: out,
        )
    report = {
        "mmedit": str(args.mmedit),
        "tolerance": f"max |ours - upstream| <= {TOLERANCE} x max |upstream|",
        "device": "cpu",
        "precision": "fp32",
        **run_facts(load_before),
        "networks": results,
        "pass": all(result["pass"] for result in results.values()),
    }
    write_json(args.out, report)
    print(f"pass: {report['pass']}; wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
