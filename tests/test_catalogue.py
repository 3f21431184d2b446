"""The metric catalogue: one description per metric, read by every stage that shows one."""

from __future__ import annotations

import pytest

from pipeline.measure.catalogue import (
    METRIC_COLUMNS,
    METRICS,
    SAME_PERSON,
    display_order,
    face_metrics,
    lookup,
    split_crop,
    summary_name,
)
from pipeline.measure.identity import SAME_PERSON_THRESHOLD


def test_the_catalogue_declares_which_metrics_need_a_face() -> None:
    assert face_metrics() == ("identity_distance", "arcface_angle", "arcface_cosine")
    identity = METRICS["identity_distance"]
    assert str(identity).startswith(identity.convention) and "centre crops left out" in str(
        identity
    )
    assert str(METRICS["psnr_y"]) == METRICS["psnr_y"].convention


def test_every_scored_image_gets_the_pixel_metrics_and_optional_ones_follow() -> None:
    assert METRIC_COLUMNS == ("psnr_rgb", "psnr_y", "ssim_y", "lr_psnr", "lr_mse")
    assert list(METRICS)[len(METRIC_COLUMNS) :] == [
        "lpips_alex",
        "lpips_vgg",
        "identity_distance",
        "arcface_angle",
        "arcface_cosine",
    ]


def test_crops_go_into_summary_names_and_come_back_out() -> None:
    assert summary_name("psnr_y", 8) == "psnr_y_crop8"
    assert summary_name("lr_psnr", 8) == "lr_psnr"
    assert split_crop("ssim_y_crop4") == ("ssim_y", 4)
    assert split_crop("lpips_alex") == ("lpips_alex", None)
    assert lookup("psnr_rgb_crop2") is METRICS["psnr_rgb"]
    assert lookup("mystery") is None


def test_headline_metrics_lead_the_report_order() -> None:
    names = [
        "lr_mse",
        "psnr_rgb_crop4",
        "mystery",
        "identity_distance",
        "psnr_y_crop4",
        "ssim_y_crop4",
    ]
    assert display_order(names) == [
        "psnr_y_crop4",
        "ssim_y_crop4",
        "identity_distance",
        "psnr_rgb_crop4",
        "lr_mse",
        "mystery",
    ]


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_is_described_for_tables_and_charts(name: str) -> None:
    metric = METRICS[name]
    assert metric.name == name and metric.label and metric.short and metric.words
    assert metric.convention and metric.decimals >= 0 and metric.style in ("f", "e")


def test_the_same_person_threshold_is_the_identity_metrics_own() -> None:
    assert (
        SAME_PERSON_THRESHOLD == SAME_PERSON.value == METRICS["identity_distance"].threshold.value
    )
    assert f"< {SAME_PERSON.value}" in METRICS["identity_distance"].convention
