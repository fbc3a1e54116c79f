"""Benchmarks: a frozen set of items (manifest), generated and scored under the evaluation
protocol, baselines that bracket a model (floor and ceiling), other methods' videos scored on
the same items, each a row of the leaderboard (vlogger.evaluation.leaderboard). The layer above
generation and evaluation (docs/architecture.md)."""
