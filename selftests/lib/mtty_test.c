// SPDX-License-Identifier: GPL-2.0-only
/*
 * Helpers shared by the mtty-mig kselftests (see mtty_test.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libkmod.h>
#include <linux/mtty_mig.h>

#include "mtty_test.h"

const char *mt_module_path(void)
{
	const char *p = getenv("MTTY_MIG_KO");

	return p && *p ? p : "/opt/mtty-mig/mtty_mig.ko";
}

bool mt_module_loaded(void)
{
	return access("/sys/module/mtty_mig", F_OK) == 0;
}

static void mt_kmod_quiet(void *data, int priority, const char *file, int line,
			  const char *fn, const char *format, va_list args)
{
	(void)data, (void)priority, (void)file, (void)line, (void)fn;
	(void)format, (void)args;
}

/* a libkmod context that does not log */
static struct kmod_ctx *mt_kmod_new(void)
{
	struct kmod_ctx *ctx = kmod_new(NULL, NULL);

	if (ctx)
		kmod_set_log_fn(ctx, mt_kmod_quiet, NULL);
	return ctx;
}

/* insert the module file @path (0 if it already is), or remove module @name */
static int mt_kmod_op(const char *path, const char *name)
{
	struct kmod_module *mod = NULL;
	struct kmod_ctx *ctx;
	int ret;

	ctx = mt_kmod_new();
	if (!ctx)
		return -ENOMEM;
	if (path)
		ret = kmod_module_new_from_path(ctx, path, &mod);
	else
		ret = kmod_module_new_from_name(ctx, name, &mod);
	if (!ret && path)
		ret = kmod_module_insert_module(mod, 0, NULL);
	else if (!ret)
		ret = kmod_module_remove_module(mod, 0);
	if (path && ret == -EEXIST)
		ret = 0;
	if (mod)
		kmod_module_unref(mod);
	kmod_unref(ctx);
	return ret;
}

/*
 * An uninstalled module opened by path is not in modules.dep, so libkmod
 * would not load what it depends on: read modinfo "depends" and probe each
 * dependency by name first (that also pulls vfio's softdep vfio_iommu_type1).
 */
int mt_module_load(void)
{
	struct kmod_list *info = NULL, *l;
	struct kmod_module *mod = NULL;
	struct kmod_ctx *ctx;
	int ret;

	if (mt_module_loaded())
		return 0;
	ctx = mt_kmod_new();
	if (!ctx)
		return -ENOMEM;
	ret = kmod_module_new_from_path(ctx, mt_module_path(), &mod);
	if (ret < 0)
		goto out;
	ret = kmod_module_get_info(mod, &info);
	if (ret < 0)
		goto out;
	kmod_list_foreach(l, info) {
		char deps[256], *tok, *save = NULL;

		if (strcmp(kmod_module_info_get_key(l), "depends"))
			continue;
		/*
		 * vfio only names its IOMMU backends as a softdep, one of which
		 * does not exist on x86: ask for type1 explicitly, as the
		 * container API needs it.
		 */
		snprintf(deps, sizeof(deps), "%s,vfio_iommu_type1", kmod_module_info_get_value(l));
		for (tok = strtok_r(deps, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			struct kmod_list *found = NULL, *f;

			ret = kmod_module_new_from_lookup(ctx, tok, &found);
			if (ret < 0)
				goto out;
			if (!found) {
				ret = -ENOENT;
				goto out;
			}
			kmod_list_foreach(f, found) {
				struct kmod_module *dep = kmod_module_get_module(f);

				ret = kmod_module_probe_insert_module(dep, KMOD_PROBE_IGNORE_COMMAND,
								      NULL, NULL, NULL, NULL);
				kmod_module_unref(dep);
				if (ret < 0 && ret != -EEXIST)
					break;
				ret = 0;
			}
			kmod_module_unref_list(found);
			if (ret < 0)
				goto out;
		}
	}
	ret = kmod_module_insert_module(mod, 0, NULL);
	if (ret == -EEXIST)
		ret = 0;
out:
	kmod_module_info_free_list(info);
	if (mod)
		kmod_module_unref(mod);
	kmod_unref(ctx);
	return ret;
}

int mt_module_unload(void)
{
	return mt_kmod_op(NULL, "mtty_mig");
}

int mt_sysfs_write(const char *path, const char *val)
{
	size_t len = strlen(val);
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != len)
		ret = -EIO;
	if (close(fd) && !ret)
		ret = -errno;
	return ret;
}

