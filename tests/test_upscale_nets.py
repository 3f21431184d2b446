"""CNN upscalers (ESRGAN, SRResNet/SRGAN): checkpoints, numerics, runtime helpers. CPU only."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from tiny_models import mmedit_generator, openmmlab_checkpoint, srgan_training_keys  # noqa: E402

from pipeline.io import InputError  # noqa: E402
from pipeline.resize import KERNELS  # noqa: E402
from pipeline.upscale import build_method, check_method  # noqa: E402
from pipeline.upscale.rrdbnet import RRDBNet  # noqa: E402
from pipeline.upscale.srresnet import MSRResNet, SRResNet  # noqa: E402
from pipeline.upscale.torch_runtime import (  # noqa: E402
    NetworkUpscaler,
    resample_to,
    round_to_uint8,
    run_batched,
    tiled,
    to_tensor,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
WEIGHTS = SHARED / "weights"
REPO = Path(__file__).resolve().parents[1]


def randomize(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere, BN statistics included, so that nothing is an identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            values = torch.rand(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + values)
            elif name.endswith("prelu.weight") or ".2.weight" in name or name.endswith(".1.weight"):
                tensor.copy_(0.1 + 0.2 * values)  # PReLU slopes and BN scales
            else:
                tensor.copy_((values - 0.5) * 0.2)
    return net.eval()


def images(seed: int, n: int, size: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def forward_uint8(net: torch.nn.Module, batch: np.ndarray, tanh: bool = False) -> np.ndarray:
    with torch.inference_mode():
        out = net(to_tensor(batch, "cpu"))
    return round_to_uint8((out + 1) / 2 if tanh else out)


# --- RealESRGAN golden ------------------------------------------------------------


@pytest.fixture(scope="module")
def realesrgan_run():
    """One forward pass of RealESRGAN_x4plus on the golden input, through the registry."""
    weights = WEIGHTS / "RealESRGAN_x4plus.pth"
    golden = WEIGHTS / "golden"
    if not (weights.is_file() and (golden / "realesrgan_output.npy").is_file()):
        pytest.skip(f"RealESRGAN weights or golden pair not found under {WEIGHTS}")
    model = build_method({"arch": "esrgan", "weights_path": str(weights)}, "cpu")
    assert isinstance(model, NetworkUpscaler)
    recorded = []
    network = model.forward

    def recording(x):
        out = network(x)
        recorded.append(out.detach().clone())
        return out

    model.forward = recording
    lr = np.asarray(Image.open(golden / "realesrgan_input.png").convert("RGB"))
    result = model(lr[None], 256, [0])
    return result, recorded, np.load(golden / "realesrgan_output.npy")


def test_realesrgan_reproduces_the_golden_output(realesrgan_run):
    result, recorded, golden = realesrgan_run
    assert len(recorded) == 1 and recorded[0].shape == (1, 3, 256, 256)
    out = recorded[0][0].clamp(0, 1).permute(1, 2, 0).numpy()
    # Tolerance from shared/weights/golden/README.md (CPU, fp32).
    np.testing.assert_allclose(out, golden, rtol=0, atol=1e-4)
    assert result.images.shape == (1, 256, 256, 3) and result.images.dtype == np.uint8
    # 8-bit output: the golden values rounded, give or take one level at rounding ties.
    reference = np.round(golden * 255.0)
    assert np.abs(result.images[0].astype(np.float64) - reference).max() <= 1
    assert result.facts == [{"native_size": 256, "resampled_with": None, "precision": "fp32"}]


# --- ESRGAN key layouts ----------------------------------------------------------


def to_2018_keys(state: dict) -> dict:
    """BasicSR RRDBNet names -> the original ESRGAN release's names (x4), written out here."""
    blocks = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("body."))
    top = {"conv_first": "0", "conv_up1": "3", "conv_up2": "6", "conv_hr": "8", "conv_last": "10"}
    out = {}
    for key, value in state.items():
        module, kind = key.rsplit(".", 1)
        if module.startswith("body."):
            _, index, rdb, conv = module.split(".")
            out[f"model.1.sub.{index}.RDB{rdb[3:]}.{conv}.0.{kind}"] = value
        elif module == "conv_body":
            out[f"model.1.sub.{blocks}.{kind}"] = value
        else:
            out[f"model.{top[module]}.{kind}"] = value
    return out


