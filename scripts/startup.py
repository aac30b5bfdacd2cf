"""Start-up alone: process start → `/healthz` 200, warroom and the floor in turns (not part of the tests).

    python scripts/startup.py [--runs 10] [--phases 20] [--no-floor]

`warroom run` (HTTP mode, SQLite, a new database each run, a plan of N phases) and the bare Bolt app of
`scripts/perf.py` start one after the other against the tests' fake Slack, in alternating order, exactly as
perf.py starts them (after one uncounted start of each that fills the bytecode cache). Prints the median
and range of the wall time until `/healthz` first answers 200, the CPU time the process had used by then
(steadier than wall time on a shared machine), and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf  # the same start, plan and floor as the side-by-side benchmark

from tests.fake_slack import FakeSlack


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(name: str, walls: list[float], cpus: list[float]) -> str:
    spread = f"{min(walls):.2f} to {max(walls):.2f} s, {len(walls)} runs"
    return (
        f"{name}: start → /healthz 200 median {statistics.median(walls):.3f} s ({spread}); "
        f"CPU by then median {statistics.median(cpus):.2f} s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--phases", type=int, default=20)
    parser.add_argument("--no-floor", action="store_true", help="start warroom only")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="warroom-startup-"))
    plan = workdir / "plan.yml"
    plan.write_text(perf.plan_text(datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1), args.phases))
    fake = await FakeSlack().start()
    figures: dict[str, tuple[list[float], list[float]]] = {"warroom": ([], []), "floor": ([], [])}
    loads = []
    try:
        async with aiohttp.ClientSession() as session:
            # a first start of each fills the bytecode cache (see perf.bytecode_env), as an install's does
            for name in ("warroom", "floor"):
                first = (
                    perf.start_warroom([plan], fake, workdir / "first.db", workdir)
                    if name == "warroom"
                    else perf.start_floor(workdir)
                )
                try:
                    await perf.wait_healthy(session, first)
                finally:
                    first.stop()
            for run in range(args.runs):
                names = ["warroom"] if args.no_floor else ["warroom", "floor"][:: 1 if run % 2 == 0 else -1]
                for name in names:
                    if name == "warroom":
                        server = perf.start_warroom([plan], fake, workdir / f"run{run}.db", workdir)
                    else:
                        server = perf.start_floor(workdir)
                    try:
                        await perf.wait_healthy(session, server)
                        figures[name][1].append(cpu_seconds(server.process.pid))
                        figures[name][0].append(server.ready - server.started)
                    finally:
                        server.stop()
                loads.append(os.getloadavg()[0])
    finally:
        await fake.stop()
    for name, (walls, cpus) in figures.items():
        if walls:
            print(summary(name, walls, cpus))
    print(f"load average (1 min) during the runs: {min(loads):.2f} to {max(loads):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
