/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * mtty_mig: what the mtty_mig mdev module and userspace share.
 *
 * This header owns the names (mdev types, sysfs attributes, debugfs fault
 * files), the region layout of the device (index << 40 offsets, BAR0 16550
 * registers, BAR1 device memory) and the device migration stream format
 * (framed little-endian records).  It compiles in userspace with only
 * <linux/types.h> and in the kernel module.
 *
 * See Documentation/device-model.rst and Documentation/stream-format.rst.
 */
#ifndef _UAPI_LINUX_MTTY_MIG_H
#define _UAPI_LINUX_MTTY_MIG_H

#include <linux/const.h>
#include <linux/types.h>

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

/* Module, device class, mdev parent device and mdev driver name. */
#define MTTY_MIG_NAME			"mtty_mig"
/* The mdev parent as seen through the mdev_bus compat class. */
#define MTTY_MIG_PARENT_PATH		"/sys/class/mdev_bus/" MTTY_MIG_NAME
#define MTTY_MIG_TYPES_PATH		MTTY_MIG_PARENT_PATH "/mdev_supported_types"
/* Instances: MTTY_MIG_DEVICES_PATH "/<uuid>/<attribute>". */
#define MTTY_MIG_DEVICES_PATH		"/sys/bus/mdev/devices"

/* mdev type directory names: 1, 2 and 4 serial ports. */
#define MTTY_MIG_TYPE_1			MTTY_MIG_NAME "-1"
#define MTTY_MIG_TYPE_2			MTTY_MIG_NAME "-2"
#define MTTY_MIG_TYPE_4			MTTY_MIG_NAME "-4"
#define MTTY_MIG_MAX_PORTS		4
/* Serial ports available over all instances of the parent. */
#define MTTY_MIG_TOTAL_PORTS		64

/* ------------------------------------------------------------------------ */
/* Regions                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Region N is accessed with pread/pwrite on the VFIO device fd at offset
 * MTTY_MIG_INDEX_TO_OFFSET(N) + offset-in-region.  The indexes are the
 * VFIO_PCI_*_REGION_INDEX values of <linux/vfio.h>.
 */
#define MTTY_MIG_OFFSET_SHIFT		40
#define MTTY_MIG_OFFSET_MASK		(_BITULL(MTTY_MIG_OFFSET_SHIFT) - 1)
#define MTTY_MIG_INDEX_TO_OFFSET(index)	((__u64)(index) << MTTY_MIG_OFFSET_SHIFT)
#define MTTY_MIG_OFFSET_TO_INDEX(off)	((__u64)(off) >> MTTY_MIG_OFFSET_SHIFT)

/* BAR0: I/O space, 8 byte-wide 16550 registers per port, port N at N * 8. */
#define MTTY_MIG_SERIAL_REGION		0	/* VFIO_PCI_BAR0_REGION_INDEX */
#define MTTY_MIG_PORT_STRIDE		8
#define MTTY_MIG_FIFO_SIZE		16
/* BAR1: device memory, read/write, size = the instance's mem_size. */
#define MTTY_MIG_MEM_REGION		1	/* VFIO_PCI_BAR1_REGION_INDEX */
/* PCI configuration space. */
#define MTTY_MIG_CONFIG_REGION		7	/* VFIO_PCI_CONFIG_REGION_INDEX */
#define MTTY_MIG_CONFIG_SIZE		256

/* PCI identity of the emulated function (the one samples/vfio-mdev/mtty uses). */
#define MTTY_MIG_PCI_VENDOR_ID		0x4348
#define MTTY_MIG_PCI_DEVICE_ID		0x3253

/* ------------------------------------------------------------------------ */
/* Device memory                                                             */
/* ------------------------------------------------------------------------ */

/* Dirty tracking and the stream use 4 KiB pages whatever the CPU page size. */
#define MTTY_MIG_PAGE_SHIFT		12
#define MTTY_MIG_PAGE_SIZE		((__u32)_BITUL(MTTY_MIG_PAGE_SHIFT))
#define MTTY_MIG_MEM_SIZE_MIN		((__u64)MTTY_MIG_PAGE_SIZE)
#define MTTY_MIG_MEM_SIZE_DEFAULT	(64ULL << 20)
#define MTTY_MIG_MEM_SIZE_MAX		_BITULL(30)

/*
 * The internal engine writes whole pages.  Write number S (the engine's
 * sequence number, starting at 0 and migrated with the device) goes to page
 * S % nr_pages and fills it with little-endian 64-bit words:
 *   word 0 = S, word 1 = MTTY_MIG_PATTERN_OWN (or _PEER for a write into
 *   the peer, where S is then the peer-write sequence number),
 *   word i >= 2 = S * MTTY_MIG_PATTERN_MUL + i.
 */
