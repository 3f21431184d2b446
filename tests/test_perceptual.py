"""Tests for pipeline.measure.perceptual: LPIPS built offline reproduces the published examples."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch", reason="LPIPS needs torch")
pytest.importorskip("lpips", reason="LPIPS needs the lpips package")

from pipeline.io import InputError  # noqa: E402
from pipeline.measure import perceptual as P  # noqa: E402 (after the import guards)

SHARED = Path(__file__).resolve().parents[2] / "shared"
WEIGHTS = SHARED / "weights"
EXAMPLES = SHARED / "fixtures" / "lpips"
FACES = SHARED / "data" / "ffhq"

ALEX = (WEIGHTS / "alexnet_features.pth", WEIGHTS / "lpips_v0.1_alex_lin.pth")
VGG = (WEIGHTS / "vgg16_features.pth", WEIGHTS / "lpips_v0.1_vgg_lin.pth")

needs_weights = pytest.mark.skipif(
    not all(p.is_file() for p in (*ALEX, *VGG)),
    reason=f"offline LPIPS weights not found in {WEIGHTS} (../shared is absent)",
)
needs_examples = pytest.mark.skipif(
    not (EXAMPLES / "ex_ref.png").is_file(),
    reason=f"LPIPS example images not found in {EXAMPLES} (../shared is absent)",
)


def _load(name: str) -> np.ndarray:
    return np.asarray(Image.open(EXAMPLES / name).convert("RGB"), dtype=np.uint8)[None]


@pytest.fixture(scope="module")
def alex() -> torch.nn.Module:
    if not all(p.is_file() for p in ALEX):
        pytest.skip(f"offline LPIPS weights not found in {WEIGHTS} (../shared is absent)")
    return P.load_lpips("alex", *ALEX, device="cpu")


@pytest.fixture(scope="module")
def examples() -> dict[str, np.ndarray]:
    if not (EXAMPLES / "ex_ref.png").is_file():
        pytest.skip(f"LPIPS example images not found in {EXAMPLES} (../shared is absent)")
    return {name: _load(f"ex_{name}.png") for name in ("ref", "p0", "p1")}


@functools.cache
def _photos() -> tuple[np.ndarray, ...]:
    """The smallest FFHQ photos of ../shared at 128 px (small files decode fast)."""
    paths = sorted(FACES.glob("ffhq_*.png"), key=lambda p: (p.stat().st_size, p.name))[:6]
    return tuple(
        np.asarray(Image.open(p).convert("RGB").resize((128, 128), Image.Resampling.BICUBIC))
        for p in paths
    )


def _faces(count: int) -> np.ndarray:
    if not FACES.is_dir() or len(_photos()) < count:
        pytest.skip(f"need {count} FFHQ photos in {FACES} (../shared is absent)")
    return np.stack(_photos()[:count])


# ---------------------------------------------------------------- values


@needs_weights
@needs_examples
def test_published_example_distances(alex, examples) -> None:
    imgs = np.concatenate([examples["p0"], examples["p1"]])
    refs = np.concatenate([examples["ref"], examples["ref"]])
    got = P.lpips_distance(alex, imgs, refs)
    assert got.dtype == np.float64 and got.shape == (2,)
    np.testing.assert_allclose(got, [0.7219, 0.1376], rtol=0, atol=1e-4)


@needs_weights
@needs_examples
def test_symmetric(alex, examples) -> None:
    forward = P.lpips_distance(alex, examples["p0"], examples["ref"])
    backward = P.lpips_distance(alex, examples["ref"], examples["p0"])
    np.testing.assert_allclose(forward, backward, rtol=0, atol=1e-6)


@needs_weights
def test_identical_images_give_zero(alex) -> None:
    faces = _faces(3)
    np.testing.assert_array_equal(P.lpips_distance(alex, faces, faces.copy()), 0.0)


@needs_weights
def test_batched_equals_one_by_one(alex) -> None:
    faces = _faces(6)
    rng = np.random.default_rng(0)
    noisy = np.clip(faces + rng.normal(0, 12, faces.shape), 0, 255).astype(np.uint8)
    whole = P.lpips_distance(alex, noisy, faces, batch_size=4)  # one full and one partial batch
    single = np.concatenate(
        [P.lpips_distance(alex, noisy[i : i + 1], faces[i : i + 1]) for i in range(len(faces))]
    )
    assert np.all(whole > 0.01)
    np.testing.assert_allclose(whole, single, rtol=0, atol=1e-6)


@needs_weights
@needs_examples
def test_vgg_loads_and_ranks(examples) -> None:
    vgg = P.load_lpips("vgg", *VGG, device="cpu")
    imgs = np.concatenate([examples["p0"], examples["p1"]])
    refs = np.concatenate([examples["ref"], examples["ref"]])
    d_p0, d_p1 = P.lpips_distance(vgg, imgs, refs)
    assert 0 < d_p1 < d_p0 < 1
    # A different network from AlexNet: its distances are not AlexNet's.
    assert abs(d_p0 - 0.7219) > 0.01


@needs_weights
@pytest.mark.parametrize(("net", "paths"), [("alex", ALEX), ("vgg", VGG)])
def test_every_backbone_tensor_comes_from_the_file(net: str, paths: tuple[Path, Path]) -> None:
    model = P.load_lpips(net, *paths)
    features = torch.load(paths[0], map_location="cpu", weights_only=True)
    loaded = {
        f"features.{name.split('.', 1)[1]}": value for name, value in model.net.state_dict().items()
    }
    assert set(loaded) == set(features)
    for key, value in features.items():
        torch.testing.assert_close(loaded[key], value.float(), rtol=0, atol=0)
        assert loaded[key].dtype == torch.float32
    heads = torch.load(paths[1], map_location="cpu", weights_only=True)
    for k in range(5):
        torch.testing.assert_close(model.lins[k].model[1].weight, heads[f"lin{k}.model.1.weight"])


@needs_weights
@needs_examples
def test_full_torchvision_checkpoint_is_accepted(tmp_path: Path, examples) -> None:
    # The weights stage may fetch torchvision's whole checkpoint: classifier keys are ignored.
    features = torch.load(ALEX[0], map_location="cpu", weights_only=True)
    full = {
        **features,
        "classifier.1.weight": torch.zeros(4, 4),
        "classifier.1.bias": torch.zeros(4),
    }
    path = tmp_path / "alexnet-full.pth"
    torch.save(full, path)
    model = P.load_lpips("alexnet", path, ALEX[1])
    got = P.lpips_distance(model, examples["p1"], examples["ref"])
    np.testing.assert_allclose(got, [0.1376], rtol=0, atol=1e-4)


@needs_weights
def test_builds_without_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # torchvision would fetch ImageNet weights into TORCH_HOME if asked for them.
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("LPIPS tried to open a network connection")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    copy = tmp_path / "alex_lin.pth"  # a new path: not served from the load cache
    copy.write_bytes(ALEX[1].read_bytes())
    model = P.load_lpips("alex", ALEX[0], copy)
    assert model is not P.load_lpips("alex", *ALEX)
    assert not (tmp_path / "torch-home").exists()


@needs_weights
def test_load_is_cached() -> None:
    assert P.load_lpips("alex", *ALEX) is P.load_lpips("alex", str(ALEX[0]), str(ALEX[1]), "cpu")


@needs_weights
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_cpu(alex) -> None:
    faces = _faces(4)
    mirrored = np.ascontiguousarray(faces[:, :, ::-1])
    on_gpu = P.load_lpips("alex", *ALEX, device="cuda")
    np.testing.assert_allclose(
        P.lpips_distance(on_gpu, mirrored, faces),
        P.lpips_distance(alex, mirrored, faces),
        rtol=0,
        atol=1e-4,
    )


# ---------------------------------------------------------------- input checks


@needs_weights
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_input_is_refused(alex, dtype) -> None:
    # The classic bug: images in [0, 1] fed where [-1, 1] is expected.
    unit = np.random.default_rng(0).random((1, 64, 64, 3)).astype(dtype)
    with pytest.raises(TypeError, match="uint8"):
        P.lpips_distance(alex, unit, unit)
    as_uint8 = (unit * 255).astype(np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        P.lpips_distance(alex, as_uint8, unit)


@needs_weights
def test_bad_shapes_are_refused(alex) -> None:
    img = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        P.lpips_distance(alex, img, img[:1])
    with pytest.raises(ValueError, match="N x H x W x 3"):
        P.lpips_distance(alex, img[0], img[0])
    with pytest.raises(ValueError, match="N x H x W x 3"):
        P.lpips_distance(alex, img.transpose(0, 3, 1, 2), img.transpose(0, 3, 1, 2))


def test_unknown_backbone() -> None:
    with pytest.raises(ValueError, match="unknown LPIPS backbone"):
        P.load_lpips("squeeze", "a.pth", "b.pth")


def test_missing_file_names_it_and_says_where(tmp_path: Path) -> None:
    missing = tmp_path / "alexnet_features.pth"
    with pytest.raises(FileNotFoundError) as info:
        P.load_lpips("alex", missing, tmp_path / "alex.pth")
    assert str(missing) in str(info.value)
    assert "resources/weights" in str(info.value)


@needs_weights
def test_corrupt_file_names_it(tmp_path: Path) -> None:
    broken = tmp_path / "alexnet_features.pth"
    broken.write_bytes(ALEX[0].read_bytes()[:5000])
    with pytest.raises(InputError) as info:
        P.load_lpips("alex", broken, ALEX[1])
    assert info.value.path == str(broken)


@needs_weights
def test_mismatched_files_are_refused() -> None:
    with pytest.raises(InputError, match="backbone"):
        P.load_lpips("alex", VGG[0], ALEX[1])  # VGG features for AlexNet
    with pytest.raises(InputError, match="linear-head"):
        P.load_lpips("alex", ALEX[0], ALEX[0])  # features given as heads
    with pytest.raises(InputError, match="do not fit") as info:
        P.load_lpips("alex", ALEX[0], VGG[1])  # VGG heads: right keys, wrong shapes
    # Resolved: ../shared may be a link.
    assert Path(info.value.path).resolve() == VGG[1].resolve()


@needs_weights
@pytest.mark.parametrize(("net", "paths"), [("alex", ALEX), ("vgg", VGG)])
def test_the_network_is_the_lpips_package_s(net: str, paths: tuple[Path, Path]) -> None:
    """The network written here (no torchvision import) computes what lpips.LPIPS does
    with the same weights, on real faces."""
    import warnings

    import lpips

    ours = P.load_lpips(net, *paths)
    with warnings.catch_warnings():  # torchvision: `pretrained=False` is deprecated
        warnings.simplefilter("ignore", UserWarning)
        reference = lpips.LPIPS(
            net=net, version="0.1", pretrained=False, pnet_rand=True, verbose=False
        )
    assert set(reference.state_dict()) == set(ours.state_dict())
    reference.load_state_dict(ours.state_dict(), strict=True)
    reference.eval()
    faces = _faces(4)
    rng = np.random.default_rng(1)
    noisy = np.clip(faces + rng.normal(0, 10, faces.shape), 0, 255).astype(np.uint8)
    with torch.no_grad():
        a, b = P._to_input(noisy, torch.device("cpu")), P._to_input(faces, torch.device("cpu"))
        expected = reference(a, b).reshape(-1).double().numpy()
    np.testing.assert_allclose(P.lpips_distance(ours, noisy, faces), expected, rtol=0, atol=1e-6)
