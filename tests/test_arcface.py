"""ArcFace identity (pipeline.measure.arcface): layout, protocol, batching, angles, config."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tiny_models import arcface_resnet18_state, write_arcface_checkpoint  # noqa: E402

from pipeline.config import ConfigError, normalize  # noqa: E402
from pipeline.io import InputError  # noqa: E402
from pipeline.measure import arcface  # noqa: E402
from pipeline.measure.catalogue import METRICS, face_metrics  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_arcface_checkpoint(tmp_path_factory.mktemp("arcface") / "arcface.pth", seed=3)


@pytest.fixture(scope="module")
def network(checkpoint: Path) -> torch.nn.Module:
    return arcface.load_arcface(checkpoint)


def faces(count: int, size: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth random RGB images (upscaled noise), uint8 (N, size, size, 3)."""
    rng = np.random.default_rng(seed)
    small = torch.from_numpy(rng.random((count, 3, 8, 8), dtype=np.float32))
    big = torch.nn.functional.interpolate(small, size=(size, size), mode="bicubic")
    return (big.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


# --------------------------------------------------------------------------- the checkpoint


def test_the_published_layout_loads_strictly_with_every_tensor_from_the_file(checkpoint, network):
    state = torch.load(checkpoint, weights_only=True)
    assert all(key.startswith("module.") for key in state)  # saved through DataParallel
    loaded = network.state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key.removeprefix("module.")], value.float()), key
    # The published file predates BN's batch counter: those are the only keys it lacks.
    lacking = {key for key in loaded if f"module.{key}" not in state}
    assert lacking and all(key.endswith("num_batches_tracked") for key in lacking)
    assert tuple(loaded["fc5.weight"].shape) == (512, 512 * 8 * 8)
    assert not network.training


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("se_blocks", "unexpected keys: layer1.0.se.fc.0.weight"),
        ("no_bn5", "missing keys: bn5.weight"),
        ("input_112", "fc5.weight has shape (512, 25088) in the file, (512, 32768) expected"),
    ],
)
def test_another_layout_fails_naming_the_file_and_the_keys(tmp_path, change, named):
    state = arcface_resnet18_state(seed=1)
    if change == "se_blocks":  # use_se=True: a squeeze-excitation block in every IRBlock
        state["module.layer1.0.se.fc.0.weight"] = torch.zeros(4, 64)
    elif change == "no_bn5":
        state = {key: value for key, value in state.items() if ".bn5." not in f".{key}"}
    else:  # a network for 112 px inputs (7 x 7 before fc5)
        state["module.fc5.weight"] = torch.zeros(512, 512 * 7 * 7)
    path = tmp_path / f"{change}.pth"
    torch.save(state, path)
    with pytest.raises(InputError) as caught:
        arcface.load_arcface(path)
    message = str(caught.value)
    assert str(path) in message and "ArcFace" in message and named in message


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(InputError, match=r"missing\.pth"):
        arcface.load_arcface(tmp_path / "missing.pth")


# --------------------------------------------------------------------------- the protocol


def test_gray_uses_bt601_weights_and_scales_to_minus_one_one():
    pure = np.zeros((3, 128, 128, 3), np.uint8)
    for channel in range(3):
        pure[channel, ..., channel] = 255
    gray = arcface.to_network_input(pure, "cpu")
    assert gray.shape == (3, 1, 128, 128) and gray.dtype == torch.float32
    expected = [255 * w / 127.5 - 1 for w in arcface.GRAY_WEIGHTS]
    assert gray[:, 0, 5, 7].tolist() == pytest.approx(expected, abs=1e-6)
    extremes = arcface.to_network_input(np.stack([pure[0] * 0, pure[0] * 0 + 255]), "cpu")
    assert extremes[0].unique().tolist() == [-1.0] and extremes[1].unique().tolist() == [
        pytest.approx(1.0, abs=1e-6)
    ]


