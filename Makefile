# SPDX-License-Identifier: GPL-2.0-only
#
# mtty-mig top-level Makefile.
#
#   make              build the module, the uAPI header, userspace and selftests
#   make check        install deps, build, run host tests and the kselftests in a VM
#   make demo         boot the VM and migrate devices, printing what happened
#   make bench        run the migration benchmark in the VM
#   make vm-shell     interactive shell in the test VM
#   make lint         checkpatch --strict on the module and uapi
#   make C=2          also run sparse on every module source
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
V		?= 0

UAPI_DIR	:= $(BUILD)/uapi
KSFT_DIR	:= $(BUILD)/ksft
CP_DIR		:= $(BUILD)/checkpatch
KSFT_INSTALL	:= $(BUILD)/kselftest
MODULE		:= $(TOP)/kmod-mtty-mig/mtty_mig.ko

export TOP BUILD UAPI_DIR KSFT_DIR

.PHONY: all deps module mtty-sample uapi ksft user selftests check check-host check-vm \
	demo bench vm-shell lint sparse clean install modules_install help

all: module mtty-sample uapi user selftests

help:
	@sed -n '3,17p' $(TOP)/Makefile | sed 's/^# \{0,1\}//'

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

sparse: kdir-check
	$(MAKE) -C $(KDIR) M=$(TOP) C=2 modules

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

# --- userspace and selftests ----------------------------------------------------
user: uapi ksft
	$(MAKE) -C $(TOP)/user all asan-build

selftests: uapi ksft user
	$(MAKE) -C $(TOP)/selftests install-tree

# --- checks -------------------------------------------------------------------
CHECKPATCH = perl $(CP_DIR)/checkpatch.pl --no-tree --strict --terse --show-types

# BIT() does not exist in userspace, so a uAPI header cannot use it.
lint: $(CP_DIR)/checkpatch.pl
	$(CHECKPATCH) -f $(filter-out %.mod.c,$(wildcard $(TOP)/kmod-mtty-mig/*.[ch]))
	$(CHECKPATCH) --ignore BIT_MACRO -f $(wildcard $(TOP)/uapi/linux/*.h)

check: deps
	@$(MAKE) --no-print-directory all
	@$(TOP)/scripts/check.sh

check-host: all
	@$(TOP)/scripts/check.sh --host-only

demo: deps
	@$(MAKE) --no-print-directory all
	@$(TOP)/scripts/vm-run.sh --mode demo --timeout $(VM_TIMEOUT)

bench: deps
	@$(MAKE) --no-print-directory all
	@$(TOP)/scripts/vm-run.sh --mode bench --timeout $(VM_TIMEOUT)

vm-shell: all
	@$(TOP)/scripts/vm-run.sh --mode shell

clean:
	-$(MAKE) -C $(KDIR) M=$(TOP) clean 2>/dev/null
	-$(MAKE) -C $(TOP)/user clean
	-$(MAKE) -C $(TOP)/selftests clean
	rm -rf $(BUILD)
