"""run.task_runner: threads, Dask or Ray; the cluster packages are optional, and a local cluster's
worker processes give the same cached rows as the thread runner."""
import pickle
import sys
import warnings

import cloudpickle
import pytest
from prefect.task_runners import ThreadPoolTaskRunner

from flows.captions import captions_flow
from flows.cli import main
from flows.cues import cues_flow
from flows.sharding import TaskRunnerUnavailable, task_runner
from pipeline.stages.lineage import captions_table
from pipeline.config import load_config
from pipeline.stages.lineage import cues_table
from pipeline.data.synth import SynthConfig, generate

VIDEOS = {"v1s": {"train": 2, "val": 0, "test": 0}, "v1m": {"train": 1, "val": 0, "test": 0}, "v2": {"train": 1, "val": 0, "test": 0}}
VOLATILE = {"created_at", "seconds"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runners") / "data"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generate(root, SynthConfig(seed=8, size=32, videos=VIDEOS, workers=1), progress=False)
    return root


def config(root, cache, *extra):
    return load_config(None, [f"dataset.root={root}", f"cache.root={cache}", "run.progress=false", *extra])


def test_the_config_pickles(root, tmp_path):
    cfg = config(root, tmp_path, "run.task_runner=dask")
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert cloudpickle.loads(cloudpickle.dumps(cfg)) == cfg


def test_choice_of_runner(root, tmp_path):
    runner = task_runner(config(root, tmp_path, "run.workers=3"))
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3
    prefect_dask = pytest.importorskip("prefect_dask")
    remote = task_runner(config(root, tmp_path, "run.task_runner=dask", "run.dask_address=tcp://10.0.0.1:8786"))
    assert isinstance(remote, prefect_dask.DaskTaskRunner) and remote.address == "tcp://10.0.0.1:8786"
    local = task_runner(config(root, tmp_path, "run.task_runner=dask", "run.workers=3", "run.dask_processes=false"))
    assert local.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1, "processes": False}
    with pytest.raises(Exception, match="task_runner"):
        config(root, tmp_path, "run.task_runner=spark")


@pytest.mark.parametrize("choice, package", [("dask", "prefect_dask"), ("ray", "prefect_ray")])
def test_a_missing_cluster_package_is_a_clear_error(root, tmp_path, monkeypatch, capsys, choice, package):
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if not installed
    cfg = config(root, tmp_path, f"run.task_runner={choice}")
    with pytest.raises(TaskRunnerUnavailable, match=rf'run.task_runner={choice} needs {package.replace("_", "-")} .*pip install -e "\.\[cluster\]"'):
        task_runner(cfg)
    args = [f"dataset.root={root}", f"cache.root={tmp_path / 'cache'}", "run.progress=false", f"run.task_runner={choice}"]
    assert main(["captions", *args]) == 2
    assert f"needs {package.replace('_', '-')}" in capsys.readouterr().err


def rows(table) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k not in VOLATILE} for r in table.read().to_pylist()),
                  key=lambda r: (r["subset"], r["uid"], r["frame"]))


def run_text_stages(cfg, *, cues: bool = True):
    caps = captions_flow.with_options(task_runner=task_runner(cfg))(cfg)
    if cues:
        cues_flow.with_options(task_runner=task_runner(cfg))(cfg)
    return caps


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dask_local_cluster_gives_the_same_rows_as_threads(root, tmp_path):
    pytest.importorskip("prefect_dask")
    shards = ["captions.shards=2", "cues.shards=2", "captions.batch_size=4", "cues.batch_size=4", "run.workers=2"]
    threads = config(root, tmp_path / "threads", *shards)
    dask = config(root, tmp_path / "dask", *shards, "run.task_runner=dask")  # worker processes: the config is pickled
    run_text_stages(threads)
    summary = run_text_stages(dask)
    assert summary.computed == summary.total > 0
    assert rows(captions_table(dask)) == rows(captions_table(threads))
    assert rows(cues_table(dask)) == rows(cues_table(threads))
    again = run_text_stages(dask, cues=False)
    assert again.computed == 0 and not again.model_loaded


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ray_local_instance_gives_the_same_rows_as_threads(root, tmp_path):
    pytest.importorskip("prefect_ray")  # the `cluster` extra only (ray is large); not in `dev`
    extra = ["captions.shards=2", "captions.batch_size=4", "run.workers=2"]
    threads = config(root, tmp_path / "threads", *extra)
    ray = config(root, tmp_path / "ray", *extra, "run.task_runner=ray")
    run_text_stages(threads, cues=False)
    assert run_text_stages(ray, cues=False).computed > 0
    assert rows(captions_table(ray)) == rows(captions_table(threads))


def test_noun_cues_from_concurrent_threads_match_one_thread(root):
    """Two cue shards on the thread runner look words up at once; NLTK's WordNet reader is not
    thread-safe, so pipeline.text.noun_cues serializes its lookups."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.text import noun_cues

    if noun_cues.wordnet_or_none() is None:
        pytest.skip("WordNet is not installed")
    lines = (root / "scene_descriptions.jsonl").read_text().splitlines()
    captions = [line.split('"description": ')[1] for line in lines] * 3
    noun_cues.singular.cache_clear(), noun_cues.is_modifier.cache_clear()
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(noun_cues.noun_cues, captions))
    assert parallel == [noun_cues.noun_cues(c) for c in captions]
