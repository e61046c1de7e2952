"""Generation rates of the Hypothesis strategies (run on purpose: python bench/strategies.py).

Targets on a 2-core machine: >= 1,000 valid single updates per second; >= 20 batch files of 1,000
rows per second (drawn and encoded to the exact bytes sent).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, settings
from target_profile_mock.contracts.strategies import batch_files, single_updates


def rate(strategy, n: int, use=lambda x: None) -> float:  # type: ignore[no-untyped-def]
    count = 0

    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(x) -> None:  # type: ignore[no-untyped-def]
        nonlocal count
        use(x)
        count += 1

    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def raw_rate(strategy, n: int, use=lambda x: None) -> float:  # type: ignore[no-untyped-def]
    """Draws per second from the strategy alone, without the test engine's bookkeeping around each example
    (random choices, as in Hypothesis's generation phase; an internal but stable entry point)."""
    import random

    from hypothesis.control import BuildContext
    from hypothesis.errors import StopTest
    from hypothesis.internal.conjecture.data import ConjectureData

    rnd = random.Random(0)
    start = time.perf_counter()
    done = 0
    for _ in range(n):
        data = ConjectureData(random=rnd)
        with BuildContext(data, is_final=False, wrapped_test=None):
            try:
                use(data.draw(strategy))
                done += 1
            except StopTest:  # an overrun of the choice budget: counts as no example
                pass
        data.freeze()
    return done / (time.perf_counter() - start)


def main() -> None:
    import argparse

    from hypothesis import strategies as st

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs (a smoke run; the figures mean nothing)")
    scale = 50 if parser.parse_args().quick else 1

    def n(count: int) -> int:
        return max(2, count // scale)

    singles = single_updates()
    batches = batch_files(min_rows=1000, max_rows=1000)
    # what plain Hypothesis manages on this machine, to read the figures against
    print(f"baseline st.integers(), drawn:              {raw_rate(st.integers(), n(5000)):8,.0f} examples/s")
    print(f"baseline st.integers(), through @given:     {rate(st.integers(), n(2000)):8,.0f} examples/s")
    print(f"valid single updates, drawn:               {raw_rate(singles, n(5000)):8,.0f} examples/s (target >= 1,000)")
    print(f"valid single updates, through @given:      {rate(singles, n(2000)):8,.0f} examples/s")
    print(f"batch files of 1,000 rows, drawn+encoded:  {raw_rate(batches, n(300), lambda b: b.body):8,.1f} files/s "
          "(target >= 20)")
    print(f"batch files of 1,000 rows, through @given: {rate(batches, n(200), lambda b: b.body):8,.1f} files/s")


if __name__ == "__main__":
    main()
