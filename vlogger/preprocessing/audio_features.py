"""The audio-feature extractor a data spec's `audio_features` names: log-mel rows, or a speech
encoder's rows (`encoder`: a zoo name), built once per process and settings."""

from __future__ import annotations

from functools import cache

from vlogger.core.errors import ContractError
from vlogger.core.mel import LogMel
from vlogger.core.speech import WhisperEncoder
from vlogger.zoo import resolve

AudioFeatures = LogMel | WhisperEncoder


def audio_features(features: dict, sample_rate: int) -> AudioFeatures:
    """What `for_frames(audio, n_frames, fps)` turns a clip's audio into: rows of `n_mels` values
    (a speech encoder's width), `rows_per_frame(fps)` of them per video frame."""
    settings = {k: v for k, v in features.items() if k != "encoder"}
    encoder = features.get("encoder")
    if encoder is None:
        return LogMel.from_config(settings, sample_rate)
    return _encoder(str(encoder), sample_rate, int(settings["hop_length"]), int(settings["n_mels"]))


@cache
def _encoder(name: str, sample_rate: int, hop_length: int, width: int) -> WhisperEncoder:
    if not name.startswith("whisper"):
        raise ContractError(f"audio_features.encoder: {name!r} is not a speech encoder vlogger knows (whisper_*)")
    encoder = WhisperEncoder(resolve(name).parent, sample_rate, hop_length)
    if encoder.width != width:
        raise ContractError(
            f"audio_features.n_mels: {width} in the data spec, {name}'s encoder gives {encoder.width} per row"
        )
    return encoder