#define MTTY_MIG_PATTERN_OWN		0x4e574f47494d544dULL	/* "MTMIGOWN" */
#define MTTY_MIG_PATTERN_PEER		0x524545504749444dULL	/* "MDIGPEER" */
#define MTTY_MIG_PATTERN_MUL		0x9e3779b97f4a7c15ULL

/* ------------------------------------------------------------------------ */
/* sysfs: MTTY_MIG_DEVICES_PATH "/<uuid>/" attribute                        */
/* ------------------------------------------------------------------------ */

/*
 * Numbers are decimal on input and output unless stated otherwise.
 *
 * mem_size		rw  Device memory (BAR1) size in bytes: a power of two
 *			    in [MEM_SIZE_MIN, MEM_SIZE_MAX] (a BAR's size is one).
 *			    Writing frees the current contents; the memory is
 *			    allocated (zeroed) when the device is opened.
 *			    -EBUSY while the device is open, -EINVAL if out of
 *			    range.  Default MTTY_MIG_MEM_SIZE_DEFAULT.
 * nr_ports		ro  Number of serial ports (from the mdev type).
 * dirty_rate		rw  Pages per second the engine writes into its own
 *			    memory while RUNNING or PRE_COPY; 0 = off (default).
 *			    At most MTTY_MIG_RATE_MAX, else -EINVAL; the rate
 *			    set is the rate delivered (writes a late tick
 *			    could not do are owed, up to a second's worth).
 *			    Writable at any time.
 * p2p_rate		rw  Pages per second the engine writes into the peer's
 *			    memory while RUNNING or PRE_COPY; 0 = off (default).
 *			    Same limit and delivery as dirty_rate.
 * peer			rw  UUID of the peer instance of this parent, or "none".
 *			    Writing "none" or an empty line unlinks.  -ENODEV
 *			    if no such instance, -EINVAL for itself or a bad
 *			    UUID.  Unlinked automatically when the peer goes.
 * metadata_size	rw  Payload size in bytes of the METADATA record, sent
 *			    first in the PRE_COPY initial data, in
 *			    [MTTY_MIG_METADATA_MIN, MTTY_MIG_METADATA_MAX].
 *			    Sampled when a saving session starts.  Default
 *			    MTTY_MIG_METADATA_DEFAULT.  A new size written in
 *			    PRE_COPY, in a session started after the user
 *			    opted in to PRECOPY_INFOv2, is a reconfiguration
 *			    (REINIT, see below); -EBUSY while a REINIT is
 *			    half read.
 * initial_load_ms	rw  Milliseconds the destination sleeps when it loads
 *			    the METADATA record (simulated resource
 *			    preallocation).  At most MTTY_MIG_DELAY_MAX_MS.
 * save_rate		rw  Bytes per second the data_fd yields on the source;
 *			    0 = unlimited (default).  The read sleeps.
 * resume_rate		rw  Bytes per second the data_fd accepts on the
 *			    destination; 0 = unlimited (default).
 * stop_copy_latency_ms	rw  Milliseconds entering STOP_COPY takes (slept before
 *			    the transition, holding no lock, interruptibly).
 *			    At most MTTY_MIG_DELAY_MAX_MS.
 * state		ro  Migration state name, e.g. "RUNNING", "PRE_COPY_P2P".
 * digest		ro  Root only (0400).  Hashed in 256 KiB chunks, so it
 *			    never holds up the device; -EAGAIN if mem_size
 *			    changed meanwhile.
 *			    "0x%016llx": xxh64 of the migratable state (see
 *			    Documentation/device-model.rst); equal on source at
 *			    stop and destination after a good migration.
 * dirty_pages		ro  Pages currently marked dirty.
 * engine_writes	ro  Pages the engine wrote into its own memory.
 * p2p_tx		ro  Writes this device initiated into its peer.
 * p2p_rx		ro  Peer writes this device accepted and applied.
 * p2p_violations	ro  Peer writes that reached this device in STOP,
 *			    STOP_COPY, RESUMING or ERROR (not applied).
 * p2p_dropped		ro  Peer writes that reached this device while it was
 *			    not open (not applied, not a violation).
 * reinits		ro  REINITs queued by reconfigurations (one replaced
 *			    before it was read counts too).
 *
 * Writes of a read-only attribute fail with -EACCES (sysfs mode).
 */
