"""The read path: request parsing, the hybrid statement, discovery, running it, series, compare."""
