"""Grafana dashboards as code: generated with grafana-foundation-sdk, committed as JSON.

``python -m dashboards.grafana`` rewrites the committed ``*.json`` files beside this package;
``python -m dashboards.grafana --check`` exits 1 when they differ from what the code generates.
"""
