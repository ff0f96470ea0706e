"""`teso`: one subcommand per stage.

    teso data synth --out DIR --seed S       write the synthetic AVSBench-layout dataset
    teso index --config configs/demo.yaml    index a dataset into the manifest table
    teso captions --config configs/demo.yaml dense captions per frame -> captions table
    teso cues --config configs/demo.yaml     sounding-object cues per frame -> cues table
    teso features --config configs/demo.yaml audio + text-cue features -> feature store
    teso refresh --config configs/demo.yaml  index, captions, cues, features in one flow (only what is new)
    teso serve --config configs/demo.yaml [--cron "0 3 * * *"] [--name N]  schedule `refresh` (Prefect server)
    teso foundation --config configs/demo.yaml  build the small random Mask2Former (no weights here)
    teso train --config configs/demo.yaml    train TeSO: every run of report.runs, or --run NAME (checkpoints, resume, best-on-val)
    teso eval --config configs/demo.yaml     AVSBench metrics + audio-control test + cue recognition, per run
    teso report --config configs/demo.yaml   the runs of report.runs side by side (Markdown, HTML)
    teso demo --config configs/demo.yaml     everything above in order, then the report
    teso reproduce --config configs/demo.yaml  every run over reproduce.seeds; claims with intervals and verdicts
    teso score --pred DIR --gt DIR           AVSBench metrics for any method's PNG masks
    teso sql ["SELECT ..."]                  query the caches (no query: list the views)

Every stage command takes `--config configs/NAME.yaml` plus `key.sub=value` overrides; the config
is validated before any work starts. `--run NAME` selects one of the config's named `runs`
(ablations, cue variants): its overrides on top of the config, trained into {train.out_dir}/{NAME}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from flows import prefect_env
from pipeline.common.errors import UserError
from pipeline.config import Config, load_config, report_runs, require_paths, run_config

# Each subcommand imports its flow (Prefect, torch, the models) inside its function: `teso sql`,
# `teso --help` and a config error answer in a fraction of a second instead of several.


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="YAML config (configs/NAME.yaml); defaults when omitted")
    p.add_argument("--run", help="one of the config's named runs (ablations, cue variants), e.g. no_text")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. dataset.subsets=[v1s]")


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config, args.overrides)
    run = getattr(args, "run", None)
    cfg = run_config(cfg, run) if run else cfg
    if not cfg.run.progress:
        prefect_env.quiet_libraries()
    return cfg


def _flow_config(args: argparse.Namespace) -> Config:
    """The config of a command that runs flows (a temporary Prefect server that dies with it)."""
    cfg = _config(args)
    prefect_env.guard_temporary_server()
    return cfg


def cmd_synth(args: argparse.Namespace) -> int:
    from pipeline.data.synth import generate

    overrides = list(args.overrides)
    if args.out is not None:
        overrides.append(f"synth.out={args.out}")
    if args.seed is not None:
        overrides.append(f"synth.seed={args.seed}")
    cfg = load_config(args.config, overrides)
    s = cfg.synth
    summary = generate(s.out, s.generator_config(), progress=cfg.run.progress)
    print(f"synthetic dataset written to {s.out}: {summary}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    cfg = _flow_config(args)
    require_paths(cfg, ["dataset.root"])
    from flows.manifest import manifest_flow

    manifest_flow(cfg)
    return 0


def cmd_captions(args: argparse.Namespace) -> int:
    cfg = _flow_config(args)
    require_paths(cfg, ["dataset.root"])
    from flows.captions import captions_flow
    from flows.sharding import task_runner

    captions_flow.with_options(task_runner=task_runner(cfg))(cfg)
    return 0


def cmd_cues(args: argparse.Namespace) -> int:
    cfg = _flow_config(args)
    require_paths(cfg, ["dataset.root"])
    from flows.cues import cues_flow
    from flows.sharding import task_runner

    cues_flow.with_options(task_runner=task_runner(cfg))(cfg)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    cfg = _flow_config(args)
    require_paths(cfg, ["dataset.root", "features.audio.weights", "features.text.path", "features.text.tokenizer"])
    from flows.features import features_flow
    from flows.sharding import task_runner

    features_flow.with_options(task_runner=task_runner(cfg))(cfg)
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    from flows.refresh import REQUIRED_PATHS, refresh_flow

    require_paths(_config(args), REQUIRED_PATHS)  # fail before Prefect starts
    prefect_env.guard_temporary_server()
    refresh_flow(args.config, list(args.overrides), args.run)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.refresh import REQUIRED_PATHS, serve, server_problem

    cfg = _config(args)
    require_paths(cfg, REQUIRED_PATHS)
    problem = server_problem()
    if problem:
        print(f"teso serve: {problem}", file=sys.stderr)
        return 2
    config_path = str(Path(args.config).resolve()) if args.config else None
    serve(config_path, list(args.overrides), name=args.name or cfg.dataset.name, cron=args.cron, run=args.run)
    return 0


def cmd_foundation(args: argparse.Namespace) -> int:
    from model.config import SmallFoundationConfig, SmallSamConfig
    from model.foundation import build_small_foundation

    cfg = _config(args)
    path = build_small_foundation(cfg.foundation.out, SmallFoundationConfig(**cfg.foundation.small))
    print(f"small random Mask2Former in {path} (TeSO: set train.model.foundation={path})")
    sam = build_small_foundation(cfg.foundation.sam_out, SmallSamConfig(**cfg.foundation.sam_small))
    print(f"small random SAM in {sam} (GAVS: train.model.architecture=gavs train.model.foundation={sam})")
    return 0


def _selected_runs(cfg: Config, args: argparse.Namespace) -> list[tuple[str, Config]]:
    """--run NAME: that run (already applied to cfg); otherwise every run the report covers."""
    return [(args.run, cfg)] if args.run else report_runs(cfg)


def cmd_train(args: argparse.Namespace) -> int:
    from pipeline.model_io.foundation import ensure_foundation

    cfg = _config(args)
    require_paths(cfg, ["dataset.root"])
    runs = _selected_runs(cfg, args)
    for _, rcfg in runs:  # every torchrun rank runs this: only a single process may build the small foundation
        ensure_foundation(rcfg, build="RANK" not in os.environ)
    if "RANK" in os.environ:  # launched by torchrun: every rank runs the recipe itself
        from flows.train import train_and_report

        for _, rcfg in runs:
            train_and_report(rcfg, resume=not args.restart)
        return 0
    from flows.train import train_flow, train_runs

    prefect_env.guard_temporary_server()
    if args.run:
        train_flow(cfg, resume=not args.restart)
    else:
        print(f"training {', '.join(name for name, _ in runs)} (--run NAME trains one)")
        train_runs(cfg, resume=not args.restart)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pipeline.model_io.foundation import check_foundation

    cfg = _flow_config(args)
    require_paths(cfg, ["dataset.root"])
    runs = _selected_runs(cfg, args)
    for _, rcfg in runs:
        require_paths(rcfg, ["train.out_dir"])
        check_foundation(rcfg)
    from flows.evaluate import eval_flow

    for name, rcfg in runs:
        print(f"evaluating {name} ({rcfg.train.out_dir})")
        eval_flow(rcfg)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.evaluation.report import write_report

    cfg = _config(args)
    try:
        report = write_report(cfg)
    except FileNotFoundError as exc:
        print(f"teso report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {report['markdown']}, {report['html']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    cfg = _flow_config(args)
    from flows.demo import demo_flow

    demo_flow(cfg)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    cfg = _flow_config(args)
    from flows.reproduce import reproduce_flow

    reproduce_flow(cfg)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from pipeline.evaluation.score import score_folders

    try:
        report = score_folders(args.pred, args.gt, args.threshold, args.semantic, args.num_classes)
    except (FileNotFoundError, ValueError, OSError) as exc:  # OSError: an image PIL cannot read
        print(f"teso score: {exc}", file=sys.stderr)
        return 2
    shown = {k: v for k, v in report.metrics.items() if not isinstance(v, dict)}
    print(f"{report.frames} frames in {report.videos} videos: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    if report.missing:
        print(f"{len(report.missing)} predictions missing (scored as empty), e.g. {report.missing[:3]}")
    if report.resized:
        print(f"{len(report.resized)} predictions resized to their ground truth's size, e.g. {report.resized[:3]}")
    if args.json:
        Path(args.json).write_text(json.dumps(report.__dict__, indent=2, default=str))
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from pipeline.store.sql_views import check_read_only, connect, describe_views

    cfg = load_config(args.config, args.overrides)
    con = connect(cfg.cache.root, read_only=not args.full_access)
    if not args.query:
        views = describe_views(con)
        if not views:
            print(f"no cached tables under {cfg.cache.root}")
        for view, columns in views:
            print(f"{view}\n  " + "\n  ".join(f"{c}  {t}" for c, t in columns))
        return 0
    if not args.full_access:
        check_read_only(con, args.query)
    rel = con.sql(args.query)
    if rel is None:  # a statement without a result set
        return 0
    rel.show(max_rows=args.max_rows, max_width=args.max_width)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teso", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="dataset utilities").add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="write the synthetic AVSBench-semantic dataset")
    synth.add_argument("--out", type=Path, help="output folder (default synth.out)")
    synth.add_argument("--seed", type=int, help="random seed (default synth.seed)")
    _add_config_args(synth)
    synth.set_defaults(func=cmd_synth)

    index = sub.add_parser("index", help="index a dataset into the manifest table")
    _add_config_args(index)
    index.set_defaults(func=cmd_index)

    for name, func, help_text in (
        ("captions", cmd_captions, "dense captions of every frame (LLaVA-1.5 or reference)"),
        ("cues", cmd_cues, "sounding-object cues from the captions (LLaMA-2 CoT or noun parser)"),
        ("features", cmd_features, "audio features per condition and text-cue embeddings -> feature store"),
    ):
        stage = sub.add_parser(name, help=help_text)
        _add_config_args(stage)
        stage.set_defaults(func=func)

    refresh = sub.add_parser("refresh", help="every stage in order (manifest, captions, cues, features), only what is new")
    _add_config_args(refresh)
    refresh.set_defaults(func=cmd_refresh)

    serve = sub.add_parser("serve", help="deploy `refresh` on a cron schedule to the Prefect server at PREFECT_API_URL and run it")
    serve.add_argument("--cron", default="0 3 * * *", help='cron schedule (default "0 3 * * *": daily at 03:00)')
    serve.add_argument("--name", help="deployment name, run as refresh/NAME (default: dataset.name)")
    _add_config_args(serve)
    serve.set_defaults(func=cmd_serve)

    foundation = sub.add_parser("foundation", help="build the small random Mask2Former for machines without weights")
    _add_config_args(foundation)
    foundation.set_defaults(func=cmd_foundation)

    train = sub.add_parser("train", help="train TeSO on the cached features (torchrun for several GPUs)")
    train.add_argument("--restart", action="store_true", help="ignore existing checkpoints in train.out_dir")
    _add_config_args(train)
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("eval", help="metrics under normal/mute/noise audio, cue recognition, grids")
    _add_config_args(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    report = sub.add_parser("report", help="the runs of report.runs side by side: paper-style tables, curves, grids")
    _add_config_args(report)
    report.set_defaults(func=cmd_report)

    demo = sub.add_parser("demo", help="data, every stage, the report.runs trainings and evaluations, the report")
    _add_config_args(demo)
    demo.set_defaults(func=cmd_demo)

    reproduce = sub.add_parser("reproduce", help="every run at every seed of reproduce.seeds, the paper's claims checked on the numbers")
    _add_config_args(reproduce)
    reproduce.set_defaults(func=cmd_reproduce)

    score = sub.add_parser("score", help="AVSBench metrics for predicted PNG masks of any method")
    score.add_argument("--pred", required=True, type=Path, help="predicted masks, same relative paths as --gt")
    score.add_argument("--gt", required=True, type=Path, help="ground-truth masks; the parent folder is the video")
    score.add_argument("--threshold", type=float, default=0.5, help="mIoU binarisation (AVSBench 0.5; GAVS/TeSO 0.4)")
    score.add_argument("--semantic", action="store_true", help="class-index masks: AVSS per-class metrics")
    score.add_argument("--num-classes", type=int, default=71)
    score.add_argument("--json", help="also write the report as JSON here")
    score.set_defaults(func=cmd_score)

    sql = sub.add_parser("sql", help="query the caches with DuckDB SQL")
    sql.add_argument("query", nargs="?", help="SQL; omit to list the views and their columns")
    sql.add_argument("--config", "-c")
    sql.add_argument("--set", dest="overrides", action="append", default=[], help="config override, e.g. cache.root=DIR")
    sql.add_argument("--max-rows", type=int, default=40)
    sql.add_argument("--max-width", type=int, default=200)
    sql.add_argument("--full-access", action="store_true",
                     help="DuckDB with no limits: any statement, any file, extensions (default: SELECT over the cache only)")
    sql.set_defaults(func=cmd_sql)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """What ends a command with one message and exit status 2: the project's UserErrors, a file
    the user named that is not there, and DuckDB's errors (a query the user wrote)."""
    import duckdb

    return (UserError, FileNotFoundError, duckdb.Error)


EXPECTED_ERRORS = _expected_errors()


def main(argv: list[str] | None = None) -> int:
    prefect_env.configure()
    prefect_env.hide_user_error_tracebacks()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EXPECTED_ERRORS as exc:  # the message says what to do; a traceback would only hide it
        print(f"teso {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
