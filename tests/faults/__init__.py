"""Fault-injection tests: the real stack, killed, cut off and fed bad input."""
