"""Development tooling: the local stack, the data generator, the naive reference query (the
contract's oracle) and the benchmark. Not used by the read path."""
