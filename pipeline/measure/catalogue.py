"""The catalogue of metrics: every per-image metric of the benchmark, described once.

The measure stage computes its columns, the summary orders and documents its
rows by it, and the run info, the report's tables and the charts label,
format and rank values with it. A new metric is one entry here plus its
computation in :mod:`pipeline.measure.stage`.

Summary names of metrics computed after a border crop carry the crop
(``psnr_y_crop8``); :func:`split_crop` and :func:`lookup` read them back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "METRICS",
    "METRIC_COLUMNS",
    "SAME_PERSON",
    "Metric",
    "Threshold",
    "display_order",
    "face_metrics",
    "lookup",
    "split_crop",
    "summary_name",
]


@dataclass(frozen=True)
class Threshold:
    """A value with a meaning, drawn on charts (identity's 0.6: the same person)."""

    value: float
    meaning: str


@dataclass(frozen=True)
class Metric:
    """One per-image metric column.

    ``label``: table header (``PSNR (Y)``); ``short``: caption under a gallery
    image (``PSNR-Y``); ``words``: its name in running text (chart alt texts
    and captions); ``axis``: a chart axis's description, before the crop,
    unit and direction. Values print with ``decimals`` digits in ``style``
    (``f`` fixed, ``e`` scientific) and ``unit``. ``family``: metrics that
    measure the same thing (the charts' overview draws one per family).
    ``needs_face``: the metric compares faces, not pixels (identity): images
    without a detected face (centre crops) are not scored in it, and the
    summary counts them as left out with the reason ``centre_crop``; metrics
    that only need the ground truth (PSNR, SSIM, LPIPS, LR consistency) score
    them. ``cropped``: computed after cutting ``crop_border`` pixels, so its
    summary name carries the crop. ``always``: computed for every scored image
    (LPIPS and the identity metrics only when enabled). ``headline``: shown first in the
    report's tables (the first one present ranks the methods). ``charted``:
    drawn per method in the report.
    """

    name: str
    label: str
    short: str
    words: str
    axis: str
    convention: str
    higher_is_better: bool
    family: str
    decimals: int
    unit: str = ""
    style: str = "f"
    needs_face: bool = False
    cropped: bool = False
    always: bool = False
    headline: bool = False
    charted: bool = False
    threshold: Threshold | None = None

    def __str__(self) -> str:
        """The convention as the summary and the report print it (with the face rule)."""
        if self.needs_face:
            return f"{self.convention}; needs a detected face (centre crops left out)"
        return self.convention

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


# dlib's convention for its face descriptors (pipeline.measure.identity).
SAME_PERSON = Threshold(0.6, "same person")


def _lpips(net: str, network: str) -> Metric:
    return Metric(
        f"lpips_{net}",
        label=f"LPIPS ({network})",
        short="LPIPS" if net == "alex" else f"LPIPS-{network}",
        words=f"LPIPS ({network})",
        axis=f"LPIPS ({network}), 0 = identical",
        convention=f"LPIPS v0.1 {network}, RGB scaled to [-1, 1]",
        higher_is_better=False,
        family="LPIPS",
        decimals=4,
        headline=True,
        charted=True,
    )


# In the order of the summary's rows.
METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric(
            "psnr_rgb",
            label="PSNR (RGB)",
            short="PSNR-RGB",
            words="PSNR (RGB)",
            axis="PSNR, RGB",
            convention="8-bit RGB, float64, crop_border px cropped (BasicSR)",
            higher_is_better=True,
            family="PSNR",
            decimals=2,
            unit="dB",
            cropped=True,
            always=True,
            charted=True,
        ),
        Metric(
            "psnr_y",
            label="PSNR (Y)",
            short="PSNR-Y",
            words="PSNR (Y channel)",
            axis="PSNR, Y channel",
            convention="Y of BT.601 limited range (MATLAB rgb2ycbcr), float64, "
            "crop_border px cropped",
            higher_is_better=True,
            family="PSNR",
            decimals=2,
            unit="dB",
            cropped=True,
            always=True,
            headline=True,
            charted=True,
        ),
        Metric(
            "ssim_y",
            label="SSIM (Y)",
            short="SSIM-Y",
            words="SSIM (Y channel)",
            axis="SSIM, Y channel",
            convention="Y, 11x11 Gaussian window sigma 1.5, valid region, crop_border px cropped",
            higher_is_better=True,
            family="SSIM",
            decimals=4,
            cropped=True,
            always=True,
            headline=True,
        ),
        Metric(
            "lr_psnr",
            label="LR PSNR",
            short="LR-PSNR",
            words="low-resolution consistency PSNR",
            axis="PSNR of the downscaled output vs the input",
            convention="output downscaled with the input's kernel vs the input, no crop",
            higher_is_better=True,
            family="LR consistency",
            decimals=2,
            unit="dB",
            always=True,
            charted=True,
        ),
        Metric(
            "lr_mse",
            label="LR MSE",
            short="LR-MSE",
            words="low-resolution consistency MSE",
            axis="MSE of the downscaled output vs the input",
            convention="as lr_psnr, mean squared error of [0, 1] values (SR3)",
            higher_is_better=False,
            family="LR consistency",
            decimals=2,
            style="e",
            always=True,
        ),
        _lpips("alex", "AlexNet"),
        _lpips("vgg", "VGG16"),
        Metric(
            "identity_distance",
            label="Identity distance",
            short="ID dist",
            words="identity distance",
            axis=f"dlib identity distance (< {SAME_PERSON.value}: {SAME_PERSON.meaning})",
            convention=f"dlib face descriptor distance (< {SAME_PERSON.value}: "
            f"{SAME_PERSON.meaning})",
            higher_is_better=False,
            family="identity distance",
            decimals=3,
            needs_face=True,
            headline=True,
            charted=True,
            threshold=SAME_PERSON,
        ),
        # pipeline.measure.arcface: the identity of face-restoration papers ("Deg.").
        Metric(
            "arcface_angle",
            label="ArcFace angle",
            short="ArcFace",
            words="ArcFace identity angle",
            axis="angle between ArcFace embeddings, 0 = same embedding",
            convention="angle (degrees) between ArcFace ResNet-18 embeddings (GFPGAN's "
            "arcface_resnet18) of output and ground truth: BT.601 gray, bilinear to 128 px "
            "without antialiasing, (x - 127.5) / 127.5",
            higher_is_better=False,
            family="ArcFace identity",
            decimals=2,
            unit="°",
            needs_face=True,
            headline=True,
            charted=True,
        ),
        Metric(
            "arcface_cosine",
            label="ArcFace cosine",
            short="ArcFace cos",
            words="ArcFace cosine similarity",
            axis="cosine similarity of ArcFace embeddings, 1 = same embedding",
            convention="cosine similarity in [-1, 1] of the ArcFace embeddings of arcface_angle",
            higher_is_better=True,
            family="ArcFace identity",
            decimals=4,
            needs_face=True,
        ),
    )
}

