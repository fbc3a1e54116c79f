"""Stage 1 as a LightningModule: audio + reference -> N frames of motion, by x0-predicting diffusion.

Loss = diffusion loss (MSE on the normalised motion vector, face, body, hands and eyes weighted
apart) + temporal smoothness loss (MSE between consecutive-frame differences of prediction and
ground truth, weighted alike). The parts are the model's (`model.parts`, default the shards');
with hands the hand basis their coefficients are in is a buffer of the module, so the checkpoint
decodes its own motion. Frames given as known (the outpainting prefix)
are left out of both. Audio and reference are dropped with configured probabilities for
classifier-free guidance. The loss is also reported per part of the vector (`loss_expression`,
`loss_jaw`, `loss_rotation`, `loss_translation`, `loss_body`, and `loss_hand_visible`,
`loss_hand_place`, `loss_hand_shape`, `loss_gaze`, `loss_eyelid` with hands and eyes), so a large
one names its cause.
"""

from __future__ import annotations

import numpy as np
import torch

from vlogger.body.hand_basis import HandBasis
from vlogger.body.motion import MotionLayout
from vlogger.core.errors import ContractError, UsageError
from vlogger.core.mel import warp_frequencies
from vlogger.core.spec import DataSpec
from vlogger.models.diffusion import Diffusion
from vlogger.models.motion.denoiser import MotionDenoiser
from vlogger.models.sampling import classifier_free, rows_like
from vlogger.training.base import DiffusionModule
from vlogger.training.checkpoints import CONFIG_VERSION


