/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the mtty-mig kselftests: loading the module with libkmod,
 * creating and removing mdev instances through sysfs, opening them through
 * the VFIO container/group API and driving the migration uAPI.
 *
 * Every function returns 0 or a negative errno and never exits, so tests
 * can assert on the exact error a bad input gets. The exceptions return a
 * value and say so: predicates (bool), names, byte counts of region I/O
 * (or a negative errno), mt_now_s(), and the readers made for assertions,
 * mt_inst_state() and mt_dev_attr_u64(), which return MT_NO_STATE and
 * MT_NO_VALUE when they cannot read.
 */
#ifndef MTTY_TEST_H
#define MTTY_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/vfio.h>

/* Linux 7.1's names, for the 6.12 uAPI header the tests build against */
#ifndef VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2
#define VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 12
#endif
#ifndef VFIO_PRECOPY_INFO_REINIT
#define VFIO_PRECOPY_INFO_REINIT (1 << 0)
#endif

#define MT_UUID_LEN 37 /* 36 characters and the NUL */
#define MT_PARENT "mtty_mig"
#define MT_MDEV_BUS "/sys/class/mdev_bus/" MT_PARENT
#define MT_TYPES MT_MDEV_BUS "/mdev_supported_types"
#define MT_DEVICES "/sys/bus/mdev/devices"

struct mt_vfio {
	int container;
	int group;
	int device;
};

/* an mdev instance, and its VFIO handles once opened */
struct mt_inst {
	char uuid[MT_UUID_LEN];
	struct mt_vfio v;
	bool created; /* mt_inst_down() removes it */
};

/* a growable byte buffer; { 0 } is an empty one */
struct mt_buf {
	uint8_t *p;
	size_t len, cap;
};

#define MT_NO_STATE (~0U)    /* mt_inst_state() could not read the state */
#define MT_NO_VALUE (~0ULL)  /* mt_dev_attr_u64() could not read the attribute */

/* module (libkmod; $MTTY_MIG_KO or /opt/mtty-mig/mtty_mig.ko) */
const char *mt_module_path(void);
bool mt_module_loaded(void);
int mt_module_load(void);
int mt_module_unload(void);
/* insert the module file @path, dependencies already loaded; 0 if it already is */
int mt_kmod_insert_path(const char *path);

/* sysfs */
int mt_sysfs_write(const char *path, const char *val);
int mt_sysfs_read(const char *path, char *buf, size_t len);
int mt_dev_attr_write(const char *uuid, const char *attr, const char *val);
int mt_dev_attr_read(const char *uuid, const char *attr, char *buf, size_t len);
int mt_dev_attr_read_u64(const char *uuid, const char *attr, uint64_t *val);
/* the attribute as a number, or MT_NO_VALUE if it cannot be read or parsed */
uint64_t mt_dev_attr_u64(const char *uuid, const char *attr);
/* the "digest" attribute: a hash of the whole device state */
int mt_digest(const char *uuid, char *buf, size_t len);
void mt_uuid_random(char uuid[MT_UUID_LEN]);
int mt_mdev_create_uuid(const char *type, const char *uuid);
int mt_mdev_create(const char *type, char uuid[MT_UUID_LEN]);
int mt_mdev_remove(const char *uuid);
bool mt_mdev_exists(const char *uuid);

/* debugfs fault injection files of an instance (MTTY_MIG_DEBUGFS_DIR/<uuid>/<file>) */
int mt_fault_write(const char *uuid, const char *file, const char *val);
int mt_fault_read(const char *uuid, const char *file, char *buf, size_t len);

/* VFIO container/group/device */
void mt_vfio_init(struct mt_vfio *v); /* all closed (-1), for a teardown before open */
int mt_vfio_open(struct mt_vfio *v, const char *uuid);
void mt_vfio_close(struct mt_vfio *v);
/*
 * Any VFIO device by its sysfs directory (/sys/bus/mdev/devices/<uuid>,
 * /sys/bus/pci/devices/<bdf> bound to vfio-pci): its own container and group.
 */
int mt_vfio_open_path(struct mt_vfio *v, const char *sysfs_dev);
/* VFIO_DEVICE_RESET */
int mt_dev_reset(int device);
int mt_region_info(int device, uint32_t index, struct vfio_region_info *info);
ssize_t mt_region_read(int device, uint32_t index, uint64_t off, void *buf, size_t len);
ssize_t mt_region_write(int device, uint32_t index, uint64_t off, const void *buf, size_t len);

