"""PULSE: downsampler, losses, schedule, Gaussian fit and the search on a tiny 32 px network.

The network is the 32 px one of ``shared/fixtures/stylegan/tiny.pt`` when present,
otherwise one with random weights made here (no test needs the fixture). The
search against numbers made by PULSE's original code: ``test_pulse_conformance.py``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.io import InputError, save_animation
from pipeline.upscale import build_method, check_method, weight_names
from pipeline.upscale.pulse import (
    LATENT_ROWS,
    PulseStart,
    StepRecord,
    bicubic_downsample,
    bicubic_taps,
    draw_start,
    fit_gaussian,
    gaussian_provenance,
    geocross,
    load_gaussian,
    lr_factor,
    parse_loss,
    pulse_downscale,
    pulse_search,
    save_gaussian,
    truncate_to_uint8,
)
from pipeline.upscale.stylegan import (
    StyleGANMapping,
    StyleGANSynthesis,
    load_mapping,
    load_synthesis,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "stylegan"
FAR = 1e-9  # an eps no search reaches in a few steps


# ---------------------------------------------------------------- pure functions


def keys_cubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


def test_bicubic_taps_are_the_stretched_keys_kernel():
    taps = bicubic_taps(4).double()
    raw = np.array([keys_cubic((i - 8 + 0.5) / 4) for i in range(16)])
    np.testing.assert_allclose(taps.numpy(), raw / raw.sum(), rtol=1e-6)
    assert len(taps) == 16 and torch.allclose(taps, taps.flip(0))
    assert abs(float(bicubic_taps(64).double().sum()) - 1) < 1e-6


def test_bicubic_downsample_matches_a_direct_loop():
    """Reflect padding of 3*f (1.5*f before), stride f, rows then columns."""
    factor = 2
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    taps = bicubic_taps(factor).double().numpy()
    array = image[0].double().numpy()

    def reduce(rows: np.ndarray) -> np.ndarray:  # along axis 1 of (C, H, W)
        size = rows.shape[1]
        out = np.zeros((rows.shape[0], size // factor, rows.shape[2]))
        for o in range(size // factor):
            for t, weight in enumerate(taps):
                i = o * factor + t - 3  # 3 = (3 * factor) // 2
                i = -i if i < 0 else (2 * (size - 1) - i if i >= size else i)
                out[:, o] += weight * rows[:, i]
        return out

    expected = reduce(reduce(array).transpose(0, 2, 1)).transpose(0, 2, 1)
    result = bicubic_downsample(image, factor)[0].double().numpy()
    np.testing.assert_allclose(result, expected, atol=1e-6)
    # Factor 1 still filters (4 taps), as PULSE's module does.
    assert not torch.equal(bicubic_downsample(image, 1), image)
    with pytest.raises(ValueError, match="multiple of 3"):
        bicubic_downsample(image, 3)


def test_pulse_downscale_and_to_uint8_truncate_like_torchvision():
    assert truncate_to_uint8(torch.full((1, 3, 1, 1), 0.999))[0, 0, 0].tolist() == [254] * 3
    assert truncate_to_uint8(torch.full((1, 3, 1, 1), 1.5))[0, 0, 0].tolist() == [255] * 3
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    small = pulse_downscale(image, 8)
    assert small.shape == (8, 8, 3) and small.dtype == np.uint8
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    exact = bicubic_downsample(tensor, 4).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255
    assert np.all(small <= exact + 1e-3) and np.all(small > exact - 1)
    with pytest.raises(ValueError, match="square"):
        pulse_downscale(image[:, :16], 8)


def test_geocross_is_zero_for_identical_latents_and_grows_with_spread():
    base = torch.randn(2, 1, 512)
    assert geocross(base.expand(-1, 18, -1)).abs().max() < 1e-8
    spread = torch.randn(2, 18, 512)
    values = geocross(spread)
    assert values.shape == (2,) and (values > 1).all()
    # Order of the layers does not matter; per item, not mixed across the batch.
    torch.testing.assert_close(geocross(spread.flip(1)), values)
    torch.testing.assert_close(geocross(spread[1:]), values[1:])
    # Two antipodal-free orthogonal latents: angle pi/2 on the off-diagonal pairs.
    pair = torch.zeros(1, 2, 512)
    pair[0, 0, 0], pair[0, 1, 1] = 1.0, 1.0
    expected = (2 * (torch.pi / 2) ** 2 * 512 / 4) / 8
    assert abs(float(geocross(pair)[0]) - expected) < 1e-3


def test_linear1cycledrop_schedule_at_key_steps():
    values = {step: lr_factor("linear1cycledrop", step, 100) for step in (0, 30, 45, 90, 95, 99)}
    expected = {0: 0.1, 30: 0.7, 45: 1.0, 90: 0.1, 95: 0.0505, 99: 0.0109}
    for step, value in expected.items():
        assert values[step] == pytest.approx(value, abs=1e-9), step
    assert lr_factor("linear1cycle", 50, 100) == pytest.approx(1.0)
    assert lr_factor("fixed", 7, 100) == 1.0
    with pytest.raises(ValueError, match="unknown lr_schedule"):
        lr_factor("cosine", 0, 100)


def test_parse_loss_and_method_options():
    assert parse_loss("100*L2+0.05*GEOCROSS") == [(100.0, "L2"), (0.05, "GEOCROSS")]
    assert parse_loss("10*L1") == [(10.0, "L1")]
    for bad in ("100*L3", "L2", "x*L2", 5):
        with pytest.raises(ValueError, match="loss"):
            parse_loss(bad)
    nets = {"synthesis": "pulse_synthesis", "mapping": "pulse_mapping"}
    check_method(
        "p", {"arch": "pulse", **nets, "seeds": [0, 1, 2], "steps": 50, "tile_latent": True}
    )
    for key, value in [("steps", 0), ("loss", "2*L3"), ("lr_schedule", "cos"), ("eps", -1)]:
        with pytest.raises(ValueError, match=rf"methods\.p\.{key}"):
            check_method("p", {"arch": "pulse", **nets, key: value})
    with pytest.raises(ValueError, match=r"methods\.p\.synthesis: arch 'pulse' needs a checkpoint"):
        check_method("p", {"arch": "pulse"})


def test_early_stop_is_a_method_of_its_own_name_and_the_gaussian_slot_is_optional():
    nets = {"arch": "pulse", "synthesis": "pulse_synthesis", "mapping": "pulse_mapping"}
    check_method("pulse_early", {**nets, "stop_at_eps": True})
    check_method("pulse", {**nets, "stop_at_eps": False})
    with pytest.raises(ValueError, match=r"methods\.pulse\.stop_at_eps: .*'_early'.*pulse_early"):
        check_method("pulse", {**nets, "stop_at_eps": True})
    assert weight_names(nets) == {"synthesis": "pulse_synthesis", "mapping": "pulse_mapping"}
    given = {**nets, "gaussian": "pulse_gaussian_fit"}
    check_method("pulse", given)
    assert weight_names(given)["gaussian"] == "pulse_gaussian_fit"
    with pytest.raises(ValueError, match=r"methods\.pulse\.gaussian: the name of an entry"):
        check_method("pulse", {**nets, "gaussian": 3})


def test_save_animation_writes_every_frame(tmp_path):
    frames = [np.full((16, 16, 3), value, np.uint8) for value in (0, 120, 250)]
    for name in ("run.gif", "run.webp"):
        save_animation(frames, tmp_path / name, duration_ms=50)
        with Image.open(tmp_path / name) as animation:
            assert animation.n_frames == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.gif", "run.webp"]
    with pytest.raises(ValueError, match=r"gif or \.webp"):
        save_animation(frames, tmp_path / "run.png")


# ---------------------------------------------------------------- tiny network


def tiny_weights() -> dict:
    """PULSE's 32 px test network (fixture), or one made the same way when it is absent.

    Either way the weights are random: these tests check the search, not faces.
    """
    if (FIXTURES / "tiny.pt").is_file():
        return torch.load(FIXTURES / "tiny.pt", map_location="cpu", weights_only=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        mapping = StyleGANMapping()
        synthesis = StyleGANSynthesis(resolution=32, fmap_max=32)
    return {"mapping": mapping.state_dict(), "synthesis": synthesis.state_dict()}


@pytest.fixture(scope="module")
def tiny():
    """The 32 px network, a small Gaussian fit and two 8 px inputs made from generated faces."""
    weights = tiny_weights()
    synthesis = load_synthesis(weights["synthesis"])
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        gaussian = fit_gaussian(weights["mapping"], n_samples=4096, progress=False)
        generator = torch.Generator().manual_seed(123)
        latent = torch.randn(2, 8, 512, generator=generator)
        noise = [torch.randn(2, 1, 2 ** (i // 2 + 2), 2 ** (i // 2 + 2)) for i in range(8)]
        with torch.no_grad():
            dlatents = F.leaky_relu(latent * gaussian["std"] + gaussian["mean"], 0.2)
            hr = ((synthesis(dlatents, noise) + 1) / 2).clamp(0, 1)
    # As the workflow feeds it: 8-bit LR images made with PULSE's downsampler.
    lr = torch.from_numpy(np.stack([pulse_downscale(im, 8) for im in truncate_to_uint8(hr)]))
    lr = lr.permute(0, 3, 1, 2).float() / 255
    return {"weights": weights, "synthesis": synthesis, "gaussian": gaussian, "lr": lr}


def search(tiny, picks, seeds, **options):
    options = {"eps": FAR, "progress": False, **options}
    return pulse_search(tiny["synthesis"], tiny["gaussian"], tiny["lr"][picks], seeds, **options)


@pytest.fixture(scope="module")
def tiny64(tiny):
    """The same network in float64.

    In float32, kernels for other batch sizes round differently, and Adam's first
    step moves every element by about +-lr whatever its gradient's size, so an
    element whose gradient is ~0 moves by rounding noise's sign; in float64 such
    ties are too rare to matter and item independence can be checked tightly.
    """
    return {
        **tiny,
        "synthesis": copy.deepcopy(tiny["synthesis"]).double(),
        "lr": tiny["lr"].double(),
    }


def test_fit_gaussian_is_pulse_formula_in_chunks(tiny):
    mapping_state = tiny["weights"]["mapping"]
    fit = fit_gaussian(mapping_state, n_samples=1000, seed=3, chunk_size=300, progress=False)
    torch.manual_seed(3)
    z = torch.randn(1000, 512)
    with torch.no_grad():
        out = torch.nn.LeakyReLU(5)(load_mapping(mapping_state)(z))
    torch.testing.assert_close(fit["mean"], out.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fit["std"], out.std(0), rtol=1e-4, atol=1e-5)
    # Slope 5 undoes the mapping's final LeakyReLU(0.2): lrelu(fit space, 0.2) is w space.
    with torch.no_grad():
        torch.testing.assert_close(F.leaky_relu(out, 0.2), load_mapping(mapping_state)(z))


def test_gaussian_files_roundtrip_and_bad_files_name_the_file(tmp_path):
    fit = {"mean": torch.randn(512), "std": torch.rand(512) + 0.5}
    save_gaussian(fit, tmp_path / "gaussian_fit.pt", n_samples=1000, seed=0)
    loaded = load_gaussian(tmp_path / "gaussian_fit.pt")
    assert torch.equal(loaded["mean"], fit["mean"]) and torch.equal(loaded["std"], fit["std"])
    assert [p.name for p in tmp_path.iterdir()] == ["gaussian_fit.pt"]
    assert gaussian_provenance(tmp_path / "gaussian_fit.pt").endswith("1000 samples, seed 0")
    # PULSE's own file: a plain {'mean', 'std'} dict.
    torch.save(fit, tmp_path / "theirs.pt")
    assert torch.equal(load_gaussian(tmp_path / "theirs.pt")["std"], fit["std"])
    assert gaussian_provenance(tmp_path / "theirs.pt") == "theirs.pt: given, no provenance recorded"
    torch.save({"mean": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match=r"bad\.pt"):
        load_gaussian(tmp_path / "bad.pt")
    torch.save({"mean": torch.zeros(512), "std": torch.zeros(512)}, tmp_path / "zero.pt")
    with pytest.raises(InputError, match="positive"):
        load_gaussian(tmp_path / "zero.pt")
    with pytest.raises(InputError, match="not found"):
        load_gaussian(tmp_path / "missing.pt")


def test_search_lowers_the_loss_and_keeps_latents_on_their_spheres(tiny):
    start = search(tiny, [0, 1], [4, 9], steps=1)
    later = search(tiny, [0, 1], [4, 9], steps=8)
    for before, after in zip(start.facts, later.facts, strict=True):
        assert after["final_l2"] < 0.7 * before["final_l2"]
        assert after["steps"] == 8 and not after["converged"]
    initial = start.latents  # one step: the returned latent is the initial draw
    torch.testing.assert_close(later.latents.norm(dim=-1), initial.norm(dim=-1))
    assert (later.latents - initial).abs().max() > 0.1
    assert (initial.norm(dim=-1) - 512**0.5).abs().max() < 3  # N(0, I): about sqrt(512)


def test_seeds_are_honoured_per_item_including_zero(tiny):
    first = search(tiny, [0, 0, 0], [0, 1, 0], steps=1)
    # PULSE's 18 latent rows, whatever the generator (the 32 px one reads 8).
    expected = torch.randn((1, LATENT_ROWS, 512), generator=torch.Generator().manual_seed(0))
    assert torch.equal(first.latents[0:1], expected)
    assert torch.equal(first.latents[0], first.latents[2])
    assert not torch.equal(first.latents[0], first.latents[1])
    again = search(tiny, [0, 0, 0], [0, 1, 0], steps=4)
    repeat = search(tiny, [0, 0, 0], [0, 1, 0], steps=4)
    assert torch.equal(again.images, repeat.images)
    assert (again.images[0] - again.images[1]).abs().max() > 0.05


def test_results_do_not_depend_on_batch_composition(tiny64):
    """Same (image, seed) alone or in a batch: the same search, up to float rounding."""
    batch = search(tiny64, [0, 1, 0], [5, 7, 11], steps=5)
    for row, (pick, seed) in enumerate([(0, 5), (1, 7), (0, 11)]):
        alone = search(tiny64, [pick], [seed], steps=5)
        torch.testing.assert_close(alone.images[0], batch.images[row], rtol=0, atol=1e-6)
        torch.testing.assert_close(alone.latents[0], batch.latents[row], rtol=0, atol=1e-6)
        assert alone.facts[0]["best_step"] == batch.facts[row]["best_step"]


def trace(records: list):
    """An ``on_step`` that keeps each step's per-row total, L2 and clamped image."""

    def keep(record: StepRecord) -> None:
        records.append(
            {
                "total": record.total.clone(),
                "mse": record.mse.clone(),
                "image": record.generated.clamp(0, 1),
            }
        )

    return keep


