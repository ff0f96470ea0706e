"""Scoring and reporting: AVSBench metric assembly, cue recognition (REC#1/REC#2), qualitative
grids, `teso score` for any method's PNG masks, and the paper-style report."""
