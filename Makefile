# vlogger: every target sets itself up (a local .venv) on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

INPUT   ?= data/sample
OUT     ?= data/shards
WORKERS ?= 2
# preprocess DATASET=hdtf|celebvhq|talkinghead1kh: fetch from the official ANNOTATIONS into RAW first
DATASET     ?=
ANNOTATIONS ?=
RAW         ?= data/$(DATASET)
MIRROR      ?=
FETCH_ARGS  ?=
DATA    ?=
DEMO_STEPS ?= 500
# stage 2 in the demo: phase single, then phase clip from its weights, then generation
DEMO_VIDEO_STEPS ?= 100
DEMO_CLIP_STEPS  ?= 40
DEMO_GEN_STEPS   ?= 10
# validation: the val split preprocessing hashed out (the sample's astronaut_002), plus any
# identities named here; the demo drives the first frame of DEMO_CLIP with its own audio
DEMO_VAL   ?= []
DEMO_CLIP  ?= data/sample/astronaut_002.mp4
# the demo ends with the zoo's trained cascade on a photo it never saw (scikit-image's astronaut)
ZOO_MODEL  ?= vlogger-corpus-64

GEN      ?= data/generated
REF      ?=
EVAL_OUT ?= data/eval
RESULT   ?= $(EVAL_OUT)/results.json
NAME     ?=

KEY      ?=
STAGE    ?= motion
CONFIG   ?=
DATA_CONFIG ?= configs/train/shared_clips.yaml

.PHONY: setup test test-fast lint demo sample preprocess contact-sheet render train evaluate leaderboard bench clean

setup: $(STAMP)

# torch is pinned first so pip takes the CPU build on this disk, not a CUDA download.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[preprocess,eval,train,datasets,speech,dev]"
	rm -f $(VENV)/.installed-*
	touch $@

# two workers, one thread each (tests/conftest.py sends each file, and the files sharing a costly
# fixture, to one worker); TEST_ARGS="-n 0" runs in one process
TEST_ARGS ?= -n 2 --dist loadfile
test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q $(TEST_ARGS)

# the edit loop: no training runs, no mediapipe over the real clips, no ../shared (docs/architecture.md)
test-fast: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow and not shared" $(TEST_ARGS)

lint: setup
	$(BIN)/ruff check vlogger tests benchmarks

# Embedded sample (or DATA=dir of your videos) -> shards -> contact sheet -> controls -> stage 1 and
# stage 2 trained briefly -> photo (DEMO_CLIP's first frame) + its audio -> video -> evaluation; then the
# zoo's trained cascade (ZOO_MODEL, shipped in vlogger/zoo/models) on the astronaut photo with that audio.
demo: setup
ifeq ($(DATA),)
	$(BIN)/vlogger make-sample --out data/sample --clips 3 --seconds 4
	$(BIN)/vlogger preprocess --input data/sample --out data/demo/shards --workers $(WORKERS)
else
	$(BIN)/vlogger preprocess --input $(DATA) --out data/demo/shards --workers $(WORKERS)