def to_2019_keys(state: dict) -> dict:
    names = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2"}
    out = {}
    for key, value in state.items():
        module, kind = key.rsplit(".", 1)
        if module.startswith("body."):
            _, index, rdb, conv = module.split(".")
            module = f"RRDB_trunk.{index}.RDB{rdb[3:]}.{conv}"
        module = {**names, "conv_hr": "HRconv"}.get(module, module)
        out[f"{module}.{kind}"] = value
    return out


@pytest.fixture(scope="module")
def tiny_rrdbnet():
    # num_grow_ch 32 as in every published ESRGAN (spandrel assumes it too).
    return randomize(RRDBNet(num_feat=16, num_block=2, num_grow_ch=32), seed=3)


@pytest.mark.parametrize("layout", ["basicsr", "basicsr-params", "esrgan-2018", "esrgan-2019"])
def test_esrgan_key_layouts_load_identically(tiny_rrdbnet, tmp_path, layout):
    state = tiny_rrdbnet.state_dict()
    converted = {
        "basicsr": lambda s: {"params_ema": s, "params": {}},
        # BasicSR's conversion of the official ESRGAN (ESRGAN_SRx4_DF2KOST_official).
        "basicsr-params": lambda s: {"params": s},
        "esrgan-2018": to_2018_keys,
        "esrgan-2019": to_2019_keys,
    }[layout](state)
    if layout == "esrgan-2018":
        assert "model.1.sub.0.RDB1.conv1.0.weight" in converted
        assert "model.1.sub.2.weight" in converted and "model.10.bias" in converted
    path = tmp_path / f"{layout}.pth"
    torch.save(converted, path)
    model = build_method({"arch": "esrgan", "weights_path": str(path)}, "cpu")
    batch = images(0, 2, 12)
    out = model(batch, 48, [0, 0])
    np.testing.assert_array_equal(out.images, forward_uint8(tiny_rrdbnet, batch))
    with torch.inference_mode():
        x = to_tensor(batch, "cpu")
        assert torch.equal(model.forward(x), tiny_rrdbnet(x))


def test_original_esrgan_keys_agree_with_spandrel(tiny_rrdbnet, tmp_path):
    """An independent reader of the 2018 layout (spandrel) gives the same network."""
    spandrel = pytest.importorskip("spandrel")
    old = to_2018_keys(tiny_rrdbnet.state_dict())
    theirs = spandrel.ModelLoader().load_from_state_dict(dict(old)).model.eval()
    path = tmp_path / "old.pth"
    torch.save(old, path)
    ours = build_method({"arch": "esrgan", "weights_path": str(path)}, "cpu").forward
    x = torch.rand(1, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-6)


def test_esrgan_strict_loading_names_the_keys(tiny_rrdbnet, tmp_path):
    state = dict(tiny_rrdbnet.state_dict())
    del state["conv_up2.bias"]
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "damaged.pth"
    torch.save({"params": state}, path)
    with pytest.raises(InputError) as raised:
        build_method({"arch": "esrgan", "weights_path": str(path)}, "cpu")
    message = str(raised.value)
    assert str(path) in message
    assert re.search(r"missing keys: conv_up2\.bias", message)
    assert re.search(r"unexpected keys: extra\.weight", message)


def test_esrgan_unsupported_variants_fail_clearly(tiny_rrdbnet, tmp_path):
    state = dict(tiny_rrdbnet.state_dict())
    # Real-ESRGAN x2plus: pixel-unshuffle, 12 input channels.
    state["conv_first.weight"] = torch.zeros(16, 12, 3, 3)
    path = tmp_path / "x2plus.pth"
    torch.save({"params_ema": state}, path)
    with pytest.raises(InputError, match=r"x2plus\.pth: pixel-unshuffle RRDBNet \(x2"):
        build_method({"arch": "esrgan", "weights_path": str(path)}, "cpu")
    old = to_2018_keys(tiny_rrdbnet.state_dict())
    old["model.13.weight"] = torch.zeros(3, 16, 3, 3)
    torch.save(old, path)
    with pytest.raises(InputError, match="only the x4 layout"):
        build_method({"arch": "esrgan", "weights_path": str(path)}, "cpu")


