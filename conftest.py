"""Settings for every test of the workspace (pytest reads this before the packages' conftests)."""

from hypothesis import settings

# No per-example deadline: CI's machine is shared, and one stalled example is not a slow test.
# Each property's size is bounded by its max_examples; the run as a whole by pytest-timeout.
settings.register_profile("camgate", deadline=None)
settings.load_profile("camgate")
