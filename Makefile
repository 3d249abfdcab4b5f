# SPDX-License-Identifier: GPL-2.0-only
#
# mtty-mig top-level Makefile.
#
#   make              build the module, the uAPI header, userspace and selftests
#   make check        install deps, build, run host tests and the kselftests in a VM
#                     booting Debian's 6.12, the debug 6.12 kernel and Linux 7.2
#                     (LANE='debian debug next' or all, the default)
#   make debug        build (once, cached) the lockdep/KASAN 6.12 kernel and the module for it
#   make next         build (once, cached) Linux 7.2 from Debian sid and the module for it
#   make demo         boot the VM and migrate devices, printing what happened
#   make bench        run the migration benchmark in the VM
#   make vm-shell     interactive shell in the test VM
#   make stream-fuzz  the stream fuzz kselftest with 100000 streams (FUZZ_STREAMS=)
#   make soak         200 ping-pong migrations with vfio-mig in the VM (SOAK_COUNT=)
#   make fuzz         libFuzzer (clang 14) on the engine's parsers and a destination
#                     session, FUZZ_TIME=600 s per harness (Documentation/fuzzing.rst)
#   make lint         checkpatch --strict on the module and uapi
#   make sparse       sparse on every module source, against 6.12 and (once
#                     `make next` built it) Linux 7.2
#   make bench        BENCH_SECTIONS=AB,E runs only those sections
#
# KVER/KDIR default to the newest installed Debian 6.12 ABI (scripts/kver.sh).
# KSRC=/path/to/linux takes the kselftest harness and checkpatch from a kernel
# tree instead of /usr/src/linux-source-6.12.tar.xz.

TOP		:= $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD		?= $(TOP)/build
# Evaluated again in every sub-make, so a `make check` that first installs the
# kernel headers builds against them. Not exported for the same reason.
ifeq ($(strip $(KVER)),)
KVER		:= $(shell $(TOP)/scripts/kver.sh 2>/dev/null)
endif
KDIR		?= /usr/src/linux-headers-$(KVER)
KSRC_TARBALL	?= /usr/src/linux-source-6.12.tar.xz
KSRC		?=
VM_TIMEOUT	?= 1500
LANE		?= all
V		?= 0

UAPI_DIR	:= $(BUILD)/uapi
KSFT_DIR	:= $(BUILD)/ksft
CP_DIR		:= $(BUILD)/checkpatch
KSFT_INSTALL	:= $(BUILD)/kselftest
MODULE		:= $(TOP)/kmod-mtty-mig/mtty_mig.ko

export TOP BUILD UAPI_DIR KSFT_DIR

.PHONY: all deps module mtty-sample uapi ksft user selftests check check-host check-vm \
	demo bench vm-shell lint sparse clean install modules_install help debug debug-module next lane-module

all: module mtty-sample uapi user selftests

help:
	@sed -n '3,25p' $(TOP)/Makefile | sed 's/^# \{0,1\}//'

deps:
	@$(TOP)/scripts/install-deps.sh

kver-check:
	@test -n "$(KVER)" || { echo "no Debian 6.12 kernel headers+image: run 'make deps'" >&2; exit 1; }
kdir-check:
	@test -d "$(KDIR)" || { echo "no kernel build tree at KDIR=$(KDIR): run 'make deps' or pass KDIR=" >&2; exit 1; }
.PHONY: kver-check kdir-check

# --- module -----------------------------------------------------------------
module: kdir-check
	$(MAKE) -C $(KDIR) M=$(TOP) modules

# sparse on every source against Debian's 6.12 headers, and against Linux 7.2
# when the next kernel is built (`make next`) with a sparse that 7.2 accepts
# (scripts/sparse-build.sh: sid's source, built here and cached).
sparse: kdir-check
	$(MAKE) -C $(KDIR) M=$(TOP) C=2 modules
	@if $(TOP)/scripts/kernel-build.sh next --check >/dev/null; then \
		$(MAKE) --no-print-directory lane-module KLANE=next C=2 CHECK=$$($(TOP)/scripts/sparse-build.sh); \
	else echo "sparse: the next kernel is not built (make next): 6.12 only"; fi

