"""Settings every test shares.

Hypothesis's default per-example deadline (200 ms) and its too-slow health
check are timing assertions, which this project keeps out of tests (timing
belongs in bench/): on CI's two shared cores an example or an input can take
longer for reasons that have nothing to do with the code under test.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile("nsqsim", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("nsqsim")
