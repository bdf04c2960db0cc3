"""Analysis commands (report): registered by temseg.cli."""


def register(sub) -> None:  # filled in by the analysis layer
    pass
