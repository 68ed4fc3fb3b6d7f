"""crm-automation: the CLI, settings, local stack and Kafka/Postgres plumbing."""
