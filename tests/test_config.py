"""Config validation: wrong keys and values stop the workflow at start-up, naming the key."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO, run_snakemake

from pipeline.config import SCHEMA, ConfigError, apply_schema, crop_border, normalize
from pipeline.data.kinds import KINDS, croppedyale
from pipeline.data.sources import effective_source
from pipeline.geometry import CENTRE_SQUARE, Template
from pipeline.measure.perceptual import NETS
from pipeline.resize import KERNELS
from pipeline.workflow import (
    catalog_options,
    dataset_alignment,
    detector_options,
    identity_options,
    load_config,
    method_identity,
)

BASE = {
    "run_name": "t",
    "datasets": {"faces": {"source": {"path": "/data/faces"}}},
    "tasks": [{"lr": 16, "hr": 128}],
    "kernels": ["pil-bicubic"],
    "methods": {"bicubic": {"arch": "interpolate"}},
    "measure": {"lpips": {"enabled": False}},
}


def dry_run_with(tiny_project, override: dict):
    config = yaml.safe_load((tiny_project / "config.yaml").read_text())
    for dotted, value in override.items():
        *parents, leaf = dotted.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[leaf] = value
    (tiny_project / "config.yaml").write_text(yaml.safe_dump(config))
    return run_snakemake(tiny_project, "--dry-run", "--cores", "1", check=False)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"datasets.folder.sorce": {"path": "x"}}, "sorce"),
        ({"kernels": ["pil-bicubc"]}, "pil-bicubc"),
        ({"shard_size": 0}, "shard_size"),
        ({"tasks": [{"lr": 16, "hr": 128, "scale": 2}]}, "scale"),
        ({"methods.bicubic.filter": "cubic"}, "methods.bicubic.filter"),
        ({"methods.bicubic.fliter": "bicubic"}, "methods.bicubic.fliter"),
        ({"methods.bicubic.seeds": [0, 1]}, "methods.bicubic.seeds"),
        ({"tasks": [{"lr": 64, "hr": 32}]}, "tasks[0]"),
        ({"datasets.folder.alignment": "exact"}, "exact"),
    ],
)
def test_bad_config_fails_at_start_naming_the_key(tiny_project, override, named):
    result = dry_run_with(tiny_project, override)
    assert result.returncode != 0
    assert named in result.stdout + result.stderr


def test_source_override_from_command_line(tiny_project):
    """--config replaces a data set's source; a path then wins over a merged url."""
    target = tiny_project / "elsewhere"
    target.mkdir()
    result = run_snakemake(
        tiny_project, "--dry-run", "--cores", "1", "--printshellcmds",
        "--config", f"datasets={{zipped: {{source: {{path: {target}}}}}}}",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    normalized = normalize(
        {**BASE, "datasets": {"d": {"source": {"url": "http://x/y.zip", "path": "/p"}}}}
    )
    assert effective_source(normalized["datasets"]["d"]["source"]) == {"path": "/p"}


def test_normalize_fills_defaults():
    out = normalize(BASE)
    assert out["datasets"]["faces"]["detector"] == {
        "kind": "hog",
        "upsample": 1,
        "pad": 0.0,
        "min_size": 0,
        "max_size": 2048,
    }
    assert out["methods"]["bicubic"]["seeds"] == [0]
    assert out["measure"]["crop_border"] == "scale"


def test_all_methods_disabled_is_an_error():
    with pytest.raises(ConfigError, match="disabled"):
        normalize({**BASE, "methods": {"bicubic": {"arch": "interpolate", "enabled": False}}})


def test_crop_border_is_the_scale_by_default():
    assert crop_border("scale", 16, 128) == 8
    assert crop_border(0, 16, 128) == 0


def test_an_extra_config_file_can_drop_a_data_set(tiny_project):
    extra = tiny_project / "extra.yaml"
    extra.write_text(yaml.safe_dump({"datasets": {"zipped": {"enabled": False}}}))
    result = run_snakemake(tiny_project, "--dry-run", "--cores", "1", "--configfile", str(extra))
    assert "resources/data/folder/source/record.json" in result.stdout
    assert "zipped" not in result.stdout
    with pytest.raises(ConfigError, match="every data set is disabled"):
        normalize({**BASE, "datasets": {"d": {"source": {"path": "/p"}, "enabled": False}}})


def test_lpips_needs_its_checkpoints_and_methods_theirs():
    with pytest.raises(ConfigError, match=r"measure\.lpips\.features: no checkpoint named"):
        normalize({**BASE, "measure": {}})
    esrgan = {"arch": "esrgan", "weights": "absent"}
    with pytest.raises(ConfigError, match=r"methods\.sr\.weights: no checkpoint named 'absent'"):
        load_config({**BASE, "methods": {"sr": esrgan}})


def test_source_precedence_path_npm_url():
    merged = {"url": "http://x/y.tgz", "npm": "openmoji", "version": "17.0.0", "path": "/p"}
    assert effective_source(merged) == {"path": "/p"}
    merged.pop("path")
    assert effective_source(merged) == {"npm": "openmoji", "version": "17.0.0"}


def test_lr_source_size_must_exceed_every_lr() -> None:
    config = {**BASE, "prepare": {"lr_source_size": 16}}
    with pytest.raises(ConfigError, match=r"prepare\.lr_source_size: 16 must be larger"):
        normalize(config)
    assert normalize({**BASE, "prepare": {"lr_source_size": 1024}})["prepare"]["lr_source_size"]


def test_whole_factor_kernel_rejects_fractional_reductions() -> None:
    config = {**BASE, "kernels": ["pulse-bicubic"], "tasks": [{"lr": 24, "hr": 128}]}
    with pytest.raises(ConfigError, match="pulse-bicubic reduces only by whole factors"):
        load_config(config)
    load_config({**config, "prepare": {"lr_source_size": 96}})  # 96 / 24 = 4


def test_detector_and_contact_sheet_defaults() -> None:
    config = normalize(BASE)
    assert config["datasets"]["faces"]["detector"]["min_size"] == 0
    assert config["prepare"]["contact_sheet"]["columns"] >= 1


def test_default_config_validates_with_every_weights_source_kind():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    methods = load_config(config)["methods"]
    assert {"bicubic", "srresnet", "srgan", "esrgan", "pulse"} <= set(methods)
    assert len(methods["pulse"]["seeds"]) >= 2
    assert config["weights"]["pulse_synthesis"] == {"gdrive": "1TCViX1YpQyRsklTVYEJwdbmK91vklCo8"}
    for wrong in ({"gdrive": "not/an id"}, {"npm": "x", "version": "1.0.0"}, {"sha256": "a" * 64}):
        broken = {**config, "weights": {**config["weights"], "pulse_synthesis": wrong}}
        with pytest.raises(ConfigError, match=r"weights\.pulse_synthesis"):
            apply_schema(broken)


def test_alignment_policy_defaults_by_kind_and_can_be_overridden() -> None:
    datasets = {
        "faces": {"source": {"path": "/data/faces"}},
        "yaleb": {"kind": "croppedyale", "source": {"path": "/data/CroppedYale.zip"}},
        "yaleb_detected": {
            "kind": "croppedyale",
            "source": {"path": "/data/CroppedYale.zip"},
            "alignment": "detect",
        },
        "ffhq": {"source": {"path": "/data/ffhq"}, "alignment": "prealigned"},
    }
    config = load_config({**BASE, "datasets": datasets})
    policies = {name: d["alignment"] for name, d in config["datasets"].items()}
    assert policies == {
        "faces": "detect",
        "yaleb": "prealigned",  # the kind declares a template
        "yaleb_detected": "detect",
        "ffhq": "prealigned",
    }
    assert dataset_alignment(config, "faces") == {"policy": "detect", "template": None}
    yaleb = dataset_alignment(config, "yaleb")
    assert Template.from_dict(yaleb["template"]) == croppedyale.TEMPLATE
    # A kind without a template of its own is used through its largest centred square.
    ffhq = dataset_alignment(config, "ffhq")["template"]
    assert Template.from_dict(ffhq) == CENTRE_SQUARE
    # Identity falls back to the box HOG puts on the template's crops, where it knows one.
    assert identity_options(config, "yaleb")["aligned_box"] == list(croppedyale.TEMPLATE.face_box)
    assert "aligned_box" not in identity_options(config, "faces")
    assert "aligned_box" not in identity_options(config, "ffhq")


def test_a_data_sets_detector_keys_override_prepare_detector_and_nothing_else() -> None:
    datasets = {"faces": {"source": {"path": "/p"}, "detector": {"kind": "cnn"}}}
    config = normalize(
        {**BASE, "datasets": datasets, "prepare": {"detector": {"upsample": 0, "pad": 0.25}}}
    )
    assert config["datasets"]["faces"]["detector"] == {
        "kind": "cnn",
        "upsample": 0,
        "pad": 0.25,
        "min_size": 0,
        "max_size": 2048,
    }


def test_schema_defaults_fill_what_the_config_leaves_out() -> None:
    config = apply_schema(BASE)
    assert config["shard_size"] == 500 and config["without_cuda"] == "skip"
    assert config["methods"]["bicubic"] == {
        "arch": "interpolate",
        "seeds": [0],
        "enabled": True,
        "batch_size": 16,
    }
    assert config["measure"]["identity"]["fallback"] == "aligned_box"
    with pytest.raises(ConfigError, match=r"config: shard_size: 0 is less than the minimum"):
        apply_schema({**BASE, "shard_size": 0})


def test_the_schema_names_what_the_code_knows() -> None:
    """Kernels, data set kinds and LPIPS networks: the schema's enums are the registries'."""
    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(schema["properties"]["kernels"]["items"]["enum"]) == set(KERNELS)
    assert set(schema["$defs"]["dataset"]["properties"]["kind"]["enum"]) == set(KINDS)
    lpips = schema["properties"]["measure"]["properties"]["lpips"]["properties"]["net"]["enum"]
    assert set(lpips) == set(NETS)


def test_params_do_not_depend_on_the_order_of_config_keys() -> None:
    """Snakemake compares params as written: another file's key order must rerun nothing."""
    datasets = {"faces": {"source": {"path": "/p"}, "limit": 3, "split": "val"}}
    method = {"arch": "interpolate", "filter": "lanczos", "seeds": [0]}
    one = load_config({**BASE, "datasets": datasets, "methods": {"m": method}})
    reordered = {
        "faces": dict(reversed(list(datasets["faces"].items()))),
    }
    two = load_config(
        {**BASE, "datasets": reordered, "methods": {"m": dict(reversed(list(method.items())))}}
    )
    for params in (catalog_options, detector_options, identity_options):
        assert repr(params(one, "faces")) == repr(params(two, "faces")), params
    assert repr(method_identity(one, "m")) == repr(method_identity(two, "m"))