#define MTTY_MIG_ATTR_MEM_SIZE		"mem_size"
#define MTTY_MIG_ATTR_NR_PORTS		"nr_ports"
#define MTTY_MIG_ATTR_DIRTY_RATE	"dirty_rate"
#define MTTY_MIG_ATTR_P2P_RATE		"p2p_rate"
#define MTTY_MIG_ATTR_PEER		"peer"
#define MTTY_MIG_ATTR_METADATA_SIZE	"metadata_size"
#define MTTY_MIG_ATTR_INITIAL_LOAD_MS	"initial_load_ms"
#define MTTY_MIG_ATTR_SAVE_RATE		"save_rate"
#define MTTY_MIG_ATTR_RESUME_RATE	"resume_rate"
#define MTTY_MIG_ATTR_STOP_COPY_LATENCY_MS "stop_copy_latency_ms"
#define MTTY_MIG_ATTR_STATE		"state"
#define MTTY_MIG_ATTR_DIGEST		"digest"
#define MTTY_MIG_ATTR_DIRTY_PAGES	"dirty_pages"
#define MTTY_MIG_ATTR_ENGINE_WRITES	"engine_writes"
#define MTTY_MIG_ATTR_P2P_TX		"p2p_tx"
#define MTTY_MIG_ATTR_P2P_RX		"p2p_rx"
#define MTTY_MIG_ATTR_P2P_VIOLATIONS	"p2p_violations"
#define MTTY_MIG_ATTR_P2P_DROPPED	"p2p_dropped"
#define MTTY_MIG_ATTR_REINITS		"reinits"

#define MTTY_MIG_PEER_NONE		"none"
#define MTTY_MIG_RATE_MAX		16384U	/* pages per second (64 MiB/s) */
#define MTTY_MIG_DELAY_MAX_MS		60000U

/* ------------------------------------------------------------------------ */
/* debugfs fault injection: MTTY_MIG_DEBUGFS_DIR "/<uuid>/" file             */
/* ------------------------------------------------------------------------ */

/*
 * fail_state		rw  "<state> <errno>": the next FSM step whose target
 *			    is <state> fails with -<errno> before doing
 *			    anything; the device stays in the step's source
 *			    state.  <state> is the enum vfio_device_mig_state
 *			    number or its name ("stop_copy", case-insensitive);
 *			    <errno> is 1..4095 (a leading '-' is accepted).
 *			    One-shot.  "none" disarms.  Reads "none" or
 *			    "<STATE> <errno>".
 * fail_save_after	rw  N: the saving data_fd yields at most N bytes of
 *			    the stream, then one read() fails with -EIO and the
 *			    fault disarms.  -1 disarms (default).
 * fail_resume_after	rw  N: the resuming data_fd accepts at most N bytes,
 *			    then one write() fails with -EIO and the stream is
 *			    marked broken (RESUMING -> STOP then fails).
 *			    -1 disarms (default).
 * transition_delay_ms	rw  Milliseconds each step of a requested transition
 *			    takes (0..60000): the sum along the path is slept
 *			    before the request takes the FSM lock.
 */
#define MTTY_MIG_DEBUGFS_DIR		"/sys/kernel/debug/" MTTY_MIG_NAME
#define MTTY_MIG_FAULT_FAIL_STATE	"fail_state"
#define MTTY_MIG_FAULT_FAIL_SAVE_AFTER	"fail_save_after"
#define MTTY_MIG_FAULT_FAIL_RESUME_AFTER "fail_resume_after"
#define MTTY_MIG_FAULT_TRANSITION_DELAY_MS "transition_delay_ms"

/* ------------------------------------------------------------------------ */
/* Migration stream (what the data_fd yields)                                */
/* ------------------------------------------------------------------------ */

/*
 * The stream is a sequence of records, each a struct mtty_mig_rec_hdr
 * followed by 'length' payload bytes.  Everything is little-endian.
 *
 *   HEADER METADATA PAGE{nr_pages}       initial data (PRE_COPY initial_bytes):
 *                                        the first full image, pages in order
 *   PAGE*                                pages written after they were sent
 *                                        (PRE_COPY dirty_bytes, from zero)
 *   SERIAL{nr_ports} DEVICE END          written once the device is stopped
 *
 * Version 1.1 adds REINIT (PRE_COPY, after the user opted in with
 * VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2): wherever a PAGE may follow,
 *
 *   REINIT METADATA PAGE{nr_pages}       new initial data: the device was
 *                                        reconfigured; PRECOPY_INFO reported
 *                                        VFIO_PRECOPY_INFO_REINIT
 *
 * A saving session writes version_minor 1 only if the user had opted in
 * when it started, so a stream without REINIT stays readable by 1.0.
 *
 * 'seq' numbers the records from 0 without gaps; 'csum' is xxh32 (seed
 * MTTY_MIG_CSUM_SEED) over the header with csum = 0 followed by the payload.
 * A page may appear several times; the last copy wins.
 */
#define MTTY_MIG_STREAM_MAGIC		0x0047494d5954544dULL	/* "MTTYMIG\0" */
#define MTTY_MIG_STREAM_VERSION_MAJOR	1
#define MTTY_MIG_STREAM_VERSION_MINOR	1
#define MTTY_MIG_CSUM_SEED		0

