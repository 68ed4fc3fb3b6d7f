"""Versioned SQL migrations (NNNN_name.sql)."""
