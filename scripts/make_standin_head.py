#!/usr/bin/env python
"""Regenerate the bundled stand-in head (artalk_core/data/standin_head.npz) from project code.

Usage: python scripts/make_standin_head.py [--pt FILE]
  --pt FILE   also write the full FLAME_with_eye.pt-layout torch file (zero blend shapes included).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from artalk_core.flame import standin  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(standin.STANDIN_FILE), help="compact .npz to write")
    parser.add_argument("--pt", default=None, help="also write a FLAME_with_eye.pt-layout file here")
    args = parser.parse_args()
    standin.save_compact(args.out)
    print(f"wrote {args.out}")
    if args.pt:
        standin.write_standin(args.pt)
        print(f"wrote {args.pt}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
