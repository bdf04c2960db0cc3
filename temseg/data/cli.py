"""Data commands (ingest, synth, synth-series, info): registered by temseg.cli."""


def register(sub) -> None:  # filled in by the data layer
    pass
