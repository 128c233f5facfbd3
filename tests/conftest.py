"""Settings shared by every test module."""

from hypothesis import settings

# Timing is not a property under test: an example must not fail for being slow on a loaded machine.
settings.register_profile("crdtmem", deadline=None)
settings.load_profile("crdtmem")