# --- SRResNet / SRGAN ----------------------------------------------------------------


@pytest.mark.parametrize("scale", [4, 8])
def test_srresnet_shapes_range_determinism_round_trip(tmp_path, scale):
    net = randomize(SRResNet(scale=scale, num_feat=8, num_block=2), seed=scale)
    path = tmp_path / f"srresnet_x{scale}.pth"
    torch.save(net.state_dict(), path)
    model = build_method({"arch": "srresnet", "weights_path": str(path), "scale": scale}, "cpu")
    batch = images(1, 3, 10)
    first = model(batch, 10 * scale, [0, 0, 0])
    assert first.images.shape == (3, 10 * scale, 10 * scale, 3)
    assert first.images.dtype == np.uint8
    assert all(f == {"native_size": 10 * scale, "resampled_with": None, "precision": "fp32"}
               for f in first.facts)  # fmt: skip
    # Default output range [-1, 1] (tanh): mapped into [0, 1] before 8 bits.
    with torch.inference_mode():
        mapped = model.forward(to_tensor(batch, "cpu"))
    assert mapped.min() >= 0 and mapped.max() <= 1 and mapped.std() > 0.01
    np.testing.assert_array_equal(first.images, forward_uint8(net, batch, tanh=True))
    np.testing.assert_array_equal(model(batch, 10 * scale, [0, 0, 0]).images, first.images)
    # Round trip: the state dict written by the loaded network equals the file's.
    reloaded = tmp_path / "again.pth"
    torch.save(model.network.state_dict(), reloaded)
    original, again = torch.load(path), torch.load(reloaded)
    assert original.keys() == again.keys()
    assert all(torch.equal(original[key], again[key]) for key in original)


def test_srresnet_output_range_and_input_norm_options(tmp_path):
    net = randomize(SRResNet(scale=4, num_feat=8, num_block=1, tanh=False), seed=5)
    path = tmp_path / "unit.pth"
    torch.save(net.state_dict(), path)
    batch = images(2, 1, 8)
    options = {"arch": "srresnet", "weights_path": str(path), "output_range": [0, 1]}
    out = build_method(options, "cpu")(batch, 32, [0]).images
    np.testing.assert_array_equal(out, forward_uint8(net, batch))
    imagenet = build_method({**options, "input_norm": "imagenet"}, "cpu")
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.inference_mode():
        x = to_tensor(batch, "cpu")
        torch.testing.assert_close(imagenet.forward(x), net((x - mean) / std))


