# SPDX-License-Identifier: GPL-2.0-only
#
# user/fuzz: libFuzzer harnesses for the engine's parsers and the destination
# session (Documentation/fuzzing.rst).  Included by user/Makefile, whose
# variables (SRC, OUT, BUILD, CC, ALL_CFLAGS, ...) it uses.
#
#   make            also builds $(OUT)/tests/fuzz_<h>_test: each harness with a small
#                   deterministic driver (smoke.c), built by the project's compiler,
#                   that `make check` runs (seeds + fuzz_smoke_execs mutations; the
#                   user-asan copy under ASan+UBSan)
#   make fuzz       builds the harnesses with clang, libFuzzer, ASan and UBSan in
#                   $(BUILD)/user-fuzz, generates the seed corpora (gen-corpus) and
#                   runs every harness for FUZZ_TIME seconds (default 600) in turn
#   make fuzz-build only the build;  FUZZ_HARNESSES="wire frame" runs a subset;
#                   FUZZ_JOBS=N runs N harnesses at once; FUZZ_ARGS adds libFuzzer
#                   options

FUZZ_HARNESSES	?= frame wire reorder session
FUZZ_ALL	:= frame wire reorder session
FUZZ_TIME	?= 600
FUZZ_JOBS	?= 1
FUZZ_ARGS	?=
FUZZ_CC		?= $(shell command -v clang-14 2>/dev/null || command -v clang 2>/dev/null || echo clang)
FUZZ_OUT	:= $(BUILD)/user-fuzz
FUZZ_DIR	:= $(BUILD)/fuzz
FUZZ_SAN	:= -fsanitize=address,undefined -fno-sanitize-recover=undefined

FUZZ_SMOKE	:= $(patsubst %,$(OUT)/tests/fuzz_%_test,$(FUZZ_ALL))
FUZZ_COMMON	:= $(OUT)/fuzz/seeds.o $(OUT)/fuzz/smoke.o

all: $(FUZZ_SMOKE) $(OUT)/fuzz/gen-corpus
TESTS		+= $(FUZZ_SMOKE)

$(OUT)/fuzz/%.o: $(SRC)/fuzz/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(FUZZ_SMOKE): $(OUT)/tests/fuzz_%_test: $(OUT)/fuzz/fuzz_%.o $(FUZZ_COMMON) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/fuzz/gen-corpus: $(OUT)/fuzz/gen-corpus.o $(OUT)/fuzz/seeds.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# --- the libFuzzer build: run in a sub-make with OUT=$(FUZZ_OUT) and clang -----------
# The library is instrumented for coverage (fuzzer-no-link); the harnesses link
# libFuzzer's main.
FUZZ_BINS	:= $(patsubst %,$(OUT)/fuzz/fuzz_%,$(FUZZ_ALL))

fuzz-bins: $(FUZZ_BINS) $(OUT)/fuzz/gen-corpus

$(FUZZ_BINS): $(OUT)/fuzz/fuzz_%: $(OUT)/fuzz/fuzz_%.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-build: check-deps
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs clang 14 and libclang-rt-14-dev" >&2; exit 1; }
	$(MAKE) -C $(SRC) OUT=$(FUZZ_OUT) CC=$(FUZZ_CC) OPTFLAGS="-O1 -g -fno-omit-frame-pointer" \
		SANITIZE="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" fuzz-bins

# Each harness: the seeds (regenerated every run) and a working corpus that
# grows across runs; a finding is written to $(FUZZ_DIR)/artifacts and fails the target.
# -close_fd_mask=2: the library logs every refused input; libFuzzer and the
# sanitizers keep reporting on their own copy of stderr.
fuzz: fuzz-build
	@rm -rf $(FUZZ_DIR)/seeds
	@mkdir -p $(FUZZ_DIR)/artifacts $(FUZZ_DIR)/logs
	$(FUZZ_OUT)/fuzz/gen-corpus $(FUZZ_DIR)/seeds
	@echo $(FUZZ_HARNESSES) | tr ' ' '\n' | xargs -P $(FUZZ_JOBS) -I{} sh -c '\
		mkdir -p $(FUZZ_DIR)/corpus/{}; \
		echo "fuzz: {} for $(FUZZ_TIME) s (log: $(FUZZ_DIR)/logs/{}.log)"; \
		$(FUZZ_OUT)/fuzz/fuzz_{} -max_total_time=$(FUZZ_TIME) -timeout=20 \
			-max_len=65536 -malloc_limit_mb=64 -rss_limit_mb=2048 -close_fd_mask=2 \
			-print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/{}- $(FUZZ_ARGS) \
			$(FUZZ_DIR)/corpus/{} $(FUZZ_DIR)/seeds/{} >$(FUZZ_DIR)/logs/{}.log 2>&1; \
		rc=$$?; grep -E "^stat::(number_of_executed_units|average_exec_per_sec)|^Done" \
			$(FUZZ_DIR)/logs/{}.log | sed "s/^/fuzz: {}: /"; \
		[ $$rc -eq 0 ] || { echo "fuzz: {}: FINDING (exit $$rc), see the log and $(FUZZ_DIR)/artifacts" >&2; exit 255; }'

clean: fuzz-clean
fuzz-clean:
	rm -rf $(FUZZ_OUT) $(FUZZ_DIR)

.PHONY: fuzz fuzz-build fuzz-bins fuzz-clean

-include $(patsubst %,$(OUT)/fuzz/fuzz_%.d,$(FUZZ_ALL)) $(FUZZ_COMMON:.o=.d) $(OUT)/fuzz/gen-corpus.d
