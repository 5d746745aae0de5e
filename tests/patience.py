"""How long a test waits for a condition before calling it a failure.

Every wait in the tests polls a condition and ends the moment it holds; this
bound only decides when a condition that never comes is a failure. It is
generous because a 2-core machine busy with other work (CI beside other jobs,
CPU hogs) stretches a broker's start, a consumer group's rebalance and
Python's own work many times over, and a passing test never waits it out.
``CORREDOR_TEST_PATIENCE_S`` changes it.
"""

from __future__ import annotations

import os

PATIENCE_S = float(os.environ.get("CORREDOR_TEST_PATIENCE_S", "300"))
