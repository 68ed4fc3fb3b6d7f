"""CLI command groups, one module each; `crm_automation.cli` mounts them."""
