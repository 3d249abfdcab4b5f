// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-mig-copy - the plain baseline for `make bench`: copy one device's
 * STOP_COPY stream into another device with read()/write() in one thread,
 * no engine, no socket, no framing.  This is the limit the engine's
 * stop-copy throughput is compared with.
 *
 *   vfio-mig-copy [--chunk SIZE] SRC-UUID DST-UUID
 *
 * Both mdevs are opened through one VFIO container (type1 IOMMU); the
 * source goes RUNNING -> STOP_COPY (the driver walks the path), the
 * destination RUNNING -> RESUMING; the source data_fd is read in SIZE
 * pieces (default 1M) and every piece written (short writes looped) to the
 * destination data_fd until end of stream; then the destination goes to
 * STOP (the driver validates the stream) and RUNNING, the source to STOP.
 *
 * Prints one line on stdout:
 *   bytes=B copy_ns=T total_ns=U
 * copy_ns: from the SET STOP_COPY call to the last write returning (what the
 * engine's stop-copy transfer covers); total_ns: up to the destination
 * RUNNING.  Every failure prints a message and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#define MDEV_DIR "/sys/bus/mdev/devices"

static void die(const char *what)
{
	fprintf(stderr, "vfio-mig-copy: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts))
		die("clock_gettime");
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Open @uuid's IOMMU group, attach it to @container, return the device fd. */
static int open_device(int container, const char *uuid, int *groupfd, int *iommu_set)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), MDEV_DIR "/%s/iommu_group", uuid);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		die(path);
	link[n] = '\0';
	snprintf(path, sizeof(path), "/dev/vfio/%s", basename(link));
	*groupfd = open(path, O_RDWR | O_CLOEXEC);
	if (*groupfd < 0)
		die(path);
	if (ioctl(*groupfd, VFIO_GROUP_GET_STATUS, &status))
		die("VFIO_GROUP_GET_STATUS");
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		errno = EBUSY;
		die("group not viable");
	}
	if (ioctl(*groupfd, VFIO_GROUP_SET_CONTAINER, &container))
		die("VFIO_GROUP_SET_CONTAINER");
	if (!*iommu_set) {
		if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) &&
		    ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU))
			die("VFIO_SET_IOMMU");
		*iommu_set = 1;
	}
	fd = ioctl(*groupfd, VFIO_GROUP_GET_DEVICE_FD, uuid);
	if (fd < 0)
		die("VFIO_GROUP_GET_DEVICE_FD");
	return fd;
}

/* SET the migration state; returns the new data_fd or -1 if none. */
static int set_state(int devfd, enum vfio_device_mig_state st, const char *what)
{
	uint64_t buf[(sizeof(struct vfio_device_feature) +
		      sizeof(struct vfio_device_feature_mig_state) + 7) /
		     8] = { 0 };
	struct vfio_device_feature *f = (void *)buf;
	struct vfio_device_feature_mig_state *ms = (void *)f->data;

	f->argsz = sizeof(buf);
	f->flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	ms->device_state = st;
	ms->data_fd = -1;
	if (ioctl(devfd, VFIO_DEVICE_FEATURE, f))
		die(what);
	return ms->data_fd;
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return 0;
	switch (*end) {
	case 'K':
	case 'k':
		v <<= 10;
		end++;
		break;
	case 'M':
	case 'm':
		v <<= 20;
		end++;
		break;
	case '\0':
		break;
	default:
		return 0;
	}
	return *end || v < 4096 || v > (16u << 20) ? 0 : (size_t)v;
}

int main(int argc, char **argv)
{
	size_t chunk = 1u << 20;
	int container, sgroup, dgroup, sdev, ddev, sfd, dfd, iommu_set = 0;
	uint64_t bytes = 0, t0, t_copy, t_end;
	char *buf;

	if (argc == 5 && !strcmp(argv[1], "--chunk")) {
		chunk = parse_size(argv[2]);
		argv += 2;
		argc -= 2;
	}
	if (argc != 3 || !chunk) {
		fprintf(stderr, "usage: vfio-mig-copy [--chunk 4K..16M] SRC-UUID DST-UUID\n");
		return 2;
	}
	buf = malloc(chunk);
	if (!buf)
		die("malloc");

	container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (container < 0)
		die("/dev/vfio/vfio");
	if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
		errno = EINVAL;
		die("VFIO_GET_API_VERSION");
	}
	sdev = open_device(container, argv[1], &sgroup, &iommu_set);
	ddev = open_device(container, argv[2], &dgroup, &iommu_set);

	dfd = set_state(ddev, VFIO_DEVICE_STATE_RESUMING, "destination -> RESUMING");
	if (dfd < 0) {
		errno = EPROTO;
		die("destination -> RESUMING returned no data_fd");
	}
	t0 = now_ns();
	sfd = set_state(sdev, VFIO_DEVICE_STATE_STOP_COPY, "source -> STOP_COPY");
	if (sfd < 0) {
		errno = EPROTO;
		die("source -> STOP_COPY returned no data_fd");
	}
	for (;;) {
		ssize_t n = read(sfd, buf, chunk), off = 0;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("read source data_fd");
		}
		if (n == 0)
			break;
		while (off < n) {
			ssize_t w = write(dfd, buf + off, (size_t)(n - off));

			if (w < 0) {
				if (errno == EINTR)
					continue;
				die("write destination data_fd");
			}
			if (w == 0) {
				errno = EIO;
				die("write destination data_fd returned 0");
			}
			off += w;
		}
		bytes += (uint64_t)n;
	}
	t_copy = now_ns();
	/* RESUMING -> STOP validates the stream; the driver ends the session. */
	set_state(ddev, VFIO_DEVICE_STATE_STOP, "destination -> STOP");
	set_state(ddev, VFIO_DEVICE_STATE_RUNNING, "destination -> RUNNING");
	t_end = now_ns();
	set_state(sdev, VFIO_DEVICE_STATE_STOP, "source -> STOP");

	if (close(sfd) || close(dfd) || close(sdev) || close(ddev) || close(sgroup) ||
	    close(dgroup) || close(container))
		die("close");
	free(buf);
	printf("bytes=%" PRIu64 " copy_ns=%" PRIu64 " total_ns=%" PRIu64 "\n", bytes, t_copy - t0,
	       t_end - t0);
	return 0;
}