def test_srgan_generator_wrapper_and_msrresnet(tmp_path):
    net = randomize(SRResNet(scale=4, num_feat=8, num_block=2), seed=7)
    path = tmp_path / "srgan.pth"
    # The tutorial's SRGAN Generator keeps the SRResNet under ``net.``.
    torch.save({"generator": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    batch = images(3, 2, 8)
    out = build_method({"arch": "srgan", "weights_path": str(path)}, "cpu")(batch, 32, [0, 0])
    np.testing.assert_array_equal(out.images, forward_uint8(net, batch, tanh=True))

    msr = randomize(MSRResNet(num_feat=8, num_block=2), seed=8)
    path = tmp_path / "msrresnet.pth"
    torch.save({"params": msr.state_dict()}, path)
    options = {"arch": "srresnet", "weights_path": str(path), "variant": "msrresnet"}
    out = build_method(options, "cpu")(batch, 32, [0, 0])
    np.testing.assert_array_equal(out.images, forward_uint8(msr, batch))
    with pytest.raises(
        InputError, match=r"msrresnet\.pth: holds an SRResNet of variant 'msrresnet'"
    ):
        build_method({**options, "variant": "paper"}, "cpu")
    with pytest.raises(ValueError, match="msrresnet outputs"):
        build_method({**options, "output_range": [-1, 1]}, "cpu")


def test_srresnet_strict_loading_and_scale_errors_name_the_file(tmp_path):
    state = dict(randomize(SRResNet(scale=4, num_feat=8, num_block=2), seed=9).state_dict())
    del state["residual_blocks.1.conv_block1.conv_block.1.running_mean"]
    state["residual_blocks.1.conv_block1.conv_block.3.weight"] = torch.zeros(1)
    path = tmp_path / "damaged.pth"
    torch.save(state, path)
    with pytest.raises(InputError) as raised:
        build_method({"arch": "srresnet", "weights_path": str(path)}, "cpu")
    message = str(raised.value)
    assert message.startswith(f"{path}: does not fit the SRResNet (paper) network")
    assert "missing keys: residual_blocks.1.conv_block1.conv_block.1.running_mean" in message
    assert "unexpected keys: residual_blocks.1.conv_block1.conv_block.3.weight" in message

    # Checkpoints from before PyTorch 0.4.1 have no BN batch counters: still fine.
    net = randomize(SRResNet(scale=4, num_feat=8, num_block=1), seed=10)
    old = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(old, path)
    batch = images(8, 1, 8)
    out = build_method({"arch": "srresnet", "weights_path": str(path)}, "cpu")(batch, 32, [0])
    np.testing.assert_array_equal(out.images, forward_uint8(net, batch, tanh=True))

    good = tmp_path / "x4.pth"
    torch.save(SRResNet(scale=4, num_feat=8, num_block=1).state_dict(), good)
    with pytest.raises(
        InputError, match=r"x4\.pth: scale 8 was configured, but this is an x4 network"
    ):
        build_method({"arch": "srresnet", "weights_path": str(good), "scale": 8}, "cpu")


def test_wrong_checkpoints_give_clear_errors(tmp_path, tiny_rrdbnet):
    srresnet_file = tmp_path / "srresnet.pth"
    torch.save(SRResNet(scale=4, num_feat=8, num_block=1).state_dict(), srresnet_file)
    with pytest.raises(
        InputError,
        match=r"srresnet\.pth: not an ESRGAN \(RRDBNet\) checkpoint \(it holds an SRResNet",
    ):
        build_method({"arch": "esrgan", "weights_path": str(srresnet_file)}, "cpu")
    esrgan_file = tmp_path / "esrgan.pth"
    torch.save({"params_ema": tiny_rrdbnet.state_dict()}, esrgan_file)
    with pytest.raises(InputError, match=r"esrgan\.pth: not an SRResNet checkpoint \(it holds an"):
        build_method({"arch": "srresnet", "weights_path": str(esrgan_file)}, "cpu")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"garbage\.pth: cannot be read as a weights-only"):
        build_method({"arch": "esrgan", "weights_path": str(garbage)}, "cpu")
    with pytest.raises(InputError, match=r"absent\.pth: checkpoint file not found"):
        build_method({"arch": "srgan", "weights_path": str(tmp_path / "absent.pth")}, "cpu")


# --- OpenMMLab MSRResNet (variant mmedit) --------------------------------------------


def mmedit_reference(state: dict, x: torch.Tensor, act_after_shuffle: bool = False) -> torch.Tensor:
    """OpenMMLab's MSRResNet forward, written from its description with functional calls."""
    F = torch.nn.functional

    def conv(name: str, t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, state[f"{name}.weight"], state[f"{name}.bias"], padding=1)

    blocks = len({key.split(".")[1] for key in state if key.startswith("trunk_net.")})
    feat = F.leaky_relu(conv("conv_first", x), 0.1)
    for index in range(blocks):
        inner = F.relu(conv(f"trunk_net.{index}.conv1", feat))
        feat = feat + conv(f"trunk_net.{index}.conv2", inner)
    for stage in ("upsample1", "upsample2"):
        feat = F.pixel_shuffle(conv(f"{stage}.upsample_conv", feat), 2)
        if act_after_shuffle:  # BasicSR's MSRResNet does this; OpenMMLab's does not
            feat = F.leaky_relu(feat, 0.1)
    out = conv("conv_last", F.leaky_relu(conv("conv_hr", feat), 0.1))
    return out + F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)


