"""Per-source table of a ``zeroseg eval interactive --json`` run on the folder of ``interactive_val.py``.

Object names start with their source (``coco128_12``), so the JSON's per-object IoUs split by source.
Several JSON files give one block each (same objects, e.g. the shipped head and a new one).

    python recipes/val_by_source.py runs/val_old.json runs/val_new.json
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np


def rows(path: str) -> dict[str, dict[str, float]]:
    objects = json.load(open(path, encoding="utf-8"))["per_object"]
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in objects:
        groups[record["name"].rsplit("_", 1)[0]].append(record)
    groups["all"] = objects
    table = {}
    for source, records in groups.items():
        table[source] = {
            "n": len(records),
            "noc85": float(np.mean([r["noc85"] for r in records])),
            "noc90": float(np.mean([r["noc90"] for r in records])),
            "miou1": float(np.mean([r["ious"][0] for r in records])),
            "miou5": float(np.mean([r["ious"][min(4, len(r["ious"]) - 1)] for r in records])),
            "box": float(np.mean([r.get("box_iou", np.nan) for r in records])),
        }
    return table


def main(paths: list[str]) -> None:
    for path in paths:
        print(f"\n{path}\n| source | objects | NoC@85 | NoC@90 | mIoU@1 | mIoU@5 | box mIoU |")
        print("|---|---|---|---|---|---|---|")
        for source, r in rows(path).items():
            print(
                f"| {source} | {r['n']} | {r['noc85']:.2f} | {r['noc90']:.2f} | {r['miou1']:.3f} | {r['miou5']:.3f} "
                f"| {r['box']:.3f} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
