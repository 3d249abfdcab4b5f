/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the mtty-mig kselftests: loading the module with libkmod,
 * creating and removing mdev instances through sysfs, opening them through
 * the VFIO container/group API and driving the migration uAPI.
 *
 * Every function returns 0 or a negative errno and never exits, so tests
 * can assert on the exact error a bad input gets.
 */
#ifndef MTTY_TEST_H
#define MTTY_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/vfio.h>

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

/* module (libkmod; $MTTY_MIG_KO or /opt/mtty-mig/mtty_mig.ko) */
const char *mt_module_path(void);
bool mt_module_loaded(void);
int mt_module_load(void);
int mt_module_unload(void);

/* sysfs */
int mt_sysfs_write(const char *path, const char *val);
int mt_sysfs_read(const char *path, char *buf, size_t len);
int mt_dev_attr_write(const char *uuid, const char *attr, const char *val);
int mt_dev_attr_read(const char *uuid, const char *attr, char *buf, size_t len);
int mt_dev_attr_read_u64(const char *uuid, const char *attr, uint64_t *val);
void mt_uuid_random(char uuid[MT_UUID_LEN]);
int mt_mdev_create_uuid(const char *type, const char *uuid);
int mt_mdev_create(const char *type, char uuid[MT_UUID_LEN]);
int mt_mdev_remove(const char *uuid);
bool mt_mdev_exists(const char *uuid);

/* VFIO container/group/device */
int mt_vfio_open(struct mt_vfio *v, const char *uuid);
void mt_vfio_close(struct mt_vfio *v);
int mt_region_info(int device, uint32_t index, struct vfio_region_info *info);
ssize_t mt_region_read(int device, uint32_t index, uint64_t off, void *buf, size_t len);
ssize_t mt_region_write(int device, uint32_t index, uint64_t off, const void *buf, size_t len);

/* migration uAPI v2 */
int mt_mig_flags(int device, uint64_t *flags);
int mt_mig_get_state(int device, uint32_t *state);
int mt_mig_set_state(int device, uint32_t state, int *data_fd);
int mt_mig_data_size(int device, uint64_t *len);
int mt_precopy_info(int data_fd, uint64_t *initial, uint64_t *dirty);
const char *mt_state_name(uint32_t state);

#endif
