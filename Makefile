# ryot build.  `make` -> build/ryot; `make test`; `make asan`; `make fuzz`.
# Sources are found by wildcard: a new .c file under src/ joins libryot (or,
# under src/benchsuite/ and src/modeltools/, their own libraries), a new
# tests/unit/test_*.c becomes a test binary.

CC      ?= cc
BUILD   ?= build
# libryot needs these (libsodium: the cache keys' BLAKE2b and the store's encryption; zstd + hiredis: the Redis
# cache; lmdb: the persistent store and the task queue fallback).  libcurl serves the load generator
# (benchsuite) and the router's upstream client (src/router/router.c, in libryot): only the ryot binary and the
# tests that use them link it (BENCH_TESTS, test_router); a static archive pulls router.o only where used.
PKGS    := libpcre2-8 jansson libmicrohttpd libsodium libzstd hiredis lmdb
CURL_PKG := libcurl
OPT     ?= -O2 -march=x86-64-v2
CFLAGS_BASE := -std=gnu11 -Wall -Wextra -Werror -g -pthread -Isrc -Iinclude \
               -D_GNU_SOURCE $(shell pkg-config --cflags $(PKGS) $(CURL_PKG))
ifeq ($(SAN),1)
  # same optimization as the release build: GCC contracts a*b+c into FMA only
  # from -O2, and the golden tests compare logits that depend on it
  OPT := -O2 -march=x86-64-v2 -fno-omit-frame-pointer
  CFLAGS_BASE += -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif
# make fuzz: clang with coverage instrumentation for libFuzzer
ifeq ($(FUZZ),1)
  CC := clang
  OPT := -O1 -fno-omit-frame-pointer
  CFLAGS_BASE += -fsanitize=fuzzer-no-link,address,undefined
endif
CFLAGS  := $(CFLAGS_BASE) $(OPT) $(EXTRA_CFLAGS)
LDLIBS  := $(shell pkg-config --libs $(PKGS)) -lm -lpthread
CURL_LIBS := $(shell pkg-config --libs $(CURL_PKG))

