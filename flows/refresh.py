"""Prefect flow: refresh every cache of a dataset, stage after stage.

    manifest -> captions -> cues -> features (audio per condition, then text cues)

Each stage computes only what its cache lacks (the manifest verifies only new or changed videos),
so a scheduled refresh after new videos arrive costs what the new videos cost. The parameters are
plain JSON (a config path and override strings), so a deployment can carry them: `teso refresh`
runs the flow once; `teso serve` deploys it on a cron schedule against a Prefect server
(`make prefect-server`, then `make serve`), which then runs it in processes started from the
folder `teso serve` was started in.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict

import httpx
from prefect import flow
from prefect.settings import get_current_settings, temporary_settings
from prefect.types.entrypoint import EntrypointType

from flows.captions import captions_flow
from flows.cues import cues_flow
from flows.features import features_flow
from flows.sharding import task_runner
from pipeline.config import Config, load_config, require_paths, run_config
from pipeline.stages import lineage
from pipeline.stages.base import StageSummary
from pipeline.stages.manifest import STAGE as MANIFEST

REQUIRED_PATHS = ["dataset.root", "features.audio.weights", "features.text.path", "features.text.tokenizer"]
SUMMARY_FIELDS = ("total", "cached", "computed", "errors", "seconds", "model_loaded", "fingerprint", "path")


def stage_summary(s: StageSummary) -> dict:
    """The JSON-able part of a stage summary."""
    d = asdict(s)
    return {k: d[k] for k in SUMMARY_FIELDS} | ({"extra": d["extra"]} if d["extra"] else {})


@contextmanager
def _subflow_without_heartbeat():
    """Prefect 3.8's flow-run heartbeat thread sleeps in 1 s steps and is joined when the run ends,
    which adds up to ~1 s to every flow run: 4 s of a no-op refresh. The parent run keeps its
    heartbeat (a crashed deployment run is still detected); the stage subflows, which live in the
    parent's process, go without."""
    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        yield


def refresh_stages(cfg: Config) -> dict:
    """Run the four stages in order inside the calling flow; per stage its summary. Features give one
    entry per audio condition (`audio:{name}`) and one for the text cues.

    On the thread runner the stage flows' bodies run in the caller's own flow run (their shard tasks
    on its task runner): each subflow costs Prefect ~0.7 s of bookkeeping, 3.4 s of a 0.7 s no-op
    refresh of the demo data. Dask and Ray stages run as subflows, each with its configured runner
    (the cluster is what they cost)."""

    def run(stage_flow):
        if cfg.run.task_runner == "thread":
            return stage_flow.fn(cfg)
        return stage_flow.with_options(task_runner=task_runner(cfg))(cfg)

    manifest = MANIFEST.run(cfg)
    print(manifest.describe())
    # every stage below plans from this one indexing instead of reading the folder again
    with _subflow_without_heartbeat(), lineage.pinned_manifest(cfg, manifest.rows):
        out = {"manifest": stage_summary(manifest.stage)}
        out["captions"] = stage_summary(run(captions_flow))
        out["cues"] = stage_summary(run(cues_flow))
        features = run(features_flow)
    names = [f"audio:{s.extra['variant']}" for s in features[:-1]] + ["text"]
    out["features"] = {name: stage_summary(s) for name, s in zip(names, features)}
    return out


def data_identity(cfg: Config) -> str:
    """What a run's cached inputs depend on: runs that agree share their data stages."""
    return json.dumps([cfg.dataset.model_dump(mode="json"), cfg.captions.model_dump(mode="json"),
                       cfg.cues.model_dump(mode="json"), cfg.features.model_dump(mode="json")], sort_keys=True)


def refresh_runs(runs: list[tuple[str, Config]]) -> dict:
    """The data stages of every distinct data configuration among `runs` (a run may read other cues,
    e.g. TeSO-n's noun cues), once each; {run name: stage summaries} for the runs that ran them."""
    seen: set[str] = set()
    out = {}
    for name, rcfg in runs:
        if (key := data_identity(rcfg)) not in seen:
            seen.add(key)
            print(f"data stages for run {name!r}")
            out[name] = refresh_stages(rcfg)
    return out


@flow(name="refresh", log_prints=True)
def refresh_flow(config_path: str | None = None, overrides: list[str] = [], run: str | None = None) -> dict:  # noqa: B006 (never mutated)
    """Load and validate the config (`config_path` None: the defaults; `run`: one of its named runs),
    then run every stage; returns {"stages": {stage: summary}, "seconds": total}."""
    t0 = time.perf_counter()
    cfg = load_config(config_path, list(overrides))
    cfg = run_config(cfg, run) if run else cfg
    require_paths(cfg, REQUIRED_PATHS)
    stages = refresh_stages(cfg)
    result = {"dataset": cfg.dataset.name, "stages": stages, "seconds": time.perf_counter() - t0}
    print(describe(result))
    return result


def _line(name: str, s: dict) -> str:
    return f"  {name:14} {s['total']:6} total {s['cached']:6} cached {s['computed']:6} computed ({s['errors']} errors) {s['seconds']:7.1f} s"


def describe(result: dict) -> str:
    """A refresh summary as text, one line per stage (manifest counts videos, captions/cues/text
    frames, audio videos)."""
    lines = [f"refresh of {result['dataset']} in {result['seconds']:.1f} s:"]
    for name, s in result["stages"].items():
        if name == "features":
            lines += [_line(sub, t) for sub, t in s.items()]
        else:
            lines.append(_line(name, s))
    return "\n".join(lines)


def server_problem() -> str | None:
    """Why `teso serve` cannot deploy (no API URL, or no server answering there), or None.

    Schedules need a real, long-running `prefect server start`: without PREFECT_API_URL Prefect
    would start a temporary server that dies with this process, together with its schedule."""
    url = get_current_settings().api.url
    hint = ("start one with `make prefect-server` (prefect server start --host 127.0.0.1 --port 4200) and run "
            "`PREFECT_API_URL=http://127.0.0.1:4200/api teso serve ...` (or `make serve`)")
    if not url:
        return f"PREFECT_API_URL is not set: a scheduled deployment needs a running Prefect server, not the ephemeral one; {hint}"
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        return f"no Prefect server answers at PREFECT_API_URL={url} ({type(exc).__name__}: {exc}); {hint}"
    return None


def serve(config_path: str | None, overrides: list[str], name: str, cron: str, run: str | None = None) -> None:
    """Deploy `refresh/{name}` with a cron schedule and run its scheduled (and triggered) runs until
    interrupted; on shutdown the schedule is paused (Prefect's default)."""
    refresh_flow.serve(
        name=name,
        cron=cron,
        parameters={"config_path": config_path, "overrides": list(overrides), "run": run},
        description="Refresh the TeSO caches of one dataset: manifest, captions, cues, features (only what is new).",
        tags=["teso", "refresh"],
        entrypoint_type=EntrypointType.MODULE_PATH,  # import flows.refresh from the installed package
    )
