import copy

import pytest

from kerasmed.cli import train_main
from kerasmed.experiment.files import load_config
from kerasmed.experiment.schema import ConfigError
from kerasmed.experiment.validate import validate_config


def _problems(write_config, config):
    path = write_config(config)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return path, err.value.problems


def test_defaults_are_filled_in(write_config, tiny_experiment):
    config = load_config(write_config(tiny_experiment, name="my-exp"))
    assert config["training"]["precision"] == "float32"
    assert config["data"]["channels"] == 3
    assert config["training"]["epochs"] == 2  # given values win
    assert config["name"] == "tiny"
    del tiny_experiment["name"]
    assert load_config(write_config(tiny_experiment, name="my-exp"))["name"] == "my-exp"


@pytest.mark.parametrize("section, bad, good", [
    (None, "trainig", "training"),
    ("training", "epoch", "epochs"),
    ("data", "image_szie", "image_size"),
    ("model", "parms", "params"),
])
def test_unknown_key_suggests_the_nearest(write_config, tiny_experiment, section, bad, good):
    config = copy.deepcopy(tiny_experiment)
    (config if section is None else config[section])[bad] = 1
    path, problems = _problems(write_config, config)
    key = bad if section is None else f"{section}.{bad}"
    assert any(str(path) in p and key in p and f"Did you mean {good!r}" in p for p in problems)


@pytest.mark.parametrize("section, key, value, expected", [
    ("training", "epochs", "10", "expected an integer"),
    ("training", "batch_size", 2.5, "expected an integer"),
    ("data", "cache", "yes", "expected true or false"),
    ("data", "image_size", [32], "[height, width]"),
    ("training", "precision", "mixed_float32", "Did you mean 'mixed_float16'"),
    ("data", "val_fraction", 1.5, "between 0 and 1"),
    ("training", "epochs", True, "expected an integer"),
])
def test_wrong_types_and_values_name_the_key(write_config, tiny_experiment, section, key, value,
                                            expected):
    tiny_experiment[section][key] = value
    path, problems = _problems(write_config, tiny_experiment)
    assert any(str(path) in p and f"{section}.{key}" in p and expected in p for p in problems)


def test_unknown_model_loss_metric_and_optimizer(write_config, tiny_experiment):
    tiny_experiment["model"]["name"] = "unett"
    tiny_experiment["training"]["loss"] = "bce_dise"
    tiny_experiment["training"]["metrics"] = ["dice", "iuo"]
    tiny_experiment["training"]["optimizer"] = {"name": "adamm"}
    _, problems = _problems(write_config, tiny_experiment)
    text = "\n".join(problems)
    assert "model.name" in text and "'unet'" in text
    assert "training.loss" in text and "'bce_dice'" in text
    assert "training.metrics" in text and "'iou'" in text
    assert "training.optimizer" in text and "'adam'" in text


def test_unknown_model_parameter_and_optimizer_argument(write_config, tiny_experiment):
    tiny_experiment["model"]["params"]["filtres"] = 8
    _, problems = _problems(write_config, tiny_experiment)
    assert any("model.params.filtres" in p and "'filters'" in p for p in problems)
    del tiny_experiment["model"]["params"]["filtres"]
    tiny_experiment["training"]["optimizer"] = {"name": "adam", "learnig_rate": 0.1}
    _, problems = _problems(write_config, tiny_experiment)
    assert any("training.optimizer" in p and "'learning_rate'" in p for p in problems)


