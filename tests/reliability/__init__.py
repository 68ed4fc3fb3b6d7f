"""Fault-injection scenarios (make test-reliability)."""
