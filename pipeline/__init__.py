"""The TeSO pipeline: from a dataset folder to cached text cues, features, trained models and
metrics. Folders by role (docs/ARCHITECTURE.md has the picture):

    config.py    the validated experiment config
    common/      atomic writes, identities, the backend registry
    data/        dataset reader, layout, signatures, audio I/O, the synthetic generator
    text/        captioning and reasoning backends, prompts, cue parsers
    features/    audio and text encoders, audio conditions, cue embedding
    store/       Parquet cache tables, the feature store, DuckDB views
    stages/      the stages side by side; lineage.py knows every table's identity
    model_io/    cached rows -> the model's datasets; checkpoints -> models
    evaluation/  metrics assembly, cue recognition, grids, score, report
"""