def test_missed_eps_keeps_pulses_best_image(tiny):
    """PULSE returns nothing then; the item keeps PULSE's best_im (first lowest total loss)."""
    records: list = []
    result = search(tiny, [0, 1, 0], [2, 3, 4], steps=6, on_step=trace(records))
    totals = torch.stack([r["total"] for r in records])
    mses = torch.stack([r["mse"] for r in records])
    for item, fact in enumerate(result.facts):
        assert fact["converged"] is False and fact["steps"] == 6 and fact["eps"] == FAR
        best = int(torch.argmin(totals[:, item]))
        assert fact["best_step"] == fact["returned_step"] == best
        assert torch.equal(result.images[item], records[best]["image"][item])
        assert fact["final_l2"] == float(mses[best, item])
        assert fact["min_l2"] == float(mses[:, item].min())
    # The best image is the lowest total loss, not the lowest L2: climbing the L2
    # (a negative weight) makes a later step the best one.
    ascent = search(tiny, [0], [2], steps=4, loss="-100*L2")
    assert ascent.facts[0]["best_step"] > 0
    assert ascent.facts[0]["min_l2"] < ascent.facts[0]["final_l2"]


def test_faithful_search_returns_the_last_image_and_early_stop_the_first_at_eps(tiny64):
    probe = search(tiny64, [0, 1, 0], [3, 3, 8], steps=6)
    lowest = min(range(3), key=lambda item: probe.facts[item]["min_l2"])
    eps = probe.facts[lowest]["min_l2"] * (1 + 1e-9)
    # As PULSE: every step runs; an item whose lowest L2 reached eps returns the LAST image.
    records: list = []
    full = search(tiny64, [0, 1, 0], [3, 3, 8], steps=6, eps=eps, on_step=trace(records))
    for item, fact in enumerate(full.facts):
        assert fact["steps"] == 6
        if item == lowest:
            assert fact["converged"] and fact["returned_step"] == 5
            assert torch.equal(full.images[item], records[5]["image"][item])
        else:
            assert not fact["converged"] and fact["returned_step"] == fact["best_step"]
    # stop_at_eps: the item stops at its first step at eps and returns that image.
    result = search(tiny64, [0, 1, 0], [3, 3, 8], steps=6, eps=eps, stop_at_eps=True)
    for item, fact in enumerate(result.facts):
        if item == lowest:
            assert fact["converged"] and fact["steps"] == fact["returned_step"] + 1 <= 6
            assert fact["final_l2"] <= eps
            image = records[fact["returned_step"]]["image"][item]
            torch.testing.assert_close(result.images[item], image, rtol=0, atol=1e-6)
        else:
            assert fact["steps"] == 6 and not fact["converged"]
            # Left to search alone, the others follow the same path as before.
            torch.testing.assert_close(result.images[item], probe.images[item], rtol=0, atol=1e-6)


