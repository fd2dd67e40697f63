"""Dashboards and alert rules as code (not installed: run from the repository root)."""
