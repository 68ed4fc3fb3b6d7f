"""`crm-automation engine`: the Faust worker."""


def engine() -> None:
    """Run the engine (Faust worker)."""
    raise NotImplementedError
