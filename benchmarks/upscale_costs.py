"""Seconds per upscaled item of every architecture, for the run plan's estimates.

Measures each registered architecture at the size of its default checkpoint
(random weights: speed does not depend on the values) on one device and
merges the figures into ``pipeline/upscale/costs.json`` under that device's
kind (``cpu`` or ``cuda``), which ``pipeline.upscale.plan`` reads:

- ``interpolate``: Pillow bicubic; ``srresnet`` and ``srgan``: MSRResNet x4,
  64 features, 16 blocks (the OpenMMLab checkpoints); ``esrgan``: RRDBNet x4,
  64 features, 23 blocks, growth 32. Each at 32 -> 128 px, batch ``--batch``,
  end to end through the ``Upscaler`` (uint8 in, uint8 out); the plan scales
  the figure by the input's pixels.
- ``pulse``: the 1024 px StyleGAN synthesis (PULSE's architecture) searching
  one 32 px input for ``--pulse-steps`` steps; seconds per step per item (the
  plan multiplies by the method's ``steps``).
- ``dic`` (16 px input, 128 px output) and ``glean`` (64 px input, 1024 px
  output): the published networks' full size, at 32 -> 128 px through their
  fixed input and output (batch ``--face-batch``); the figure holds for every
  input size (``input_size`` in the entry).
- ``gfpgan``, ``codeformer``, ``restoreformer``: spandrel's networks at the
  published size, at 32 -> 128 px through their 512 px input and output
  (batch ``--face-batch``); the figure holds for every input size
  (``input_size`` in the entry).

``--archs`` measures only the architectures named and merges them into the
device's existing entry (each such entry records its own ``when`` and load).

    .venv/bin/python benchmarks/upscale_costs.py                  # CUDA if any, else CPU
    .venv/bin/python benchmarks/upscale_costs.py --device cpu --out /tmp/costs.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _machine import device_name, run_facts  # noqa: E402
from upscale_throughput import measure  # noqa: E402

from pipeline.io import write_json  # noqa: E402
from pipeline.upscale import REGISTRY, build_method  # noqa: E402
from pipeline.upscale.plan import COSTS  # noqa: E402

LR, HR = 32, 128


def cnn_upscalers(device: str) -> dict[str, tuple[Any, str]]:
    from pipeline.upscale import rrdbnet, srresnet
    from pipeline.upscale.torch_runtime import NetworkUpscaler

    msrresnet = srresnet.MSRResNet(num_feat=64, num_block=16).eval().to(device)
    rrdb = rrdbnet.RRDBNet(num_feat=64, num_block=23, num_grow_ch=32).eval().to(device)
    generator = (NetworkUpscaler(forward=msrresnet, scale=4, device=device), "MSRResNet 64x16")
    return {
        "interpolate": (
            build_method({"arch": "interpolate", "filter": "bicubic"}, "cpu"),
            "bicubic",
        ),
        "srresnet": generator,
        "srgan": generator,
        "esrgan": (
            NetworkUpscaler(forward=rrdb, scale=4, device=device),
            "RRDBNet 64x23, growth 32",
        ),
    }


def face_sr_upscalers(device: str) -> dict[str, tuple[Any, str]]:
    """DIC and GLEAN at the published checkpoints' sizes (random weights)."""
    import torch

    from pipeline.upscale import dic, glean

    options = {"input_kernel": "pil-bicubic", "resample_kernel": "pil-bicubic"}
    options.update(tf32=False, bf16=False)
    torch.manual_seed(0)
    dic_net = dic.DICNet().eval().to(device)
    glean_net = glean.GLEANStyleGANv2().eval().to(device)
    return {
        "dic": (dic.upscaler(dic_net, options, device), "DICNet 48x6, hourglass 256, 16 px"),
        "glean": (glean.upscaler(glean_net, options, device), "GLEANStyleGANv2 64 -> 1024 px"),
    }


