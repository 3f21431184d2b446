"""The SRGAN discriminator and the training losses (pipeline/train): shapes, values, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from pipeline.io import InputError  # noqa: E402
from pipeline.train.discriminator import SRGANDiscriminator  # noqa: E402
from pipeline.train.losses import (  # noqa: E402
    SRGAN_FEATURE_SCALE,
    VGGFeatureLoss,
    content_loss,
    gradient_penalty,
    nsgan_discriminator_loss,
    nsgan_generator_loss,
    pixel_mse,
    vgg_layer_names,
    wgan_discriminator_loss,
    wgan_generator_loss,
)

VGG16_FILE = Path(__file__).resolve().parents[2] / "shared" / "weights" / "vgg16_features.pth"
needs_vgg16 = pytest.mark.skipif(
    not VGG16_FILE.is_file(), reason=f"{VGG16_FILE} absent (../shared holds the real VGG16)"
)
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def torchvision_features(arch: str) -> torch.nn.Sequential:
    """torchvision's own ``vgg16/19().features`` (random init), built without the classifier."""
    from torchvision.models import vgg

    torch.manual_seed(0)
    return vgg.make_layers(vgg.cfgs[{"vgg16": "D", "vgg19": "E"}[arch]])


@pytest.fixture(scope="module")
def vgg19_state() -> dict[str, torch.Tensor]:
    """A random-init torchvision VGG19 ``features`` state dict under ``features.N.*`` keys."""
    state = torchvision_features("vgg19").state_dict()
    return {f"features.{k}": v for k, v in state.items()}


@pytest.fixture(scope="module")
def vgg16_state() -> dict[str, torch.Tensor]:
    if not VGG16_FILE.is_file():
        pytest.skip(f"{VGG16_FILE} absent (../shared holds the real VGG16)")
    return torch.load(VGG16_FILE, map_location="cpu", weights_only=True)


