"""Two trees side by side: the in-process cells of another checkout (say a `git worktree` of
the last release) against this one, alternating, in one run.

    git worktree add /tmp/old <commit>
    python -m benchmarks.ab /tmp/old [ROUNDS] [APP:CONFIG,...]

Prints µs per request (wall and all CPU) of each tree and new/old; a run in which either tree
dropped a record is refused, as in `python -m benchmarks`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

NEW = str(Path(__file__).resolve().parents[1])
DEFAULT_CELLS = [
    (app, config)
    for app in ("asgi", "starlette", "wsgi")
    for config in ("bridge", "bridge_views", "bridge_all")
]


def cell(tree: str, app: str, config: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.inprocess", app, config, str(n)],
        cwd=tree,
        env={"PYTHONPATH": tree, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    if result["dropped"]:
        raise SystemExit(f"{tree} {app} {config}: {result['dropped']} records dropped")
    return result


def main() -> None:
    old = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    cells = (
        [tuple(item.split(":")) for item in sys.argv[3].split(",")]
        if len(sys.argv) > 3
        else DEFAULT_CELLS
    )
    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for index in range(rounds):
        for app, config in cells:
            order = ((old, "old"), (NEW, "new"))
            for tree, label in order if index % 2 == 0 else order[::-1]:
                runs.setdefault((app, config, label), []).append(cell(tree, app, config, 20_000))
    print("| cell | old µs/req | new µs/req | new/old | old cpu µs | new cpu µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for app, config in cells:
        old_runs, new_runs = runs[(app, config, "old")], runs[(app, config, "new")]

        def median(results: list[dict[str, Any]], key: str) -> float:
            return float(statistics.median(result[key] for result in results))

        ratio = median(new_runs, "wall_us") / median(old_runs, "wall_us")
        print(
            f"| {app} {config} | {median(old_runs, 'wall_us'):.1f} "
            f"| {median(new_runs, 'wall_us'):.1f} | {ratio:.3f} "
            f"| {median(old_runs, 'cpu_us'):.1f} | {median(new_runs, 'cpu_us'):.1f} |"
        )


if __name__ == "__main__":
    main()