def test_mmedit_msrresnet_matches_an_independent_forward(tmp_path):
    generator = mmedit_generator(num_feat=8, num_block=2, seed=11)
    path = tmp_path / "msrresnet_x4c64b16.pth"
    torch.save(openmmlab_checkpoint(generator), path)
    model = build_method(
        {"arch": "srresnet", "variant": "mmedit", "weights_path": str(path)}, "cpu"
    )
    batch = images(4, 2, 9)
    x = to_tensor(batch, "cpu")
    with torch.inference_mode():
        ours = model.forward(x)
        reference = mmedit_reference(generator, x)
        basicsr_like = mmedit_reference(generator, x, act_after_shuffle=True)
    assert ours.shape == (2, 3, 36, 36)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)
    # The check can tell the two MSRResNets apart: the activation after the shuffle matters.
    assert (basicsr_like - reference).abs().max() > 1e-3
    out = model(batch, 36, [0, 0])
    np.testing.assert_array_equal(out.images, round_to_uint8(reference))
    assert out.facts[0] == {"native_size": 36, "resampled_with": None, "precision": "fp32"}

    # The skip: with a zero last convolution the output is the bilinear x4 input.
    silent = {**generator, "conv_last.weight": torch.zeros_like(generator["conv_last.weight"])}
    silent["conv_last.bias"] = torch.zeros_like(generator["conv_last.bias"])
    torch.save(openmmlab_checkpoint(silent), path)
    model = build_method(
        {"arch": "srresnet", "variant": "mmedit", "weights_path": str(path)}, "cpu"
    )
    with torch.inference_mode():
        bilinear = torch.nn.functional.interpolate(
            x, scale_factor=4, mode="bilinear", align_corners=False
        )
        torch.testing.assert_close(model.forward(x), bilinear, rtol=0, atol=1e-6)


def test_mmedit_srgan_drops_the_training_networks_and_nothing_else(tmp_path):
    generator = mmedit_generator(num_feat=8, num_block=1, seed=12)
    path = tmp_path / "srgan_x4c64b16.pth"
    torch.save(openmmlab_checkpoint(generator, srgan_training_keys(1)), path)
    options = {"arch": "srgan", "variant": "mmedit", "weights_path": str(path)}
    batch = images(5, 1, 8)
    out = build_method(options, "cpu")(batch, 32, [0])
    with torch.inference_mode():
        expected = round_to_uint8(mmedit_reference(generator, to_tensor(batch, "cpu")))
    np.testing.assert_array_equal(out.images, expected)
    # A key of no known part of the model still fails strict loading, by name.
    foreign = {**srgan_training_keys(1), "generator_ema.conv_first.weight": torch.zeros(1)}
    torch.save(openmmlab_checkpoint(generator, foreign), path)
    with pytest.raises(InputError) as raised:
        build_method(options, "cpu")
    message = str(raised.value)
    assert message.startswith(f"{path}: does not fit the OpenMMLab MSRResNet")
    assert "unexpected keys: generator_ema.conv_first.weight" in message
    # An OpenMMLab file holding the bare generator state (no prefix) loads too.
    torch.save({"state_dict": generator}, path)
    np.testing.assert_array_equal(build_method(options, "cpu")(batch, 32, [0]).images, expected)


