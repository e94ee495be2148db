"""Applications built on model capabilities (they are not models): :mod:`.anomaly` (anomaly
detection) and :mod:`.classify` (generative classifiers by Bayes' rule)."""