def test_given_start_is_used_and_left_unchanged(tiny):
    drawn = draw_start([5, 6], tiny["synthesis"].num_layers)
    assert drawn.latent.shape == (2, LATENT_ROWS, 512) and len(drawn.noise) == 8
    before = drawn.latent.clone()
    given = search(tiny, [0, 1], None, steps=3, start=drawn)
    seeded = search(tiny, [0, 1], [5, 6], steps=3)
    assert torch.equal(given.images, seeded.images) and torch.equal(drawn.latent, before)
    # Three updates, each followed by the projection back onto the starting spheres.
    torch.testing.assert_close(given.end_latents.norm(dim=-1), before.norm(dim=-1))
    assert (given.end_latents - before).abs().max() > 0.1
    with pytest.raises(ValueError, match=r"start latent must be \(2, 18, 512\)"):
        search(tiny, [0, 1], None, steps=1, start=PulseStart(drawn.latent[:, :8], drawn.noise))
    with pytest.raises(ValueError, match="start noise: need 8 layers"):
        search(tiny, [0, 1], None, steps=1, start=PulseStart(drawn.latent, drawn.noise[:4]))


def test_tile_latent_and_intermediate_images(tiny):
    frames = []
    result = search(
        tiny, [1], [0], steps=5, tile_latent=True, save_every=2,
        on_intermediate=lambda item, step, image: frames.append((item, step, image.shape)),
    )  # fmt: skip
    assert result.latents.shape == (1, 1, 512)
    assert frames == [(0, 0, (3, 32, 32)), (0, 2, (3, 32, 32)), (0, 4, (3, 32, 32))]