int mt_sysfs_read(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd, ret = 0;

	if (!len)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		ret = -errno;
		n = 0;
	}
	buf[n] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	close(fd);
	return ret;
}

static void mt_dev_attr_path(char *path, size_t len, const char *uuid, const char *attr)
{
	snprintf(path, len, MT_DEVICES "/%s/%s", uuid, attr);
}

int mt_dev_attr_write(const char *uuid, const char *attr, const char *val)
{
	char path[PATH_MAX];

	mt_dev_attr_path(path, sizeof(path), uuid, attr);
	return mt_sysfs_write(path, val);
}

int mt_dev_attr_read(const char *uuid, const char *attr, char *buf, size_t len)
{
	char path[PATH_MAX];

	mt_dev_attr_path(path, sizeof(path), uuid, attr);
	return mt_sysfs_read(path, buf, len);
}

int mt_dev_attr_read_u64(const char *uuid, const char *attr, uint64_t *val)
{
	char buf[64], *end;
	int ret;

	ret = mt_dev_attr_read(uuid, attr, buf, sizeof(buf));
	if (ret)
		return ret;
	errno = 0;
	*val = strtoull(buf, &end, 0);
	if (errno || end == buf)
		return -EINVAL;
	return 0;
}

uint64_t mt_dev_attr_u64(const char *uuid, const char *attr)
{
	uint64_t v = MT_NO_VALUE;

	return mt_dev_attr_read_u64(uuid, attr, &v) ? MT_NO_VALUE : v;
}

int mt_digest(const char *uuid, char *buf, size_t len)
{
	return mt_dev_attr_read(uuid, MTTY_MIG_ATTR_DIGEST, buf, len);
}

static int mt_fault_path(char *path, size_t len, const char *uuid, const char *file)
{
	int n = snprintf(path, len, MTTY_MIG_DEBUGFS_DIR "/%s/%s", uuid, file);

	return n >= 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

int mt_fault_write(const char *uuid, const char *file, const char *val)
{
	char path[PATH_MAX];
	int ret = mt_fault_path(path, sizeof(path), uuid, file);

	return ret ? ret : mt_sysfs_write(path, val);
}

int mt_fault_read(const char *uuid, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	int ret = mt_fault_path(path, sizeof(path), uuid, file);

	return ret ? ret : mt_sysfs_read(path, buf, len);
}

void mt_uuid_random(char uuid[MT_UUID_LEN])
{
	unsigned char b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

		if (n > 0)
			got += n;
		else if (errno != EINTR)
			abort(); /* getrandom cannot fail on 6.12 for 16 bytes */
	}
	b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snprintf(uuid, MT_UUID_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
}

int mt_mdev_create_uuid(const char *type, const char *uuid)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), MT_TYPES "/%s/create", type);
	return mt_sysfs_write(path, uuid);
}

int mt_mdev_create(const char *type, char uuid[MT_UUID_LEN])
{
	mt_uuid_random(uuid);
	return mt_mdev_create_uuid(type, uuid);
}

int mt_mdev_remove(const char *uuid)
{
	return mt_dev_attr_write(uuid, "remove", "1");
}

bool mt_mdev_exists(const char *uuid)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), MT_DEVICES "/%s", uuid);
	return access(path, F_OK) == 0;
}

void mt_vfio_init(struct mt_vfio *v)
{
	v->container = v->group = v->device = -1;
}

