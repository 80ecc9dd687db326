"""Run the benchmarks, print a table and update the generated section of docs/benchmarks.md.

    python -m benchmarks.run [--only NAME ...] [--quick] [--threads N] [--no-docs]
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from benchmarks.app_session import CASES as APP_SESSION_CASES
from benchmarks.cases import CASES as SAM_CASES
from benchmarks.cases import Context
from benchmarks.everything_counts import CASES as EVERYTHING_CASES
from benchmarks.hf_models import CASES as HF_CASES
from benchmarks.sam3 import CASES as SAM3_CASES
from benchmarks.report import Machine, Row, print_table, update_docs, wide_console
from zeroseg.runtime import reuse_freed_memory

CASES = {**SAM_CASES, **HF_CASES, **SAM3_CASES, **APP_SESSION_CASES, **EVERYTHING_CASES}
DOCS_PATH = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=list(CASES), metavar="NAME",
                        help=f"run only this case (repeatable): {', '.join(CASES)}")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (rougher numbers)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch.set_num_threads(N) before measuring (default: torch's choice)")
    parser.add_argument("--no-docs", action="store_true", help=f"do not update {DOCS_PATH.name}")
    parser.add_argument("--docs", type=Path, default=DOCS_PATH, help="markdown file to update")
    return parser.parse_args(argv)


def run_case(name: str, ctx: Context) -> tuple[list[Row], bool]:
    """The case's rows stamped with time, load (to spot a busy machine) and threads; False if it raised."""
    try:
        rows, ok = CASES[name](ctx), True
    except Exception as error:  # report and go on: one broken model should not hide the other numbers
        rows, ok = [Row(name, name, note=f"{type(error).__name__}: {error}", error=True)], False
    stamp = f"{dt.datetime.now():%Y-%m-%d %H:%M}, load {os.getloadavg()[0]:.1f}, {torch.get_num_threads()} threads"
    return [dataclasses.replace(row, measured=stamp) for row in rows], ok


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reuse_freed_memory()  # as the zeroseg CLI does: the cases measure what a CLI run gets
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [name for name in CASES if not args.only or name in args.only]
    console = wide_console()
    ctx = Context(quick=args.quick)
    rows: list[Row] = []
    all_ok = True
    with torch.inference_mode():
        for name in names:
            with console.status(f"benchmark {name} ..."):
                case_rows, ok = run_case(name, ctx)
            rows += case_rows
            all_ok &= ok
    machine = Machine.current()
    print_table(rows, machine, console)
    console.print(f"load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
                  f"this benchmark alone accounts for about {machine.threads}")
    if not args.no_docs:
        update_docs(args.docs, rows, machine, list(CASES))
        console.print(f"updated {args.docs}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
