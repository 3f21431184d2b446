"""DIC and GLEAN (OpenMMLab face SR networks, written here): key layouts, loading, running. CPU.

The expected key names and shapes below are written from OpenMMLab's module
definitions (mmediting 0.x ``dic_net.py``, ``feedback_hour_glass.py``,
``glean_styleganv2.py``, ``stylegan2/modules.py`` and
``generator_discriminator.py``; unchanged in mmagic), not read off the
networks here, so that a renamed or reshaped module fails.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from face_sr_models import (  # noqa: E402
    TINY_DIC,
    TINY_GLEAN,
    dic_checkpoint,
    glean_checkpoint,
    write_face_sr_checkpoints,
)

from pipeline.data.sources import hash_prefix  # noqa: E402
from pipeline.io import InputError  # noqa: E402
from pipeline.measure.quality import psnr, ssim  # noqa: E402
from pipeline.resize import KERNELS  # noqa: E402
from pipeline.upscale import REGISTRY, build_method, check_method  # noqa: E402
from pipeline.upscale import dic as dic_module  # noqa: E402
from pipeline.upscale.dic import MEAN, DICNet, five_part_heatmaps  # noqa: E402
from pipeline.upscale.glean import GLEANStyleGANv2  # noqa: E402
from pipeline.upscale.stylegan2 import (  # noqa: E402
    ModulatedConv2d,
    ToRGB,
    default_channels,
    upfirdn2d,
)
from pipeline.upscale.torch_runtime import round_to_uint8, to_tensor  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def shapes(net: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in net.state_dict().items()}


def images(seed: int, n: int, size: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


# --- key layouts, written from upstream -----------------------------------------------


def test_dic_holds_openmmlab_dicnet_keys_and_shapes():
    with torch.device("meta"):
        found = shapes(DICNet())
    mid, hg = 48, 256
    # Per feedback block: conv_first (conv + bias + PReLU), 6 up and 6 down blocks,
    # 5 lr and 5 hr blocks (3 keys each), conv_last (3).
    feedback = 3 + 6 * 3 * 2 + 5 * 3 * 2 + 3
    fusion = 2 + 7 * 2 * 2
    # Residual blocks: 3 convs (6 keys), plus a 1x1 skip (2) where the width changes.
    pre_conv = 2 + (6 + 2) + 6 + (6 + 2)
    hourglass_depth4 = 4 * (3 * 6) + 6
    hour_glass = pre_conv + 2 + hourglass_depth4 + (6 + 2 + 2)
    assert len(found) == 3 + feedback + (feedback + fusion) + hour_glass + 5 == 296
    expected = {
        "conv_first.0.weight": (4 * mid, 3, 3, 3),
        "conv_first.1.weight": (1,),
        "first_block.conv_first.0.weight": (mid, mid, 1, 1),
        "first_block.up_blocks.5.0.weight": (mid, mid, 12, 12),
        "first_block.up_blocks.5.1.weight": (1,),
        "first_block.down_blocks.0.0.weight": (mid, mid, 12, 12),
        "first_block.lr_blocks.0.0.weight": (mid, 2 * mid, 1, 1),
        "first_block.hr_blocks.4.0.weight": (mid, 6 * mid, 1, 1),
        "first_block.conv_last.0.weight": (mid, 6 * mid, 1, 1),
        "block.conv_first.0.weight": (mid, 2 * mid, 1, 1),
        "block.fusion_block.conv_first.0.weight": (5 * mid, mid, 1, 1),
        "block.fusion_block.body.6.res.2.weight": (5 * mid, mid, 3, 3),
        "block.conv_last.1.weight": (1,),
        "hour_glass.pre_conv_block.0.weight": (hg // 4, 3, 7, 7),
        "hour_glass.pre_conv_block.2.skip_layer.weight": (hg // 2, hg // 4, 1, 1),
        "hour_glass.pre_conv_block.5.conv_block.3.weight": (hg, hg // 2, 1, 1),
        "hour_glass.first_conv.weight": (2 * hg, 2 * hg, 1, 1),
        "hour_glass.hg.up1.conv_block.0.weight": (hg, 2 * hg, 1, 1),
        "hour_glass.hg.low2.low2.low2.low2.conv_block.2.weight": (hg, hg, 3, 3),
        "hour_glass.hg.low2.low2.low2.low3.conv_block.3.bias": (2 * hg,),
        "hour_glass.last.0.conv_block.0.weight": (hg // 2, hg, 1, 1),
        "hour_glass.last.3.weight": (68, hg, 1, 1),
        "conv_last.0.weight": (mid, mid, 8, 8),
        "conv_last.1.weight": (1,),
        "conv_last.2.weight": (3, mid, 3, 3),
    }
    assert {key: found.get(key) for key in expected} == expected
    for absent in (
        "hour_glass.pre_conv_block.4.skip_layer.weight",
        "first_block.lr_blocks.5.0.weight",
    ):
        assert absent not in found


def test_glean_holds_openmmlab_gleanstyleganv2_keys_and_shapes():
    assert default_channels(1024) == {
        4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32
    }  # fmt: skip
    with torch.device("meta"):
        found = shapes(GLEANStyleGANv2(in_size=64, out_size=1024, style_channels=512))
    # StyleGAN2: 8 mapping layers (weight_orig, bias), the constant, conv1 (5: weight,
    # modulation weight and bias, noise weight, activation bias), to_rgb1 (4), per
    # resolution 8..1024 an upsampling conv (5 + blur kernel) and a conv (5) and a
    # to_rgb (4 + upsample kernel), 17 noise maps.
    stylegan = 8 * 2 + 1 + 5 + 4 + 8 * (6 + 5) + 8 * 5 + 17
    assert sum(key.startswith("generator.") for key in found) == stylegan == 171
    rrdb_extractor = 2 + 23 * 3 * 5 * 2 + 2
    encoder = rrdb_extractor + 2 + 4 * 4 + 4
    assert len(found) == stylegan + encoder + 5 * 2 * 2 + (4 * 2 + 4) == 919
    expected = {
        "generator.style_mapping.1.linear.weight_orig": (512, 512),
        "generator.style_mapping.8.bias": (512,),
        "generator.constant_input.input": (1, 512, 4, 4),
        "generator.conv1.conv.weight_orig": (1, 512, 512, 3, 3),
        "generator.conv1.conv.style_modulation.linear.weight_orig": (512, 512),
        "generator.conv1.conv.style_modulation.bias": (512,),
        "generator.conv1.noise_injector.weight": (1,),
        "generator.conv1.activate.bias": (512,),
        "generator.to_rgb1.conv.weight_orig": (1, 3, 512, 1, 1),
        "generator.to_rgb1.bias": (1, 3, 1, 1),
        "generator.convs.0.conv.blur.kernel": (4, 4),
        "generator.convs.14.conv.weight_orig": (1, 32, 64, 3, 3),
        "generator.convs.15.conv.style_modulation.linear.weight_orig": (32, 512),
        "generator.to_rgbs.7.upsample.kernel": (4, 4),
        "generator.to_rgbs.7.conv.weight_orig": (1, 3, 32, 1, 1),
        "generator.injected_noise_0": (1, 1, 4, 4),
        "generator.injected_noise_2": (1, 1, 8, 8),
        "generator.injected_noise_16": (1, 1, 1024, 1024),
        "encoder.0.0.conv_first.weight": (64, 3, 3, 3),
        "encoder.0.0.body.22.rdb3.conv5.weight": (64, 64 + 4 * 32, 3, 3),
        "encoder.0.0.conv_body.weight": (64, 64, 3, 3),
        "encoder.0.1.weight": (512, 64, 3, 3),
        "encoder.1.0.weight": (512, 512, 3, 3),
        "encoder.4.2.bias": (512,),
        "encoder.5.0.weight": (512, 512, 3, 3),
        "encoder.5.3.weight": (18 * 512, 16 * 512),
        "fusion_out.4.weight": (512, 1024, 3, 3),
        "fusion_skip.0.weight": (3, 515, 3, 3),
        "decoder.0.upsample_conv.weight": (4 * 256, 512, 3, 3),
        "decoder.3.upsample_conv.weight": (4 * 32, 2 * 64, 3, 3),
        "decoder.4.0.weight": (64, 2 * 32, 3, 3),
        "decoder.4.2.weight": (3, 64, 3, 3),
    }
    assert {key: found.get(key) for key in expected} == expected
    for absent in ("generator.conv1.conv.blur.kernel", "generator.to_rgb1.upsample.kernel"):
        assert absent not in found
    assert not any(
        key.endswith(".weight") and "convs." in key and "conv.weight" in key for key in found
    )


def test_spandrel_knows_neither_network():
    """Why they are written here: spandrel 0.4.2 has no DIC or GLEAN architecture."""
    spandrel = pytest.importorskip("spandrel")
    from pipeline.upscale.torch_runtime import identify

    ids = {str(support.architecture.id) for support in spandrel.MAIN_REGISTRY.architectures()}
    assert not {arch for arch in ids if "dic" in arch.lower() or "glean" in arch.lower()}
    assert identify(DICNet(**TINY_DIC).state_dict()) is None
    assert identify(GLEANStyleGANv2(**TINY_GLEAN).state_dict()) is None


# --- StyleGAN2 parts: batched grouped convolutions against a per-image loop ------------


def test_modulated_convolutions_match_a_per_image_computation():
    torch.manual_seed(3)
    for upsample in (False, True):
        conv = ModulatedConv2d(6, 5, 3, 7, upsample=upsample)
        x, style = torch.randn(3, 6, 8, 8), torch.randn(3, 7)
        out = conv(x, style)
        assert out.shape == (3, 5, 16 if upsample else 8, 16 if upsample else 8)
        for i in range(3):
            scales = style[i] @ (conv.style_modulation.linear.weight_orig.T / math.sqrt(7))
            scales = scales + conv.style_modulation.bias
            weight = conv.weight_orig[0] / math.sqrt(6 * 9) * scales.view(1, 6, 1, 1)
            weight = weight / weight.pow(2).sum((1, 2, 3), keepdim=True).add(1e-8).sqrt()
            if upsample:
                one = torch.nn.functional.conv_transpose2d(
                    x[i : i + 1], weight.transpose(0, 1), stride=2
                )
                one = upfirdn2d(one, conv.blur.kernel, pad=(1, 1))
            else:
                one = torch.nn.functional.conv2d(x[i : i + 1], weight, padding=1)
            torch.testing.assert_close(out[i : i + 1], one, rtol=1e-4, atol=1e-5)


def test_fir_upsampling_keeps_a_constant_and_doubles_the_size():
    to_rgb = ToRGB(4, 3)
    skip = torch.full((1, 3, 6, 6), 0.7)
    up = to_rgb.upsample(skip)
    assert up.shape == (1, 3, 12, 12)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full((1, 3, 8, 8), 0.7))


def test_five_part_heatmaps_group_the_68_landmarks():
    maps = torch.zeros(1, 68, 4, 4)
    maps[0, 37, 1, 1] = 2.0  # an eye landmark: scaled to its peak, 1
    maps[0, 50, 2, 2] = 0.01  # a mouth landmark below the 0.05 floor: 0.01 / 0.05
    parts = five_part_heatmaps(maps)
    assert parts.shape == (1, 5, 4, 4)
    assert parts[0, 0, 1, 1] == 1.0 and parts[0, 3, 2, 2] == pytest.approx(0.2)
    assert parts.sum() == pytest.approx(1.2)


# --- published wrapper layout: load, run, refuse ---------------------------------------


def test_dic_published_layout_loads_and_runs(tmp_path):
    path = tmp_path / "dic_x8c48b6_g4_150k_CelebAHQ_20210611-5d3439ca.pth"
    checkpoint = dic_checkpoint(1)
    torch.save(checkpoint, path)
    upscaler = build_method({"arch": "dic", "weights_path": str(path)}, "cpu")
    net = upscaler.network
    generator = {k.removeprefix("generator."): v for k, v in checkpoint["state_dict"].items()}
    assert dic_module.hyperparameters(generator, path) == TINY_DIC
    # A 16 px face, and a 32 px one brought to 16 px with the declared kernel.
    larger = images(2, 1, 32)
    batch = np.concatenate([images(1, 1, 16), KERNELS["pil-bicubic"](larger[0], 16)[None]])
    out = upscaler(batch, 128, [0, 0])
    assert out.images.shape == (2, 128, 128, 3)
    assert out.facts[0] == {
        "native_size": 128,
        "resampled_with": None,
        "input_size": 16,
        "input_resized_with": None,
        "precision": "fp32",
    }
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    with torch.inference_mode():
        steps, heatmaps = net.steps(to_tensor(batch, "cpu") - mean)
    assert len(steps) == 4 and heatmaps[-1].shape == (2, 68, 32, 32)
    np.testing.assert_array_equal(out.images, round_to_uint8(steps[-1] + mean))
    brought = upscaler(larger, 128, [0])
    assert brought.facts[0]["input_resized_with"] == "pil-bicubic"
    np.testing.assert_array_equal(brought.images[0], out.images[1])


def test_glean_published_layout_loads_and_runs(tmp_path):
    path = tmp_path / "glean_ffhq_16x_20210527-61a3afad.pth"
    torch.save(glean_checkpoint(2), path)
    upscaler = build_method(
        {"arch": "glean", "weights_path": str(path), "input_kernel": "pil-area"}, "cpu"
    )
    net = upscaler.network
    assert (net.in_size, net.generator.out_size, upscaler.scale) == (8, 32, 4)
    assert net.generator.channels == TINY_GLEAN["channels"]
    batch = images(3, 2, 8)
    out = upscaler(batch, 32, [0, 0])
    with torch.inference_mode():
        expected = round_to_uint8((net(to_tensor(batch, "cpu") * 2 - 1) + 1) / 2)
    np.testing.assert_array_equal(out.images, expected)
    assert len(np.unique(out.images)) > 10  # not a constant image
    again = build_method({"arch": "glean", "weights_path": str(path)}, "cpu")(batch, 32, [0, 0])
    np.testing.assert_array_equal(again.images, out.images)  # stored noise: deterministic
    out = upscaler(images(4, 1, 16), 64, [0])
    assert out.facts[0] == {
        "native_size": 32,
        "resampled_with": "pil-bicubic",
        "input_size": 8,
        "input_resized_with": "pil-area",
        "precision": "fp32",
    }


def test_the_workflow_passes_the_fetched_file_through_the_weight_slot(tmp_path):
    """As the upscale rule builds a method: the config block, and the fetched file by slot."""
    for arch, path in write_face_sr_checkpoints(tmp_path).items():
        upscaler = build_method(
            {"arch": arch, "weights": f"{arch}_random"}, "cpu", {"weights": path}
        )
        out = upscaler(images(5, 1, 16), 64, [0])
        assert out.images.shape == (1, 64, 64, 3)
        assert out.facts[0]["input_size"] == {"dic": 16, "glean": 8}[arch]


def test_wrong_layouts_name_the_file_and_the_keys(tmp_path):
    def fails(name: str, content: dict, arch: str, pattern: str) -> None:
        path = tmp_path / name
        torch.save(content, path)
        with pytest.raises(InputError, match=pattern):
            build_method({"arch": arch, "weights_path": str(path)}, "cpu")

    fails(
        "glean.pth",
        glean_checkpoint(4),
        "dic",
        r"glean\.pth: not a DIC \(DICNet\) checkpoint: no conv_first\.0\.weight",
    )
    fails(
        "dic.pth",
        dic_checkpoint(5),
        "glean",
        r"dic\.pth: not a GLEAN \(GLEANStyleGANv2\) checkpoint",
    )
    renamed = dic_checkpoint(6)
    state = renamed["state_dict"]
    state["generator.hour_glass.hg.up_1.conv_block.0.weight"] = state.pop(
        "generator.hour_glass.hg.up1.conv_block.0.weight"
    )
    fails(
        "renamed.pth",
        renamed,
        "dic",
        r"renamed\.pth: does not fit the DICNet \(key names below the file's generator\. "
        r"prefix\) network: missing keys: hour_glass\.hg\.up1\.conv_block\.0\.weight; "
        r"unexpected keys: hour_glass\.hg\.up_1\.conv_block\.0\.weight",
    )
    fails(
        "ema.pth",
        glean_checkpoint(7, {"generator_ema.encoder.0.0.conv_first.weight": torch.zeros(1)}),
        "glean",
        r"ema\.pth: does not fit the GLEANStyleGANv2 .*unexpected keys: generator_ema\.encoder",
    )
    fails(
        "disc.pth",
        {"meta": {}, "state_dict": {"discriminator.convs.0.0.weight_orig": torch.zeros(1)}},
        "glean",
        r"disc\.pth: OpenMMLab checkpoint without a generator: it holds 1 discriminator\. keys",
    )
    fails(
        "bgr.pth",
        dic_checkpoint(8, {"img_denormalize.bias": torch.tensor(MEAN[::-1])}),
        "dic",
        r"bgr\.pth: DIC checkpoint denormalises with mean .* trained with another normalisation",
    )
    wide = glean_checkpoint(9)
    key = "generator.decoder.0.upsample_conv.weight"
    wide["state_dict"][key] = torch.zeros(4, 16, 3, 3)
    fails(
        "wide.pth",
        wide,
        "glean",
        r"shape mismatches: decoder\.0\.upsample_conv\.weight has shape \(4, 16, 3, 3\) in the "
        r"file, \(32, 16, 3, 3\) expected",
    )


# --- registry and config ---------------------------------------------------------------


def test_methods_are_registered_off_by_default_with_hash_named_weights():
    assert {"dic", "glean"} <= set(REGISTRY)
    check_method("d", {"arch": "dic", "weights": "w", "input_kernel": "pil-area", "bf16": True})
    for options, match in [
        ({"arch": "dic", "weights": "w", "input_kernel": "sinc"}, r"methods\.m\.input_kernel"),
        ({"arch": "glean", "weights": "w", "scale": 16}, r"methods\.m\.scale: unknown option"),
        ({"arch": "glean", "weights": "w", "tile": 64}, r"methods\.m\.tile: unknown option"),
        (
            {"arch": "dic", "weights": "w", "channels_last": True},
            r"methods\.m\.channels_last: unknown option",
        ),
        ({"arch": "glean"}, r"methods\.m\.weights: arch 'glean' needs a checkpoint"),
    ]:
        with pytest.raises(ValueError, match=match):
            check_method("m", options)
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for method, prefix in (("dic", "5d3439ca"), ("glean", "61a3afad")):
        block = config["methods"][method]
        assert block["enabled"] is False
        check_method(method, block)
        assert hash_prefix(config["weights"][block["weights"]]["url"]) == prefix


# --- the published architecture at full size ---------------------------------------------


@pytest.mark.slow  # about 10 s of CPU time
def test_dic_runs_at_full_size_on_a_16_px_face():
    torch.manual_seed(0)
    net = DICNet().eval()
    started = time.process_time()
    with torch.inference_mode():
        out = net(torch.rand(1, 3, 16, 16) - 0.5)
    print(f"DIC full size, one 16 px image: {time.process_time() - started:.1f} s CPU time")
    assert out.shape == (1, 3, 128, 128) and torch.isfinite(out).all()


def test_glean_runs_at_full_size_on_one_64_px_face():
    """The published 64 -> 1024 network, traced on the meta device: every layer's shapes
    fit at full size without the 25 CPU s and 4 GB a real forward pass costs (the
    values at that size are checked against mmediting by benchmarks/face_sr_vs_upstream.py)."""
    with torch.device("meta"):
        net = GLEANStyleGANv2().eval()
        with torch.inference_mode():
            out = net(torch.empty(1, 3, 64, 64))
    assert out.shape == (1, 3, 1024, 1024)


# --- the published-number check, on random weights -------------------------------------


def test_dic_celebahq_benchmark_follows_the_published_protocol(tmp_path, monkeypatch):
    script = REPO / "benchmarks" / "dic_celebahq.py"
    monkeypatch.syspath_prepend(str(script.parent))
    spec = importlib.util.spec_from_file_location("dic_celebahq", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    folder = tmp_path / "test_256"
    folder.mkdir()
    for index, image in enumerate(images(11, 3, 256)):
        Image.fromarray(image).save(folder / f"{index:05d}.png")
    weights = tmp_path / "dic.pth"
    torch.save(dic_checkpoint(12), weights)
    out = tmp_path / "dic.json"
    arguments = ["--images", folder, "--weights", weights, "--limit", 2, "--out", out]
    report = bench.main([str(value) for value in [*arguments, "--device", "cpu"]])
    assert json.loads(out.read_text())["measured"] == report["measured"]
    assert report["images"] == {"folder": str(folder), "count": 2, "sizes": {"256x256": 2}}
    assert report["published"] == {"psnr": 25.2319, "ssim": 0.7422}
    # The first image by hand: Pillow bicubic 256 -> 128 -> 16, network, RGB metrics, crop 8.
    gt = KERNELS["pil-bicubic"](np.asarray(Image.open(folder / "00000.png")), 128)
    sr = build_method({"arch": "dic", "weights_path": str(weights)}, "cpu")(
        KERNELS["pil-bicubic"](gt, 16)[None], 128, [0]
    ).images[0]
    first = report["per_image"][0]
    assert first["image"] == "00000.png"
    assert first["psnr"] == pytest.approx(psnr(sr, gt, crop_border=8, y_channel=False))
    assert first["ssim"] == pytest.approx(ssim(sr, gt, crop_border=8, y_channel=False))
