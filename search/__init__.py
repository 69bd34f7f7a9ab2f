"""Studies: configuration (`config`), preparation (`session`), the one study loop (`loop`),
workers, samplers, storages, trial models; `inspection` (front, test re-scoring, report,
dashboard, export) reads stored studies; `cli` is the command line over `medslim.api`.

Import the modules themselves; this file stays empty so the CLI starts without torch.
"""
