# A thin front end to CMake (neovim's). Two commands matter:
#   make run    build, then serve examples/zen.lua on 127.0.0.1:1060
#   make test   build with ASan+UBSan and run every test (ctest), then the
#               valgrind leak check of the daemon on a plain build
#   (make lint runs only luacheck and cppcheck, label lint)
# Both install the Debian packages they need first (make deps).

BUILD      ?= build
TEST_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
CMAKE      ?= cmake
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
ARGS       ?=

DEPS := cmake make gcc pkg-config liblua5.4-dev lua5.4 libev-dev lua-busted lua-socket valgrind python3 lua-check cppcheck libhttp-parser-dev lua-cjson

.PHONY: all run test deps bench bench-more format check-format clean valgrind fuzz fuzz-http fuzz-httpbody fuzz-stream install

all: $(BUILD)/.ran-cmake
	$(CMAKE) --build $(BUILD) -j$(JOBS)

$(BUILD)/.ran-cmake: | deps
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	touch $@

$(TEST_BUILD)/.ran-cmake: | deps
	$(CMAKE) -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DREACTORD_SANITIZE=ON
	touch $@

run: all
	./$(BUILD)/reactord examples/zen.lua $(ARGS)

test: $(TEST_BUILD)/.ran-cmake all
	$(CMAKE) --build $(TEST_BUILD) -j$(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -LE valgrind
	cd $(BUILD) && ctest --output-on-failure -L valgrind

valgrind: all
	cd $(BUILD) && ctest --output-on-failure -L valgrind

# luacheck and cppcheck alone (they also run in `make test`); see spec/lint/
.PHONY: lint
lint: $(TEST_BUILD)/.ran-cmake
	$(CMAKE) -S . -B $(TEST_BUILD) >/dev/null
	cd $(TEST_BUILD) && ctest --output-on-failure -L lint

# libFuzzer on the framers (clang; not part of test). New inputs it finds go
# to $(FUZZ_BUILD)/corpus-framer, the seeds in spec/fuzz/corpus stay as they are.
FUZZ_DEPS := clang libclang-rt-14-dev

$(FUZZ_BUILD)/.ran-cmake: | deps
	$(MAKE) --no-print-directory deps DEPS="$(FUZZ_DEPS)"
	CC=clang $(CMAKE) -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREACTORD_FUZZ=ON
	touch $@

fuzz: $(FUZZ_BUILD)/.ran-cmake
	$(CMAKE) --build $(FUZZ_BUILD) --target fuzz_framer -j$(JOBS)
	mkdir -p $(FUZZ_BUILD)/corpus-framer $(FUZZ_BUILD)/artifacts
	$(FUZZ_BUILD)/fuzz_framer -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_BUILD)/artifacts/ $(FUZZ_BUILD)/corpus-framer spec/fuzz/corpus/framer

# The same for the HTTP parser (core/rd_http.c), with a dictionary of its words.
fuzz-http: $(FUZZ_BUILD)/.ran-cmake
	$(CMAKE) --build $(FUZZ_BUILD) --target fuzz_http -j$(JOBS)
	mkdir -p $(FUZZ_BUILD)/corpus-http $(FUZZ_BUILD)/artifacts
	$(FUZZ_BUILD)/fuzz_http -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  -dict=spec/fuzz/http.dict -artifact_prefix=$(FUZZ_BUILD)/artifacts/ \
	  $(FUZZ_BUILD)/corpus-http spec/fuzz/corpus/http

# Pipelined requests with streamed bodies (rd_http_body_read on the framer, as lhttp.c).
fuzz-httpbody: $(FUZZ_BUILD)/.ran-cmake
	$(CMAKE) --build $(FUZZ_BUILD) --target fuzz_httpbody -j$(JOBS)
	mkdir -p $(FUZZ_BUILD)/corpus-httpbody $(FUZZ_BUILD)/artifacts
	$(FUZZ_BUILD)/fuzz_httpbody -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  -dict=spec/fuzz/http.dict -artifact_prefix=$(FUZZ_BUILD)/artifacts/ \
	  $(FUZZ_BUILD)/corpus-httpbody spec/fuzz/corpus/httpbody

# A coroutine stream's reads on the framer (core/rd_framer.c's rd_framer_until, peek, skip).
fuzz-stream: $(FUZZ_BUILD)/.ran-cmake
	$(CMAKE) --build $(FUZZ_BUILD) --target fuzz_stream -j$(JOBS)
	mkdir -p $(FUZZ_BUILD)/corpus-stream $(FUZZ_BUILD)/artifacts
	$(FUZZ_BUILD)/fuzz_stream -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_BUILD)/artifacts/ $(FUZZ_BUILD)/corpus-stream spec/fuzz/corpus/stream

# CMake's install rules (cmake/Install.cmake): make install [PREFIX=/usr] [DESTDIR=/tmp/stage]
install: all
	$(CMAKE) --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX))

# Every peer, one session, a table and a chart (bench/peers.sh installs the peers
# it lacks); BENCH_QUICK=1 for a short check. bench-more: the older focused runs.
bench: all
	REACTORD=$(BUILD)/reactord BUILD_DIR=$(BUILD) bench/peers.sh

bench-more: all
	REACTORD=$(BUILD)/reactord BUILD_DIR=$(BUILD) bench/run.sh
	REACTORD=$(BUILD)/reactord BUILD_DIR=$(BUILD) bench/reload.sh
	REACTORD=$(BUILD)/reactord BUILD_DIR=$(BUILD) bench/batteries.sh

# Installs only what is missing; as root directly, else through sudo.
deps:
	@missing=""; for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD)
