// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * device.c - the engine's view of one migratable device: a name, a
 * compatibility string, migration flags and a backend (struct
 * vfmig_device_ops).  State changes follow the uAPI rule for failures: after a
 * failed SET, GET the state; then try the caller's recovery state; a device in
 * ERROR, or one that cannot recover, is reset.
 *
 * The VFIO container/group backend is in vfio.c, the fake one in fakedev.c.
 *
 * Locks: none.  A device is driven by one thread at a time (the session hands
 * it from the coordinator to its save or load thread and back by joining).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfmig_internal.h"

static const char *const errclass_names[VFMIG_ERR_NR] = {
	[VFMIG_OK] = "ok",
	[VFMIG_ERR_INTERNAL] = "internal error",
	[VFMIG_ERR_USAGE] = "usage error",
	[VFMIG_ERR_DEVICE] = "device error",
	[VFMIG_ERR_TRANSPORT] = "transport error",
	[VFMIG_ERR_PROTOCOL] = "protocol error",
	[VFMIG_ERR_INCOMPATIBLE] = "incompatible peer",
	[VFMIG_ERR_TIMEOUT] = "timeout",
	[VFMIG_ERR_CANCELLED] = "cancelled",
	[VFMIG_ERR_BUDGET] = "reorder budget exceeded",
	[VFMIG_ERR_REMOTE] = "peer failed",
	[VFMIG_ERR_ROLLBACK] = "rollback failed",
	[VFMIG_ERR_OUTCOME_UNKNOWN] = "outcome unknown",
	[VFMIG_ERR_INCOMPLETE] = "committed, destination incomplete",
	[VFMIG_ERR_AUTH] = "authentication failed",
};

const char *vfmig_errclass_name(enum vfmig_errclass cls)
{
	if ((unsigned)cls >= VFMIG_ERR_NR)
		return "unknown error";
	return errclass_names[cls];
}

enum vfmig_errclass vfmig_error_set(struct vfmig_error *e, enum vfmig_errclass cls, int err,
				    int device, const char *where, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return cls;
	e->cls = cls;
	e->err = err;
	e->device = device;
	snprintf(e->where, sizeof(e->where), "%s", where ? where : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return cls;
}

struct vfmig_device *vfmig_device_new(const char *name, const char *compat, uint64_t mig_flags,
				      uint32_t config_size, const struct vfmig_device_ops *ops,
				      void *priv)
{
	struct vfmig_device *dev;

	if (config_size > VFMIG_MAX_CONFIG)
		return NULL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	snprintf(dev->name, sizeof(dev->name), "%s", name);
	snprintf(dev->compat, sizeof(dev->compat), "%s", compat ? compat : "");
	dev->flags = mig_flags;
	dev->config_size = config_size;
	dev->ops = ops;
	dev->priv = priv;
	return dev;
}

void vfmig_device_close(struct vfmig_device *dev)
{
	if (!dev)
		return;
	if (dev->ops->close)
		dev->ops->close(dev->priv);
	free(dev);
}

const char *vfmig_device_name(const struct vfmig_device *dev)
{
	return dev->name;
}

int vfmig_device_set_label(struct vfmig_device *dev, const char *label)
{
	size_t n = strlen(label);

	if (n >= VFMIG_LABEL_LEN)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)label[i] <= 0x20 || (unsigned char)label[i] >= 0x7f)
			return -EINVAL;
	}
	memcpy(dev->label, label, n + 1);
	return 0;
}

const char *vfmig_device_label(const struct vfmig_device *dev)
{
	return dev->label;
}

const char *vfmig_device_compat(const struct vfmig_device *dev)
{
	return dev->compat;
}

uint64_t vfmig_device_flags(const struct vfmig_device *dev)
{
	return dev->flags;
}

uint32_t vfmig_device_config_size(const struct vfmig_device *dev)
{
	return dev->config_size;
}

void *vfmig_device_priv(const struct vfmig_device *dev)
{
	return dev->priv;
}

int vfmig_device_get_state(struct vfmig_device *dev, enum vfmig_state *st)
{
	return dev->ops->get_state(dev->priv, st);
}

int vfmig_device_reset(struct vfmig_device *dev)
{
	return dev->ops->reset(dev->priv);
}

int vfmig_device_data_size(struct vfmig_device *dev, uint64_t *bytes)
{
	return dev->ops->data_size(dev->priv, bytes);
}

ssize_t vfmig_device_read(struct vfmig_device *dev, void *buf, size_t len)
{
	ssize_t n;

	do {
		n = dev->ops->read(dev->priv, buf, len);
	} while (n == -EINTR);
	return n;
}

int vfmig_device_write_all(struct vfmig_device *dev, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = dev->ops->write(dev->priv, p, len);

		if (n == -EINTR)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO; /* the driver accepts nothing: never spin */
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int vfmig_device_set_state_keep(struct vfmig_device *dev, enum vfmig_state target,
				struct vfmig_error *err)
{
	enum vfmig_state now = VFMIG_STATE_ERROR;
	int ret = dev->ops->set_state(dev->priv, target);

	if (!ret)
		return 0;
	if (dev->ops->get_state(dev->priv, &now))
		now = VFMIG_STATE_ERROR;
	vfmig_error_set(err, VFMIG_ERR_DEVICE, -ret, -1, dev->name,
			"%s: set state %s failed: %s (device left %s)", dev->name,
			vfmig_state_name(target), strerror(-ret), vfmig_state_name(now));
	return ret;
}

int vfmig_device_set_state(struct vfmig_device *dev, enum vfmig_state target,
			   enum vfmig_state recover, struct vfmig_error *err)
{
	enum vfmig_state now = VFMIG_STATE_ERROR;
	int ret, r2;

	ret = dev->ops->set_state(dev->priv, target);
	if (!ret)
		return 0;

	/* uAPI: after a failed SET the state may be anywhere on the path. */
	r2 = dev->ops->get_state(dev->priv, &now);
	if (r2)
		now = VFMIG_STATE_ERROR;
	vfmig_error_set(err, VFMIG_ERR_DEVICE, -ret, -1, dev->name,
			"%s: set state %s failed: %s (device now %s)", dev->name,
			vfmig_state_name(target), strerror(-ret), vfmig_state_name(now));

	if (now != VFMIG_STATE_ERROR && recover != VFMIG_STATE_ERROR && now != recover) {
		r2 = dev->ops->set_state(dev->priv, recover);
		if (!r2)
			return ret;
		if (dev->ops->get_state(dev->priv, &now))
			now = VFMIG_STATE_ERROR;
	}
	if (now == VFMIG_STATE_ERROR || (recover != VFMIG_STATE_ERROR && now != recover)) {
		/* Leaving ERROR needs a reset; it returns the device to RUNNING. */
		r2 = dev->ops->reset(dev->priv);
		if (err) {
			size_t l = strlen(err->msg);

			snprintf(err->msg + l, sizeof(err->msg) - l, "; device reset %s",
				 r2 ? "FAILED" : "done (its state is lost)");
		}
	}
	return ret;
}
