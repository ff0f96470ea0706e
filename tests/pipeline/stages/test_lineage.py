"""The lineage: table identities stay what earlier caches were written under, and stages stand
side by side (none imports another; they meet in lineage)."""
import ast
from pathlib import Path

from pipeline.config import load_config
from pipeline.stages.lineage import audio_store, captions_table, cues_table, manifest_table, metrics_table, text_store

STAGES_DIR = Path(__file__).resolve().parents[3] / "pipeline" / "stages"
SHARED = {"pipeline.stages.lineage", "pipeline.stages.base", "pipeline.stages.workers"}


def demo_config(*overrides):
    return load_config(STAGES_DIR.parents[1] / "configs" / "demo.yaml", ["cache.root=/tmp/fpcache", "dataset.root=/tmp/fpdata", "train.out_dir=/tmp/fprun", *overrides])


def test_fingerprints_match_the_caches_written_before_the_lineage_module():
    """Pinned: a change here orphans every cache written since, so it must come with a version bump
    on purpose, never by accident. Last bumped on purpose when rows became keyed by their inputs'
    content hashes (manifest 3, captions 2, cues 2, features 2); metrics are unchanged since 86faed2."""
    cfg = demo_config()
    assert manifest_table(cfg).fingerprint == "1498dcb8415250f1"
    assert captions_table(cfg).fingerprint == "ba2f9da8b4689379"
    assert metrics_table(cfg).fingerprint == "988807e84c05f7a4"
    # the conditions as they were then (the additive noise was called wgn10 / wgn40)
    old = demo_config("features.audio.conditions=[{name: normal, kind: normal}, {name: mute, kind: mute}, "
                      "{name: wgn10, kind: wgn, snr_db: 10}, {name: wgn40, kind: wgn, snr_db: 40}]")
    audio = {c.name: audio_store(old, c).table.fingerprint for c in old.features.audio.conditions}
    assert audio == {"normal": "a51e298800345b52", "mute": "9cb67a657f38a200", "wgn10": "a67e7856d9b39ab8", "wgn40": "75548c5b21292d7d"}
    hf = demo_config("captions.backend=hf", "cues.backend=hf", "captions.model=/nonexistent", "cues.template=cot_oneshot")
    assert captions_table(hf).fingerprint == "8159c2a970549881"
    assert cues_table(hf).fingerprint == "0e2a9db39a54db4c"
    assert text_store(hf).table.fingerprint == "d60cd1df0d57db85"


def test_an_upstream_change_reaches_every_table_below_it():
    base, other = demo_config(), demo_config("captions.backend=hf", "captions.model=/nonexistent")
    assert captions_table(base).fingerprint != captions_table(other).fingerprint
    assert cues_table(base).fingerprint != cues_table(other).fingerprint
    assert text_store(base).table.fingerprint != text_store(other).table.fingerprint
    assert audio_store(base, "normal").table.fingerprint == audio_store(other, "normal").table.fingerprint


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_stage_module_imports_another():
    stage_modules = {f"pipeline.stages.{p.stem}" for p in STAGES_DIR.glob("*.py") if p.stem != "__init__"} - SHARED
    assert {"pipeline.stages.captions", "pipeline.stages.cues", "pipeline.stages.evaluate"} <= stage_modules
    for path in STAGES_DIR.glob("*.py"):
        here = f"pipeline.stages.{path.stem}"
        others = (_imports(path) & stage_modules) - {here}
        assert not others, f"{here} imports the stage module(s) {sorted(others)}; read upstream tables through lineage"


def test_lower_layers_do_not_reach_up():
    """data/, text/, features/, store/ and common/ never import stages, evaluation, flows or model_io."""
    pipeline = STAGES_DIR.parent
    upper = ("pipeline.stages", "pipeline.evaluation", "pipeline.model_io", "flows")
    for folder in ("common", "data", "text", "features", "store"):
        for path in (pipeline / folder).rglob("*.py"):
            bad = [m for m in _imports(path) if m.startswith(upper)]
            assert not bad, f"{path.relative_to(pipeline.parent)} imports {bad}"


def test_every_stage_reads_what_another_stage_writes():
    from pipeline.stages import captions, cues, evaluate, features, manifest, train

    stages = [manifest.STAGE, captions.STAGE, cues.STAGE, features.AUDIO, features.TEXT, train.STAGE, evaluate.STAGE]
    written = {s.writes for s in stages}
    assert written >= {"manifest", "captions", "cues", "audio_features", "text_features", "metrics"}
    for s in stages:
        assert set(s.reads) <= written, f"{s.name} reads {sorted(set(s.reads) - written)}, which no stage writes"