def test_missing_dataset_folder_and_bad_reader_options(write_config, tiny_experiment, tmp_path,
                                                      capsys):
    tiny_experiment["data"].update(dataset="folder", root=str(tmp_path / "nowhere"))
    path, problems = _problems(write_config, tiny_experiment)
    assert any(str(path) in p and "data.root" in p and "nowhere" in p for p in problems)
    (tmp_path / "nowhere").mkdir()
    tiny_experiment["data"]["options"] = {"imagez": "pictures"}
    _, problems = _problems(write_config, tiny_experiment)
    assert any("data.options.imagez" in p and "'images'" in p for p in problems)
    # A layout problem found when listing the files is still reported before any run starts.
    tiny_experiment["data"]["options"] = {}
    out = tmp_path / "runs"
    path = write_config(tiny_experiment)
    assert train_main([str(path), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "data:" in err and "images" in err
    assert not out.exists() or not any(out.iterdir())


def test_augmentation_and_normalization_are_checked(write_config, tiny_experiment):
    tiny_experiment["data"]["augmentation"] = [{"op": "rotat", "probability": 0.5}]
    tiny_experiment["data"]["normalization"] = {"method": "percentile", "lo": 1}
    _, problems = _problems(write_config, tiny_experiment)
    assert any("data.augmentation" in p and "rotat" in p for p in problems)
    assert any("data.normalization" in p and "lo" in p for p in problems)


def test_missing_required_key_and_all_problems_together(write_config, tiny_experiment):
    del tiny_experiment["data"]["root"]
    tiny_experiment["training"]["epochs"] = -1
    _, problems = _problems(write_config, tiny_experiment)
    assert any("data.root" in p and "required" in p for p in problems)
    assert any("training.epochs" in p and "positive" in p for p in problems)


def test_invalid_json_names_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "name": "x",\n  "seed": 1,\n}\n')
    with pytest.raises(ConfigError, match=r"broken.json: line 4"):
        load_config(path)


def test_overrides(write_config, tiny_experiment):
    path = write_config(tiny_experiment)
    config = load_config(path, ["training.epochs=7", "model.params.filters=2"])
    assert config["training"]["epochs"] == 7 and config["model"]["params"]["filters"] == 2
    with pytest.raises(ConfigError, match="training.epoch"):
        load_config(path, ["training.epoch=7"])


def test_overrides_index_lists(write_config, tiny_experiment):
    """``--set`` and kerasmed-tune share one setter of dotted keys: numbers index lists."""
    path = write_config(tiny_experiment)
    config = load_config(path, ["data.image_size.1=64", "training.metrics.0=iou"])
    assert config["data"]["image_size"] == [32, 64]
    assert config["training"]["metrics"] == ["iou", "iou"]
    with pytest.raises(ConfigError, match=r"--set data.image_size.2=8: data.image_size.2: "
                                          r"the list has 2 item\(s\)"):
        load_config(path, ["data.image_size.2=8"])
    with pytest.raises(ConfigError, match="--set training.epochs.x=1: epochs is not an object"):
        load_config(path, ["training.epochs.x=1"])


def test_validate_config_rejects_non_objects():
    with pytest.raises(ConfigError, match="JSON object"):
        validate_config([1, 2])


def test_cli_config_errors_fail_before_training(write_config, tiny_experiment, tmp_path, capsys):
    tiny_experiment["training"]["epoch"] = 3
    path = write_config(tiny_experiment)
    out = tmp_path / "runs"
    assert train_main([str(path), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "training.epoch" in err and "'epochs'" in err
    assert not out.exists()  # nothing was created


def test_bad_monitor_and_model_params_fail_before_any_run_dir(write_config, tiny_experiment,
                                                              tmp_path, capsys):
    tiny_experiment["training"]["monitor"] = "val_dise"
    out = tmp_path / "runs"
    assert train_main([str(write_config(tiny_experiment)), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "training.monitor" in err and "val_dice" in err
    tiny_experiment["training"]["monitor"] = "val_dice"
    tiny_experiment["data"]["image_size"] = [30, 30]  # not divisible by 2**depth
    assert train_main([str(write_config(tiny_experiment)), "--output", str(out)]) == 2
    assert "divisible" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_backbone_normalization_with_a_backbone_model_is_refused(write_config, tiny_experiment):
    """Backbone models preprocess inside the model; the loader's "backbone" would do it twice."""
    tiny_experiment["model"] = {"name": "backbone_unet",
                                "params": {"backbone_name": "resnet50", "encoder_weights": None}}
    tiny_experiment["data"]["normalization"] = {"method": "backbone", "name": "resnet50"}
    path, problems = _problems(write_config, tiny_experiment)
    assert any(str(path) in p and "data.normalization" in p and "twice" in p
               and "backbone_unet" in p for p in problems)
    tiny_experiment["data"]["normalization"] = "auto"
    assert load_config(write_config(tiny_experiment))["data"]["normalization"] == "auto"
    # The loader's backbone scaling stays available to networks without one.
    tiny_experiment["model"] = {"name": "unet", "params": {"filters": 4, "depth": 2}}
    tiny_experiment["data"]["normalization"] = {"method": "backbone", "name": "resnet50"}
    assert load_config(write_config(tiny_experiment))


def test_target_channels_must_match_the_model_before_anything_is_written(
        write_config, tiny_experiment, tmp_path, capsys):
    tiny_experiment["model"]["params"]["classes"] = 2   # a two-class softmax head ...
    path = write_config(tiny_experiment)                # ... fed one-channel binary masks
    out = tmp_path / "runs"
    assert train_main([str(path), "--output", str(out)]) == 2
    assert not out.exists()
    assert "gives 1-channel targets but model 'unet' predicts 2" in capsys.readouterr().err
    tiny_experiment["data"]["mask_mode"] = "distance"
    assert train_main([str(write_config(tiny_experiment)), "--output", str(out)]) == 2
    assert not out.exists()
    assert "model.params.classes=1" in capsys.readouterr().err
