"""GFPGAN v1.4, CodeFormer and RestoreFormer: loading through spandrel, calling, clear refusals.

The checkpoints are random-weight networks at the published size, saved as
the published files are (``tests/face_models.py``, the session fixture
``face_checkpoints``): they test the plumbing, not image quality.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from conftest import REPO

from pipeline.io import InputError
from pipeline.upscale import build_method, check_method, get_arch
from pipeline.workflow import load_config, method_weights

pytest.importorskip("spandrel_extra_arches")
import torch

from pipeline.upscale import face_restoration

ARCHS = ("gfpgan", "codeformer", "restoreformer")


def test_options_are_declared_and_checked():
    for arch in ARCHS:
        options = {"arch": arch, "weights": "x", "input_kernel": "pil-area"}
        check_method("m", {**options, "resample_kernel": "matlab-bicubic", "bf16": True})
        assert get_arch(arch).defaults["input_kernel"] == "pil-bicubic"
        with pytest.raises(ValueError, match=r"methods\.m\.input_kernel"):
            check_method("m", {**options, "input_kernel": "sinc"})
        with pytest.raises(ValueError, match=r"methods\.m\.weights"):
            check_method("m", {"arch": arch})
        with pytest.raises(ValueError, match=r"methods\.m\.seeds"):
            check_method("m", {**options, "seeds": [0, 1]})
    check_method("m", {"arch": "codeformer", "weights": "x", "w": 0})
    assert get_arch("codeformer").defaults["w"] == 0.5
    for bad in (1.5, -0.1, "0.5", True):
        with pytest.raises(ValueError, match=r"methods\.m\.w"):
            check_method("m", {"arch": "codeformer", "weights": "x", "w": bad})
    with pytest.raises(ValueError, match=r"methods\.m\.w: unknown option"):
        check_method("m", {"arch": "gfpgan", "weights": "x", "w": 0.5})
    with pytest.raises(ValueError, match=r"methods\.m\.channels_last: unknown option"):
        check_method("m", {"arch": "gfpgan", "weights": "x", "channels_last": True})


class _Echo(torch.nn.Module):
    """Returns its input as the network's first output, recording the call."""

    def forward(self, x, **kwargs):
        self.seen = (x.clone(), kwargs)
        return x, None


@pytest.mark.parametrize("arch", ARCHS)
def test_networks_see_minus_one_to_one_and_return_zero_to_one(arch):
    echo = _Echo()
    forward = face_restoration.forward_of(arch, echo, w=0.25)
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(forward(x), x)
    seen, kwargs = echo.seen
    torch.testing.assert_close(seen.flatten(), torch.tensor([-1.0, 0.0, 1.0]))
    expected = {
        "gfpgan": {"return_rgb": False, "randomize_noise": False},
        "codeformer": {"weight": 0.25},
        "restoreformer": {},
    }
    assert kwargs == expected[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_published_layouts_load_and_restore(arch, face_checkpoints, torch_one_thread):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    # GFPGAN twice in one batch: with its checkpoint's stored noise, the two agree.
    batch = np.stack([image, image]) if arch == "gfpgan" else image[None]
    options = {"arch": arch, "weights": "w", "resample_kernel": "pil-area"}
    upscaler = build_method(options, "cpu", {"weights": face_checkpoints[arch]})
    seen = []
    upscaler.network.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    result = upscaler(batch, 128, [0] * len(batch))
    assert result.images.shape == (len(batch), 128, 128, 3)
    assert result.images.std() > 0
    assert seen[0].shape == (len(batch), 3, 512, 512)
    assert seen[0].min() < -0.5 and seen[0].max() > 0.5  # [-1, 1], not [0, 1]
    for facts in result.facts:
        assert facts == {
            "input_size": 512,
            "input_resized_with": "pil-bicubic",
            "native_size": 512,
            "resampled_with": "pil-area",
            "precision": "fp32",
        }
    if arch == "gfpgan":
        np.testing.assert_array_equal(result.images[0], result.images[1])


def test_another_architecture_is_refused_by_name(face_checkpoints):
    path = face_checkpoints["codeformer"]
    with pytest.raises(InputError) as caught:
        face_restoration.load(path, "gfpgan")
    message = str(caught.value)
    assert str(path) in message
    assert "is not a GFPGAN checkpoint" in message
    assert "spandrel detects CodeFormer" in message
    assert "keys: encoder.blocks.0.bias" in message and "(515 keys)" in message


def test_an_unknown_layout_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"params": {"body.0.weight": torch.zeros(4, 3, 3, 3)}}, path)
    with pytest.raises(InputError, match=r"other\.pth.*not a RestoreFormer.*detects no arch.*body"):
        face_restoration.load(path, "restoreformer")


def test_a_mis_shaped_tensor_is_named(face_checkpoints, tmp_path):
    state = torch.load(face_checkpoints["gfpgan"], weights_only=True)["params_ema"]
    state["final_linear.weight"] = state["final_linear.weight"][:, :100]
    del state["conv_body_first.bias"]
    state["conv_body_extra.weight"] = torch.zeros(1)  # an unknown tensor is no silent drop
    path = tmp_path / "GFPGANv1.4.pth"
    torch.save({"params_ema": state}, path)
    with pytest.raises(InputError) as caught:
        face_restoration.load(path, "gfpgan")
    message = str(caught.value)
    assert str(path) in message and "does not fit spandrel's GFPGAN network" in message
    assert "conv_body_first.bias" in message and "final_linear.weight" in message
    assert "conv_body_extra.weight" in message


def test_the_shipped_config_checks_with_the_extras_on():
    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    checkpoints = {"gfpgan": "gfpgan_v1_4", "codeformer": "codeformer"}
    checkpoints["restoreformer"] = "restoreformer"
    for method in ARCHS:
        assert shipped["methods"][method]["enabled"] is False
        shipped["methods"][method]["enabled"] = True
    config = load_config(shipped)
    for method, weights in checkpoints.items():
        assert method_weights(config, method) == {"weights": f"resources/weights/{weights}.pth"}
        assert config["weights"][weights]["url"].startswith("https://github.com/")
    shipped["methods"]["codeformer"]["w"] = 2
    with pytest.raises(ValueError, match=r"methods\.codeformer\.w"):
        load_config(shipped)


# The top-level modules of the authors' networks, read from their sources
# (GFPGAN's gfpganv1_clean_arch.py and restoreformer_arch.py, CodeFormer's
# codeformer_arch.py with the VQAutoEncoder it extends): the first component
# of every key of the published files.
UPSTREAM_MODULES = {
    "gfpgan": {
        "conv_body_first",
        "conv_body_down",
        "final_conv",
        "conv_body_up",
        "toRGB",
        "final_linear",
        "stylegan_decoder",
        "condition_scale",
        "condition_shift",
    },
    "codeformer": {
        "encoder",
        "quantize",
        "generator",
        "position_emb",
        "feat_emb",
        "ft_layers",
        "idx_pred_layer",
        "fuse_convs_dict",
    },
    "restoreformer": {"encoder", "decoder", "quantize", "quant_conv", "post_quant_conv"},
}


@pytest.mark.parametrize("arch", ARCHS)
def test_spandrels_networks_have_the_authors_module_names(arch):
    with torch.device("meta"):
        state = face_restoration.untrained(arch).state_dict()
    assert {key.split(".")[0] for key in state} == UPSTREAM_MODULES[arch]
    # And spandrel recognises them as the architecture the method declares.
    found = face_restoration.detected(state, face_restoration.registry())
    assert found == [face_restoration.ARCHITECTURES[arch]]
