"""Fake upstream servers used by the genroute test-suite."""