def images(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand((n, 3, size, size), generator=torch.Generator().manual_seed(seed))


# --- discriminator -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 96])
def test_discriminator_logits_shape(size: int) -> None:
    net = SRGANDiscriminator(size=size)
    assert net(images(0, n=3, size=size)).shape == (3, 1)
    # The paper's layout: 8 convolutions, 7 batch norms, dense 512*(size/16)^2 -> 1024 -> 1.
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 7
    dense = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [
        (512 * (size // 16) ** 2, 1024),
        (1024, 1),
    ]


@pytest.mark.parametrize("size", [30, 0, 8])
def test_discriminator_refuses_size_not_multiple_of_16(size: int) -> None:
    with pytest.raises(ValueError, match=f"size {size}|positive integer"):
        SRGANDiscriminator(size=size)


def test_discriminator_refuses_input_of_other_size() -> None:
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, 32, 32\)"):
        SRGANDiscriminator(size=32)(images(0, size=48))


def test_discriminator_gradients_flow() -> None:
    net = SRGANDiscriminator(size=32)
    x = images(1, n=2).requires_grad_(True)
    nsgan_generator_loss(net(x)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_discriminator_maps_input_to_minus_one_one() -> None:
    """[0, 1] input is seen as [-1, 1]: the first convolution gets 2x - 1."""
    net = SRGANDiscriminator(size=16, batch_norm=False).eval()
    seen = []
    net.features[0].register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    x = images(2, n=1, size=16)
    net(x)
    torch.testing.assert_close(seen[0], 2 * x - 1)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


# --- VGG feature loss --------------------------------------------------------------------


def test_vgg_layer_table_matches_torchvision() -> None:
    for arch in ("vgg16", "vgg19"):
        reference = torchvision_features(arch)
        names = vgg_layer_names(arch)
        assert len(names) == len(reference)
        for name, module in zip(names, reference, strict=True):
            kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}
            assert isinstance(module, kind[name[:4]]), (arch, name, module)


def test_vgg19_loss_on_random_torchvision_weights(vgg19_state) -> None:
    loss = VGGFeatureLoss(vgg19_state)  # relu5_4: SRGAN's VGG54
    assert loss.layer == "relu5_4" and len(loss.features) == 36
    hr = images(3)
    assert loss(hr, hr.clone()).item() == 0
    sr = images(4).requires_grad_(True)
    value = loss(sr, hr)
    assert value.item() > 0
    value.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in loss.parameters())
    assert not loss.features.training
    loss.train()  # a parent's train() leaves the loss network in eval mode
    assert not loss.features.training


def test_vgg_loss_accepts_bare_keys_and_full_checkpoints(vgg19_state) -> None:
    bare = {k.removeprefix("features."): v for k, v in vgg19_state.items()}
    full = {**vgg19_state, "classifier.0.weight": torch.zeros(4, 4)}
    sr, hr = images(5), images(6)
    reference = VGGFeatureLoss(vgg19_state, layer="relu2_2")(sr, hr)
    assert VGGFeatureLoss(bare, layer="relu2_2")(sr, hr) == reference
    assert VGGFeatureLoss(full, layer="relu2_2")(sr, hr) == reference


@needs_vgg16
def test_vgg16_features_match_torchvision(vgg16_state) -> None:
    """relu2_2 / relu5_3 of the shared VGG16 equal torchvision's own network, times 1/12.75."""
    reference = torchvision_features("vgg16")
    reference.load_state_dict(
        {k.removeprefix("features."): v.float() for k, v in vgg16_state.items()}
    )
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = images(7)
    for layer, index in (("relu2_2", 8), ("relu5_3", 29)):
        loss = VGGFeatureLoss(vgg16_state, layer=layer, arch="vgg16")
        expected = reference[: index + 1]((x - mean) / std) * SRGAN_FEATURE_SCALE
        torch.testing.assert_close(loss.feature_maps(x), expected)
        assert loss(x, x.clone()).item() == 0
        assert loss(images(8), x).item() > 0


@needs_vgg16
def test_vgg_loss_from_shared_file() -> None:
    loss = VGGFeatureLoss.from_file(VGG16_FILE, layer="relu5_3", arch="vgg16")
    assert loss.features[0].weight.dtype == torch.float32  # the file is fp16
    hr = images(9)
    assert loss(hr, hr.clone()).item() == 0
    assert loss(images(10), hr).item() > 0
    with pytest.raises(InputError, match=r"vgg16_features\.pth.*keys fit vgg16"):
        VGGFeatureLoss.from_file(VGG16_FILE)  # vgg19 by default


def test_vgg_loss_refuses_too_short_state_dict(vgg19_state) -> None:
    # The first two blocks only (conv1_1 .. conv2_2, features.0 .. features.7).
    short = {k: v for k, v in vgg19_state.items() if int(k.split(".")[1]) <= 7}
    VGGFeatureLoss(short, layer="relu2_2")  # enough for VGG22
    with pytest.raises(ValueError, match=r"too short for layer 'relu5_4'.*conv3_1 \(features.10\)"):
        VGGFeatureLoss(short, layer="relu5_4")


def test_vgg_loss_refuses_unknown_layer_and_wrong_shapes(vgg19_state, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"vgg16 has no layer 'relu5_4'.*relu5_3"):
        VGGFeatureLoss(vgg19_state, layer="relu5_4", arch="vgg16")
    wrong = {**vgg19_state, "features.0.weight": torch.zeros(64, 1, 3, 3)}
    with pytest.raises(ValueError, match=r"features.0.weight \(64, 1, 3, 3\)"):
        VGGFeatureLoss(wrong)
    path = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(InputError, match=r"vgg\.pth.*too short.*conv1_1"):
        VGGFeatureLoss.from_file(path, layer="relu1_1")


# --- content losses ----------------------------------------------------------------------


def test_content_losses(vgg19_state) -> None:
    sr, hr = images(11), images(12)
    vgg = VGGFeatureLoss(vgg19_state, layer="relu2_2")
    mse = ((2 * sr - 1) - (2 * hr - 1)).pow(2).mean()  # on the paper's [-1, 1] scale
    torch.testing.assert_close(pixel_mse(sr, hr), mse)
    torch.testing.assert_close(content_loss("mse")(sr, hr), mse)
    torch.testing.assert_close(content_loss("vgg", vgg)(sr, hr), vgg(sr, hr))
    torch.testing.assert_close(content_loss("mse+vgg", vgg)(sr, hr), mse + vgg(sr, hr))
    with pytest.raises(ValueError, match="needs a VGGFeatureLoss"):
        content_loss("vgg")
    with pytest.raises(ValueError, match="unknown content loss 'l1'"):
        content_loss("l1")


# --- adversarial losses ------------------------------------------------------------------


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_nsgan_losses_match_hand_computed_values() -> None:
    real = torch.tensor([[0.0], [2.0]])
    fake = torch.tensor([[0.0], [-1.0]])
    # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f).
    expected_d = (softplus(0) + softplus(-2)) / 2 + (softplus(0) + softplus(-1)) / 2
    expected_g = (softplus(0) + softplus(1)) / 2
    assert nsgan_discriminator_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert nsgan_generator_loss(fake).item() == pytest.approx(expected_g, rel=1e-6)
    # Saturated logits stay finite (BCE with logits, not log(sigmoid)).
    assert math.isfinite(nsgan_generator_loss(torch.tensor([-200.0])).item())


def test_wgan_losses() -> None:
    real = torch.tensor([1.0, 3.0])
    fake = torch.tensor([-1.0, 0.0])
    assert wgan_discriminator_loss(real, fake).item() == pytest.approx(-0.5 - 2.0)
    assert wgan_generator_loss(fake).item() == pytest.approx(0.5)


def linear_critic(norm: float, shape: tuple[int, ...]) -> torch.nn.Module:
    """A linear critic whose gradient is the same vector, of 2-norm ``norm``, everywhere."""
    size = math.prod(shape)
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(size, 1))
    with torch.no_grad():
        weight = torch.randn(1, size, generator=torch.Generator().manual_seed(0))
        critic[1].weight.copy_(weight / weight.norm() * norm)
    return critic


