"""Scripts of a checkout (never installed): `scripts.peers` is importable from the repository root."""
