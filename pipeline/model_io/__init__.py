"""Between the caches and the model package: cached rows become `FrameSample`s and datasets over
memory-mapped features, configs become model and recipe settings, checkpoints become models, and
models run over datasets. model/ itself knows nothing about Parquet or the config."""
