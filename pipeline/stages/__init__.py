"""The pipeline's stages, side by side: manifest, captions, cues, features, train, evaluate.

Each stage module reads upstream tables only through `pipeline.stages.lineage` (which knows every
table's identity) and never imports another stage module; `base` holds what they share.
"""
