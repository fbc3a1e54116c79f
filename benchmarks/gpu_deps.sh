#!/bin/sh
# The packages vlogger imports that the device machine's image lacks (its torch, lightning, torchmetrics,
# numpy, opencv, scikit-image and safetensors are used as they are), as wheels for its Python 3.12.
# Here, once (the wheels, ~44 MB, into the ignored .whl/):
#   sh benchmarks/gpu_deps.sh fetch
# There, in a first call that carries .whl (they and the data do not fit the 64 MiB of one call):
#   sh benchmarks/gpu_deps.sh install        # into the ignored .site/, which a warm machine keeps
# then, within the machine's 30 s of warmth, the call that carries the data:
#   PYTHONPATH=.site:. sh benchmarks/zoo_gpu.sh $OUT     (or distill_gpu.sh, speed_gpu.sh)
set -e
case "$1" in
fetch)
  # versions: this checkout's environment's, so both machines run the same code
  # (and what they need that the image lacks: importlib_metadata for diffusers, cffi for soundfile)
  pins=$(.venv/bin/python -m pip list --format=freeze 2>/dev/null |
    grep -i -E '^(av|webdataset|braceexpand|diffusers|soundfile|importlib.metadata|cffi|pycparser)==')
  # shellcheck disable=SC2086  # one argument per pin
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $pins
  ls -l .whl
  ;;
install)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl
  PYTHONPATH=.site:. python3 -c "import av, webdataset, diffusers, soundfile; import vlogger.training.run; print('vlogger imports')"
  ;;
*)
  echo "usage: sh benchmarks/gpu_deps.sh fetch|install" >&2
  exit 2
  ;;
esac