# Computed for every scored image; LPIPS and the identity metrics only when enabled.
METRIC_COLUMNS = tuple(name for name, metric in METRICS.items() if metric.always)

_CROP_SUFFIX = re.compile(r"_crop(\d+)$")


def face_metrics() -> tuple[str, ...]:
    """Names of the metrics that need a detected face (see :class:`Metric`)."""
    return tuple(name for name, metric in METRICS.items() if metric.needs_face)


def summary_name(name: str, crop: int) -> str:
    """The summary's name of metric ``name`` for a task scored after a ``crop`` px crop."""
    return f"{name}_crop{crop}" if METRICS[name].cropped else name


def split_crop(name: str) -> tuple[str, int | None]:
    """``psnr_y_crop8`` -> ``("psnr_y", 8)``; a name without a crop -> ``(name, None)``."""
    crop = _CROP_SUFFIX.search(name)
    return (name[: crop.start()], int(crop[1])) if crop else (name, None)


def lookup(name: str) -> Metric | None:
    """The catalogue entry of a column or summary name (crop suffix allowed); None if unknown."""
    return METRICS.get(split_crop(name)[0])


def display_order(names: Iterable[str]) -> list[str]:
    """Names as the report shows them: headline metrics, then the others (each in
    catalogue order), then unknown ones by name; crops of one metric by name."""
    ranks = [m for m in METRICS.values() if m.headline] + [
        m for m in METRICS.values() if not m.headline
    ]
    known = [m.name for m in ranks]

    def key(name: str) -> tuple[int, str]:
        base = split_crop(name)[0]
        return (known.index(base) if base in known else len(known), name)

    return sorted(set(names), key=key)
