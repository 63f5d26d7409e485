"""Shared pytest configuration: Hypothesis profiles and the `spec` marker.

Profiles (select with HYPOTHESIS_PROFILE): `ci` (default: the suite as CI runs it, with
a fixed seed so a run's verdict depends only on the code), `dev` (quick), `thorough` (a
long fuzzing campaign with fresh random seeds; see README).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=15)
settings.register_profile(
    "thorough",
    parent=settings.get_profile("ci"),
    derandomize=False,
    max_examples=5000,
    stateful_step_count=200,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
