"""``python -m dashboards.grafana [--check]``: regenerate the committed dashboards, or check them."""

from __future__ import annotations

import argparse
import sys

from dashboards.grafana.gen.render import OUTPUT_DIR, stale, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.grafana", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed JSON is not current")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        if names:
            print(f"stale dashboards in {OUTPUT_DIR}: {', '.join(names)}; run `make dashboards`", file=sys.stderr)
            return 1
        print("dashboards are current")
        return 0
    changed = write()
    print(f"wrote {len(changed)} dashboard(s) to {OUTPUT_DIR}" + (f": {', '.join(changed)}" if changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
