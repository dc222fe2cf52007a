"""What both merging tasks share: the per-tensor contract, the catalog of known merge methods, the offline proposer,
the export helpers (a plain ``merge_state_dicts`` and a mergekit merge method) and the task base class
(``task_base.MergingTask``)."""
