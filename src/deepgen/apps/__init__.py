"""Applications built on model capabilities (they are not models): :mod:`.anomaly` (anomaly detection)."""
