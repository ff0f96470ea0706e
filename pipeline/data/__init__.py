"""Dataset sources: the AVSBench release layout (reader, masks, audio files) and the synthetic
dataset written in that same layout. Knows nothing about caches or models."""
