"""The paper's claims, checked across seeds (`teso reproduce`).

Input: the evaluation results (metrics.json) of every run at every seed. Output: the mean and an
interval of every metric, and one verdict per claim, computed from the numbers only.

Intervals: with n >= 5 seeds, the 95% Student-t interval of the mean (scipy.stats.t); with fewer,
the min-max range over seeds, which is the honest summary of 3 or 4 numbers. A claim compares two
quantities seed by seed (paired: the same seed trains both runs on the same data order) or a
quantity with a bound:

- holds: the interval of (left - right), or of the quantity minus its bound, lies above zero (with
  fewer than 5 seeds: it holds at every seed);
- contradicted: that interval lies below zero (the opposite holds at every seed);
- not shown: anything else;
- not run: a run the claim needs is not part of the experiment (`reproduce.roles`).

The claims (paper, test split, mIoU under the reference audio condition):
  C1 TeSO > (-) audio; C2 TeSO > (-) text; C3 TeSO > TeSO-n (noun cues) (Table 3);
  C4 muted audio costs TeSO at least 30% of its mIoU; C4b at least as much as it costs (-) text (Table 4, Sec. 4.4);
  C5 noise in place of the audio lowers TeSO's mIoU, per noise condition (Table 4);
  C6 REC#2 > REC#1 (Table 3), and C6b the dynamic mask keeps a share of the cues strictly between 0 and 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import mean, stdev
from typing import Callable

from scipy import stats

HOLDS, NOT_SHOWN, CONTRADICTED, NOT_RUN = "holds", "not shown", "contradicted", "not run"
MUTE_DROP = 0.30  # C4: the paper's TeSO loses well over this share of its mIoU when muted


@dataclass(frozen=True)
class Interval:
    n: int
    mean: float
    low: float
    high: float
    kind: str  # "95% t" or "min-max"

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def interval(values: list[float]) -> Interval:
    if not values:
        raise ValueError("an interval needs at least one value")
    n, m = len(values), mean(values)
    if n >= 5:
        half = float(stats.t.ppf(0.975, n - 1)) * stdev(values) / math.sqrt(n)
        return Interval(n, m, m - half, m + half, "95% t")
    return Interval(n, m, min(values), max(values), "min-max")


def verdict(values: list[float]) -> str:
    """holds / contradicted / not shown for "these (per-seed) quantities are above zero"."""
    iv = interval(values)
    if iv.low > 0:
        return HOLDS
    if iv.high < 0:
        return CONTRADICTED
    return NOT_SHOWN


# results[run][seed] = that evaluation's metrics.json
Results = dict[str, dict[int, dict]]


def metric_rows(results: Results) -> list[dict]:
    """Every scalar metric of every run: per condition (miou, fscore, drops, per subset) and the
    cue-recognition scores, with its values over seeds and their interval."""
    collected: dict[tuple, dict[int, float]] = {}
    for run, by_seed in results.items():
        for seed, m in by_seed.items():
            for cond, r in m["conditions"].items():
                for metric, value in r.items():
                    if metric in ("miou", "fscore", "miou_drop", "fscore_drop"):
                        collected.setdefault((run, cond, metric), {})[seed] = float(value)
                for subset, s in r.get("by_subset", {}).items():
                    collected.setdefault((run, cond, f"miou/{subset}"), {})[seed] = float(s["miou"])
            for metric in ("rec1_ap", "rec2_ap", "cue_kept_share"):
                if metric in m.get("cue_recognition", {}):
                    collected.setdefault((run, "-", metric), {})[seed] = float(m["cue_recognition"][metric])
    rows = []
    for (run, cond, metric), values in collected.items():
        seeds = sorted(values)
        rows.append({"run": run, "condition": cond, "metric": metric, "seeds": seeds,
                     "values": [values[s] for s in seeds], "interval": interval([values[s] for s in seeds])})
    return rows


def _paired(results: Results, a: str, b: str, value: Callable[[dict], float | None]) -> list[float]:
    seeds = sorted(set(results[a]) & set(results[b]))
    return [value(results[a][s]) - value(results[b][s]) for s in seeds]


def check_claims(results: Results, roles: dict[str, str], reference: str, mute: str | None, noises: dict[str, str]) -> list[dict]:
    """One row per claim: its id, statement, the per-seed quantity it tests, its interval and the
    verdict. `roles` maps teso / no_audio / no_text / nouns to run names; `mute` is the muted
    condition's name, `noises` {condition name: label} the noise-only ones."""
    def miou(cond: str) -> Callable[[dict], float]:
        return lambda m: m["conditions"][cond]["miou"]

    def drop(cond: str) -> Callable[[dict], float]:
        return lambda m: m["conditions"][cond]["miou_drop"]

    def present(*role_names: str) -> list[str] | None:
        runs = [roles.get(r) for r in role_names]
        return runs if all(r in results for r in runs) else None

    claims: list[dict] = []

    def add(cid: str, statement: str, needs: tuple[str, ...], quantity: Callable[..., list[float]], what: str) -> None:
        runs = present(*needs)
        if runs is None:
            claims.append({"id": cid, "claim": statement, "tested": what, "verdict": NOT_RUN, "interval": None, "values": [],
                           "missing": [roles.get(r, r) for r in needs if roles.get(r) not in results]})
            return
        values = quantity(*runs)
        claims.append({"id": cid, "claim": statement, "tested": what, "values": values, "interval": interval(values), "verdict": verdict(values)})

    add("C1", "TeSO mIoU > (-) audio", ("teso", "no_audio"), lambda t, a: _paired(results, t, a, miou(reference)), "mIoU(TeSO) - mIoU((-) audio)")
    add("C2", "TeSO mIoU > (-) text", ("teso", "no_text"), lambda t, x: _paired(results, t, x, miou(reference)), "mIoU(TeSO) - mIoU((-) text)")
    add("C3", "TeSO (reasoning cues) mIoU > TeSO-n (noun cues)", ("teso", "nouns"),
        lambda t, n: _paired(results, t, n, miou(reference)), "mIoU(TeSO) - mIoU(TeSO-n)")
    if mute is not None:
        add("C4", f"muted audio costs TeSO at least {MUTE_DROP:.0%} of its mIoU", ("teso",),
            lambda t: [drop(mute)(results[t][s]) - MUTE_DROP for s in sorted(results[t])], f"drop(TeSO, muted) - {MUTE_DROP}")
        add("C4b", "muted audio costs TeSO at least as much as (-) text", ("teso", "no_text"),
            lambda t, x: _paired(results, t, x, drop(mute)), "drop(TeSO, muted) - drop((-) text, muted)")
    for cond, label in noises.items():
        add(f"C5 {label}", f"{label} in place of the audio lowers TeSO's mIoU", ("teso",),
            lambda t, c=cond: [drop(c)(results[t][s]) for s in sorted(results[t])], f"drop(TeSO, {label})")

    def rec(name: str) -> Callable[[dict], float]:
        return lambda m: m["cue_recognition"].get(name, math.nan)

    add("C6", "the dynamic mask helps recognition: REC#2 > REC#1", ("teso",),
        lambda t: [rec("rec2_ap")(results[t][s]) - rec("rec1_ap")(results[t][s]) for s in sorted(results[t])], "REC#2 - REC#1 (TeSO)")
    runs = present("teso")
    if runs is not None:  # strictly inside (0, 1): a quantity above zero on both sides
        shares = [rec("cue_kept_share")(results[runs[0]][s]) for s in sorted(results[runs[0]])]
        inside = [min(x, 1 - x) for x in shares]
        claims.append({"id": "C6b", "claim": "the dynamic mask keeps some cues and drops others (0 < kept share < 1)",
                       "tested": "min(kept share, 1 - kept share)", "values": inside, "interval": interval(inside),
                       "verdict": HOLDS if interval(inside).low > 0 else (CONTRADICTED if interval(inside).high <= 0 else NOT_SHOWN)})
    return claims
