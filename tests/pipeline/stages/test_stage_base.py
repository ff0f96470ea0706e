"""A sharded stage run in this process (no Prefect): the exact parts it writes, and a re-run that
finds everything cached and loads no model."""
import json
import warnings

import pyarrow.parquet as pq
import pytest

from pipeline.config import load_config
from pipeline.data.synth import SynthConfig, generate
from pipeline.stages import captions, cues, workers
from pipeline.stages.lineage import captions_table, cues_table
from pipeline.stages.manifest import run_manifest

VIDEOS = {"v1s": {"train": 1, "val": 0, "test": 1}, "v1m": {"train": 0, "val": 0, "test": 0}, "v2": {"train": 0, "val": 0, "test": 0}}


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stage_base")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too small for the V3 k-shot splits
        generate(tmp / "data", SynthConfig(seed=2, size=32, videos=VIDEOS, workers=1), progress=False)
    cfg = load_config(None, [f"dataset.root={tmp / 'data'}", f"cache.root={tmp / 'cache'}", "run.progress=false",
                             "captions.batch_size=4", "captions.shards=2"])
    run_manifest(cfg)
    return cfg


def test_a_sharded_stage_writes_one_part_per_batch_and_its_config(cfg):
    [summary] = captions.STAGE.run(cfg)
    table = captions_table(cfg)
    assert (summary.total, summary.cached, summary.computed, summary.errors) == (10, 0, 10, 0)
    assert summary.fingerprint == table.fingerprint and summary.model_loaded
    # two shards of 5 frames, batches of 4: parts of 4 + 1 rows each
    assert sorted(pq.ParquetFile(p).metadata.num_rows for p in table.parts()) == [1, 1, 4, 4]
    assert sorted(p.name for p in table.path.iterdir() if not p.name.startswith("part-")) == [".lock", ".run.lock", "_meta.json", "config.yaml"]
    assert json.loads((table.path / "_meta.json").read_text())["inputs"]["backend"] == "reference"


def test_a_rerun_finds_everything_cached_and_builds_no_worker(cfg):
    captions.STAGE.run(cfg)
    loads = workers.loads
    [again] = captions.STAGE.run(cfg)
    assert (again.cached, again.computed, again.model_loaded) == (10, 0, False) and workers.loads == loads


def test_the_next_stage_reads_what_the_first_wrote(cfg):
    captions.STAGE.run(cfg)
    [summary] = cues.STAGE.run(cfg)
    assert summary.computed == 10 and summary.path == str(cues_table(cfg).path)
    assert cues.STAGE.reads == ("captions",) and captions.STAGE.reads == ("manifest",)
