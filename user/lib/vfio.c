// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vfio.c - real VFIO devices through the legacy container/group API
 * (CONFIG_IOMMUFD is off on the target kernel, so no cdev/iommufd path):
 *
 *   /dev/vfio/vfio: VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION(TYPE1v2|TYPE1)
 *   <sysfs dev>/iommu_group -> N, /dev/vfio/N: VFIO_GROUP_GET_STATUS (viable),
 *   VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU (once per container, after the
 *   first group), VFIO_GROUP_GET_DEVICE_FD(name)
 *
 * then the migration features (VFIO_DEVICE_FEATURE_MIGRATION,
 * MIG_DEVICE_STATE, MIG_DATA_SIZE), VFIO_MIG_GET_PRECOPY_INFO on the data_fd,
 * the PCI config region for config state, and VFIO_DEVICE_RESET.
 *
 * A context holds one container and the groups opened in it; a source and a
 * destination in one process use two contexts (two containers, like two
 * hosts).
 *
 * Locks: none; a context is used by one thread while devices are opened and
 * closed.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "vfmig_internal.h"

/*
 * Linux 7.1 (include/uapi/linux/vfio.h); the build's 6.12 header lacks them.
 * PRECOPY_INFOv2 is set (VFIO_DEVICE_FEATURE_SET, no data) to opt in until
 * the device fd is closed; the core refuses it (-EINVAL) on a device without
 * VFIO_MIGRATION_PRE_COPY, older kernels and drivers with -ENOTTY or -EINVAL.
 * REINIT is an output bit of struct vfio_precopy_info.flags, meaningful only
 * after the opt-in (the flags are reserved before it: 0 in, ignored out).
 */
#ifndef VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2
#define VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 12
#endif
#ifndef VFIO_PRECOPY_INFO_REINIT
#define VFIO_PRECOPY_INFO_REINIT (1 << 0)
#endif

_Static_assert(VFMIG_PRECOPY_REINIT == VFIO_PRECOPY_INFO_REINIT, "flag values");
_Static_assert((int)VFMIG_STATE_PRE_COPY_P2P == (int)VFIO_DEVICE_STATE_PRE_COPY_P2P,
	       "state numbering");
_Static_assert((int)VFMIG_STATE_RUNNING_P2P == (int)VFIO_DEVICE_STATE_RUNNING_P2P,
	       "state numbering");
_Static_assert(VFMIG_MIG_PRE_COPY == VFIO_MIGRATION_PRE_COPY, "flag values");
_Static_assert(VFMIG_MIG_P2P == VFIO_MIGRATION_P2P, "flag values");

struct vfio_group {
	int id;
	int fd;
	unsigned refs;
};

struct vfmig_vfio_ctx {
	int container; /* -1 until the first device */
	unsigned long iommu_type;
	bool iommu_set;
	unsigned ngroups;
	struct vfio_group groups[VFMIG_MAX_DEVICES];
};

struct vfio_dev {
	struct vfmig_vfio_ctx *ctx;
	struct vfio_group *group;
	int fd;
	int data_fd;
	int precopy_v2; /* 0 not tried yet on this fd, 1 opted in, else -errno of the refusal */
	bool has_config;
	uint64_t cfg_offset;
	uint32_t cfg_size;
	char name[NAME_MAX + 1];
};

struct vfmig_vfio_ctx *vfmig_vfio_ctx_new(void)
{
	struct vfmig_vfio_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx)
		ctx->container = -1;
	return ctx;
}

void vfmig_vfio_ctx_free(struct vfmig_vfio_ctx *ctx)
{
	if (!ctx)
		return;
	for (unsigned i = 0; i < ctx->ngroups; i++) {
		if (ctx->groups[i].fd >= 0)
			close(ctx->groups[i].fd);
	}
	if (ctx->container >= 0)
		close(ctx->container);
	free(ctx);
}

static int feature(int fd, uint32_t flags, void *payload, size_t len)
{
	uint64_t buf[(sizeof(struct vfio_device_feature) + 64) / sizeof(uint64_t)];
	struct vfio_device_feature *f = (void *)buf;

	if (len > 64)
		return -EINVAL;
	memset(buf, 0, sizeof(buf));
	f->argsz = sizeof(*f) + len;
	f->flags = flags;
	memcpy(f->data, payload, len);
	if (ioctl(fd, VFIO_DEVICE_FEATURE, f))
		return -errno;
	memcpy(payload, f->data, len);
	return 0;
}

