"""Benchmarks: a frozen set of items (manifest), generated and scored under the evaluation
protocol, baselines that bracket a model (floor and ceiling), other methods' videos scored on
the same items, published numbers beside them, and the leaderboard of it all. The layer above
generation and evaluation (docs/architecture.md)."""
