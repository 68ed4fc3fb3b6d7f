"""The rules file checker, by concern: shapes, calendars, conditions, time settings,
actions; `automation_core.rules_file` puts them together."""