/*
 * The group of sysfs device @sysfs_dev: the name its iommu_group link points
 * to (the group number) into @group.
 */
static int mt_iommu_group(const char *sysfs_dev, char *group, size_t len)
{
	char link[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	if (snprintf(link, sizeof(link), "%s/iommu_group", sysfs_dev) >= (int)sizeof(link))
		return -ENAMETOOLONG;
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	snprintf(group, len, "%s", basename(target));
	return 0;
}

/*
 * Open a container with the @iommu backend, the group file @group_path in
 * it, and the device @name of the group; on error all closed again.
 */
static int mt_vfio_attach(struct mt_vfio *v, const char *group_path, unsigned long iommu,
			  const char *name)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	int ret;

	v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (v->container < 0)
		goto err;
	if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
		errno = EPROTO;
		goto err;
	}
	if (ioctl(v->container, VFIO_CHECK_EXTENSION, iommu) <= 0) {
		errno = EOPNOTSUPP;
		goto err;
	}
	v->group = open(group_path, O_RDWR | O_CLOEXEC);
	if (v->group < 0)
		goto err;
	if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &status))
		goto err;
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		errno = EBUSY;
		goto err;
	}
	if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container))
		goto err;
	if (ioctl(v->container, VFIO_SET_IOMMU, iommu))
		goto err;
	v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, name);
	if (v->device < 0)
		goto err;
	return 0;
err:
	ret = -errno;
	mt_vfio_close(v);
	return ret;
}

int mt_vfio_open(struct mt_vfio *v, const char *uuid)
{
	char dev[PATH_MAX], group[NAME_MAX + 1], path[PATH_MAX];
	int ret;

	mt_vfio_init(v);
	snprintf(dev, sizeof(dev), MT_DEVICES "/%s", uuid);
	ret = mt_iommu_group(dev, group, sizeof(group));
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/dev/vfio/%s", group);
	return mt_vfio_attach(v, path, VFIO_TYPE1v2_IOMMU, uuid);
}

void mt_vfio_close(struct mt_vfio *v)
{
	if (v->device >= 0)
		close(v->device);
	if (v->group >= 0)
		close(v->group);
	if (v->container >= 0)
		close(v->container);
	mt_vfio_init(v);
}

int mt_region_info(int device, uint32_t index, struct vfio_region_info *info)
{
	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	info->index = index;
	return ioctl(device, VFIO_DEVICE_GET_REGION_INFO, info) ? -errno : 0;
}

static ssize_t mt_region_rw(int device, uint32_t index, uint64_t off, void *buf, size_t len,
			    bool wr)
{
	struct vfio_region_info info;
	ssize_t n;
	int ret;

	ret = mt_region_info(device, index, &info);
	if (ret)
		return ret;
	n = wr ? pwrite(device, buf, len, info.offset + off) :
		    pread(device, buf, len, info.offset + off);
	return n < 0 ? -errno : n;
}

ssize_t mt_region_read(int device, uint32_t index, uint64_t off, void *buf, size_t len)
{
	return mt_region_rw(device, index, off, buf, len, false);
}

ssize_t mt_region_write(int device, uint32_t index, uint64_t off, const void *buf, size_t len)
{
	return mt_region_rw(device, index, off, (void *)buf, len, true);
}

/*
 * VFIO_DEVICE_FEATURE with @flags: the header followed by the @len bytes of
 * @payload, which gets the kernel's answer back.
 */
static int mt_feature(int device, uint32_t flags, void *payload, size_t len)
{
	uint64_t buf[4] = { 0 }; /* 8-byte header and the largest payload, 8 bytes */
	struct vfio_device_feature *f = (void *)buf;

	if (len > sizeof(buf) - sizeof(*f))
		return -EINVAL;
	f->argsz = sizeof(*f) + len;
	f->flags = flags;
	memcpy(f->data, payload, len);
	if (ioctl(device, VFIO_DEVICE_FEATURE, f))
		return -errno;
	memcpy(payload, f->data, len);
	return 0;
}

