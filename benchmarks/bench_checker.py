"""Static checker speed: milliseconds to check a ~5 KB policy (the kitchen-sink test program
plus the Pong tracker), median of many runs. The checker runs once per proposed program, on the
host, before any sandbox.

    python benchmarks/bench_checker.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

from sandbox.checker import check_source
from tests.sandbox.test_checker import KITCHEN_SINK_POLICY, PONG_POLICY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    source = PONG_POLICY + KITCHEN_SINK_POLICY.replace("def act(obs)", "def act2(obs)")
    check_source(source)
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        assert check_source(source).ok
        times.append(time.perf_counter() - started)
    median_ms = statistics.median(times) * 1000
    print(
        f"check_source on {len(source.encode())} bytes: median {median_ms:.1f} ms"
        f" (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}) over {args.repeats} runs"
    )


if __name__ == "__main__":
    main()
