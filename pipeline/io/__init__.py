"""I/O layer: atomic publication helpers, the writer lock, crash points and the catalog."""