def face_upscalers(device: str) -> dict[str, tuple[Any, str]]:
    from pipeline.upscale import face_restoration

    options = {"input_kernel": "pil-bicubic", "resample_kernel": "pil-bicubic"}
    options.update(tf32=False, bf16=False)
    upscalers = {}
    for arch in face_restoration.ARCHITECTURES:
        net = face_restoration.untrained(arch).eval().to(device)
        upscaler = face_restoration.upscaler(net, {**options, "arch": arch}, device)
        upscalers[arch] = (upscaler, f"spandrel {face_restoration.ARCHITECTURES[arch]}, 512 px")
    return upscalers


def pulse_step_seconds(device: str, steps: int) -> float:
    import torch

    from pipeline.upscale.pulse import pulse_search
    from pipeline.upscale.stylegan import StyleGANSynthesis

    torch.manual_seed(0)
    synthesis = StyleGANSynthesis().eval().requires_grad_(False).to(device)
    gaussian = {"mean": torch.zeros(512, device=device), "std": torch.ones(512, device=device)}
    lr = torch.rand(1, 3, LR, LR, generator=torch.Generator().manual_seed(0)).to(device)
    # eps out of reach: every step runs.
    pulse_search(synthesis, gaussian, lr, [0], steps=1, eps=1e-12, progress=False)  # warm-up
    began = time.perf_counter()
    pulse_search(synthesis, gaussian, lr, [0], steps=steps, eps=1e-12, progress=False)
    return (time.perf_counter() - began) / steps


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda if any)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--pulse-steps", type=int, default=2)
    parser.add_argument("--face-batch", type=int, default=2)
    parser.add_argument("--archs", nargs="+", default=None, help="measure only these")
    parser.add_argument("--out", type=Path, default=COSTS)
    args = parser.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    kind = "cuda" if device.startswith("cuda") else "cpu"
    name = device_name(device)
    load_before = os.getloadavg()
    wanted = set(args.archs or REGISTRY)
    archs: dict[str, dict[str, Any]] = {}
    cnn = {a: m for a, m in cnn_upscalers(device).items() if a in wanted}
    face = face_sr_upscalers(device) if wanted & {"dic", "glean"} else {}
    if wanted & {"gfpgan", "codeformer", "restoreformer"}:
        face.update(face_upscalers(device))
    face = {a: m for a, m in face.items() if a in wanted}
    for arch, (model, network) in [*cnn.items(), *face.items()]:
        batch = args.face_batch if arch in face else args.batch
        speed = measure(model, batch, args.min_seconds, repeats=1)
        archs[arch] = {
            "seconds_per_item": round(1 / speed["images_per_second"], 6),
            "lr": LR,
            "hr": HR,
            "batch": batch,
            "network": network,
        }
        if arch in face:
            archs[arch]["input_size"] = model.input_size
        print(f"{arch:12s} {archs[arch]['seconds_per_item']:.4g} s/item", flush=True)
    if "pulse" in wanted:
        archs["pulse"] = {
            "seconds_per_step": round(pulse_step_seconds(device, args.pulse_steps), 4),
            "measured_steps": args.pulse_steps,
            "batch": 1,
            "network": "StyleGAN synthesis 1024 px, 32 px input",
        }
        print(f"pulse        {archs['pulse']['seconds_per_step']:.4g} s/step/item", flush=True)
    missing = sorted(wanted - set(archs))
    if missing:
        raise SystemExit(f"no cost measured for registered architectures {missing}")
    facts = run_facts(load_before)
    costs = json.loads(args.out.read_text()) if args.out.is_file() else {"devices": {}}
    if args.archs:
        # A partial run: its entries join the device's others, each with its own circumstances.
        for entry in archs.values():
            entry.update(when=facts["when"], load_average_1min=facts["load_average_1min"])
        previous = costs["devices"].get(kind)
        if previous is None:
            raise SystemExit(f"--archs needs a full measurement of {kind} in {args.out} first")
        previous["archs"].update(archs)
    else:
        costs["devices"][kind] = {
            "device_name": name,
            "when": facts["when"],
            "torch": facts["torch"],
            "threads": facts["torch_threads"],
            "load_average_1min": facts["load_average_1min"],
            "precision": "fp32",
            "archs": archs,
        }
    write_json(args.out, costs)
    print(f"wrote {args.out}")
    return costs


if __name__ == "__main__":
    main()
