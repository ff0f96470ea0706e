"""The refresh flow: every stage in order, incremental when videos are added; and its scheduled
deployment (`teso serve`) on a real `prefect server start`, triggered with run_deployment."""
import csv
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
import yaml

from flows.cli import main
from flows.refresh import refresh_flow
from pipeline.stages.lineage import captions_table
from pipeline.config import load_config
from pipeline.stages.lineage import cues_table
from pipeline.stages.lineage import audio_store, text_store
from pipeline.stages.lineage import load_manifest, manifest_table
from pipeline.data import signatures
from pipeline.data.synth import SynthConfig, generate

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 180
CONDITIONS = "features.audio.conditions=[{name: normal, kind: normal}, {name: mute, kind: mute}]"


def synth(root: Path, videos: dict) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too small for the V3 k-shot splits
        return generate(root, SynthConfig(seed=4, size=32, videos=videos, workers=1), progress=False)


def videos(v1s_train: int) -> dict:
    return {"v1s": {"train": v1s_train, "val": 1, "test": 0}, "v1m": {"train": 1, "val": 0, "test": 0}, "v2": {"train": 1, "val": 0, "test": 0}}


def overrides(root: Path, cache: Path) -> list[str]:
    return [f"dataset.root={root}", f"cache.root={cache}", "run.progress=false", CONDITIONS]


def computed(result: dict) -> dict:
    stages = result["stages"]
    flat = {k: v for k, v in stages.items() if k != "features"} | stages["features"]
    return {name: (s["total"], s["cached"], s["computed"], s["errors"]) for name, s in flat.items()}


def test_refresh_after_adding_videos_computes_only_the_new_ones(tmp_path, monkeypatch):
    root, cache = tmp_path / "data", tmp_path / "cache"
    synth(root, videos(2))
    ov = overrides(root, cache)
    first = refresh_flow(None, ov)
    v0, f0 = 5, 5 * 4 + 10  # videos, frames
    assert computed(first) == {
        "manifest": (v0, 0, v0, 0), "captions": (f0, 0, f0, 0), "cues": (f0, 0, f0, 0),
        "audio:normal": (v0, 0, v0, 0), "audio:mute": (v0, 0, v0, 0), "text": (f0, 0, f0, 0),
    }

    # the generator's video i depends only on (seed, subset, split, i): a larger count keeps the old
    # videos byte-identical, and regenerating in place keeps their files' modification times
    files = [p for subset in ("v1s", "v1m", "v2") for p in (root / subset).rglob("*") if p.is_file()]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    assert synth(root, videos(5))["changed"]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    old_uids = {p.relative_to(root).parts[1] for p in files}
    with (root / "metadata.csv").open() as fh:
        new_uids = {r["uid"] for r in csv.DictReader(fh)} - old_uids
    assert len(new_uids) == 3 and all("_v1s_train_" in u for u in new_uids)

    mark = datetime.now(timezone.utc)
    second = refresh_flow(None, ov)
    v1, f1 = v0 + 3, f0 + 3 * 5
    assert computed(second) == {
        "manifest": (v1, v0, 3, 0), "captions": (f1, f0, 15, 0), "cues": (f1, f0, 15, 0),
        "audio:normal": (v1, v0, 3, 0), "audio:mute": (v1, v0, 3, 0), "text": (f1, f0, 15, 0),
    }
    assert second["stages"]["manifest"]["extra"]["rows_verified"] == 15
    # ... and exactly the new videos' rows were written
    cfg = load_config(None, ov)
    newest = lambda t: {r["uid"] for r in t.to_pylist() if r["created_at"] > mark}
    assert newest(captions_table(cfg).read()) == new_uids and newest(cues_table(cfg).read()) == new_uids
    assert {k[2] for k in audio_store(cfg, cfg.features.audio.conditions[0]).keys()} == old_uids | new_uids

    signed = []  # every stage plans from the refresh's one reading of the folder (lineage.pinned_manifest)
    real_signature = signatures.video_signature
    monkeypatch.setattr(signatures, "video_signature", lambda root, entry: signed.append(entry) or real_signature(root, entry))
    third = refresh_flow(None, ov)
    assert len(signed) == v1
    assert all(c == 0 for _, _, c, _ in computed(third).values())
    assert not any(s["model_loaded"] for s in [third["stages"]["captions"], third["stages"]["cues"], *third["stages"]["features"].values()])
    parts = manifest_table(cfg).parts()
    assert main(["refresh", *ov]) == 0  # the CLI runs the same flow once
    assert manifest_table(cfg).parts() == parts