enum mtty_mig_rec_type {
	MTTY_MIG_REC_HEADER	= 1,
	MTTY_MIG_REC_METADATA	= 2,
	MTTY_MIG_REC_PAGE	= 3,
	MTTY_MIG_REC_SERIAL	= 4,
	MTTY_MIG_REC_DEVICE	= 5,
	MTTY_MIG_REC_END	= 6,
	MTTY_MIG_REC_REINIT	= 7,	/* version 1.1 */
};

struct mtty_mig_rec_hdr {
	__le16 type;		/* enum mtty_mig_rec_type */
	__le16 flags;		/* 0 */
	__le32 length;		/* payload bytes after this header */
	__le32 seq;		/* record number, 0 for HEADER */
	__le32 csum;		/* xxh32 of header (csum = 0) + payload */
};

/* MTTY_MIG_REC_HEADER: compatibility header, always record 0. */
struct mtty_mig_rec_header {
	__le64 magic;		/* MTTY_MIG_STREAM_MAGIC */
	__le16 version_major;	/* must equal MTTY_MIG_STREAM_VERSION_MAJOR */
	__le16 version_minor;	/* lower or equal, else refused */
	__le32 flags;		/* 0 */
	__le32 nr_ports;	/* must equal the destination's */
	__le32 page_size;	/* MTTY_MIG_PAGE_SIZE */
	__le64 mem_size;	/* must equal the destination's mem_size */
	__le32 metadata_size;	/* payload length of the METADATA record */
	__le32 reserved;	/* 0 */
};

/*
 * MTTY_MIG_REC_METADATA: the device layout, then filler up to
 * metadata_size bytes (byte i of the payload, i >= sizeof(layout), is
 * (__u8)(i * 7 + 1)).
 */
#define MTTY_MIG_METADATA_MIN		((__u32)sizeof(struct mtty_mig_rec_layout))
#define MTTY_MIG_METADATA_DEFAULT	(64U << 10)
#define MTTY_MIG_METADATA_MAX		(16U << 20)

struct mtty_mig_rec_layout {
	__le32 nr_ports;
	__le32 fifo_size;	/* MTTY_MIG_FIFO_SIZE */
	__le32 port_stride;	/* MTTY_MIG_PORT_STRIDE */
	__le32 config_size;	/* MTTY_MIG_CONFIG_SIZE */
	__le64 nr_pages;	/* mem_size / page_size */
	__le64 reserved;	/* 0 */
};

/* MTTY_MIG_REC_PAGE: followed by MTTY_MIG_PAGE_SIZE bytes of data. */
struct mtty_mig_rec_page {
	__le64 index;		/* page number, < nr_pages */
};

/* MTTY_MIG_REC_SERIAL: one per port, in port order. */
#define MTTY_MIG_SERIAL_DLAB		_BITUL(0)
#define MTTY_MIG_SERIAL_OVERRUN		_BITUL(1)
struct mtty_mig_rec_serial {
	__le16 divisor;		/* baud divisor latch */
	__u8 port;		/* port number */
	__u8 flags;		/* MTTY_MIG_SERIAL_* */
	__u8 fcr;		/* last FIFO control register write */
	__u8 max_fifo_size;	/* 1 or MTTY_MIG_FIFO_SIZE */
	__u8 trigger_level;	/* 1..14 */
	__u8 count;		/* bytes in the loopback FIFO */
	__u8 head;		/* FIFO write index */
	__u8 tail;		/* FIFO read index */
	__u8 reserved[6];	/* 0 */
	__u8 regs[8];		/* register image, indexed by UART_* offset */
	__u8 fifo[MTTY_MIG_FIFO_SIZE];
};

/* MTTY_MIG_REC_DEVICE: internal engine state. */
struct mtty_mig_rec_device {
	__le64 engine_seq;	/* next own-memory write sequence number */
	__le64 p2p_seq;		/* next peer write sequence number */
};

/*
 * MTTY_MIG_REC_REINIT: new initial data follows: a METADATA record of
 * metadata_size bytes, then the pages of a new full image.
 */
struct mtty_mig_rec_reinit {
	__le32 metadata_size;	/* payload length of the METADATA that follows */
	__le32 reserved;	/* 0 */
};

/* MTTY_MIG_REC_END: last record. */
struct mtty_mig_rec_end {
	__le64 nr_pages;	/* PAGE records in the stream */
	__le32 nr_records;	/* records before this one (== its seq) */
	__le32 reserved;	/* 0 */
};

/* Largest payload a receiver must stage (a PAGE record). */
#define MTTY_MIG_REC_PAGE_PAYLOAD	(sizeof(struct mtty_mig_rec_page) + \
					 MTTY_MIG_PAGE_SIZE)

#endif /* _UAPI_LINUX_MTTY_MIG_H */