modules_install: kdir-check
	$(MAKE) -C $(KDIR) M=$(TOP) modules_install

# --- generated headers and kernel helper files (never committed) -------------
# bookworm's linux-libc-dev is 6.1 and lacks PRE_COPY: sanitize the 6.12
# vfio.h from the installed headers package, exactly as headers_install does.
uapi: $(UAPI_DIR)/linux/vfio.h

$(UAPI_DIR)/linux/vfio.h: | kver-check
	@mkdir -p $(dir $@)
	cd $(KDIR) && sh scripts/headers_install.sh \
		$(KDIR)/../linux-headers-$(patsubst %-amd64,%,$(KVER))-common/include/uapi/linux/vfio.h $@.tmp
	@mv $@.tmp $@

ksft: $(KSFT_DIR)/kselftest_harness.h $(CP_DIR)/checkpatch.pl

ifneq ($(KSRC),)
$(KSFT_DIR)/kselftest_harness.h:
	@mkdir -p $(KSFT_DIR)
	rsync -a $(KSRC)/tools/testing/selftests/kselftest* $(KSRC)/tools/testing/selftests/lib.mk \
		$(KSRC)/tools/testing/selftests/run_kselftest.sh $(KSFT_DIR)/
$(CP_DIR)/checkpatch.pl:
	@mkdir -p $(CP_DIR)
	cp $(KSRC)/scripts/checkpatch.pl $(KSRC)/scripts/spelling.txt \
		$(KSRC)/scripts/const_structs.checkpatch $(CP_DIR)/
else
$(KSFT_DIR)/kselftest_harness.h:
	@mkdir -p $(KSFT_DIR)
	tar -xJf $(KSRC_TARBALL) -C $(KSFT_DIR) --strip-components=4 --wildcards \
		'linux-source-6.12/tools/testing/selftests/kselftest*' \
		linux-source-6.12/tools/testing/selftests/lib.mk \
		linux-source-6.12/tools/testing/selftests/run_kselftest.sh
	@touch $@
$(CP_DIR)/checkpatch.pl:
	@mkdir -p $(CP_DIR)
	tar -xJf $(KSRC_TARBALL) -C $(CP_DIR) --strip-components=2 \
		linux-source-6.12/scripts/checkpatch.pl linux-source-6.12/scripts/spelling.txt \
		linux-source-6.12/scripts/const_structs.checkpatch
	@touch $@
endif

# The kernel's own mtty sample (with migration since 6.7): a device whose
# driver we did not write, to prove the engine is device-agnostic. Not
# shipped by Debian (CONFIG_SAMPLES=n): built from linux-source at build time.
MTTY_SAMPLE	:= $(BUILD)/mtty-sample
mtty-sample: $(MTTY_SAMPLE)/mtty.ko

$(MTTY_SAMPLE)/mtty.c:
	@mkdir -p $(MTTY_SAMPLE)
ifneq ($(KSRC),)
	cp $(KSRC)/samples/vfio-mdev/mtty.c $@
else
	tar -xJf $(KSRC_TARBALL) -C $(MTTY_SAMPLE) --strip-components=3 \
		linux-source-6.12/samples/vfio-mdev/mtty.c
	@touch $@
endif

$(MTTY_SAMPLE)/mtty.ko: $(MTTY_SAMPLE)/mtty.c | kdir-check
	echo 'obj-m := mtty.o' > $(MTTY_SAMPLE)/Kbuild
	$(MAKE) -C $(KDIR) M=$(MTTY_SAMPLE) modules