def test_mmedit_wrong_and_corrupt_checkpoints_name_file_layout_and_keys(tmp_path, tiny_rrdbnet):
    generator = mmedit_generator(num_feat=8, num_block=1, seed=13)
    mmedit = {"arch": "srresnet", "variant": "mmedit"}

    def fails(name: str, content: object, options: dict, pattern: str) -> None:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        with pytest.raises(InputError, match=pattern):
            build_method({**options, "weights_path": str(path)}, "cpu")

    fails(
        "disc.pth",
        {"meta": {}, "state_dict": srgan_training_keys(2)},
        mmedit,
        r"disc\.pth: OpenMMLab checkpoint without a generator: it holds 2 discriminator\. keys, "
        r"2 perceptual_loss\. keys but no generator\. keys",
    )
    fails(
        "mmedit.pth",
        openmmlab_checkpoint(generator),
        {"arch": "esrgan"},
        r"mmedit\.pth: not an ESRGAN \(RRDBNet\) checkpoint \(it holds an OpenMMLab MSRResNet: "
        r"use arch srresnet or srgan, variant mmedit\)",
    )
    fails(
        "disc_for_esrgan.pth",
        {"state_dict": {"discriminator.conv0_0.weight": torch.zeros(1)}},
        {"arch": "esrgan"},
        r"it holds only a GAN discriminator",
    )
    fails(
        "esrgan.pth",
        {"params": tiny_rrdbnet.state_dict()},
        mmedit,
        r"esrgan\.pth: not an SRResNet checkpoint \(it holds an ESRGAN RRDBNet: use arch "
        r"esrgan\): expected .*OpenMMLab MSRResNet \(\[generator\.\]conv_first",
    )
    fails(
        "as_basicsr.pth",
        openmmlab_checkpoint(generator),
        {**mmedit, "variant": "msrresnet"},
        r"holds an SRResNet of variant 'mmedit', but variant 'msrresnet' was configured",
    )
    buffer = tmp_path / "whole.pth"
    torch.save(openmmlab_checkpoint(generator), buffer)
    fails(
        "truncated.pth",
        buffer.read_bytes()[: buffer.stat().st_size // 2],
        mmedit,
        r"truncated\.pth: cannot be read as a weights-only PyTorch checkpoint file",
    )
    rgba = mmedit_generator(num_feat=8, num_block=1, seed=14, in_ch=4)
    fails(
        "rgba.pth",
        openmmlab_checkpoint(rgba),
        mmedit,
        r"rgba\.pth: does not fit the OpenMMLab MSRResNet .*shape mismatches: "
        r"conv_first\.weight has shape \(8, 4, 3, 3\) in the file, \(8, 3, 3, 3\) expected",
    )
    x2 = {k: v for k, v in generator.items() if not k.startswith("upsample2.")}
    fails(
        "x2.pth",
        openmmlab_checkpoint(x2),
        mmedit,
        r"x2\.pth: scale 4 was configured, but this is an x2/x3 MSRResNet",
    )
    with pytest.raises(ValueError, match="mmedit outputs"):
        path = tmp_path / "ok.pth"
        torch.save(openmmlab_checkpoint(generator), path)
        build_method({**mmedit, "weights_path": str(path), "output_range": [-1, 1]}, "cpu")


def test_spandrel_has_no_msrresnet_layout():
    """The reason these converters are written here: spandrel 0.4 knows neither layout."""
    pytest.importorskip("spandrel")
    from pipeline.upscale.torch_runtime import identify

    assert identify(mmedit_generator(num_feat=8, num_block=1, seed=15)) is None
    assert identify(MSRResNet(num_feat=8, num_block=1).state_dict()) is None


def test_method_options_are_checked():
    check_method("sr", {"arch": "srresnet", "weights": "w", "scale": 8, "output_range": [0, 1]})
    check_method("e", {"arch": "esrgan", "weights": "w", "tile": 64, "bf16": True})
    check_method("g", {"arch": "srgan", "weights": "w", "variant": "mmedit"})
    bad = [
        ({"arch": "esrgan", "weights": "w", "scale": 2}, r"methods\.m\.scale"),
        ({"arch": "esrgan", "weights": "w", "tile": 4}, r"methods\.m\.tile"),
        ({"arch": "esrgan", "weights": "w", "resample_kernel": "sinc"}, r"resample_kernel"),
        ({"arch": "srresnet", "weights": "w", "output_range": [0, 2]}, r"output_range"),
        ({"arch": "srgan", "weights": "w", "variant": "edsr"}, r"methods\.m\.variant"),
        ({"arch": "srgan", "weights": "w", "variant": "mmedit", "output_range": [0, 2]}, "range"),
        ({"arch": "esrgan"}, r"methods\.m\.weights: arch 'esrgan' needs a checkpoint"),
        ({"arch": "esrgan", "weights": "w", "weights_path": "/x.pth"}, r"weights_path"),
        ({"arch": "srgan", "weights": "w", "seeds": [0, 1]}, r"deterministic"),
    ]
    for options, match in bad:
        with pytest.raises(ValueError, match=match):
            check_method("m", options)


# --- runtime helpers ----------------------------------------------------------------


def test_run_batched_halves_the_batch_on_out_of_memory(caplog):
    calls = []

    def fake(chunk):
        calls.append(len(chunk))
        if len(chunk) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return chunk * 2

    tensor = torch.arange(7.0).view(7, 1, 1, 1)
    with caplog.at_level(logging.WARNING, logger="pipeline.upscale.torch_runtime"):
        out, used = run_batched(fake, tensor, max_batch=8)
    assert torch.equal(out, tensor * 2) and used == 2
    assert calls == [7, 4, 2, 2, 2, 1]
    assert [record.getMessage() for record in caplog.records] == [
        "CUDA out of memory at batch 7: retrying with batch 4",
        "CUDA out of memory at batch 4: retrying with batch 2",
    ]

    def always(chunk):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_batched(always, tensor, max_batch=4)


def test_upscaler_keeps_the_reduced_batch():
    sizes = []

    def fake(x):
        sizes.append(len(x))
        if len(x) > 2:
            raise torch.cuda.OutOfMemoryError("simulated")
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")

    model = NetworkUpscaler(forward=fake, scale=4, device="cpu")
    model(images(4, 2, 4), 16, [0] * 2)
    assert sizes == [2] and model.max_batch > 2  # a small batch sets no limit
    sizes.clear()
    out = model(images(4, 8, 4), 16, [0] * 8)
    assert out.images.shape == (8, 16, 16, 3) and sizes == [8, 4, 2, 2, 2, 2]
    assert model.max_batch == 2
    sizes.clear()
    model(images(5, 4, 4), 16, [0] * 4)
    assert sizes == [2, 2]


def test_resample_to_reports_kernel_and_native_size():
    def nearest(x):
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")

    batch = images(6, 2, 16)
    # A x4 network on a 16 -> 128 task (x8): 64 px, enlarged with the declared kernel.
    up = NetworkUpscaler(forward=nearest, scale=4, device="cpu")(batch, 128, [0, 0])
    assert up.images.shape == (2, 128, 128, 3)
    assert up.facts[0] == {"native_size": 64, "resampled_with": "pil-bicubic", "precision": "fp32"}
    native = batch.repeat(4, axis=1).repeat(4, axis=2)
    np.testing.assert_array_equal(up.images[1], KERNELS["pil-bicubic"](native[1], 128))
    # Reducing (x8 network on a x4 task), with another kernel.
    small, facts = resample_to(native, 32, "pil-area")
    assert small.shape == (2, 32, 32, 3)
    assert facts == [{"native_size": 64, "resampled_with": "pil-area"}] * 2
    np.testing.assert_array_equal(small, np.stack([KERNELS["pil-area"](im, 32) for im in native]))
    same, facts = resample_to(native, 64)
    assert same is native and facts[0]["resampled_with"] is None
    with pytest.raises(KeyError, match="unknown resampling kernel"):
        resample_to(native, 32, "lanczos")


def test_tiling_matches_the_whole_image_when_overlap_covers_the_receptive_field(tmp_path):
    # Receptive field radius of this net: about 10 input pixels (< the 16 of overlap).
    net = randomize(SRResNet(scale=4, num_feat=8, num_block=1), seed=11)
    calls = []

    def recording(x):
        calls.append(tuple(x.shape[2:]))
        return net(x)

    x = to_tensor(images(7, 1, 40), "cpu")
    with torch.inference_mode():
        expected, got = net(x), tiled(recording, x, scale=4, tile=16, overlap=16)
    assert got.shape == (1, 3, 160, 160)
    assert len(calls) == 9 and max(max(shape) for shape in calls) <= 16 + 2 * 16
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # The option reaches the upscaler: same image within one 8-bit level.
    path = tmp_path / "tiny.pth"
    torch.save(net.state_dict(), path)
    options = {"arch": "srresnet", "weights_path": str(path)}
    batch = images(7, 1, 40)
    whole = build_method(options, "cpu")(batch, 160, [0]).images.astype(int)
    tiles = build_method({**options, "tile": 16}, "cpu")(batch, 160, [0]).images.astype(int)
    assert np.abs(whole - tiles).max() <= 1


def test_importing_the_registry_does_not_import_torch():
    code = (
        "import sys, pipeline.upscale as u; assert 'esrgan' in u.REGISTRY; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_fixed_input_size_is_reached_with_the_declared_kernel():
    def identity(x):
        return x

    batch = images(7, 2, 16)
    # A 1x restoration network of 64 px inputs on a 16 -> 32 task.
    net = NetworkUpscaler(
        forward=identity, scale=1, device="cpu", input_size=64, input_kernel="pil-area"
    )
    up = net(batch, 32, [0, 0])
    assert up.facts[0] == {
        "native_size": 64,
        "resampled_with": "pil-bicubic",
        "input_size": 64,
        "input_resized_with": "pil-area",
        "precision": "fp32",
    }
    brought = np.stack([KERNELS["pil-area"](image, 64) for image in batch])
    expected = np.stack([KERNELS["pil-bicubic"](image, 32) for image in brought])
    np.testing.assert_array_equal(up.images, expected)
    already = net(images(8, 1, 64), 64, [0])
    assert already.facts[0]["input_resized_with"] is None
    np.testing.assert_array_equal(already.images, images(8, 1, 64))


@pytest.mark.parametrize("arch", ["esrgan", "srresnet"])
def test_channels_last_gives_the_outputs_of_the_default_layout(tmp_path, arch):
    """The layout is a speed option: on the CPU the networks' float outputs agree with NCHW
    to float rounding and their 8-bit images within one level; weights and inputs are
    converted, and the facts say so."""
    if arch == "esrgan":
        net = randomize(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4), seed=21)
        options = {"arch": "esrgan"}
    else:
        net = randomize(MSRResNet(num_feat=8, num_block=1), seed=22)
        options = {"arch": "srresnet", "variant": "msrresnet"}
    path = tmp_path / "tiny.pth"
    torch.save(net.state_dict(), path)
    options["weights_path"] = str(path)
    nchw = build_method(options, "cpu")
    nhwc = build_method({**options, "channels_last": True}, "cpu")
    weight = next(nhwc.network.parameters(recurse=True))
    assert weight.ndim == 4 and weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    nhwc.forward = (lambda run: lambda x: seen.append(x) or run(x))(nhwc.forward)
    batch = images(23, 3, 12)
    default, fast = nchw(batch, 48, [0] * 3), nhwc(batch, 48, [0] * 3)
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    assert np.abs(default.images.astype(int) - fast.images.astype(int)).max() <= 1
    assert fast.facts[0]["memory_format"] == "channels_last"
    assert "memory_format" not in default.facts[0]
    x = to_tensor(batch, "cpu")
    with torch.inference_mode():
        reference = nchw.forward(x)
        got = nhwc.forward(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, reference, rtol=0, atol=1e-5)
    check_method("m", {"arch": arch, "weights": "w", "channels_last": True})
    with pytest.raises(ValueError, match=r"methods\.m\.channels_last"):
        check_method("m", {"arch": arch, "weights": "w", "channels_last": "yes"})


def test_channels_last_needs_the_network_module():
    with pytest.raises(ValueError, match="channels_last needs the network module"):
        NetworkUpscaler(forward=lambda x: x, scale=1, device="cpu", channels_last=True)
