"""Captions (reference backend) and cues (noun parser) flows end to end: resumable, incremental,
idempotent, queryable."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow.compute as pc
import pytest

from flows.captions import captions_flow
from flows.cli import main
from flows.cues import cues_flow
from pipeline.stages import workers
from pipeline.stages.lineage import captions_table
from pipeline.config import load_config
from pipeline.stages.lineage import cues_table
from pipeline.stages.lineage import load_manifest
from pipeline.stages.manifest import run_manifest
from pipeline.store.sql_views import connect
from pipeline.data.synth import SynthConfig, generate

VIDEOS = {"v1s": {"train": 3, "val": 1, "test": 1}, "v1m": {"train": 2, "val": 0, "test": 0}, "v2": {"train": 1, "val": 0, "test": 0}}


def indexed(cfg):
    """The ok manifest rows, after indexing the folder (reading the manifest never indexes)."""
    run_manifest(cfg)
    return load_manifest(cfg)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("text") / "data"
    with pytest.warns(UserWarning):
        generate(root, SynthConfig(seed=11, size=48, videos=VIDEOS, workers=1), progress=False)
    return root


def config(root, cache, *extra):
    return load_config(None, [f"dataset.root={root}", f"cache.root={cache}", "run.progress=false", "captions.batch_size=4", *extra])


def test_captions_then_cues_then_a_rerun_loads_nothing(root, tmp_path, capsys):
    cfg = config(root, tmp_path / "cache")
    frames = indexed(cfg).num_rows
    first = captions_flow(cfg)
    assert (first.total, first.cached, first.computed, first.errors) == (frames, 0, frames, 0)
    caps = captions_table(cfg).read()
    assert caps.num_rows == frames and set(caps["status"].to_pylist()) == {"ok"}
    assert all(c for c in caps["caption"].to_pylist())
    cues = cues_flow(cfg)
    assert cues.computed == frames
    table = cues_table(cfg).read()
    assert table.num_rows == frames and pc.sum(table["n_cues"]).as_py() > 0
    assert all(len(c) <= cfg.cues.max_cues for c in table["cues"].to_pylist())
    loads = workers.loads
    again = captions_flow(cfg)
    again_cues = cues_flow(cfg)
    assert (again.cached, again.computed, again.model_loaded) == (frames, 0, False)
    assert (again_cues.cached, again_cues.computed, again_cues.model_loaded) == (frames, 0, False)
    assert workers.loads == loads
    capsys.readouterr()
    assert main(["sql", "--set", f"cache.root={tmp_path / 'cache'}", "SELECT uid, frame, cues FROM cues LIMIT 5"]) == 0
    assert "cues" in capsys.readouterr().out
    con = connect(tmp_path / "cache")
    n, with_caption = con.execute("SELECT count(*), count(caption) FROM frame_text").fetchone()
    assert n == frames and with_caption == frames


def test_new_videos_are_the_only_work_of_a_refresh(root, tmp_path):
    cfg = config(root, tmp_path / "cache", "dataset.subsets=[v1s]")
    first = captions_flow(cfg)
    cfg_all = config(root, tmp_path / "cache")  # the same captions table, more of the dataset
    second = captions_flow(cfg_all)
    assert captions_table(cfg) .path == captions_table(cfg_all).path
    assert second.cached == first.total and second.computed == second.total - first.total


def test_a_changed_template_is_a_new_fingerprint(root, tmp_path):
    a = cues_table(config(root, tmp_path / "c", "cues.backend=hf", "cues.template=cot_fewshot"))
    b = cues_table(config(root, tmp_path / "c", "cues.backend=hf", "cues.template=cot_oneshot"))
    c = cues_table(config(root, tmp_path / "c", "cues.backend=hf", "cues.template=cot_fewshot", "cues.max_new_tokens=64"))
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3


def test_killed_run_resumes_with_one_row_per_frame(root, tmp_path):
    cache = tmp_path / "cache"
    script = textwrap.dedent(
        f"""
        import time
        from pipeline.text import reference_captions
        from pipeline.config import load_config
        from flows.captions import captions_flow
        real = reference_captions.ReferenceCaptioner.caption
        def slow(self, images, keys):
            time.sleep(0.7)  # a slow model: the parent kills the run between batches
            return real(self, images, keys)
        reference_captions.ReferenceCaptioner.caption = slow
        cfg = load_config(None, ["dataset.root={root}", "cache.root={cache}", "run.progress=false", "captions.batch_size=2"])
        captions_flow(cfg)
        """
    )
    # its own process group, so the kill also takes the temporary Prefect server it starts (no orphan)
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    cfg = config(root, cache, "captions.batch_size=2")
    table = captions_table(cfg)
    deadline = time.monotonic() + 240
    while len(table.parts()) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(table)
    frames = indexed(cfg).num_rows
    assert 0 < written < frames, "the run should have been killed part-way"
    resumed = captions_flow(cfg)
    assert resumed.cached == written and resumed.computed == frames - written
    rows = table.read()
    keys = list(zip(rows["subset"].to_pylist(), rows["uid"].to_pylist(), rows["frame"].to_pylist()))
    assert len(keys) == len(set(keys)) == frames


def test_hf_backends_end_to_end_with_tiny_models(root, tmp_path):
    from pipeline.text.tiny_models import make_tiny_llama_chat, make_tiny_llava

    llava, llama = make_tiny_llava(tmp_path / "llava"), make_tiny_llama_chat(tmp_path / "llama")
    cfg = config(
        root, tmp_path / "cache", "dataset.subsets=[v1m]",
        "captions.backend=hf", f"captions.model={llava}", "captions.max_new_tokens=4", "captions.device=cpu",
        "cues.backend=hf", f"cues.model={llama}", "cues.max_new_tokens=4", "cues.device=cpu", "cues.template=direct_zeroshot",
    )
    frames = indexed(cfg).num_rows
    caps = captions_flow(cfg)
    assert (caps.computed, caps.errors, caps.model_loaded) == (frames, 0, True)
    rows = captions_table(cfg).read().to_pylist()
    assert {r["model"] for r in rows} == {llava} and all(r["prompt_name"] == "caption_dense" and r["prompt_sha"] for r in rows)
    cues = cues_flow(cfg)
    assert cues.computed == frames
    rows = cues_table(cfg).read().to_pylist()
    # a random model's answers rarely parse: every row is there, unparsable ones keep their raw text
    assert len(rows) == frames and all(r["raw_response"] is not None for r in rows)
    assert all((r["status"] == "ok") == (r["cues"] is not None) for r in rows)
    assert {r["template"] for r in rows} == {"direct_zeroshot"}
