"""Example spikard apps: ``app`` is the bundled example (config/spikard.toml);
the others are served by the end-to-end tests in ``plugins/python/tests``."""