def test_gradient_penalty_zero_for_unit_gradient_and_positive_otherwise() -> None:
    real, fake = images(13, n=4, size=8), images(14, n=4, size=8)
    unit = gradient_penalty(linear_critic(1.0, (3, 8, 8)), real, fake)
    assert unit.item() == pytest.approx(0.0, abs=1e-8)
    # gradient norm 2 everywhere: weight * (2 - 1)^2.
    double = linear_critic(2.0, (3, 8, 8))
    penalty = gradient_penalty(double, real, fake, weight=10.0)
    assert penalty.item() == pytest.approx(10.0, rel=1e-5)
    penalty.backward()  # create_graph: the penalty trains the critic
    assert double[1].weight.grad is not None and double[1].weight.grad.abs().sum() > 0


def test_gradient_penalty_per_sample_epsilon_is_reproducible() -> None:
    """With 0.5 ||x||^2 as critic the gradient is x_hat itself: check eps against a redraw."""
    real, fake = images(15, n=3, size=4), images(16, n=3, size=4)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.pow(2).flatten(1).sum(1)

    first = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(42))
    again = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(42))
    other = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(43))
    assert first.item() == again.item() != other.item()
    eps = torch.rand((3, 1, 1, 1), generator=torch.Generator().manual_seed(42))
    norms = (eps * real + (1 - eps) * fake).flatten(1).norm(dim=1)
    torch.testing.assert_close(first, 10.0 * ((norms - 1) ** 2).mean())


def test_gradient_penalty_on_srgan_discriminator() -> None:
    net = SRGANDiscriminator(size=16, batch_norm=False)
    real, fake = images(17, n=2, size=16), images(18, n=2, size=16)
    penalty = gradient_penalty(net, real, fake, generator=torch.Generator().manual_seed(0))
    assert penalty.item() > 0
    penalty.backward()
    assert net.features[0].weight.grad is not None
    with pytest.raises(ValueError, match="differ"):
        gradient_penalty(net, real, fake[:1])
