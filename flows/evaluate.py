"""Prefect flow: evaluate a trained TeSO run under every audio condition (pipeline.stages.evaluate)."""
from __future__ import annotations

from prefect import flow

from flows.manifest import indexed
from pipeline.config import Config
from pipeline.evaluation.report import frames_cell
from pipeline.stages import evaluate


@flow(name="eval", log_prints=True)
def eval_flow(cfg: Config) -> dict:
    with indexed(cfg):
        results = evaluate.STAGE.run(cfg)
    for name, r in results["conditions"].items():
        shown = {k: round(v, 4) for k, v in r.items() if isinstance(v, float)}
        print(f"{name}: {shown}")
        print(frames_line(name, r))
    if "cue_recognition" in results:
        print(f"cue recognition: {results['cue_recognition']}")
    return results


def frames_line(condition: str, r: dict) -> str:
    """How many frames a condition's numbers rest on, and how many the evaluation had to skip."""
    line = f"{condition}: scored {frames_cell(r)}"
    return line + ("; run `teso features` for the missing ones" if r.get("skipped_without_features") else "")
