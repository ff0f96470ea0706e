#!/usr/bin/env python3
"""Write the README's results block from the latest `make reproduce` report.

    .venv/bin/python scripts/readme_results.py [--config configs/demo.yaml] [--readme README.md]

The README's numbers are never typed by hand: this script rewrites the block between its markers
from `reproduce.out_dir/reproduce.json` (commit, date, seeds and threads included).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.common.atomic import atomic_write_text  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.evaluation.reproduce_report import readme_block, replace_readme_block  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--readme", default="README.md")
    args = parser.parse_args(argv)
    report = Path(load_config(args.config).reproduce.out_dir) / "reproduce.json"
    if not report.exists():
        print(f"no reproduce report at {report}; run `make reproduce CONFIG={args.config}` first", file=sys.stderr)
        return 2
    readme = Path(args.readme)
    text = replace_readme_block(readme.read_text(), readme_block(json.loads(report.read_text()), args.config))
    atomic_write_text(readme, text)
    print(f"{readme}: results block written from {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