def _per_dim(sq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(D,) mean of squared errors (B, N, D) over the frames a (B, N, 1) mask keeps."""
    return (sq * mask).sum((0, 1)) / mask.sum().clamp_min(1)


HAND_BUFFERS = ("mean", "components", "stddev", "explained")


class MotionDiffusion(DiffusionModule):
    def __init__(
        self,
        cfg: dict,
        motion_mean: torch.Tensor,
        motion_std: torch.Tensor,
        spec: DataSpec,
        hand_basis: HandBasis | None = None,
        jaw_prior: tuple[np.ndarray, float] | None = None,
    ):
        """`hand_basis`: the one the training motion is coded in (None: a blank one of the
        configured size, which loading a checkpoint fills); `jaw_prior`: the fitted line's weights
        and bias where `model.jaw_prior` asks for one (None: zeros, which loading fills)."""
        super().__init__()
        parts = spec.model_parts(cfg["model"]["parts"], "model.parts")
        cfg = {**cfg, "model": {**cfg["model"], "parts": list(parts)}}
        self.save_hyperparameters({"cfg": cfg, "spec": spec.to_dict(), "config_version": CONFIG_VERSION})
        m, d = cfg["model"], cfg["data"]
        encoder = spec.audio_features.get("encoder")
        if encoder and cfg["augment"]["vtlp"]:
            raise ContractError(
                f"augment.vtlp: {cfg['augment']['vtlp']} warps log-mel frequencies, but the shards' audio features "
                f"are {encoder}'s encoder rows (audio_features.encoder): set augment.vtlp=0"
            )
        if d["centre_audio"] not in ("window", "clip"):
            raise UsageError(f"data.centre_audio: {d['centre_audio']!r}, expected window or clip")
        self.layout = MotionLayout.of_parts(m["n_expression"], parts, m["hand_components"])
        if self.layout.hands:
            k = self.layout.hand_components
            blank = HandBasis(np.zeros((21, 3)), np.zeros((k, 63)), np.zeros(k), np.zeros(k))
            basis = (hand_basis or blank).truncated(k)
            for name in HAND_BUFFERS:
                self.register_buffer(f"hand_{name}", torch.as_tensor(getattr(basis, name), dtype=torch.float32))
        self.model = MotionDenoiser(
            self.layout.dim,
            self.layout.reference_dim,
            d["window"],
            n_mels=int(spec.audio_features["n_mels"]),
            rows_per_frame=d["rows_per_frame"],
            mel_context=d["mel_context"],
            width=m["width"],
            depth=m["depth"],
            heads=m["heads"],
            causal=m["causal"],
            dropout=m["dropout"],
            jaw_prior=m["jaw_prior"] > 0,
            centre_windows=d["centre_audio"] == "window",
        )
        if jaw_prior is not None:  # before the EMA copy is made (finish_init), which keeps its own buffers
            self.model.jaw_prior.weight.copy_(torch.as_tensor(jaw_prior[0]))
            self.model.jaw_prior.bias.fill_(jaw_prior[1])
        self.register_buffer("motion_mean", torch.as_tensor(motion_mean, dtype=torch.float32))
        self.register_buffer("motion_std", torch.as_tensor(motion_std, dtype=torch.float32))
        self.diffusion = Diffusion(cfg["diffusion"])
        lay, loss = self.layout, cfg["loss"]
        w = torch.full((lay.dim,), float(loss["face_weight"]))
        w[lay.body] = loss["body_weight"]
        w[lay.jaw] *= loss["jaw_weight"]
        w[lay.base_dim : lay.base_dim + lay.hand_dim] = loss["hands_weight"]
        w[lay.gaze.start : lay.eyelid.stop] = loss["eyes_weight"]
        self.register_buffer("dim_weight", w, persistent=False)
        self.finish_init()

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts of the data spec the model's motion carries."""
        return self.layout.model_parts

    def motion_layout(self) -> MotionLayout:
        """The layout with the module's hand basis: what codes and decodes its motion."""
        if not self.layout.hands:
            return self.layout
        arrays = {name: getattr(self, f"hand_{name}").cpu().numpy() for name in HAND_BUFFERS}
        return MotionLayout.of_parts(
            self.layout.n_expression, self.parts, self.layout.hand_components, HandBasis(**arrays)
        )

    def batch_size(self, batch: dict) -> int:
        return batch["motion"].shape[0]

    def normalize(self, motion: torch.Tensor) -> torch.Tensor:
        return (motion - self.motion_mean) / self.motion_std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.motion_std + self.motion_mean

    def _known_prefix(self, b: int, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """(B, N, 1) mask: with probability `known_prefix_prob` the first `overlap` frames are given."""
        g = self.cfg["guidance"]
        use = torch.rand(b, device=self.device, generator=generator) < g["known_prefix_prob"]
        mask = torch.zeros(b, n, 1, device=self.device)
        mask[use, : g["overlap"]] = 1.0
        return mask

    def predict_x0(
        self, batch: dict, model: torch.nn.Module, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(normalised x0, the model's prediction of it from a random step's noise, the known-frame
        mask (B, N, 1)): one training draw, which the losses score (and benchmarks in motion units)."""
        x0 = self.normalize(batch["motion"])
        b, n, _ = x0.shape
        g = self.cfg["guidance"]
        t = self.diffusion.random_timesteps(b, self.device, generator)
        noise = torch.randn(x0.shape, device=self.device, generator=generator)
        x_t = self.diffusion.add_noise(x0, noise, t)
        known_mask = self._known_prefix(b, n, generator)
        drop_audio = torch.rand(b, device=self.device, generator=generator) < g["drop_audio"]
        drop_ref = torch.rand(b, device=self.device, generator=generator) < g["drop_ref"]
        mel = self.augment_mel(batch["mel"], generator)
        return x0, model(x_t, t, mel, batch["ref"], x0, known_mask, drop_audio, drop_ref), known_mask

    def augment_mel(self, mel: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Training only: each window's frequencies warped by a factor within 1 +- `vtlp` (another
        vocal tract length), Gaussian noise on the log-mel rows and one random band of up to
        `freq_mask` bins per window set to its window mean (SpecAugment's frequency mask: a band
        without speech, zero after per-window centring, the window's level with `data.centre_audio:
        clip`), so a model trained on minutes of speech keys on what recordings share rather than
        on one speaker's spectrum (issue 17)."""
        a = self.cfg["augment"]
        if not self.training:
            return mel
        if a["vtlp"] > 0:
            u = torch.rand(mel.shape[0], device=mel.device, generator=generator)
            features = self.hparams["spec"]["audio_features"]
            mel = warp_frequencies(mel, 1 + a["vtlp"] * (2 * u - 1), features["f_min"], features["f_max"])
        if a["mel_noise"] > 0:
            mel = mel + a["mel_noise"] * torch.randn(mel.shape, device=mel.device, generator=generator)
        if a["freq_mask"] > 0:
            b, _, bins = mel.shape
            width = torch.randint(0, a["freq_mask"] + 1, (b, 1, 1), device=mel.device, generator=generator)
            start = (torch.rand(b, 1, 1, device=mel.device, generator=generator) * (bins - width + 1)).floor()
            idx = torch.arange(bins, device=mel.device).view(1, 1, bins)
            band = (idx >= start) & (idx < start + width)
            mel = torch.where(band, mel.mean(1, keepdim=True), mel)
        return mel

    def losses(self, batch: dict, model: torch.nn.Module, generator: torch.Generator | None) -> dict:
        x0, pred, known_mask = self.predict_x0(batch, model, generator)
        free = 1.0 - known_mask
        vel_free = free[:, 1:] * free[:, :-1]
        vel = (pred[:, 1:] - pred[:, :-1]) - (x0[:, 1:] - x0[:, :-1])
        diff = _per_dim((pred - x0).pow(2), free) * self.dim_weight
        smooth = _per_dim(vel.pow(2), vel_free) * self.dim_weight
        per_dim = diff + self.cfg["loss"]["smooth_weight"] * smooth
        out = {"loss": per_dim.mean(), "loss_diffusion": diff.mean(), "loss_smooth": smooth.mean()}
        # the same loss over each part of the vector (the groups' size-weighted mean is `loss`)
        return out | {f"loss_{name}": per_dim[sl].mean() for name, sl in self.layout.parts.items()}

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """The losses, and `val/jaw_r`: the correlation of a sampled window's jaw with the true one
        (mean over windows). The loss falls long after held-out audio dependence has peaked
        (benchmarks/RESULTS.md, issue 17), so checkpoints can be chosen on what the model is for."""
        super().validation_step(batch, batch_idx)
        gen = torch.Generator(device=self.device).manual_seed(2000 + batch_idx)
        jaw = self.layout.jaw.start
        sampled = self.sample(batch["mel"], batch["ref"], generator=gen)[..., jaw]
        truth = batch["motion"][..., jaw]
        # by hand: torchmetrics' pearson_corrcoef gives nan for a still window, which stops the monitor
        a, b = sampled - sampled.mean(1, keepdim=True), truth - truth.mean(1, keepdim=True)
        r = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-8)
        self.log("val/jaw_r", r.mean(), sync_dist=True, batch_size=len(r))

    @torch.no_grad()
    def sample(
        self,
        mel: torch.Tensor,
        ref: torch.Tensor,
        known: torch.Tensor | None = None,
        known_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """Motion (B, N, D), de-normalised, from the EMA weights. `known` is de-normalised motion
        whose frames under `known_mask` are kept (outpainting); guidance contrasts with no audio."""
        s = self.cfg["sampling"]
        sampler, steps = sampler or s["sampler"], steps or s["steps"]
        guidance = s["guidance"] if guidance is None else guidance
        model = self.ema.module.eval()
        b, n = mel.shape[0], self.cfg["data"]["window"]
        known_n = self.normalize(known) if known is not None else None

        def denoise(x_t: torch.Tensor, t: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
            cond = [rows_like(v, x_t) for v in (mel, ref, known_n, known_mask)]
            return model(x_t, t, *cond, drop_audio=drop)

        guided = classifier_free(denoise, guidance)
        z = self.diffusion.sample(guided, (b, n, self.layout.dim), sampler, steps, generator, mel.device)
        if known_n is not None:
            z = torch.where(known_mask.bool(), known_n, z)
        return self.denormalize(z)
