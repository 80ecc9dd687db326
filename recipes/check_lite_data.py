"""Check extracted extra data (recipes/get_lite_data.sh) against the benchmarks: no GrabCut or Berkeley photo
is among the BSDS500 photos the readers give.

    python recipes/check_lite_data.py /work/data_extra
"""
from __future__ import annotations

import sys
from pathlib import Path

from zeroseg.data import data_root
from zeroseg.train.sources import benchmark_ids, open_extra_source


def main(extra: Path) -> None:
    data = data_root()
    ids = benchmark_ids(data)
    stems = {p.stem for p in open_extra_source("bsds", extra, split="all", data=data).image_paths}
    if len(ids) < 99 or stems & ids or len(stems) != 500 - 99:
        sys.exit(f"BSDS check failed: {len(ids)} benchmark ids, {len(stems)} photos, {len(stems & ids)} overlap")
    print(f"ok: {len(stems)} BSDS500 photos, none of the {len(ids)} GrabCut/Berkeley ids")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/data_extra"))
