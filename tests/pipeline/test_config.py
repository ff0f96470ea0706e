import pytest

from pipeline.config import ConfigError, load_config, parse_overrides, require_paths, save_effective_config


def test_defaults_and_overrides(tmp_path):
    cfg = load_config(None, ["dataset.subsets=[v1s, v2]", "synth.seed=3", "cache.root=" + str(tmp_path)])
    assert cfg.dataset.subsets == ["v1s", "v2"] and cfg.synth.seed == 3 and cfg.cache.root == tmp_path


def test_yaml_file_plus_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset:\n  name: avsbench\n  splits: [test]\n")
    cfg = load_config(path, ["dataset.name=other"])
    assert cfg.dataset.name == "other" and cfg.dataset.splits == ["test"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["dataset.colour=red"], r"dataset\.colour: unknown key"),
        (["synth.seed=abc"], r"synth\.seed: .*integer"),
        (["dataset.subsets=[v9]"], r"dataset\.subsets\.0"),
        (["nonsense=1"], r"nonsense: unknown key"),
        (["novalue"], r"not of the form"),
        # types inside the model and recipe sections, checked at load (nothing is created yet)
        (["train.recipe={epochs: abc}"], r"train\.recipe: .*epochs: .*valid integer"),
        (["train.recipe={epochs: 2.5}"], r"epochs: .*fractional part"),
        (["train.model={n_latent: many}"], r"train\.model: .*n_latent: .*valid integer"),
        (["train.recipe={device: gpu}"], r"device must be auto, cpu, mps, cuda or cuda:N, got 'gpu'"),
        (["train.model.n_latent=[1"], r"override 'train\.model\.n_latent=\[1': the value is not valid YAML"),
        # names that become folders or file names
        (["dataset.name=../elsewhere"], r"dataset\.name '\.\./elsewhere' may hold only letters"),
        (["runs={'a/b': []}"], r"run name 'a/b' may hold only letters"),
        (["features.audio.conditions=[{name: normal, kind: normal}, {name: '../m', kind: mute}]"], r"audio condition name"),
    ],
)
def test_bad_configs_give_one_clear_message(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_all_problems_reported_together():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["dataset.colour=red", "synth.seed=abc"])
    assert "colour" in str(err.value) and "seed" in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_missing_path(tmp_path):
    cfg = load_config(None, [f"dataset.root={tmp_path / 'absent'}"])
    with pytest.raises(ConfigError, match="dataset.root: path does not exist"):
        require_paths(cfg, ["dataset.root"])


def test_effective_config_saved_and_reloadable(tmp_path):
    cfg = load_config(None, ["synth.seed=7"])
    path = save_effective_config(cfg, tmp_path)
    assert load_config(path).synth.seed == 7


def test_parse_overrides_nested_values():
    assert parse_overrides(["a.b=1", "a.c=[x, y]", "d=true"]) == {"a": {"b": 1, "c": ["x", "y"]}, "d": True}


def test_named_runs_apply_their_overrides_under_their_own_folder(tmp_path):
    cfg = load_config(None, [
        f"train.out_dir={tmp_path / 'exp'}",
        "runs={teso: [], no_text: [train.model.use_text=false, eval.grids=0]}",
        "report.runs=[teso, no_text]",
    ])
    from pipeline.config import run_config

    no_text = run_config(cfg, "no_text")
    assert no_text.train.out_dir == tmp_path / "exp" / "no_text"
    assert no_text.train.model == {"use_text": False} and no_text.eval.grids == 0
    assert no_text.runs == {} and no_text.report.runs is None
    assert run_config(cfg, "teso").train.out_dir == tmp_path / "exp" / "teso"
    with pytest.raises(ConfigError, match="unknown run 'nope'"):
        run_config(cfg, "nope")
    bad = load_config(None, ["runs={a: [train.model.bogus=1]}"])
    with pytest.raises(ConfigError, match="run a"):
        run_config(bad, "a")


def test_report_runs_must_be_defined():
    with pytest.raises(ConfigError, match=r"report.runs names runs that are not in runs: \['b'\]"):
        load_config(None, ["runs={a: []}", "report.runs=[b]"])


def test_every_shipped_config_and_its_runs_validate():
    from pathlib import Path

    from pipeline.config import run_config

    for path in sorted(Path("configs").glob("*.yaml")):
        cfg = load_config(path)
        for name in cfg.runs:
            run_config(cfg, name)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["captions.backend=llava"], r"captions\.backend: .*unknown captions backend 'llava'; known: hf, reference, vllm"),
        (["cues.backend=gpt"], r"unknown cues backend 'gpt'; known: cot_rules, hf, nouns, vllm"),
        (["features.audio.encoder=panns"], r"unknown audio encoder 'panns'; known: logmel, vggish"),
        (["features.text.encoder=word2vec"], r"unknown text encoder 'word2vec'"),
        (["eval.conditions=[normal, wgn20]"], r"eval\.conditions entry 'wgn20': not in features\.audio\.conditions"),
        (["train.audio_condition=clean"], r"train\.audio_condition 'clean': not in features\.audio\.conditions"),
        (["eval.reference_condition=wgn_10db", "eval.conditions=[normal, mute]"], r"eval\.reference_condition 'wgn_10db' is not in eval\.conditions"),
        (["features.audio.conditions=[{name: a, kind: mute}, {name: a, kind: normal}]"], r"distinct names"),
        (["features.audio.conditions=[{name: n, kind: wgn}]"], r"wgn needs a finite snr_db"),
        (["features.audio.conditions=[{name: n, kind: pink}]"], r"kind"),
    ],
)
def test_backends_and_audio_conditions_are_checked_when_the_config_is_loaded(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_eval_conditions_default_to_every_configured_condition():
    cfg = load_config(None, ["features.audio.conditions=[{name: normal, kind: normal}, {name: silent, kind: mute}]"])
    assert cfg.eval.conditions == ["normal", "silent"] and cfg.eval.reference_condition == "normal"
    assert cfg.features.audio.condition("silent").label == "muted"
    assert load_config(None).eval.conditions == ["normal", "mute", "wgn_10db", "wgn_40db", "wgn_10db_added", "wgn_40db_added"]


PAPER_CONFIGS = ["avsbench_v1s", "avsbench_v1m", "avss_binary", "avss_semantic", "v3_zero_shot", "v3_1_shot", "v3_3_shot", "v3_5_shot"]


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_configs_set_the_papers_values_of_every_deviation(name):
    from pathlib import Path

    from pipeline.text.prompts import load_template

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / f"{name}.yaml")
    assert load_template(cfg.captions.prompt).text.strip() == (
        "Please carefully understand the image content and provide as rich a description as possible.")
    assert cfg.train.augment is False
    model = cfg.train.model
    assert (model["frozen_foundation_mode"], model["audio_dropout"], model["infonce_symmetric"]) == ("eval", 0.0, True)
    assert (model["dynamic_mask_threshold"], model["pmqs_latent_audio"]) == ("zero", False)
    assert cfg.train.recipe["lr_schedule"] == "constant"


def test_integral_floats_become_ints_where_an_int_belongs():
    cfg = load_config(None, ["train.recipe={epochs: 2.0, batch_size: 4}"])
    assert cfg.train.recipe == {"epochs": 2, "batch_size": 4} and type(cfg.train.recipe["epochs"]) is int
