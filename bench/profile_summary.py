"""Summarise a py-spy `--format raw` profile (collapsed stacks): where the time goes.

    .venv/bin/python bench/profile_summary.py bench/out/profile-sqlite-t1-userinfo.txt [N]

Prints the N (default 25) functions with the most samples on top of the stack (self) and
in the stack at all (inclusive), as percentages of all samples.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path


def short(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (file.py)"
    m = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not m:
        return frame
    name, path = m.groups()
    parts = path.split("/")
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    elif "idp" in parts:
        parts = parts[parts.index("idp") :]
    else:
        parts = parts[-2:]
    return f"{name} ({'/'.join(parts)})"


def main() -> None:
    path = Path(sys.argv[1])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    self_count: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [short(f) for f in stack.split(";")]
        # Skip the process/thread label py-spy puts first.
        if frames and frames[0].startswith(("process ", "thread ")):
            frames = frames[1:]
        total += n
        if frames:
            self_count[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    print(f"{path.name}: {total} samples")
    print("\nself:")
    for name, n in self_count.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("\ninclusive:")
    for name, n in incl.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
