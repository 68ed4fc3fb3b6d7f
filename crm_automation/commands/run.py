"""`crm-automation run`: the whole pipeline in the foreground."""


def run() -> None:
    """Start the stack if needed, create topics, migrate, run every processor."""
    raise NotImplementedError
