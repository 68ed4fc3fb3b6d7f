"""Prometheus alert rules shipped with the package (alerts.yml links to config/prometheus/)."""
