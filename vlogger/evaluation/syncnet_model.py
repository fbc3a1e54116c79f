"""SyncNet (Chung & Zisserman, "Out of time", 2016) as released in joonson/syncnet_python.

The layer order of each `nn.Sequential` (pools and ReLUs included) fixes the state-dict keys, so it mirrors
the original `S` exactly: the official `syncnet_v2.model` (a plain state dict) loads with `strict=True`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from vlogger.zoo import resolve

EMBED_DIM = 1024

# (in, out, kernel, stride, padding, max-pool kwargs or None), one entry per conv -> BN -> ReLU [-> pool] block.
_AUDIO = [
    (1, 64, 3, 1, 1, {"kernel_size": 1, "stride": 1}),
    (64, 192, 3, 1, 1, {"kernel_size": 3, "stride": (1, 2)}),
    (192, 384, 3, 1, 1, None),
    (384, 256, 3, 1, 1, None),
    (256, 256, 3, 1, 1, {"kernel_size": 3, "stride": 2}),
    (256, 512, (5, 4), 1, 0, None),
]
_LIP_POOL = {"kernel_size": (1, 3, 3), "stride": (1, 2, 2)}
_LIP = [
    (3, 96, (5, 7, 7), (1, 2, 2), 0, _LIP_POOL),
    (96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1), {**_LIP_POOL, "padding": (0, 1, 1)}),
    (256, 256, (1, 3, 3), 1, (0, 1, 1), None),
    (256, 256, (1, 3, 3), 1, (0, 1, 1), None),
    (256, 256, (1, 3, 3), 1, (0, 1, 1), _LIP_POOL),
    (256, 512, (1, 6, 6), 1, 0, None),
]


def _trunk(spec: list, conv: type[nn.Module], norm: type[nn.Module], pool: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for cin, cout, kernel, stride, padding, pooling in spec:
        layers += [conv(cin, cout, kernel, stride, padding), norm(cout), nn.ReLU(inplace=True)]
        if pooling is not None:
            layers.append(pool(**pooling))
    return nn.Sequential(*layers)


def _head() -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, EMBED_DIM))


class SyncNet(nn.Module):
    """Two streams that embed 0.2 s of mouth video and of speech into one space where in-sync pairs lie close.

    Attribute names and their registration order are those of the original, so keys and their order match.
    """

    def __init__(self) -> None:
        super().__init__()
        self.netcnnaud = _trunk(_AUDIO, nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
        self.netfcaud = _head()
        self.netfclip = _head()
        self.netcnnlip = _trunk(_LIP, nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d)

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, 1024)."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def embed_lip(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR windows, raw 0..255 values -> (N, 1024)."""
        return self.netfclip(self.netcnnlip(frames).flatten(1))


def load_syncnet(path: str | Path | None = None, device: str | torch.device = "cpu") -> SyncNet:
    """SyncNet with the official `syncnet_v2` weights (from the zoo unless `path` is given), frozen, in eval mode.

    Raises `vlogger.zoo.MissingWeights`, naming the fetch command, when the zoo has no copy.
    """
    if path is None:
        path = resolve("syncnet_v2")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a SyncNet state dict (syncnet_v2.model), got {type(state).__name__}")
    model = SyncNet()
    # Files saved before PyTorch 0.4.1 lack BatchNorm's num_batches_tracked; BatchNorm's own loader fills it in.
    model.load_state_dict(state, strict=True)
    return model.requires_grad_(False).eval().to(device)
