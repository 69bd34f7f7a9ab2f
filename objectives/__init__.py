"""How a candidate is scored: data (`data`), training (`training`), metrics (`metrics`),
the teacher (`teacher`), evaluation of a pruning plan (`evaluate`), distillation
(`distill`), bootstrap intervals (`bootstrap`), cross-validation and sensitivity.

Import the modules themselves; this file stays empty so that importing one does not load
the others.
"""
