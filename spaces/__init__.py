"""What a trial may choose, and how a choice becomes a model: model sources (`sources`,
`blueprints`), model families and presets (`families`), importance criteria (`criteria`),
the sparsity space (`sparsity`, `channel_groups`) and the student space (`students`).

Import the modules themselves; this file stays empty so that importing a light module (the
family registry, the criteria) does not load torch.
"""