def test_a_replaced_input_recomputes_exactly_its_rows_and_later_stages_read_the_new_ones(tmp_path):
    root, cache = tmp_path / "data", tmp_path / "cache"
    synth(root, videos(1))
    ov = overrides(root, cache)
    refresh_flow(None, ov)
    cfg = load_config(None, ov)
    manifest = load_manifest(cfg).to_pylist()
    uids = sorted({r["uid"] for r in manifest if r["subset"] == "v1s"})
    a, b = (root / "v1s" / u for u in uids)
    original = (a / "audio.wav").read_bytes()
    # another video's soundtrack for a, and one frame of b replaced by another of its frames
    (a / "audio.wav").write_bytes((b / "audio.wav").read_bytes())
    (b / "frames" / "0.jpg").write_bytes((b / "frames" / "3.jpg").read_bytes())
    second = refresh_flow(None, ov)
    got = computed(second)
    assert got["manifest"][2] == 2  # both videos re-verified
    assert got["audio:normal"][2] == 1 and got["audio:mute"][2] == 1  # a's audio only
    assert got["captions"][2] == 1  # b's frame 0 only
    # the reference captioner describes the scene, not the pixels: the same caption, so no new cues
    assert got["cues"][2] == 0 and got["text"][2] == 0
    # training and evaluation read the features of the audio as it is now: a's are b's
    from pipeline.model_io.samples import frame_samples
    from pipeline.stages.lineage import open_stores
    stores = open_stores(cfg, "normal")
    (train, skipped), (val, _) = frame_samples(cfg, "train", stores), frame_samples(cfg, "val", stores)
    by_uid = {s.uid: s for s in train + val}
    assert skipped == 0 and by_uid[uids[0]].audio_key[-1] == by_uid[uids[1]].audio_key[-1]
    assert (stores.audio_lookup(by_uid[uids[0]].audio_key) == stores.audio_lookup(by_uid[uids[1]].audio_key)).all()
    # a broken soundtrack makes the video an error row; fixed again, its old features serve at once
    (a / "audio.wav").write_bytes(b"not a wav file")
    refresh_flow(None, ov)
    assert {r["status"] for r in load_manifest(cfg, ok_only=False).to_pylist() if r["uid"] == uids[0]} == {"error"}
    (a / "audio.wav").write_bytes(original)
    fourth = computed(refresh_flow(None, ov))
    assert fourth["audio:normal"][2] == 0 and fourth["captions"][2] == 0
    assert {r["audio_sha"] for r in load_manifest(cfg).to_pylist() if r["uid"] == uids[0]} == {
        r["audio_sha"] for r in manifest if r["uid"] == uids[0]}


def test_serve_without_a_server_is_a_clear_error(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    synth(root, videos(1))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["serve", f"dataset.root={root}", f"cache.root={tmp_path / 'cache'}"]) == 2
    err = capsys.readouterr().err
    assert "PREFECT_API_URL is not set" in err and "make prefect-server" in err

    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        assert main(["serve", f"dataset.root={root}", f"cache.root={tmp_path / 'cache'}"]) == 2
    assert "no Prefect server answers at PREFECT_API_URL=http://127.0.0.1:" in capsys.readouterr().err


# -- a real Prefect server ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", HF_HUB_OFFLINE="1", **extra)
    return env


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group we started (its children too), SIGKILL after 20 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


@pytest.fixture
def prefect_server(tmp_path):
    """`prefect server start` on a free port with its own PREFECT_HOME; yields the API URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=_env(tmp_path / "server-home", PREFECT_UI_ENABLED="false"),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited ({proc.returncode}):\n{_tail(log)}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after {WAIT_S} s:\n{_tail(log)}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(proc)


@pytest.mark.slow
@pytest.mark.timeout(2 * WAIT_S + 60)
def test_serve_deploys_a_cron_schedule_and_a_triggered_run_completes(prefect_server, tmp_path):
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root, cache = tmp_path / "data", tmp_path / "cache"
    synth(root, {"v1s": {"train": 1, "val": 0, "test": 0}, "v2": {"train": 1, "val": 0, "test": 0}})
    config = tmp_path / "refresh.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": {"name": "served", "root": str(root)}, "cache": {"root": str(cache)}, "run": {"progress": False},
        "features": {"audio": {"conditions": [{"name": "normal", "kind": "normal"}]}},
    }))
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        serve = subprocess.Popen(
            [str(Path(sys.executable).parent / "teso"), "serve", "--config", str(config), "--name", "nightly", "--cron", "30 2 * * *"],
            env=_env(tmp_path / "serve-home", PREFECT_API_URL=prefect_server, PREFECT_RUNNER_POLL_FREQUENCY="2"),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        )
    try:
        with temporary_settings({PREFECT_API_URL: prefect_server}):
            with get_client(sync_client=True) as client:
                deadline = time.monotonic() + WAIT_S
                while True:
                    if serve.poll() is not None:
                        pytest.fail(f"teso serve exited ({serve.returncode}):\n{_tail(log)}")
                    try:
                        deployment = client.read_deployment_by_name("refresh/nightly")
                        break
                    except Exception:  # ObjectNotFound until serve has registered it
                        if time.monotonic() > deadline:
                            pytest.fail(f"deployment refresh/nightly not registered after {WAIT_S} s:\n{_tail(log)}")
                        time.sleep(1)
            assert [(s.schedule.cron, s.active) for s in deployment.schedules] == [("30 2 * * *", True)]
            assert deployment.parameters == {"config_path": str(config), "overrides": [], "run": None}
            run = run_deployment("refresh/nightly", timeout=WAIT_S, poll_interval=2)
        assert run.state.is_completed(), f"{run.state}\n{_tail(log)}"
    finally:
        _stop(serve)

    cfg = load_config(config)
    frames = 5 + 10
    assert manifest_table(cfg).parts() and len(load_manifest(cfg)) == frames
    assert captions_table(cfg).read().num_rows == frames and cues_table(cfg).read().num_rows == frames
    assert len(audio_store(cfg, cfg.features.audio.conditions[0]).keys()) == 2
    assert len(text_store(cfg).keys()) == frames