def test_resizing_is_bilinear_with_half_pixel_centres_and_no_antialiasing():
    rng = np.random.default_rng(5)
    gray_levels = rng.integers(0, 256, size=(1, 512, 512), dtype=np.uint8)
    image = np.repeat(gray_levels[..., None], 3, axis=-1)  # R = G = B: gray is the level itself
    levels = gray_levels[0].astype(np.float64)
    for size in (128, 256, 512):
        source = levels[:: 512 // size, :: 512 // size] if size < 512 else levels
        got = arcface.to_network_input(image[:, :: 512 // size, :: 512 // size], "cpu")
        got = got[0, 0].double().numpy() * 127.5 + 127.5
        if size == 128:  # already the network's size: not resampled
            expected = source
        elif size == 256:  # x2: the mean of each 2 x 2 block
            expected = source.reshape(128, 2, 128, 2).mean(axis=(1, 3))
        else:  # x4 without antialiasing: the two middle pixels of each 4, per axis
            expected = source.reshape(128, 4, 128, 4)[:, 1:3, :, 1:3].mean(axis=(1, 3))
        np.testing.assert_allclose(got, expected, atol=2e-4, err_msg=f"{size} px")


def test_float_images_are_refused():
    with pytest.raises(TypeError, match="uint8"):
        arcface.to_network_input(np.zeros((1, 128, 128, 3), np.float32), "cpu")
    with pytest.raises(ValueError, match="RGB"):
        arcface.to_network_input(np.zeros((1, 128, 128), np.uint8), "cpu")


def test_embeddings_have_512_values_and_do_not_depend_on_the_batch(network):
    images = faces(5, seed=1)
    together = arcface.embed(network, images, batch_size=5)
    assert together.shape == (5, arcface.EMBEDDING_SIZE) and together.dtype == np.float32
    assert np.isfinite(together).all() and np.ptp(together, axis=0).max() > 0
    one_by_one = np.concatenate([arcface.embed(network, image[None], 1) for image in images])
    in_pairs = arcface.embed(network, images, batch_size=2)
    # float32 convolutions round differently per batch shape: equal to 1e-5 of the scale.
    scale = float(np.abs(together).max())
    np.testing.assert_allclose(one_by_one, together, atol=1e-5 * scale, rtol=0)
    np.testing.assert_allclose(in_pairs, together, atol=1e-5 * scale, rtol=0)
    assert arcface.angle_degrees(one_by_one, together).max() < 1e-3
    small = arcface.embed(network, faces(2, size=64, seed=2), batch_size=2)  # enlarged to 128
    assert small.shape == (2, arcface.EMBEDDING_SIZE) and np.isfinite(small).all()


def test_identical_images_give_angle_zero_and_cosine_one(network):
    images = faces(3, seed=4)
    both = arcface.embed(network, np.concatenate([images, images]), 6)
    first, second = both[:3], both[3:]
    assert arcface.angle_degrees(first, second).tolist() == [0.0, 0.0, 0.0]
    assert arcface.cosine_similarity(first, second) == pytest.approx([1.0] * 3, abs=1e-12)
    # Embedded in other batches, float32 rounding leaves a trace far below a reported digit.
    alone = arcface.embed(network, images[::-1], 1)[::-1]
    assert arcface.angle_degrees(first, alone).max() < 1e-3
    assert (arcface.angle_degrees(first, np.roll(first, 1, axis=0)) > 1).all()


# --------------------------------------------------------------------------- cosine and angle


def test_cosine_and_angle_of_known_vectors():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [2.0, 2.0], [3.0, 4.0]])
    b = np.array([[0.0, 5.0], [-2.0, 0.0], [1.0, 1.0], [1.0, 0.0], [6.0, 8.0]])
    assert arcface.cosine_similarity(a, b) == pytest.approx(
        [0.0, -1.0, math.sqrt(0.5), math.sqrt(0.5), 1.0]
    )
    assert arcface.angle_degrees(a, b) == pytest.approx([90.0, 180.0, 45.0, 45.0, 0.0])
    assert arcface.angle_degrees(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(
        [90.0]
    )
    assert np.isnan(arcface.cosine_similarity(np.zeros(3), np.ones(3))).all()
    assert np.isnan(arcface.angle_degrees(np.zeros(3), np.ones(3))).all()


def test_the_angle_is_the_arccos_of_the_cosine():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(50, 512)), rng.normal(size=(50, 512))
    b[:10] = a[:10] + 0.3 * b[:10]  # some close pairs
    np.testing.assert_allclose(
        arcface.angle_degrees(a, b),
        np.degrees(np.arccos(arcface.cosine_similarity(a, b))),
        rtol=1e-9,
    )


# --------------------------------------------------------------------------- the stage's scorer


def test_the_metric_fills_rows_in_batches_and_embeds_each_ground_truth_once(
    checkpoint, network, monkeypatch
):
    from pipeline.measure.stage import ArcFaceMetric, Pair

    truths, outputs = faces(3, seed=8), faces(6, seed=9)
    embedded: list[int] = []
    original = arcface.embed

    def counting(net, images, batch_size=32):
        embedded.append(len(images))
        return original(net, images, batch_size)

    monkeypatch.setattr(arcface, "embed", counting)
    metric = ArcFaceMetric({"batch_size": 4}, {"arcface": checkpoint}, None, "cpu")
    rows = [{"image_id": f"i{k // 2}", "seed": k % 2} for k in range(6)]
    for k, row in enumerate(rows):
        metric.add(k, Pair(row["image_id"], outputs[k], truths[k // 2], True), rows)
    metric.add(6, Pair("no_face", outputs[0], truths[0], False), rows)  # skipped: no face
    assert all(arcface.ANGLE in row for row in rows[:4]) and arcface.ANGLE not in rows[4]
    metric.finish(rows)
    assert sum(embedded) == 3 + 6  # three ground truths, six outputs
    expected_angle = arcface.angle_degrees(
        original(network, outputs, 6), original(network, np.repeat(truths, 2, axis=0), 6)
    )
    assert [row[arcface.ANGLE] for row in rows] == pytest.approx(expected_angle, abs=1e-4)
    assert all(-1 <= row[arcface.COSINE] <= 1 for row in rows)


def test_images_of_mixed_sizes_are_embedded_one_by_one(network):
    small, big = faces(1, size=64, seed=1)[0], faces(1, size=128, seed=2)[0]
    together = arcface.embed(network, [small, big], batch_size=2)
    np.testing.assert_allclose(together[0], arcface.embed(network, small[None])[0], atol=1e-5)
    np.testing.assert_allclose(together[1], arcface.embed(network, big[None])[0], atol=1e-5)


def test_the_catalogue_declares_both_columns_as_face_metrics():
    angle, cosine = METRICS[arcface.ANGLE], METRICS[arcface.COSINE]
    assert not angle.higher_is_better and cosine.higher_is_better
    assert angle.family == cosine.family != METRICS["identity_distance"].family
    assert {arcface.ANGLE, arcface.COSINE} <= set(face_metrics())
    assert "arcface_resnet18" in str(angle) and "centre crops left out" in str(angle)


# --------------------------------------------------------------------------- config


def minimal_config(**measure) -> dict:
    return {
        "run_name": "r",
        "datasets": {"f": {"source": {"path": "faces"}}},
        "tasks": [{"lr": 16, "hr": 64}],
        "kernels": ["pil-bicubic"],
        "methods": {"bicubic": {"arch": "interpolate"}},
        "weights": {"arc": {"path": "arc.pth"}},
        "measure": {"lpips": {"enabled": False}, **measure},
    }


def test_arcface_is_off_unless_enabled_and_its_checkpoint_is_fetched_only_then():
    from pipeline.workflow import arcface_options, measure_gpus, measure_weights

    off = normalize(minimal_config())
    assert off["measure"]["arcface"] == {
        "enabled": False, "weights": "arcface_resnet18", "batch_size": 32,
    }  # fmt: skip
    assert measure_weights(off) == {} and measure_gpus(off) == 0
    on = normalize(minimal_config(arcface={"enabled": True, "weights": "arc"}))
    assert measure_weights(on) == {"arcface": "resources/weights/arc.pth"}
    assert measure_gpus(on) == 1
    assert arcface_options(on) == {"batch_size": 32, "enabled": True}
    with pytest.raises(ConfigError, match=r"measure\.arcface\.weights: no checkpoint named 'nope'"):
        normalize(minimal_config(arcface={"enabled": True, "weights": "nope"}))


def test_the_checkpoint_is_found_among_snakemakes_named_inputs_or_named_missing():
    from snakemake.iocontainers import InputFiles  # `in` of this list looks at values

    inputs = InputFiles(fromdict={"faces": "faces.parquet", "arcface": "arc.pth"})
    assert "arcface" not in inputs and arcface.checkpoint_of(inputs, "measure") == "arc.pth"
    for missing in (InputFiles(fromdict={"faces": "faces.parquet"}), {}, None):
        with pytest.raises(ValueError, match="reference_features: ArcFace is enabled, but its"):
            arcface.checkpoint_of(missing, "reference_features")
