"""Build ``voice/demo_assets/model``: the small suggestion model ``voice demo`` uses in a fresh
clone (no ../shared/data). Trained on PersuasionForGood (Apache-2.0, attribution in NOTICE.md),
80 exemplars per action, without the sentence encoder (exported from the installed MiniLM at
first use), so it stays under 5 MiB.

    .venv/bin/python scripts/build_demo_model.py [--data ../shared/data] [--cache data/demo/cache]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voice.batch.demo_model import build_bundled_model  # noqa: E402


def main() -> None:
    """Train, then print the size of what ships."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=REPO / "data" / "demo" / "cache")
    parser.add_argument("--out", type=Path, default=REPO / "voice" / "demo_assets" / "model")
    args = parser.parse_args()
    started = time.perf_counter()
    out = build_bundled_model(args.data / "dialogues" / "persuasionforgood", args.out, args.cache,
                              lambda line: print(f"{time.perf_counter() - started:7.1f} s  {line}", flush=True))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size / 2**20:.2f} MiB in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
