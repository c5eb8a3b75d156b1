"""Sweeps: YAML search spaces, the Ray Tune adapter, results, report and retrain."""
