"""The eval runner, its metrics and the naive baseline."""
