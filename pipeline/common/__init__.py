"""Small utilities every part of the pipeline (and model/) may use: atomic file writes, what
identifies a model or file in a fingerprint, the backend registry. Imports nothing else of the project."""