def test_registered_method_runs_from_files(tiny, tmp_path):
    torch.save(tiny["weights"]["synthesis"], tmp_path / "synthesis.pt")
    save_gaussian(tiny["gaussian"], tmp_path / "gaussian_fit.pt", n_samples=4096, seed=0)
    options = {
        "arch": "pulse",
        "synthesis_path": str(tmp_path / "synthesis.pt"),
        "gaussian_path": str(tmp_path / "gaussian_fit.pt"),
        "steps": 2,
        "save_every": 1,
    }
    config_style = {k: v for k, v in options.items() if not k.endswith("_path")}
    check_method("pulse", {**config_style, "synthesis": "syn", "mapping": "map"})
    model = build_method(options, "cpu")
    batch = truncate_to_uint8(tiny["lr"])
    native = model(batch, 32, [0, 1])
    assert native.images.shape == (2, 32, 32, 3) and native.images.dtype == np.uint8
    assert native.facts[0]["resampled_with"] is None and native.facts[0]["native_size"] == 32
    assert [step for step, _ in native.facts[0]["intermediates"]] == [0, 1]
    larger = model(batch, 48, [0, 1])
    assert larger.images.shape == (2, 48, 48, 3)
    assert larger.facts[1]["resampled_with"] == "pil-bicubic"
    assert set(larger.facts[1]) >= {"converged", "final_l2", "min_l2", "best_step", "steps", "eps"}
    assert larger.facts[1]["gaussian_fit"] == "gaussian_fit.pt: fitted, 4096 samples, seed 0"
    with pytest.raises(ValueError, match="dividing 32"):
        model(np.zeros((1, 12, 12, 3), np.uint8), 32, [0])
    with pytest.raises(InputError, match="missing"):
        build_method({**options, "synthesis_path": str(tmp_path / "missing.pt")}, "cpu")


def test_bf16_autocast_runs_and_stays_close_at_the_start(tiny):
    exact = search(tiny, [0, 1], [1, 2], steps=1)
    rough = search(tiny, [0, 1], [1, 2], steps=1, bf16=True)
    assert rough.images.dtype == torch.float32 and torch.isfinite(rough.images).all()
    assert (rough.images - exact.images).abs().mean() < 0.02
    for a, b in zip(exact.facts, rough.facts, strict=True):
        assert b["final_l2"] == pytest.approx(a["final_l2"], rel=0.05)