# Per-ISA kernel files are compiled with their own flags and only called after
# CPU detection at start-up.
AVX2_FLAGS   := -mavx2 -mfma -mf16c -mbmi2
AVX512_FLAGS := $(AVX2_FLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni

# benchsuite/ (load generator, statistics, micro benchmarks) and modeltools/
# (model generator, re-quantizer) serve the CLI and are not part of libryot.
LIB_SRC  := $(shell find src -name '*.c' ! -path 'src/cli/*' ! -path 'src/benchsuite/*' ! -path 'src/modeltools/*' | sort)
BENCH_SRC := $(wildcard src/benchsuite/*.c)
MTOOLS_SRC := $(wildcard src/modeltools/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TOOL_SRC := $(wildcard tools/*.c)

# the web page, generated into $(BUILD)/gen/ (below)
WEBUI_PAGE := src/server/webui/index.html
WEBUI_OBJ := $(BUILD)/gen/webui_page.o
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(WEBUI_OBJ)
BENCH_OBJ := $(BENCH_SRC:%.c=$(BUILD)/%.o)
MTOOLS_OBJ := $(MTOOLS_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOLS    := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)
TEST_COMMON := $(wildcard tests/unit/common/*.c)

.PHONY: all test unit-test asan fuzz clean tools
all: $(BUILD)/ryot $(TOOLS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/src/kernels/x86/avx2%.o: CFLAGS += $(AVX2_FLAGS)
$(BUILD)/src/kernels/x86/avx512%.o: CFLAGS += $(AVX512_FLAGS)

# The web page becomes a C array (server/webui.h): POSIX od prints its bytes
# in hex, sed turns them into initializers, and a NUL ends the array.  Plain
# C builds with every compiler and flag set here (gcc, ASan, clang for fuzz)
# and needs only coreutils and sed (no xxd, no linker-specific binary
# embedding).  Each step writes its own file and the last one is renamed
# into place, so a failed step stops make and leaves no half file to trust.
$(BUILD)/gen/webui_page.c: $(WEBUI_PAGE) Makefile
	@mkdir -p $(dir $@)
	od -An -v -tx1 '$<' >$@.hex
	{ printf '/* generated from %s by the Makefile: do not edit */\n#include "server/webui.h"\n\n' '$<' && \
	  printf 'const unsigned char srv_webui_page[] = {\n' && \
	  sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g' $@.hex && \
	  printf '0x00};\nconst size_t srv_webui_page_len = sizeof srv_webui_page - 1;\n'; } >$@.tmp
	rm -f $@.hex
	mv $@.tmp $@

$(WEBUI_OBJ): $(BUILD)/gen/webui_page.c
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# Archives also depend on the Makefile, which decides their members (a stale
# archive would keep objects that moved out).
$(BUILD)/libryot.a: $(LIB_OBJ) Makefile
	@rm -f $@
	ar rcs $@ $(filter %.o,$^)

$(BUILD)/libryot_bench.a: $(BENCH_OBJ) Makefile
	@rm -f $@
	ar rcs $@ $(filter %.o,$^)

$(BUILD)/libryot_tools.a: $(MTOOLS_OBJ) Makefile
	@rm -f $@
	ar rcs $@ $(filter %.o,$^)

# the CLI's libraries, ahead of the libryot they use
CLI_LIBS := $(BUILD)/libryot_bench.a $(BUILD)/libryot_tools.a $(BUILD)/libryot.a

$(BUILD)/ryot: $(CLI_OBJ) $(CLI_LIBS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(CLI_LIBS) $(LDLIBS) $(CURL_LIBS)

$(BUILD)/tools/%: tools/%.c $(BUILD)/libryot.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libryot.a $(LDLIBS)

# What a test links: libryot; the tests of benchsuite/ and modeltools/ also
# link those libraries (and the load generator's libcurl).
TEST_LIBS = $(BUILD)/libryot.a $(LDLIBS)
BENCH_TESTS := $(BUILD)/tests/test_benchstats $(BUILD)/tests/test_loadgen
$(BENCH_TESTS): $(BUILD)/libryot_bench.a
$(BENCH_TESTS): TEST_LIBS := $(BUILD)/libryot_bench.a $(BUILD)/libryot.a $(LDLIBS) $(CURL_LIBS)
$(BUILD)/tests/test_router: TEST_LIBS := $(BUILD)/libryot.a $(LDLIBS) $(CURL_LIBS)
$(BUILD)/tests/test_modeltools: $(BUILD)/libryot_tools.a
$(BUILD)/tests/test_modeltools: TEST_LIBS := $(BUILD)/libryot_tools.a $(BUILD)/libryot.a $(LDLIBS)
# The AVX-512 kernels once more, on SIMDe's portable AVX-512 (libsimde-dev),
# for the test that checks them on every CPU with AVX2 (x86/avx512_emu.h).
# Without sanitizers or debug info, in every build: instrumented, SIMDe's
# inlined emulation takes GCC half an hour to compile, and what the test
# checks is the arithmetic, which -O2 (FMA contraction included) decides.
AVX512_EMU_OBJ := $(BUILD)/tests/avx512_emu_kernels.o $(BUILD)/tests/avx512_emu_ops.o
AVX512_EMU_CFLAGS := $(filter-out -fsanitize=% -g,$(CFLAGS)) -g0 $(AVX2_FLAGS) -Wno-psabi -DRYOT_AVX512_EMULATE
$(BUILD)/tests/avx512_emu_%.o: src/kernels/x86/avx512_%.c
	@mkdir -p $(dir $@)
	$(CC) $(AVX512_EMU_CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/tests/test_kernels_avx512: $(AVX512_EMU_OBJ)
$(BUILD)/tests/test_kernels_avx512: TEST_LIBS := $(AVX512_EMU_OBJ) $(BUILD)/libryot.a $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(TEST_COMMON) $(BUILD)/libryot.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(TEST_COMMON) $(TEST_LIBS) -lcmocka

# Every test: C unit tests, then CLI-level tests (conformance, malformed files).
test: $(BUILD)/ryot $(TESTS) $(TOOLS)
	@failed=""; \
	for t in $(TESTS); do echo "== $$t"; $$t || failed="$$failed $$t"; done; \
	for t in tests/cli/*.sh; do [ -e "$$t" ] || continue; echo "== $$t"; \
	    RYOT=$(BUILD)/ryot BUILD=$(BUILD) bash $$t || failed="$$failed $$t"; done; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi; echo "all tests passed ($(BUILD))"

asan:
	$(MAKE) BUILD=build-asan SAN=1 test

# libFuzzer targets (clang).  The library is rebuilt into build-fuzz/ with
# coverage instrumentation through the normal rules, so per-ISA files keep
# their own flags.  Run one: build-fuzz/fuzz_gguf -max_total_time=600 CORPUS_DIR
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
fuzz:
	$(MAKE) BUILD=build-fuzz FUZZ=1 $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/fuzz/%)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(BUILD)/libryot.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(BUILD)/libryot.a $(LDLIBS)

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) $(MTOOLS_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
