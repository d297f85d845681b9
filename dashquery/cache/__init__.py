"""The Redis cache of results: identity-scoped keys, validated values, a guarded connection
and single flight on misses."""
