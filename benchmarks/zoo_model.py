"""A trained cascade on people it never saw (issue 17): reconstruction against the warped-reference
baseline, and photo + speech against the static floor.

1. Reconstruction: held-out corpus-val clips (configs/benchmarks/corpus-val.yaml's people, never in
   training) from 1 s to their end, driven by their own tracked motion through stage 2, the clip's
   first frame as reference: PSNR/SSIM gain over the warped reference per frame (95 % block-bootstrap
   interval), identity, jitter, frame-to-frame change against the truth's, and every other score
   `vlogger evaluate` gives (the paste border's among them when the generation wrote its mask).
   With `--superres`, each clip again through stage 2 and super-resolution, against the truth at
   that size beside stage 2's own output upsampled bilinearly (per-frame gain over bilinear).
2. Photo + speech: three portraits of new people (../shared/data/images) with one recording, through
   stage 1 and stage 2; scored against the photo (identity) and the recording (weight-free sync), beside
   the static floor (the photo held still over the same recording). Strips of frames go to
   docs/images/zoo_*.png.

    python -m benchmarks.zoo_model --motion M.ckpt --video V.ckpt [--steps 10] [--out data/bench_zoo] \
        [--superres S.ckpt] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
from pathlib import Path

import numpy as np

from benchmarks.common import machine, publish
from benchmarks.stage2 import SHARED, cached, evaluate, frame_gain, photo_and_speech, reconstruct, strip
from vlogger.core.config import REPO_ROOT
from vlogger.core.video import decode_mp4_bytes

HELD_OUT = ("real3dportrait_May_5s.mp4", "pcavs_Audio_Source_00373.mp4", "spectre_mead_W040_level_3_happy_029.mp4")
PHOTOS = ("portrait_hallo6.jpg", "portrait_sadtalker_people0.png", "portrait_glasses_3ddfa.jpg")
SPEECH = "retalking_audio1.wav"
SCORES = ("psnr", "ssim", "csim", "identity_dlib", "jitter", "border_score", "border_ridge", "av_abs_offset", "av_z")


@cached
def static_floor(name: str, photo: str, out: Path, speech: str, size: int) -> dict:
    """The photo's crop held still over the recording at the model's size (the benchmark's
    `static` floor), scored like a model."""
    import cv2

    from vlogger.body.fitting import load_body
    from vlogger.body.reference import analyse_reference
    from vlogger.core.audio import load_audio
    from vlogger.core.config import load_config
    from vlogger.core.video import encode_mp4

    gen, fps, sr = out / name, 25, 16000
    ref = analyse_reference(
        SHARED / "images" / photo, load_config(None, "preprocess/default.yaml"), load_body("facemesh").fit
    )
    frame = cv2.resize(ref.crop, (size, size), interpolation=cv2.INTER_AREA)
    audio = load_audio(SHARED / "audio" / speech, sr)
    (gen / "generated").mkdir(parents=True, exist_ok=True)
    (gen / "reference").mkdir(exist_ok=True)
    video = np.repeat(frame[None], int(len(audio) * fps // sr), 0)
    (gen / "generated" / f"{Path(photo).stem}.mp4").write_bytes(encode_mp4(video, fps, audio=audio))
    shutil.copy(SHARED / "images" / photo, gen / "reference" / photo)
    return {"scores": evaluate(gen / "generated", gen / "reference", gen / "eval")}


def _row(label: str, scores: dict) -> str:
    return f"| {label} | " + " | ".join(f"{scores[k]:.3f}" if k in scores else "-" for k in SCORES) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--motion", required=True, help="stage-1 checkpoint")
    ap.add_argument("--video", required=True, help="stage-2 checkpoint")
    ap.add_argument("--steps", type=int, default=10, help="stage-2 sampler steps")
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--out", default="data/bench_zoo")
    ap.add_argument("--clips", type=int, default=len(HELD_OUT), help="reconstruct the first N held-out clips")
    ap.add_argument("--photos", type=int, default=len(PHOTOS), help="animate the first N photos")
    ap.add_argument(
        "--superres",
        help="super-resolution checkpoint: each reconstruction again through it, beside "
        "stage 2's output upsampled bilinearly (what it must beat)",
    )
    ap.add_argument("--label", default="", help="what the models are, for the tables' title")
    ap.add_argument("--append", help="add the markdown block to this file (benchmarks/RESULTS.md)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    video = [Path(args.video)]
    recon_rows, gain_rows, seam_rows = [], [], []
    for clip in HELD_OUT[: args.clips]:
        path = SHARED / "corpus" / clip
        r = reconstruct(f"recon_{path.stem}", video, out, args.steps, args.guidance, clip=path, start=1.0)
        gain = frame_gain(out / r["name"], path.stem)
        recon_rows += [
            _row(f"{path.stem}: stage 2", r["generated"]),
            _row(f"{path.stem}: warped reference", r["baseline"]),
        ]
        gain_rows.append(
            f"- {path.stem} ({r['frames']} frames): {gain['mean']:+.2f} dB [{gain['low']:+.2f}, {gain['high']:+.2f}], "
            f"better in {100 * gain['better']:.0f} % of frames"
        )
        s = r["seams"]
        seam_rows.append(
            f"- {path.stem}: generated {s['generated']['inside']:.2f}, truth {s['truth']['inside']:.2f} "
            f"(border/inside ratio {s['generated']['ratio']:.2f})"
        )
        shutil.copy(r["strip"], REPO_ROOT / "docs" / "images" / f"zoo_recon_{path.stem}.png")
        if args.superres:
            name = f"recon_sr_{path.stem}"
            cascade = [*video, Path(args.superres)]
            bilinear = f"recon_{path.stem}"  # stage 2's own run above, upsampled
            sr = reconstruct(name, cascade, out, args.steps, args.guidance, bilinear=bilinear, clip=path, start=1.0)
            recon_rows += [
                _row(f"{path.stem}: stage 2 + super-resolution", sr["generated"]),
                _row(f"{path.stem}: stage 2, bilinear", sr["bilinear"]),
                _row(f"{path.stem}: warped reference at {sr['size']} px", sr["baseline"]),
            ]
            up = frame_gain(out / name, path.stem, baseline="bilinear")
            gain_rows.append(
                f"- {path.stem}, super-resolution over bilinear: {up['mean']:+.2f} dB [{up['low']:+.2f}, "
                f"{up['high']:+.2f}], better in {100 * up['better']:.0f} % of frames"
            )
    photo_rows = []
    for photo in PHOTOS[: args.photos]:
        stem = Path(photo).stem
        g = photo_and_speech(f"photo_{stem}", video, out, args.steps, args.guidance, Path(args.motion), photo, SPEECH)
        frames = decode_mp4_bytes((out / f"photo_{stem}" / "video.mp4").read_bytes())
        floor = static_floor(f"static_{stem}", photo, out, SPEECH, frames.shape[1])
        photo_rows += [_row(f"{stem}: model", g["scores"]), _row(f"{stem}: static floor", floor["scores"])]
        strip({"generated": frames}, REPO_ROOT / "docs" / "images" / f"zoo_photo_{stem}.png")
    head = "| video | " + " | ".join(SCORES) + " |"
    rule = "|---" * (len(SCORES) + 1) + "|"
    lines = [
        f"#### Zoo cascade on held-out people: {args.label or args.video}, {datetime.date.today()} ({machine()})",
        "",
        f"`python -m benchmarks.zoo_model --motion {args.motion} --video {args.video} --steps {args.steps}`; "
        f"stage 2 DDIM {args.steps} steps, guidance {args.guidance:g}. Reconstruction of corpus-val clips from 1 s "
        "(their own tracked motion, their first frame as reference) against the ground truth:",
        "",
        head,
        rule,
        *recon_rows,
        "",
        "Per-frame PSNR gain of stage 2 over the warped reference (95 % interval: bootstrap over 8-frame blocks):",
        "",
        *gain_rows,
        "",
        "Frame-to-frame change inside outpainting windows (mean |difference|, 0-255):",
        "",
        *seam_rows,
        "",
        f"Photo + speech ({SPEECH}) on portraits of new people, against the photo and the recording:",
        "",
        head,
        rule,
        *photo_rows,
        "",
    ]
    (out / "summary.json").write_text(json.dumps({"recon": recon_rows, "photo": photo_rows}, indent=1))
    publish(lines, args.append)


if __name__ == "__main__":
    main()