# --- the VM's own kernels: the debug lane and the next lane ----------------------
# `make debug`: Debian's linux-source-6.12 with lockdep, KASAN, UBSAN, kmemleak;
# `make next`: Debian sid's linux-source-7.2 (KNEXT_SERIES), the newest kernel.
# Each is built once per (source version, config fragments, compiler) and
# cached outside the clone by scripts/kernel-build.sh, which prints its
# directory. The module is built against that tree from a copy of its sources
# in $(BUILD)/<lane>/module: Linux 6.12 has no object directory for M= builds,
# and the objects of the Debian build must stay where they are. Any compiler,
# objtool or modpost warning fails the build.
KLANES		:= debug next
KLANE		?= debug

$(KLANES):
	@$(TOP)/scripts/kernel-build.sh $@ >/dev/null
	@$(MAKE) --no-print-directory lane-module KLANE=$@

debug-module: lane-module

lane-module:
	@kdir=$$($(TOP)/scripts/kernel-build.sh $(KLANE) --check) || \
		{ echo "the $(KLANE) kernel is not built: make $(KLANE)" >&2; exit 1; }; \
	mod=$(BUILD)/$(KLANE)/module; \
	mkdir -p $$mod/kmod-mtty-mig $$mod/uapi; \
	rsync -a $(TOP)/Kbuild $$mod/; \
	rsync -a --delete --exclude='*.mod.c' --include='*/' --include='*.[ch]' --include=Kbuild --exclude='*' \
		$(TOP)/kmod-mtty-mig/ $$mod/kmod-mtty-mig/; \
	rsync -a --delete $(TOP)/uapi/ $$mod/uapi/; \
	$(MAKE) -C $$kdir/tree M=$$mod KCFLAGS=-Werror $(if $(C),C=$(C)) $(if $(CHECK),CHECK=$(CHECK)) modules >$$mod/build.log 2>&1; rc=$$?; \
	cat $$mod/build.log; \
	if [ $$rc -ne 0 ] || grep -qi 'warning' $$mod/build.log; then \
		echo "lane-module: the build for the $(KLANE) kernel failed or warned (see above)" >&2; exit 1; fi

# --- userspace and selftests ----------------------------------------------------
user: uapi ksft
	$(MAKE) -C $(TOP)/user all asan-build

selftests: uapi ksft user
	$(MAKE) -C $(TOP)/selftests install-tree

# --- checks -------------------------------------------------------------------
CHECKPATCH = perl $(CP_DIR)/checkpatch.pl --no-tree --strict --terse --show-types