int mt_mig_flags(int device, uint64_t *flags)
{
	struct vfio_device_feature_migration mig = { 0 };
	int ret = mt_feature(device, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
			     &mig, sizeof(mig));

	if (!ret)
		*flags = mig.flags;
	return ret;
}

int mt_mig_get_state(int device, uint32_t *state)
{
	struct vfio_device_feature_mig_state mig = { 0 };
	int ret = mt_feature(device,
			     VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			     &mig, sizeof(mig));

	if (!ret)
		*state = mig.device_state;
	return ret;
}

int mt_mig_set_state(int device, uint32_t state, int *data_fd)
{
	struct vfio_device_feature_mig_state mig = { .device_state = state, .data_fd = -1 };
	int ret = mt_feature(device,
			     VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			     &mig, sizeof(mig));

	if (ret)
		return ret;
	if (data_fd)
		*data_fd = mig.data_fd;
	else if (mig.data_fd >= 0)
		close(mig.data_fd);
	return 0;
}

int mt_mig_data_size(int device, uint64_t *len)
{
	struct vfio_device_feature_mig_data_size sz = { 0 };
	int ret = mt_feature(device, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
			     &sz, sizeof(sz));

	if (!ret)
		*len = sz.stop_copy_length;
	return ret;
}

int mt_precopy_info(int data_fd, uint64_t *initial, uint64_t *dirty)
{
	struct vfio_precopy_info info = { .argsz = sizeof(info) };

	if (ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info))
		return -errno;
	if (initial)
		*initial = info.initial_bytes;
	if (dirty)
		*dirty = info.dirty_bytes;
	return 0;
}

int mt_precopy_info_flags(int data_fd, uint32_t flags_in, uint64_t *initial, uint64_t *dirty,
			  uint32_t *flags_out)
{
	struct vfio_precopy_info info = { .argsz = sizeof(info), .flags = flags_in };

	if (ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info))
		return -errno;
	if (initial)
		*initial = info.initial_bytes;
	if (dirty)
		*dirty = info.dirty_bytes;
	if (flags_out)
		*flags_out = info.flags;
	return 0;
}

int mt_precopy_v2(int device, uint32_t feature_flags, size_t extra)
{
	uint8_t buf[sizeof(struct vfio_device_feature) + 16] = { 0 };
	struct vfio_device_feature *f = (void *)buf;

	if (extra > 16)
		return -EINVAL;
	f->argsz = sizeof(*f) + extra;
	f->flags = feature_flags | VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2;
	return ioctl(device, VFIO_DEVICE_FEATURE, f) ? -errno : 0;
}

const char *mt_state_name(uint32_t state)
{
	static const char *const names[] = {
		[VFIO_DEVICE_STATE_ERROR] = "ERROR",
		[VFIO_DEVICE_STATE_STOP] = "STOP",
		[VFIO_DEVICE_STATE_RUNNING] = "RUNNING",
		[VFIO_DEVICE_STATE_STOP_COPY] = "STOP_COPY",
		[VFIO_DEVICE_STATE_RESUMING] = "RESUMING",
		[VFIO_DEVICE_STATE_RUNNING_P2P] = "RUNNING_P2P",
		[VFIO_DEVICE_STATE_PRE_COPY] = "PRE_COPY",
		[VFIO_DEVICE_STATE_PRE_COPY_P2P] = "PRE_COPY_P2P",
	};

	return state < sizeof(names) / sizeof(names[0]) ? names[state] : "?";
}

void mt_inst_init(struct mt_inst *d)
{
	memset(d, 0, sizeof(*d));
	mt_vfio_init(&d->v);
}

