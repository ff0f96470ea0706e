"""Encoders that turn audio and cue text into vectors (VGGish / log-mel, sentence encoders, the
ImageBind text branch) and the audio-control conditions applied before the audio encoder."""
