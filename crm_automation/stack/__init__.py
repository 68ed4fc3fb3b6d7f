"""The local stack: a single-node Kafka, Postgres and Radicale on 127.0.0.1, state in one home."""

from crm_automation.stack.processes import StackError
from crm_automation.stack.stack import ComponentStart, Stack, StackStatus

__all__ = ["ComponentStart", "Stack", "StackError", "StackStatus"]