int mt_inst_create(struct mt_inst *d, const char *type, uint64_t mem_size,
		   const char *const *attrs)
{
	char val[32];
	int ret;

	mt_inst_init(d);
	ret = mt_mdev_create(type, d->uuid);
	if (ret)
		return ret;
	d->created = true;
	snprintf(val, sizeof(val), "%llu", (unsigned long long)mem_size);
	ret = mt_dev_attr_write(d->uuid, MTTY_MIG_ATTR_MEM_SIZE, val);
	for (; !ret && attrs && attrs[0]; attrs += 2)
		ret = attrs[1] ? mt_dev_attr_write(d->uuid, attrs[0], attrs[1]) : -EINVAL;
	return ret;
}

int mt_inst_up(struct mt_inst *d, const char *type, uint64_t mem_size,
	       const char *const *attrs)
{
	int ret = mt_inst_create(d, type, mem_size, attrs);

	return ret ? ret : mt_vfio_open(&d->v, d->uuid);
}

int mt_inst_down(struct mt_inst *d)
{
	int ret = 0;

	mt_vfio_close(&d->v);
	if (d->created)
		ret = mt_mdev_remove(d->uuid);
	d->created = false;
	return ret;
}

uint32_t mt_inst_state(const struct mt_inst *d)
{
	uint32_t s = MT_NO_STATE;

	return mt_mig_get_state(d->v.device, &s) ? MT_NO_STATE : s;
}

int mt_buf_put(struct mt_buf *b, const void *data, size_t len)
{
	if (len > SIZE_MAX - b->len)
		return -ENOMEM;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 64 * 1024;
		uint8_t *p;

		while (cap < b->len + len)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

void mt_buf_free(struct mt_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static int mt_read_until(int fd, size_t chunk, bool precopy, struct mt_buf *out, size_t *total)
{
	size_t got = 0;
	uint8_t *tmp;
	int ret = 0;

	if (!chunk)
		return -EINVAL;
	tmp = malloc(chunk);
	if (!tmp)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, tmp, chunk);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (!(precopy && errno == ENOMSG))
				ret = -errno;
			break;
		}
		if (n == 0) {
			if (precopy)
				ret = -EPIPE; /* PRE_COPY must not end the stream */
			break;
		}
		got += (size_t)n;
		if (out) {
			ret = mt_buf_put(out, tmp, (size_t)n);
			if (ret)
				break;
		}
	}
	free(tmp);
	if (total)
		*total = got;
	return ret;
}

int mt_read_to_end(int fd, size_t chunk, struct mt_buf *out, size_t *total)
{
	return mt_read_until(fd, chunk, false, out, total);
}

int mt_read_precopy(int fd, size_t chunk, struct mt_buf *out, size_t *total)
{
	return mt_read_until(fd, chunk, true, out, total);
}

int mt_save_stopped(struct mt_inst *d, struct mt_buf *out, char *digest, size_t dlen)
{
	int fd = -1, ret;

	ret = mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_STOP, NULL);
	if (!ret && digest)
		ret = mt_digest(d->uuid, digest, dlen);
	if (!ret)
		ret = mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_STOP_COPY, &fd);
	if (!ret && fd < 0)
		ret = -EBADF;
	if (!ret)
		ret = mt_read_to_end(fd, 64 * 1024, out, NULL);
	if (fd >= 0)
		close(fd);
	if (!ret)
		ret = mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_STOP, NULL);
	return ret;
}

int mt_write_all(int fd, const void *p, size_t len, size_t seg)
{
	const uint8_t *b = p;
	size_t off = 0;

	while (off < len) {
		size_t n = seg && len - off > seg ? seg : len - off;
		ssize_t w = write(fd, b + off, n);

		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		off += (size_t)w;
	}
	return 0;
}

int mt_resume(struct mt_inst *d, const void *p, size_t len)
{
	int fd = -1, ret;

	ret = mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_RESUMING, &fd);
	if (ret)
		return ret;
	if (fd < 0)
		return -EBADF;
	ret = mt_write_all(fd, p, len, 0);
	if (!ret)
		ret = mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_STOP, NULL);
	close(fd);
	return ret;
}