static int vfio_get_state(void *priv, enum vfmig_state *st)
{
	struct vfio_dev *d = priv;
	struct vfio_device_feature_mig_state ms = { .data_fd = -1 };
	int ret;

	ret = feature(d->fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &ms,
		      sizeof(ms));
	if (ret)
		return ret;
	if (ms.device_state >= VFMIG_STATE_NR)
		return -ERANGE;
	*st = ms.device_state;
	return 0;
}

static bool has_session(enum vfmig_state st)
{
	return st == VFMIG_STATE_PRE_COPY || st == VFMIG_STATE_PRE_COPY_P2P ||
	       st == VFMIG_STATE_STOP_COPY || st == VFMIG_STATE_RESUMING;
}

static int vfio_set_state(void *priv, enum vfmig_state st)
{
	struct vfio_dev *d = priv;
	struct vfio_device_feature_mig_state ms = { .device_state = st, .data_fd = -1 };
	int ret;

	ret = feature(d->fd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &ms,
		      sizeof(ms));
	if (ret) {
		if (ms.data_fd >= 0)
			close(ms.data_fd);
		return ret;
	}
	/* A new session replaces the old one; leaving the session states ends it. */
	if (ms.data_fd >= 0) {
		if (d->data_fd >= 0)
			close(d->data_fd);
		d->data_fd = ms.data_fd;
	} else if (!has_session(st) && d->data_fd >= 0) {
		close(d->data_fd);
		d->data_fd = -1;
	}
	return 0;
}

static ssize_t vfio_read(void *priv, void *buf, size_t len)
{
	struct vfio_dev *d = priv;
	ssize_t n;

	if (d->data_fd < 0)
		return -EBADF;
	n = read(d->data_fd, buf, len);
	return n < 0 ? -errno : n;
}

static ssize_t vfio_write(void *priv, const void *buf, size_t len)
{
	struct vfio_dev *d = priv;
	ssize_t n;

	if (d->data_fd < 0)
		return -EBADF;
	n = write(d->data_fd, buf, len);
	return n < 0 ? -errno : n;
}

static int vfio_precopy_info(void *priv, uint64_t *initial, uint64_t *dirty, uint32_t *flags)
{
	struct vfio_dev *d = priv;
	struct vfio_precopy_info info = { .argsz = sizeof(info), .flags = 0 };

	if (d->data_fd < 0)
		return -EBADF;
	if (ioctl(d->data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info))
		return -errno;
	*initial = info.initial_bytes;
	*dirty = info.dirty_bytes;
	/* Reserved without the opt-in: whatever a v1 driver left there means nothing. */
	*flags = d->precopy_v2 == 1 ? info.flags & VFIO_PRECOPY_INFO_REINIT : 0;
	return 0;
}

/* Opt in to PRECOPY_INFOv2 once per device fd; the answer is remembered. */
static int vfio_precopy_v2(void *priv)
{
	struct vfio_dev *d = priv;
	struct vfio_device_feature f = {
		.argsz = sizeof(f),
		.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2,
	};

	if (!d->precopy_v2)
		d->precopy_v2 = ioctl(d->fd, VFIO_DEVICE_FEATURE, &f) ? -errno : 1;
	return d->precopy_v2 == 1 ? 0 : d->precopy_v2;
}

static int vfio_data_size(void *priv, uint64_t *bytes)
{
	struct vfio_dev *d = priv;
	struct vfio_device_feature_mig_data_size ds = { 0 };
	int ret;

	ret = feature(d->fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, &ds,
		      sizeof(ds));
	if (!ret)
		*bytes = ds.stop_copy_length;
	return ret;
}