# BIT() does not exist in userspace, so a uAPI header cannot use it.
# compat.h keys on LINUX_VERSION_CODE by design (an out-of-tree module built
# against 6.12 to 7.2), which checkpatch flags for in-tree code.
lint: $(CP_DIR)/checkpatch.pl
	$(CHECKPATCH) -f $(filter-out %.mod.c %/compat.h,$(wildcard $(TOP)/kmod-mtty-mig/*.[ch]))
	$(CHECKPATCH) --ignore LINUX_VERSION_CODE,CONSTANT_COMPARISON -f $(TOP)/kmod-mtty-mig/compat.h
	$(CHECKPATCH) --ignore BIT_MACRO -f $(wildcard $(TOP)/uapi/linux/*.h)

check: deps
	@$(MAKE) --no-print-directory all
	@for l in $(KLANES); do case " $(LANE) " in *" all "*|*" $$l "*) \
		$(MAKE) --no-print-directory $$l || exit 1 ;; esac; done
	@$(TOP)/scripts/check.sh --lane '$(LANE)'

# Stream fuzz: mtty_mig_fuzz_test with FUZZ_STREAMS mutated streams (make check
# runs it with 2000) in the VM of FUZZ_LANE. FUZZ_SEED=0x... replays a run;
# FUZZ_TIMEOUT bounds the program (the kselftest runner's per-program timeout)
# and, with 10 minutes more, the VM.
FUZZ_STREAMS	?= 100000
FUZZ_SEED	?=
FUZZ_LANE	?= debian
FUZZ_TIMEOUT	?= 7200
.PHONY: stream-fuzz
stream-fuzz: deps
	@$(MAKE) --no-print-directory all
	@[ "$(FUZZ_LANE)" = debian ] || $(MAKE) --no-print-directory $(FUZZ_LANE)
	@VM_TIMEOUT=$$(( $(FUZZ_TIMEOUT) + 600 )) VM_TIMEOUT_DEBUG=$$(( $(FUZZ_TIMEOUT) + 600 )) \
		KSFT_TIMEOUT_DEBUG=$(FUZZ_TIMEOUT) \
		$(TOP)/scripts/check.sh --lane $(FUZZ_LANE) --tests mtty_mig:mtty_mig_fuzz_test \
		--append 'MTTY_FUZZ_STREAMS=$(FUZZ_STREAMS)$(if $(FUZZ_SEED), MTTY_FUZZ_SEED=$(FUZZ_SEED)) mttytimeout=$(FUZZ_TIMEOUT)'

# Soak: mtty_mig_soak_test with SOAK_COUNT ping-pong migrations (make check
# runs it with 10) in the VM of SOAK_LANE. SOAK_TIMEOUT bounds the program
# (the kselftest runner's per-program timeout) and, with 10 minutes more, the
# VM; its default gives every migration 60 s (420 s on the debug kernel),
# where one took 2.5 s (median; 26 s at worst) on Debian's kernel under TCG,
# and the test bounds each migration itself (300 s).
SOAK_COUNT	?= 200
SOAK_LANE	?= debian
SOAK_TIMEOUT	?= $(shell echo $$(( 600 + $(SOAK_COUNT) * $(if $(filter debug,$(SOAK_LANE)),420,60) )))
.PHONY: soak
soak: deps
	@$(MAKE) --no-print-directory all
	@[ "$(SOAK_LANE)" = debian ] || $(MAKE) --no-print-directory $(SOAK_LANE)
	@VM_TIMEOUT=$$(( $(SOAK_TIMEOUT) + 600 )) VM_TIMEOUT_DEBUG=$$(( $(SOAK_TIMEOUT) + 600 )) \
		KSFT_TIMEOUT_DEBUG=$(SOAK_TIMEOUT) \
		$(TOP)/scripts/check.sh --lane $(SOAK_LANE) --tests mtty_mig:mtty_mig_soak_test \
		--append 'MTTY_SOAK_COUNT=$(SOAK_COUNT) mttytimeout=$(SOAK_TIMEOUT)'

# libFuzzer harnesses (user/fuzz, Documentation/fuzzing.rst): FUZZ_TIME seconds
# each, FUZZ_HARNESSES to choose, FUZZ_JOBS to run several at once. `make check`
# runs each one's smoke test (fuzz_*_test) instead.
FUZZ_TIME	?= 600
.PHONY: fuzz
fuzz: uapi ksft
	$(MAKE) -C $(TOP)/user fuzz FUZZ_TIME=$(FUZZ_TIME)

check-host: all
	@$(TOP)/scripts/check.sh --host-only

demo: deps
	@$(MAKE) --no-print-directory all
	@$(TOP)/scripts/vm-run.sh --mode demo --timeout $(VM_TIMEOUT)

bench: deps
	@$(MAKE) --no-print-directory all
	@$(TOP)/scripts/vm-run.sh --mode bench --timeout $(VM_TIMEOUT) \
		$(if $(BENCH_SECTIONS),--append 'BENCH_SECTIONS=$(BENCH_SECTIONS)')

vm-shell: all
	@$(TOP)/scripts/vm-run.sh --mode shell

clean:
	-$(MAKE) -C $(KDIR) M=$(TOP) clean 2>/dev/null
	-$(MAKE) -C $(TOP)/user clean
	-$(MAKE) -C $(TOP)/selftests clean
	rm -rf $(BUILD)
