"""Runtime: processes around the pipeline (recovery of the scheduler's state, backups)."""
