"""The pure core: rule model, evaluation, time settings, templates, deterministic ids.

Imports no Kafka, Postgres or HTTP code and never reads the clock: time is a parameter.
"""
