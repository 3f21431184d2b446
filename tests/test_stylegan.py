"""StyleGAN v1 (PULSE's port): conformance with fixtures made by PULSE's own code.

Fixtures: ``shared/fixtures/stylegan`` (see its README). Tolerance: fp32 on the
CPU, the largest difference within 1e-5 of the largest golden value (the
fixture README's own measure). This implementation does the same operations in
the same order, but the CPU's convolution kernels differ between processors:
on an AMD EPYC the images differ by up to 2.6e-6 of their largest value
(5.4e-5 absolute where values reach 21), which element-wise ``rtol = atol =
1e-5`` rejects; the fixtures themselves vary by 2e-7 of it between 1 and 2
threads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline.upscale.stylegan import (
    StyleGANMapping,
    StyleGANSynthesis,
    UpConv2d,
    block_channels,
    load_mapping,
    load_synthesis,
    synthesis_kwargs_of,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "stylegan"
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
# Of the largest absolute golden value.
MAX_RELATIVE = 1e-5

needs_fixtures = pytest.mark.skipif(
    not (FIXTURES / "golden128.pt").is_file(),
    reason=f"PULSE StyleGAN conformance fixtures not found in {FIXTURES}",
)


def assert_close_to_max(actual: torch.Tensor, golden: torch.Tensor) -> None:
    """Largest difference within ``MAX_RELATIVE`` of the largest ``|golden|`` value."""
    assert actual.shape == golden.shape and actual.dtype == golden.dtype
    difference = float((actual - golden).abs().max())
    bound = MAX_RELATIVE * max(float(golden.abs().max()), 1.0)
    assert difference <= bound, f"max difference {difference:.3g} > {bound:.3g}"


def load_fixture(name: str):
    return torch.load(FIXTURES / name, map_location="cpu", weights_only=True)


@needs_fixtures
def test_case_a_mapping_and_synthesis_match_pulse():
    weights, golden = load_fixture("tiny.pt"), load_fixture("golden.pt")
    mapping = StyleGANMapping(**weights["mapping_kwargs"])
    mapping.load_state_dict(weights["mapping"], strict=True)
    synthesis = StyleGANSynthesis(**weights["synthesis_kwargs"])
    synthesis.load_state_dict(weights["synthesis"], strict=True)
    with torch.no_grad():
        w = mapping(golden["z"])
        image = synthesis(golden["dlatents"], golden["noise"])
    torch.testing.assert_close(w, golden["w"], **TOLERANCE)
    assert_close_to_max(image, golden["image"])
    assert_close_to_max(((image + 1) / 2).clamp(0, 1), golden["image_01"])


@needs_fixtures
def test_case_b_noise_layers_and_fused_upsampling_match_pulse():
    weights, golden = load_fixture("tiny128.pt"), load_fixture("golden128.pt")
    synthesis = StyleGANSynthesis(**weights["synthesis_kwargs"])
    synthesis.load_state_dict(weights["synthesis"], strict=True)
    dlatents = golden["dlatents"].clone()
    noise = [tensor.clone() for tensor in golden["noise"]]
    with torch.no_grad():
        image = synthesis(dlatents, noise)
    assert_close_to_max(image, golden["image"])
    # Inputs are not modified in place.
    assert torch.equal(dlatents, golden["dlatents"])
    assert all(torch.equal(a, b) for a, b in zip(noise, golden["noise"], strict=True))


@needs_fixtures
def test_case_b_detects_the_unfused_path(monkeypatch):
    """The 128 px golden image tells the fused and the nearest+conv paths apart."""
    weights, golden = load_fixture("tiny128.pt"), load_fixture("golden128.pt")
    monkeypatch.setattr(UpConv2d, "FUSED_MIN_INPUT", 10**6)
    synthesis = load_synthesis(weights["synthesis"])
    with torch.no_grad():
        image = synthesis(golden["dlatents"], golden["noise"])
    assert (image - golden["image"]).abs().max() > 1e-2


@needs_fixtures
def test_extra_noise_entries_are_ignored_and_architecture_is_inferred():
    weights, golden = load_fixture("tiny.pt"), load_fixture("golden.pt")
    assert synthesis_kwargs_of(weights["synthesis"]) == weights["synthesis_kwargs"]
    assert synthesis_kwargs_of(load_fixture("tiny128.pt")["synthesis"]) == {
        "resolution": 128,
        "fmap_max": 16,
    }
    synthesis = load_synthesis(weights["synthesis"])
    assert not any(p.requires_grad for p in synthesis.parameters())
    extra = [torch.randn(2, 1, 2 ** (i // 2 + 2), 2 ** (i // 2 + 2)) for i in range(8, 18)]
    with torch.no_grad():
        image = synthesis(golden["dlatents"], [*golden["noise"], *extra])
    assert_close_to_max(image, golden["image"])


@needs_fixtures
def test_full_size_modules_have_pulse_checkpoint_layout():
    layout = json.loads((FIXTURES / "keys_1024.json").read_text())
    with torch.device("meta"):
        synthesis, mapping = StyleGANSynthesis(), StyleGANMapping()

    def describe(module: torch.nn.Module) -> list[list]:
        return [
            [key, list(value.shape), str(value.dtype).removeprefix("torch.")]
            for key, value in module.state_dict().items()
        ]

    assert describe(synthesis) == layout["synthesis"]
    assert describe(mapping) == layout["mapping"]
    assert [name for name, _ in synthesis.named_buffers()] == layout["synthesis_buffers"]
    assert sum(v.numel() for v in synthesis.state_dict().values()) == 24_110_843
    assert layout["synthesis_num_elements"] == 24_110_843
    assert synthesis.num_layers == 18


def test_block_channels_and_strict_roundtrip():
    assert block_channels(1024) == {
        4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16,
    }  # fmt: skip
    with pytest.raises(ValueError, match="power of two"):
        block_channels(48)
    torch.manual_seed(0)
    source = StyleGANSynthesis(resolution=16, fmap_max=8)
    copy = load_synthesis(source.state_dict())
    mapping = load_mapping(StyleGANMapping().state_dict())
    dlatents = torch.randn(1, 6, 512)
    noise = [torch.randn(1, 1, 2 ** (i // 2 + 2), 2 ** (i // 2 + 2)) for i in range(6)]
    with torch.no_grad():
        assert torch.equal(source(dlatents, noise), copy(dlatents, noise))
        assert mapping(torch.randn(3, 512)).shape == (3, 512)
    with pytest.raises(RuntimeError, match="Missing key"):
        StyleGANSynthesis(resolution=32, fmap_max=8).load_state_dict(source.state_dict())
    with pytest.raises(ValueError, match="need 6 noise tensors"):
        copy(dlatents, noise[:5])
