"""Reading stored studies: the Pareto front (`pareto`), its test re-scoring (`rescore`),
the standalone report (`report`), optuna-dashboard (`dashboard`) and export (`export`)."""
