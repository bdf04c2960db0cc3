"""``temseg study``: a folder of micrographs with masks -> recommended network and particle sizes.

:mod:`temseg.study.inputs` pairs and checks the folder, :mod:`temseg.study.plan` chooses the
profile and estimates the time, :mod:`temseg.study.run` runs ingest, the grid and the
registry, :mod:`temseg.study.page` segments and writes the page, :mod:`temseg.study.cli`
declares the command.
"""
