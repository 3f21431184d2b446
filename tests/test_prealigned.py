"""Alignment policies: the prealigned template, the detection stage under ``detect`` and
``prealigned``, and how the metric stage scores centre crops."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.data.kinds import croppedyale
from pipeline.geometry import CENTRE_SQUARE, Template, center_square_quad, map_to_aligned
from pipeline.io import save_png, write_parquet
from pipeline.measure.stage import measure
from pipeline.prepare.align import align, align_face, eye_centres
from pipeline.prepare.detect import detect_faces
from pipeline.prepare.downscale import downscale
from pipeline.upscale.stage import upscale
from pipeline.vocabulary import ALIGNED, CENTRE_CROP, DETECT, PREALIGNED

CROPPED_ZIP = Path(__file__).resolve().parents[2] / "shared" / "mirror" / "CroppedYale.zip"
DETECTOR = {"kind": "hog", "upsample": 1, "pad": 0.0, "min_size": 0, "max_size": 2048}
# Frontal light (HOG finds these faces) and steep light (it finds none, checked on the data).
FRONTAL = [f"yaleB{n:02d}/yaleB{n:02d}_P00A+000E+00.pgm" for n in (1, 2, 3, 4, 5, 6)]
STEEP = ["yaleB01/yaleB01_P00A+120E+00.pgm", "yaleB02/yaleB02_P00A-110E+65.pgm"]


def _gradient(width: int, height: int) -> Image.Image:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    smooth = np.stack([xs * 2.5, ys * 2.0, 128 + 100 * np.sin(xs / 9) * np.cos(ys / 13)], axis=-1)
    return Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------- Template


def test_template_quad_is_the_declared_square() -> None:
    template = Template("demo", (60, 80), left=0, top=12, side=60)
    quad = template.quad(60, 80)
    np.testing.assert_allclose(quad, [[-0.5, 11.5], [-0.5, 71.5], [59.5, 71.5], [59.5, 11.5]])
    image = _gradient(60, 80)
    aligned = np.asarray(align_face(image, quad, 48), dtype=float)
    reference = np.asarray(
        image.crop((0, 12, 60, 72)).resize((48, 48), Image.Resampling.LANCZOS), float
    )
    shifted = np.asarray(
        image.crop((0, 14, 60, 74)).resize((48, 48), Image.Resampling.LANCZOS), float
    )
    # The declared square, not one 2 px lower (resampling paths differ slightly).
    assert np.abs(aligned - reference).mean() < 0.5 * np.abs(aligned - shifted).mean()


def test_template_checks_sizes_and_round_trips() -> None:
    template = croppedyale.TEMPLATE
    with pytest.raises(ValueError, match=r"'croppedyale' is declared for 168x192 .* 640x480"):
        template.quad(640, 480)
    with pytest.raises(ValueError, match="inside the 168x192 source"):
        Template("too low", (168, 192), top=30, side=168)
    assert Template.from_dict(template.as_dict()) == template
    # Without a declared size: the largest centred square of any image.
    np.testing.assert_array_equal(CENTRE_SQUARE.quad(200, 150), center_square_quad(200, 150))
    assert CENTRE_SQUARE.eye_positions(128) is None
    # The typical eyes map through the template's square into the output.
    eyes = template.eye_positions(168)
    np.testing.assert_allclose(eyes, np.array(template.eyes) - (0, template.top), atol=1e-9)


# --------------------------------------------------------------------------- real images


@pytest.fixture(scope="module")
def yale_b(tmp_path_factory) -> dict[str, Path]:
    """A few real Extended Yale B crops, cataloged by their own kind; paths of the stages."""
    if not CROPPED_ZIP.is_file():
        pytest.skip(f"{CROPPED_ZIP} is absent (the real data lives in ../shared)")
    root = tmp_path_factory.mktemp("yaleb")
    with zipfile.ZipFile(CROPPED_ZIP) as archive:
        for member in FRONTAL + STEEP:
            archive.extract(f"CroppedYale/{member}", root)
    manifest = croppedyale.catalog(root, {})
    assert (manifest["status"] == "ok").all() and len(manifest) == len(FRONTAL + STEEP)
    write_parquet(root / "manifest.parquet", manifest)
    faces = {}
    for policy in (DETECT, PREALIGNED):
        template = croppedyale.TEMPLATE.as_dict() if policy == PREALIGNED else None
        faces[policy] = root / policy / "faces.parquet"
        detect_faces(
            root / "manifest.parquet", "0000", 100, DETECTOR, "largest", "center_crop",
            faces[policy], alignment={"policy": policy, "template": template},
        )  # fmt: skip
    return {"root": root, **faces}


def test_detection_is_recorded_under_both_policies(yale_b) -> None:
    detect = pd.read_parquet(yale_b[DETECT]).set_index("image_id")
    prealigned = pd.read_parquet(yale_b[PREALIGNED]).set_index("image_id")
    frontal = [Path(m).stem for m in FRONTAL]
    steep = [Path(m).stem for m in STEEP]
    assert set(detect.loc[frontal, "alignment"]) == {ALIGNED}
    assert set(detect.loc[steep, "alignment"]) == {CENTRE_CROP}
    # Prealigned: every image through the template, whether or not a face was found...
    assert set(prealigned["alignment"]) == {PREALIGNED}
    template_quad = croppedyale.TEMPLATE.quad(168, 192).ravel()
    for quad in prealigned["quad"]:
        np.testing.assert_allclose(quad, template_quad)
    # ...and the detector's findings are kept as they are.
    pd.testing.assert_frame_equal(
        prealigned[["status", "reason", "n_faces", "box_left", "score"]],
        detect[["status", "reason", "n_faces", "box_left", "score"]],
    )
    assert set(prealigned.loc[steep, "status"]) == {"fallback"}
    assert all(len(points) == 136 for points in prealigned.loc[frontal, "landmarks"])


def test_template_eyes_match_the_detected_eyes(yale_b) -> None:
    """The declared template agrees with the data: frontal-lit eyes land near its eyes."""
    faces = pd.read_parquet(yale_b[PREALIGNED]).set_index("image_id")
    expected = croppedyale.TEMPLATE.eye_positions(128)
    for image_id in (Path(m).stem for m in FRONTAL):
        row = faces.loc[image_id]
        landmarks = np.asarray(row["landmarks"]).reshape(68, 2)
        quad = np.asarray(row["quad"]).reshape(4, 2)
        found = map_to_aligned(eye_centres(landmarks), quad, 128)
        # Measured on these six: at most 6.2 px (of 128) from the template's median eyes.
        assert np.abs(found - expected).max() < 10, image_id


def test_centre_crops_are_scored_but_not_in_identity(yale_b) -> None:
    root, faces = yale_b["root"], yale_b[DETECT]
    aligned, lr, sr = root / "aligned", root / "lr", root / "sr"
    align(faces, 64, aligned)
    downscale(aligned, 16, "pil-bicubic", lr)
    bicubic = {"arch": "interpolate", "filter": "bicubic", "seeds": [0], "batch_size": 16}
    upscale(lr, 64, bicubic, sr, device="cpu")
    identity = {"enabled": True, "fallback": "aligned_box", "landmarks": 5, "upsample": None}
    table = measure(
        faces, aligned, lr, sr, root / "m.parquet",
        dataset="b", method="bicubic", kernel="pil-bicubic", lr=16, hr=64, seeds=[0],
        crop_border=4, identity=identity, device="cpu",
    ).set_index("image_id")  # fmt: skip
    assert (table["status"] == "ok").all() and (table["reason"] == "").all()
    assert table[["psnr_y", "ssim_y", "lr_psnr"]].notna().all().all()
    crops = table["alignment"] == CENTRE_CROP
    assert sorted(table.index[crops]) == sorted(Path(m).stem for m in STEEP)
    assert table.loc[crops, "identity_distance"].isna().all()
    assert table.loc[~crops, "identity_distance"].notna().all()


def test_an_image_the_template_does_not_fit_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    save_png(path, np.asarray(_gradient(100, 90)))
    manifest = pd.DataFrame(
        {"image_id": ["wide"], "path": [str(path)], "status": ["ok"], "reason": [""]}
    )
    write_parquet(tmp_path / "manifest.parquet", manifest)
    alignment = {"policy": PREALIGNED, "template": croppedyale.TEMPLATE.as_dict()}
    faces = detect_faces(
        tmp_path / "manifest.parquet", "0000", 10, DETECTOR, "largest", "skip",
        tmp_path / "faces.parquet", alignment=alignment,
    )  # fmt: skip
    row = faces.iloc[0]
    assert row["status"] == "error" and "declared for 168x192" in row["reason"]
    assert row["alignment"] is None
    # Under detect the same image (no face) follows no_face: skip, left out.
    skipped = detect_faces(
        tmp_path / "manifest.parquet", "0000", 10, DETECTOR, "largest", "skip",
        tmp_path / "faces2.parquet",
    )  # fmt: skip
    assert skipped.iloc[0]["status"] == "no_face" and skipped.iloc[0]["alignment"] is None