/* migration uAPI v2 */
int mt_mig_flags(int device, uint64_t *flags);
int mt_mig_get_state(int device, uint32_t *state);
int mt_mig_set_state(int device, uint32_t state, int *data_fd);
int mt_mig_data_size(int device, uint64_t *len);
int mt_precopy_info(int data_fd, uint64_t *initial, uint64_t *dirty);
/*
 * VFIO_MIG_GET_PRECOPY_INFO passing @flags_in as flags; @flags_out gets
 * what the driver returned there (VFIO_PRECOPY_INFO_REINIT after the opt-in)
 */
int mt_precopy_info_flags(int data_fd, uint32_t flags_in, uint64_t *initial, uint64_t *dirty,
			  uint32_t *flags_out);
/*
 * VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 (Linux 7.1): @feature_flags is
 * VFIO_DEVICE_FEATURE_SET (the opt-in), _GET or _PROBE|_SET; @extra payload
 * bytes after the header. 0 or -errno.
 */
int mt_precopy_v2(int device, uint32_t feature_flags, size_t extra);
const char *mt_state_name(uint32_t state);

/*
 * Instances: mt_inst_init() makes @d safe for mt_inst_down(); create makes
 * an mdev of @type with @mem_size bytes of device memory, then writes the
 * NULL-terminated name/value pairs of @attrs (may be NULL); up also opens
 * it. mt_inst_down() closes and removes it (a no-op if never created).
 */
void mt_inst_init(struct mt_inst *d);
int mt_inst_create(struct mt_inst *d, const char *type, uint64_t mem_size,
		   const char *const *attrs);
int mt_inst_up(struct mt_inst *d, const char *type, uint64_t mem_size,
	       const char *const *attrs);
int mt_inst_down(struct mt_inst *d);
/* the migration state of an open instance, or MT_NO_STATE */
uint32_t mt_inst_state(const struct mt_inst *d);

/* byte buffers */
int mt_buf_put(struct mt_buf *b, const void *data, size_t len);
void mt_buf_free(struct mt_buf *b);

/*
 * Read a data_fd in @chunk-byte reads until it ends: mt_read_to_end() until
 * read() returns 0 (STOP_COPY), mt_read_precopy() until -ENOMSG (PRE_COPY,
 * where 0 is -EPIPE). 0 or the first error; what was read is appended to
 * @out and counted in *@total (either may be NULL), also on error.
 */
int mt_read_to_end(int fd, size_t chunk, struct mt_buf *out, size_t *total);
int mt_read_precopy(int fd, size_t chunk, struct mt_buf *out, size_t *total);

/*
 * Write @len bytes of @p to @fd in writes of @seg bytes at most (0: as many
 * as write() takes); 0, or the first error (a write of 0 bytes is -EIO).
 */
int mt_write_all(int fd, const void *p, size_t len, size_t seg);

/*
 * Resume a stream into @d: -> RESUMING, @len bytes of @p written to the
 * data_fd, RESUMING -> STOP; 0 if the device took it, else the first error.
 */
int mt_resume(struct mt_inst *d, const void *p, size_t len);

/*
 * From any state: STOP (reading the digest into @digest if not NULL), save
 * the whole STOP_COPY stream into @out, back to STOP.
 */
int mt_save_stopped(struct mt_inst *d, struct mt_buf *out, char *digest, size_t dlen);

/* CLOCK_MONOTONIC in seconds */
double mt_now_s(void);

/*
 * Entries of directory @path but "." and "..", or a negative errno; for
 * /proc/self/fd and /proc/self/task, leak checks: the descriptor that
 * reads /proc/self/fd is not counted.
 */
int mt_dir_count(const char *path);

/*
 * Wait for a condition, with a deadline: call @cond(@arg) every millisecond
 * until it returns non-zero or @secs seconds passed. 0 once it returned > 0,
 * its value if it returned < 0, -ETIMEDOUT at the deadline.
 */
int mt_wait_until(int (*cond)(void *arg), void *arg, double secs);
/* attribute @attr of @uuid, as a number, above @than (unreadable: not yet) */
int mt_wait_attr_above(const char *uuid, const char *attr, uint64_t than, double secs);
/* attribute @attr of @uuid reads @want (unreadable: not yet) */
int mt_wait_attr_is(const char *uuid, const char *attr, const char *want, double secs);

/*
 * A keys.psk file (QEMU's format, the vfio-mig --tls-psk input) at @path
 * with a fresh random 32-byte key for identity "qemu", mode 0600: test
 * credentials are made at test time, never committed.
 */
int mt_write_psk_file(const char *path);

#endif