double mt_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int mt_dir_count(const char *path)
{
	struct dirent *e;
	int n = 0;
	DIR *d;

	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - (strcmp(path, "/proc/self/fd") ? 0 : 1); /* the DIR's own fd */
}

int mt_wait_until(int (*cond)(void *arg), void *arg, double secs)
{
	const struct timespec tick = { .tv_nsec = 1000000 };
	double end = mt_now_s() + secs;

	for (;;) {
		int ret = cond(arg);

		if (ret)
			return ret > 0 ? 0 : ret;
		if (mt_now_s() >= end)
			return -ETIMEDOUT;
		nanosleep(&tick, NULL);
	}
}

struct mt_attr_wait {
	const char *uuid, *attr, *want;
	uint64_t than;
};

static int mt_attr_above(void *arg)
{
	const struct mt_attr_wait *w = arg;
	uint64_t v = mt_dev_attr_u64(w->uuid, w->attr);

	return v != MT_NO_VALUE && v > w->than;
}

static int mt_attr_is(void *arg)
{
	const struct mt_attr_wait *w = arg;
	char buf[64];

	return !mt_dev_attr_read(w->uuid, w->attr, buf, sizeof(buf)) && !strcmp(buf, w->want);
}

int mt_wait_attr_above(const char *uuid, const char *attr, uint64_t than, double secs)
{
	struct mt_attr_wait w = { .uuid = uuid, .attr = attr, .than = than };

	return mt_wait_until(mt_attr_above, &w, secs);
}

int mt_wait_attr_is(const char *uuid, const char *attr, const char *want, double secs)
{
	struct mt_attr_wait w = { .uuid = uuid, .attr = attr, .want = want };

	return mt_wait_until(mt_attr_is, &w, secs);
}

/*
 * Open any VFIO device by its sysfs directory (an mdev, or a PCI function
 * bound to vfio-pci): the group is the iommu_group link, the device name the
 * directory's own name. A no-IOMMU group (/dev/vfio/noiommu-N) gets the
 * no-IOMMU backend, every other group type1v2.
 */
int mt_vfio_open_path(struct mt_vfio *v, const char *sysfs_dev)
{
	char group[NAME_MAX + 1], path[PATH_MAX], dev[PATH_MAX];
	unsigned long iommu = VFIO_TYPE1v2_IOMMU;
	int ret;

	mt_vfio_init(v);
	ret = mt_iommu_group(sysfs_dev, group, sizeof(group));
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/dev/vfio/%s", group);
	if (access(path, F_OK)) {
		snprintf(path, sizeof(path), "/dev/vfio/noiommu-%s", group);
		iommu = VFIO_NOIOMMU_IOMMU;
	}
	snprintf(dev, sizeof(dev), "%s", sysfs_dev);
	return mt_vfio_attach(v, path, iommu, basename(dev));
}

int mt_kmod_insert_path(const char *path)
{
	return mt_kmod_op(path, NULL);
}

int mt_dev_reset(int device)
{
	return ioctl(device, VFIO_DEVICE_RESET) ? -errno : 0;
}

/* a keys.psk file (QEMU's format) with a random 32-byte key for "qemu", mode 0600 */
int mt_write_psk_file(const char *path)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char key[32];
	char line[8 + 2 * sizeof(key) + 2] = "qemu:";
	size_t i, n = strlen(line);
	int fd, ret = 0;

	if (getrandom(key, sizeof(key), 0) != sizeof(key))
		return -EIO;
	for (i = 0; i < sizeof(key); i++) {
		line[n++] = hex[key[i] >> 4];
		line[n++] = hex[key[i] & 15];
	}
	line[n++] = '\n';
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, line, n) != (ssize_t)n)
		ret = -EIO;
	if (close(fd) && !ret)
		ret = -errno;
	return ret;
}