static ssize_t vfio_config_read(void *priv, void *buf, size_t len)
{
	struct vfio_dev *d = priv;
	size_t done = 0;

	if (!d->has_config)
		return 0;
	len = MIN(len, d->cfg_size);
	while (done < len) {
		ssize_t n = pread(d->fd, (uint8_t *)buf + done, len - done,
				  (off_t)(d->cfg_offset + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/*
 * Restore PCI config state.  Identity and read-only fields are skipped, the
 * status register (write-1-to-clear) and BIST (writing starts a self test)
 * are never written, and only units that differ from the destination's
 * current value are written, so writing back an unchanged config is a no-op.
 */
/* clang-format off */
static const struct {
	uint16_t off, len;
} cfg_units[] = {
	{ 0x04, 2 }, /* command */
	{ 0x0c, 1 }, /* cache line size */
	{ 0x0d, 1 }, /* latency timer */
	{ 0x10, 4 }, { 0x14, 4 }, { 0x18, 4 }, { 0x1c, 4 }, { 0x20, 4 }, { 0x24, 4 }, /* BARs */
	{ 0x30, 4 }, /* expansion ROM */
	{ 0x3c, 1 }, /* interrupt line */
};
/* clang-format on */

static int cfg_write_unit(struct vfio_dev *d, const uint8_t *want, const uint8_t *cur, uint32_t off,
			  uint32_t len)
{
	ssize_t n;

	if (!memcmp(want + off, cur + off, len))
		return 0;
	n = pwrite(d->fd, want + off, len, (off_t)(d->cfg_offset + off));
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EIO;
}

static int vfio_config_write(void *priv, const void *buf, size_t len)
{
	struct vfio_dev *d = priv;
	uint8_t cur[VFMIG_MAX_CONFIG];
	ssize_t n;
	int ret;

	if (!d->has_config)
		return len ? -EINVAL : 0;
	if (len != d->cfg_size)
		return -EINVAL;
	n = vfio_config_read(d, cur, len);
	if (n < 0)
		return (int)n;
	if ((size_t)n != len)
		return -EIO;
	for (size_t i = 0; i < ARRAY_SIZE(cfg_units); i++) {
		if (cfg_units[i].off + cfg_units[i].len > len)
			continue;
		ret = cfg_write_unit(d, buf, cur, cfg_units[i].off, cfg_units[i].len);
		if (ret)
			return ret;
	}
	/* Capabilities (MSI/MSI-X control, PM, ...) dword by dword. */
	for (uint32_t off = 0x40; off + 4 <= len; off += 4) {
		ret = cfg_write_unit(d, buf, cur, off, 4);
		if (ret)
			return ret;
	}
	return 0;
}

static int vfio_reset(void *priv)
{
	struct vfio_dev *d = priv;

	if (ioctl(d->fd, VFIO_DEVICE_RESET))
		return -errno;
	/* Reset ends any data session. */
	if (d->data_fd >= 0) {
		close(d->data_fd);
		d->data_fd = -1;
	}
	return 0;
}

static void group_put(struct vfmig_vfio_ctx *ctx, struct vfio_group *g)
{
	if (!g || --g->refs)
		return;
	close(g->fd);
	g->fd = -1;
	(void)ctx;
}

static void vfio_close(void *priv)
{
	struct vfio_dev *d = priv;

	if (d->data_fd >= 0)
		close(d->data_fd);
	if (d->fd >= 0)
		close(d->fd);
	group_put(d->ctx, d->group);
	free(d);
}

static const struct vfmig_device_ops vfio_ops = {
	.get_state = vfio_get_state,
	.set_state = vfio_set_state,
	.read = vfio_read,
	.write = vfio_write,
	.precopy_info = vfio_precopy_info,
	.precopy_v2 = vfio_precopy_v2,
	.data_size = vfio_data_size,
	.config_read = vfio_config_read,
	.config_write = vfio_config_write,
	.reset = vfio_reset,
	.close = vfio_close,
};

static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

static int link_basename(const char *dir, const char *link, char *out, size_t len)
{
	char p[PATH_MAX], target[PATH_MAX];
	const char *base;
	ssize_t n;

	snprintf(p, sizeof(p), "%s/%s", dir, link);
	n = readlink(p, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	base = strrchr(target, '/');
	if (snprintf(out, len, "%s", base ? base + 1 : target) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

static int read_attr(const char *dir, const char *attr, char *out, size_t len)
{
	char p[PATH_MAX];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, attr);
	f = fopen(p, "re");
	if (!f)
		return -errno;
	if (!fgets(out, (int)len, f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

static int container_open(struct vfmig_vfio_ctx *ctx, struct vfmig_error *err)
{
	int fd, v;

	if (ctx->container >= 0)
		return 0;
	fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		vfmig_error_set(err, VFMIG_ERR_DEVICE, e, -1, "vfio",
				"open /dev/vfio/vfio: %s (is the vfio module loaded?)",
				strerror(e));
		return -e;
	}
	v = ioctl(fd, VFIO_GET_API_VERSION);
	if (v != VFIO_API_VERSION) {
		close(fd);
		vfmig_error_set(err, VFMIG_ERR_DEVICE, EINVAL, -1, "vfio",
				"VFIO API version %d, expected %d", v, VFIO_API_VERSION);
		return -EINVAL;
	}
	if (ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) > 0) {
		ctx->iommu_type = VFIO_TYPE1v2_IOMMU;
	} else if (ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) > 0) {
		ctx->iommu_type = VFIO_TYPE1_IOMMU;
	} else {
		close(fd);
		vfmig_error_set(err, VFMIG_ERR_DEVICE, ENODEV, -1, "vfio",
				"no type1 IOMMU backend (modprobe vfio_iommu_type1)");
		return -ENODEV;
	}
	ctx->container = fd;
	return 0;
}

static int group_get(struct vfmig_vfio_ctx *ctx, int id, struct vfio_group **out,
		     struct vfmig_error *err)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_group *g = NULL;
	char path[64];
	int fd, e;

	for (unsigned i = 0; i < ctx->ngroups; i++) {
		if (ctx->groups[i].id == id && ctx->groups[i].fd >= 0) {
			ctx->groups[i].refs++;
			*out = &ctx->groups[i];
			return 0;
		}
	}
	for (unsigned i = 0; i < ctx->ngroups; i++) {
		if (ctx->groups[i].fd < 0)
			g = &ctx->groups[i];
	}
	if (!g) {
		if (ctx->ngroups == ARRAY_SIZE(ctx->groups))
			return -ENOSPC;
		g = &ctx->groups[ctx->ngroups++];
	}
	snprintf(path, sizeof(path), "/dev/vfio/%d", id);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		vfmig_error_set(err, VFMIG_ERR_DEVICE, e, -1, "vfio", "open %s: %s%s", path,
				strerror(e), e == EBUSY ? " (group already in use)" : "");
		g->fd = -1;
		return -e;
	}
	if (ioctl(fd, VFIO_GROUP_GET_STATUS, &status)) {
		e = errno;
		vfmig_error_set(err, VFMIG_ERR_DEVICE, e, -1, "vfio",
				"VFIO_GROUP_GET_STATUS %s: %s", path, strerror(e));
		goto fail;
	}
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		e = EPERM;
		vfmig_error_set(err, VFMIG_ERR_DEVICE, e, -1, "vfio",
				"group %d is not viable (bind all its devices to vfio)", id);
		goto fail;
	}
	if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &ctx->container)) {
		e = errno;
		vfmig_error_set(err, VFMIG_ERR_DEVICE, e, -1, "vfio",
				"VFIO_GROUP_SET_CONTAINER %s: %s", path, strerror(e));
		goto fail;
	}
	/* The IOMMU model is set once per container, after its first group. */
	if (!ctx->iommu_set) {
		if (ioctl(ctx->container, VFIO_SET_IOMMU, ctx->iommu_type)) {
			e = errno;
			vfmig_error_set(err, VFMIG_ERR_DEVICE, e, -1, "vfio", "VFIO_SET_IOMMU: %s",
					strerror(e));
			goto fail;
		}
		ctx->iommu_set = true;
	}
	g->id = id;
	g->fd = fd;
	g->refs = 1;
	*out = g;
	return 0;
fail:
	close(fd);
	g->fd = -1;
	return -e;
}

static int resolve_path(const char *spec, char *path, size_t len, struct vfmig_error *err)
{
	char tmp[PATH_MAX];

	if (strchr(spec, '/')) {
		snprintf(tmp, sizeof(tmp), "%s", spec);
	} else if (is_uuid(spec)) {
		char lower[37];

		/* mdev devices are named with the lower-case UUID. */
		for (int i = 0; i < 37; i++)
			lower[i] = (char)tolower((unsigned char)spec[i]);
		snprintf(tmp, sizeof(tmp), "/sys/bus/mdev/devices/%s", lower);
	} else {
		snprintf(tmp, sizeof(tmp), "/sys/bus/pci/devices/%s", spec);
	}
	if (!realpath(tmp, path)) {
		vfmig_error_set(err, VFMIG_ERR_DEVICE, errno, -1, spec, "%s: %s", tmp,
				strerror(errno));
		return -errno;
	}
	(void)len;
	return 0;
}

int vfmig_vfio_open(struct vfmig_vfio_ctx *ctx, const char *spec, struct vfmig_device **out,
		    struct vfmig_error *err)
{
	struct vfio_device_feature_migration mig = { 0 };
	struct vfio_device_info info = { .argsz = sizeof(info) };
	char path[PATH_MAX], grp[32], compat[VFMIG_COMPAT_LEN], tmp[48], tmp2[8];
	struct vfio_dev *d;
	const char *base;
	char *end;
	long id;
	int ret;

	if (!strncmp(spec, "fake:", 5))
		return vfmig_fake_new_from_spec(spec, out, err);

	ret = resolve_path(spec, path, sizeof(path), err);
	if (ret)
		return ret;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	ret = link_basename(path, "iommu_group", grp, sizeof(grp));
	if (ret) {
		vfmig_error_set(err, VFMIG_ERR_DEVICE, -ret, -1, spec,
				"%s/iommu_group: %s (device not bound to a vfio driver?)", path,
				strerror(-ret));
		return ret;
	}
	errno = 0;
	id = strtol(grp, &end, 10);
	if (errno || *end || id < 0 || id > INT_MAX) {
		vfmig_error_set(err, VFMIG_ERR_DEVICE, EINVAL, -1, spec, "bad iommu group '%s'",
				grp);
		return -EINVAL;
	}
	/* What both sides must agree on: the mdev type, or the PCI IDs. */
	if (!link_basename(path, "mdev_type", tmp, sizeof(tmp)))
		snprintf(compat, sizeof(compat), "mdev:%s", tmp);
	else if (!read_attr(path, "vendor", tmp, sizeof(tmp)) &&
		 !read_attr(path, "device", tmp2, sizeof(tmp2)))
		snprintf(compat, sizeof(compat), "pci:%s:%s", tmp, tmp2);
	else
		snprintf(compat, sizeof(compat), "unknown");

	ret = container_open(ctx, err);
	if (ret)
		return ret;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->ctx = ctx;
	d->fd = -1;
	d->data_fd = -1;
	if (snprintf(d->name, sizeof(d->name), "%s", base) >= (int)sizeof(d->name)) {
		free(d);
		return -ENAMETOOLONG;
	}
	ret = group_get(ctx, (int)id, &d->group, err);
	if (ret) {
		free(d);
		return ret;
	}
	d->fd = ioctl(d->group->fd, VFIO_GROUP_GET_DEVICE_FD, d->name);
	if (d->fd < 0) {
		ret = -errno;
		vfmig_error_set(err, VFMIG_ERR_DEVICE, -ret, -1, spec,
				"VFIO_GROUP_GET_DEVICE_FD %s: %s", d->name, strerror(-ret));
		goto fail;
	}
	if (ioctl(d->fd, VFIO_DEVICE_GET_INFO, &info)) {
		ret = -errno;
		vfmig_error_set(err, VFMIG_ERR_DEVICE, -ret, -1, spec, "VFIO_DEVICE_GET_INFO: %s",
				strerror(-ret));
		goto fail;
	}
	if ((info.flags & VFIO_DEVICE_FLAGS_PCI) &&
	    info.num_regions > VFIO_PCI_CONFIG_REGION_INDEX) {
		struct vfio_region_info ri = { .argsz = sizeof(ri),
					       .index = VFIO_PCI_CONFIG_REGION_INDEX };

		if (ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &ri)) {
			ret = -errno;
			vfmig_error_set(err, VFMIG_ERR_DEVICE, -ret, -1, spec,
					"VFIO_DEVICE_GET_REGION_INFO(config): %s", strerror(-ret));
			goto fail;
		}
		if (ri.size && (ri.flags & VFIO_REGION_INFO_FLAG_READ) &&
		    (ri.flags & VFIO_REGION_INFO_FLAG_WRITE)) {
			d->has_config = true;
			d->cfg_offset = ri.offset;
			d->cfg_size = (uint32_t)MIN(ri.size, (uint64_t)VFMIG_MAX_CONFIG);
		}
	}
	ret = feature(d->fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &mig,
		      sizeof(mig));
	if (ret) {
		vfmig_error_set(err, VFMIG_ERR_DEVICE, -ret, -1, spec,
				"%s: VFIO_DEVICE_FEATURE_MIGRATION: %s%s", d->name, strerror(-ret),
				ret == -ENOTTY ? " (the driver does not support migration)" : "");
		goto fail;
	}
	if (!(mig.flags & VFIO_MIGRATION_STOP_COPY)) {
		ret = -EOPNOTSUPP;
		vfmig_error_set(err, VFMIG_ERR_DEVICE, EOPNOTSUPP, -1, spec,
				"%s: migration flags 0x%llx lack STOP_COPY", d->name,
				(unsigned long long)mig.flags);
		goto fail;
	}
	*out = vfmig_device_new(d->name, compat, mig.flags, d->has_config ? d->cfg_size : 0,
				&vfio_ops, d);
	if (!*out) {
		ret = -ENOMEM;
		goto fail;
	}
	return 0;
fail:
	vfio_close(d);
	return ret;
}