endif
	$(BIN)/vlogger contact-sheet data/demo/shards --out data/demo/contact_sheet.png
	$(BIN)/vlogger render data/demo/shards --out data/demo/render --limit 2 --size 128
	$(BIN)/vlogger train motion --set data.shards=data/demo/shards --set "data.val_identities=$(DEMO_VAL)" \
		--set data.max_sync_offset=null --set trainer.max_steps=$(DEMO_STEPS) --set trainer.val_every_steps=$(DEMO_STEPS) \
		--set logging.dir=data/demo/runs --set logging.logger=csv --set logging.media_every_steps=$(DEMO_STEPS)
	$(BIN)/vlogger train video --set data.shards=data/demo/shards --set "data.val_identities=$(DEMO_VAL)" \
		--set phase=single --set trainer.max_steps=$(DEMO_VIDEO_STEPS) --set trainer.val_every_steps=$(DEMO_VIDEO_STEPS) \
		--set logging.dir=data/demo/runs --set logging.logger=csv --set logging.media_every_steps=$(DEMO_VIDEO_STEPS)
	$(BIN)/vlogger train video --set data.shards=data/demo/shards --set "data.val_identities=$(DEMO_VAL)" \
		--set phase=clip --set data.batch_size=2 --set model.init_from=data/demo/runs/video-tiny/checkpoints/last.ckpt \
		--set trainer.max_steps=$(DEMO_CLIP_STEPS) --set trainer.val_every_steps=$(DEMO_CLIP_STEPS) \
		--set logging.dir=data/demo/runs --set logging.name=video-tiny-clip --set logging.logger=csv \
		--set logging.media_every_steps=$(DEMO_CLIP_STEPS)
	$(BIN)/vlogger generate --image $(DEMO_CLIP) --audio $(DEMO_CLIP) --steps $(DEMO_GEN_STEPS) \
		--motion-checkpoint data/demo/runs/motion-tiny/checkpoints/last.ckpt \
		--video-checkpoint data/demo/runs/video-tiny-clip/checkpoints/last.ckpt --out data/demo/generate
	mkdir -p data/demo/generated && cp data/demo/generate/video.mp4 data/demo/generated/$(notdir $(DEMO_CLIP))
	cp data/demo/generate/video.paste.npz data/demo/generated/$(basename $(notdir $(DEMO_CLIP))).paste.npz
	$(BIN)/vlogger evaluate --generated data/demo/generated --reference $(dir $(DEMO_CLIP)) --out data/demo/eval
	$(BIN)/python -c "from skimage import data, io; io.imsave('data/demo/astronaut.png', data.astronaut())"
	$(BIN)/vlogger generate --model $(ZOO_MODEL) --image data/demo/astronaut.png --audio $(DEMO_CLIP) --out data/demo/zoo --steps $(DEMO_GEN_STEPS)
	@echo "demo done:"
	@echo "  shards + contact sheet  data/demo/shards, data/demo/contact_sheet.png"
	@echo "  3D fit + controls       data/demo/render/*.mp4, data/demo/render/controls_sheet.png"
	@echo "  training runs           data/demo/runs/{motion-tiny,video-tiny,video-tiny-clip} (checkpoints, media, summary.json)"
	@echo "  photo + audio -> video  data/demo/generate/video.mp4 (and controls.mp4, motion.npz)"
	@echo "  evaluation              data/demo/eval/report.html, data/demo/eval/results.json"
	@echo "  trained zoo model       data/demo/zoo/video.mp4 ($(ZOO_MODEL) on scikit-image's astronaut photo)"

sample: setup
	$(BIN)/vlogger make-sample --out $(INPUT)

# DATASET empty: the videos in INPUT. Else fetch DATASET's clips from ANNOTATIONS into RAW (MIRROR=URL
# template with {id} instead of YouTube), then preprocess them with its identities and held-out people.
preprocess: setup
ifeq ($(DATASET),)
	$(BIN)/vlogger preprocess --input $(INPUT) --out $(OUT) --workers $(WORKERS)
else
	$(BIN)/vlogger dataset fetch $(DATASET) --annotations $(ANNOTATIONS) --out $(RAW) --workers $(WORKERS) \
		$(if $(MIRROR),--mirror '$(MIRROR)') $(FETCH_ARGS)
	$(BIN)/vlogger preprocess --input $(RAW)/clips --out $(OUT) --workers $(WORKERS) --config $(RAW)/preprocess.yaml
endif

contact-sheet: setup
	$(BIN)/vlogger contact-sheet $(OUT) --out $(OUT)/contact_sheet.png

# Side-by-side control videos (frame | semantic | coords | warped) of the clips in OUT.
render: setup
	$(BIN)/vlogger render $(OUT) --out $(OUT)/render $(if $(KEY),--key $(KEY)) --limit 2

# Train a stage (tiny config, or CONFIG=configs/train/STAGE_base.yaml) on the data named in
# DATA_CONFIG: by default the real clips beside the checkout, preprocessed on first use.
train: setup
ifeq ($(DATA_CONFIG),configs/train/shared_clips.yaml)
	@test -f data/real_shards/index.json || $(BIN)/vlogger preprocess --input ../shared/data/clips --out data/real_shards --workers $(WORKERS) --set shards.max_clips=3
endif
	$(BIN)/vlogger train $(STAGE) $(if $(CONFIG),--config $(CONFIG)) --config $(DATA_CONFIG)

evaluate: setup
	$(BIN)/vlogger evaluate --generated $(GEN) $(if $(REF),--reference $(REF)) --out $(EVAL_OUT)

leaderboard: setup
	$(if $(NAME),$(BIN)/vlogger leaderboard add $(RESULT) --name $(NAME),$(BIN)/vlogger leaderboard show)

bench: setup
	$(BIN)/python -m benchmarks.preprocess
	$(BIN)/python -m benchmarks.evaluate
	$(BIN)/python -m benchmarks.fit
	$(BIN)/python -m benchmarks.render
	$(BIN)/python -m benchmarks.motion
	$(BIN)/python -m benchmarks.stage2

clean:
	rm -rf data/demo $(VENV)
