// SPDX-License-Identifier: GPL-2.0
/*
 * mtty_mig module entry: the device class and mdev parent, the mdev types
 * (1, 2 and 4 serial ports), the instance list used to find P2P peers,
 * instance probe/remove and the per-instance sysfs attributes.
 *
 * The attributes live directly in /sys/bus/mdev/devices/<uuid>/; their names
 * and semantics are defined in uapi/linux/mtty_mig.h.
 */
#include <linux/module.h>
#include <linux/device.h>
#include <linux/mdev.h>
#include <linux/uuid.h>
#include <linux/string.h>
#include <linux/kstrtox.h>
#include <linux/sysfs.h>
#include <linux/atomic.h>

#include "mtty_mig.h"

#define CREATE_TRACE_POINTS
#include "trace.h"

struct mtty_mig_type {
	struct mdev_type type;
	unsigned int nr_ports;
};

static struct mtty_mig_type mtty_mig_types[] = {
	{ .type.sysfs_name = "1", .type.pretty_name = "Single port serial",
	  .nr_ports = 1 },
	{ .type.sysfs_name = "2", .type.pretty_name = "Dual port serial",
	  .nr_ports = 2 },
	{ .type.sysfs_name = "4", .type.pretty_name = "Quad port serial",
	  .nr_ports = 4 },
};

static struct mdev_type *mtty_mig_mdev_types[] = {
	&mtty_mig_types[0].type,
	&mtty_mig_types[1].type,
	&mtty_mig_types[2].type,
};

static atomic_t mtty_mig_avail_ports = ATOMIC_INIT(MTTY_MIG_TOTAL_PORTS);

/* All probed instances; peers are looked up here by UUID. */
static DEFINE_MUTEX(mtty_mig_list_lock);
static LIST_HEAD(mtty_mig_list);

static const struct class mtty_mig_class = {
	.name = MTTY_MIG_NAME,
};

static struct device mtty_mig_parent_dev;
static struct mdev_parent mtty_mig_parent;

/**
 * mtty_mig_reserve_ports() - take ports for a new instance from the pool
 * @vdev: the instance being initialised (its mdev type gives the count)
 *
 * Return: the number of ports reserved, or -ENOSPC if the pool is short.
 */
int mtty_mig_reserve_ports(struct vfio_device *vdev)
{
	struct mdev_device *mdev = to_mdev_device(vdev->dev);
	struct mtty_mig_type *type =
		container_of(mdev->type, struct mtty_mig_type, type);
	int avail = atomic_read(&mtty_mig_avail_ports);

	do {
		if (avail < type->nr_ports)
			return -ENOSPC;
	} while (!atomic_try_cmpxchg(&mtty_mig_avail_ports, &avail,
				     avail - type->nr_ports));
	return type->nr_ports;
}

/**
 * mtty_mig_release_ports() - give an instance's ports back to the pool
 * @nr_ports: count returned by mtty_mig_reserve_ports()
 */
void mtty_mig_release_ports(unsigned int nr_ports)
{
	atomic_add(nr_ports, &mtty_mig_avail_ports);
}

static struct mtty_mig_dev *mtty_mig_find_locked(const guid_t *uuid)
{
	struct mtty_mig_dev *mdev;

	lockdep_assert_held(&mtty_mig_list_lock);
	list_for_each_entry(mdev, &mtty_mig_list, node)
		if (guid_equal(&to_mdev_device(mdev->vdev.dev)->uuid, uuid))
			return mdev;
	return NULL;
}

/* ---- sysfs attributes ---------------------------------------------- */

static struct mtty_mig_dev *attr_mdev(struct device *dev)
{
	return dev_get_drvdata(dev);
}

static ssize_t mem_size_show(struct device *dev, struct device_attribute *attr,
			     char *buf)
{
	return sysfs_emit(buf, "%llu\n", mtty_mig_mem_size(attr_mdev(dev)));
}

static ssize_t mem_size_store(struct device *dev, struct device_attribute *attr,
			      const char *buf, size_t count)
{
	u64 size;
	int ret;

	ret = kstrtou64(buf, 0, &size);
	if (ret)
		return ret;
	ret = mtty_mig_mem_set_size(attr_mdev(dev), size);
	return ret ? ret : count;
}
static DEVICE_ATTR_RW(mem_size);

static ssize_t nr_ports_show(struct device *dev, struct device_attribute *attr,
			     char *buf)
{
	return sysfs_emit(buf, "%u\n", attr_mdev(dev)->nr_ports);
}
static DEVICE_ATTR_RO(nr_ports);

/*
 * Tunables: one show/store pair per type, the attribute records where the
 * value lives in struct mtty_mig_tunables and its limits.
 */
struct mtty_mig_tun_attr {
	struct device_attribute attr;
	size_t offset;
	u64 min;
	u64 max;
	bool is_u64;
	bool kick_engine;
};

static void *tun_field(struct device *dev, struct device_attribute *attr)
{
	struct mtty_mig_tun_attr *ta =
		container_of(attr, struct mtty_mig_tun_attr, attr);

	return (u8 *)&attr_mdev(dev)->tun + ta->offset;
}

static ssize_t tun_show(struct device *dev, struct device_attribute *attr,
			char *buf)
{
	struct mtty_mig_tun_attr *ta =
		container_of(attr, struct mtty_mig_tun_attr, attr);
	void *field = tun_field(dev, attr);

	if (ta->is_u64)
		return sysfs_emit(buf, "%llu\n", READ_ONCE(*(u64 *)field));
	return sysfs_emit(buf, "%u\n", READ_ONCE(*(u32 *)field));
}

static ssize_t tun_store(struct device *dev, struct device_attribute *attr,
			 const char *buf, size_t count)
{
	struct mtty_mig_tun_attr *ta =
		container_of(attr, struct mtty_mig_tun_attr, attr);
	void *field = tun_field(dev, attr);
	u64 val;
	int ret;

	ret = kstrtou64(buf, 0, &val);
	if (ret)
		return ret;
	if (val < ta->min || val > ta->max)
		return -EINVAL;
	/* A new METADATA size is a device event (REINIT in PRE_COPY). */
	if (ta->offset == offsetof(struct mtty_mig_tunables, metadata_size)) {
		ret = mtty_mig_set_metadata_size(attr_mdev(dev), val);
		return ret ? ret : count;
	}
	if (ta->is_u64)
		WRITE_ONCE(*(u64 *)field, val);
	else
		WRITE_ONCE(*(u32 *)field, val);
	if (ta->kick_engine)
		mtty_mig_engine_kick(attr_mdev(dev));
	return count;
}

static struct mtty_mig_tun_attr dev_attr_dirty_rate = {
	.attr = __ATTR(dirty_rate, 0644, tun_show, tun_store),
	.offset = offsetof(struct mtty_mig_tunables, dirty_rate),
	.min = 0,
	.max = MTTY_MIG_RATE_MAX,
	.is_u64 = false,
	.kick_engine = true,
};

static struct mtty_mig_tun_attr dev_attr_p2p_rate = {
	.attr = __ATTR(p2p_rate, 0644, tun_show, tun_store),
	.offset = offsetof(struct mtty_mig_tunables, p2p_rate),
	.min = 0,
	.max = MTTY_MIG_RATE_MAX,
	.is_u64 = false,
	.kick_engine = true,
};

static struct mtty_mig_tun_attr dev_attr_metadata_size = {
	.attr = __ATTR(metadata_size, 0644, tun_show, tun_store),
	.offset = offsetof(struct mtty_mig_tunables, metadata_size),
	.min = MTTY_MIG_METADATA_MIN,
	.max = MTTY_MIG_METADATA_MAX,
	.is_u64 = false,
	.kick_engine = false,
};

static struct mtty_mig_tun_attr dev_attr_initial_load_ms = {
	.attr = __ATTR(initial_load_ms, 0644, tun_show, tun_store),
	.offset = offsetof(struct mtty_mig_tunables, initial_load_ms),
	.min = 0,
	.max = MTTY_MIG_DELAY_MAX_MS,
	.is_u64 = false,
	.kick_engine = false,
};

static struct mtty_mig_tun_attr dev_attr_stop_copy_latency_ms = {
	.attr = __ATTR(stop_copy_latency_ms, 0644, tun_show, tun_store),
	.offset = offsetof(struct mtty_mig_tunables, stop_copy_latency_ms),
	.min = 0,
	.max = MTTY_MIG_DELAY_MAX_MS,
	.is_u64 = false,
	.kick_engine = false,
};

static struct mtty_mig_tun_attr dev_attr_save_rate = {
	.attr = __ATTR(save_rate, 0644, tun_show, tun_store),
	.offset = offsetof(struct mtty_mig_tunables, save_rate),
	.min = 0,
	.max = U64_MAX,
	.is_u64 = true,
	.kick_engine = false,
};

static struct mtty_mig_tun_attr dev_attr_resume_rate = {
	.attr = __ATTR(resume_rate, 0644, tun_show, tun_store),
	.offset = offsetof(struct mtty_mig_tunables, resume_rate),
	.min = 0,
	.max = U64_MAX,
	.is_u64 = true,
	.kick_engine = false,
};

static ssize_t peer_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	struct mtty_mig_dev *mdev = attr_mdev(dev);
	struct mtty_mig_dev *peer;

	guard(mutex)(&mtty_mig_list_lock);
	peer = mdev->engine.peer;
	if (!peer)
		return sysfs_emit(buf, "%s\n", MTTY_MIG_PEER_NONE);
	return sysfs_emit(buf, "%pUl\n", &to_mdev_device(peer->vdev.dev)->uuid);
}

static ssize_t peer_store(struct device *dev, struct device_attribute *attr,
			  const char *buf, size_t count)
{
	struct mtty_mig_dev *mdev = attr_mdev(dev);
	struct mtty_mig_dev *peer = NULL;
	char str[UUID_STRING_LEN + 2];
	guid_t uuid;
	bool unlink;
	char *s;
	int ret;

	if (strscpy(str, buf, sizeof(str)) < 0)
		return -EINVAL;
	s = strim(str);
	unlink = !*s || !strcasecmp(s, MTTY_MIG_PEER_NONE);
	if (!unlink && (strlen(s) != UUID_STRING_LEN || guid_parse(s, &uuid)))
		return -EINVAL;

	guard(mutex)(&mtty_mig_list_lock);
	/* An instance being removed left the list and may not link again. */
	if (list_empty(&mdev->node))
		return -ENODEV;
	if (!unlink) {
		peer = mtty_mig_find_locked(&uuid);
		if (!peer)
			return -ENODEV;
		if (peer == mdev)
			return -EINVAL;
	}
	ret = mtty_mig_engine_link(mdev, peer);
	return ret ? ret : count;
}
static DEVICE_ATTR_RW(peer);

static ssize_t state_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	struct mtty_mig_dev *mdev = attr_mdev(dev);

	return sysfs_emit(buf, "%s\n",
			  mtty_mig_state_name(mtty_mig_get_state_locked(mdev)));
}
static DEVICE_ATTR_RO(state);

/*
 * Root only: hashing up to 1 GiB is work an unprivileged reader must not be
 * able to ask for, even though it no longer stalls the device (memory.c).
 */
static ssize_t digest_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	u64 digest;
	int ret;

	ret = mtty_mig_digest(attr_mdev(dev), &digest);
	if (ret)
		return ret;
	return sysfs_emit(buf, "0x%016llx\n", digest);
}
static DEVICE_ATTR_ADMIN_RO(digest);

static ssize_t dirty_pages_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%lu\n", mtty_mig_mem_nr_dirty(attr_mdev(dev)));
}
static DEVICE_ATTR_RO(dirty_pages);

struct mtty_mig_counter_attr {
	struct device_attribute attr;
	size_t offset;
};

static ssize_t counter_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	struct mtty_mig_counter_attr *ca =
		container_of(attr, struct mtty_mig_counter_attr, attr);
	atomic64_t *v = (void *)((u8 *)&attr_mdev(dev)->cnt + ca->offset);

	return sysfs_emit(buf, "%lld\n", atomic64_read(v));
}

static struct mtty_mig_counter_attr dev_attr_engine_writes = {
	.attr = __ATTR(engine_writes, 0444, counter_show, NULL),
	.offset = offsetof(struct mtty_mig_counters, engine_writes),
};

static struct mtty_mig_counter_attr dev_attr_p2p_tx = {
	.attr = __ATTR(p2p_tx, 0444, counter_show, NULL),
	.offset = offsetof(struct mtty_mig_counters, p2p_tx),
};

static struct mtty_mig_counter_attr dev_attr_p2p_rx = {
	.attr = __ATTR(p2p_rx, 0444, counter_show, NULL),
	.offset = offsetof(struct mtty_mig_counters, p2p_rx),
};

static struct mtty_mig_counter_attr dev_attr_p2p_violations = {
	.attr = __ATTR(p2p_violations, 0444, counter_show, NULL),
	.offset = offsetof(struct mtty_mig_counters, p2p_violations),
};

static struct mtty_mig_counter_attr dev_attr_p2p_dropped = {
	.attr = __ATTR(p2p_dropped, 0444, counter_show, NULL),
	.offset = offsetof(struct mtty_mig_counters, p2p_dropped),
};

static struct mtty_mig_counter_attr dev_attr_reinits = {
	.attr = __ATTR(reinits, 0444, counter_show, NULL),
	.offset = offsetof(struct mtty_mig_counters, reinits),
};

static struct attribute *mtty_mig_dev_attrs[] = {
	&dev_attr_mem_size.attr,
	&dev_attr_nr_ports.attr,
	&dev_attr_dirty_rate.attr.attr,
	&dev_attr_p2p_rate.attr.attr,
	&dev_attr_peer.attr,
	&dev_attr_metadata_size.attr.attr,
	&dev_attr_initial_load_ms.attr.attr,
	&dev_attr_save_rate.attr.attr,
	&dev_attr_resume_rate.attr.attr,
	&dev_attr_stop_copy_latency_ms.attr.attr,
	&dev_attr_state.attr,
	&dev_attr_digest.attr,
	&dev_attr_dirty_pages.attr,
	&dev_attr_engine_writes.attr.attr,
	&dev_attr_p2p_tx.attr.attr,
	&dev_attr_p2p_rx.attr.attr,
	&dev_attr_p2p_violations.attr.attr,
	&dev_attr_p2p_dropped.attr.attr,
	&dev_attr_reinits.attr.attr,
	NULL,
};

static const struct attribute_group mtty_mig_dev_group = {
	.attrs = mtty_mig_dev_attrs,
};

static const struct attribute_group *mtty_mig_dev_groups[] = {
	&mtty_mig_dev_group,
	NULL,
};

/* ---- instances -------------------------------------------------------- */

/* Cut every P2P link to and from @gone, which is leaving the list. */
static void mtty_mig_unlink_peers(struct mtty_mig_dev *gone)
{
	struct mtty_mig_dev *mdev;

	lockdep_assert_held(&mtty_mig_list_lock);
	mtty_mig_engine_link(gone, NULL);
	list_for_each_entry(mdev, &mtty_mig_list, node)
		if (mdev->engine.peer == gone)
			mtty_mig_engine_link(mdev, NULL);
}

static int mtty_mig_probe(struct mdev_device *mdev_dev)
{
	struct mtty_mig_dev *mdev;
	int ret;

	mdev = vfio_alloc_device(mtty_mig_dev, vdev, &mdev_dev->dev,
				 &mtty_mig_dev_ops);
	if (IS_ERR(mdev))
		return PTR_ERR(mdev);

	ret = vfio_register_emulated_iommu_dev(&mdev->vdev);
	if (ret)
		goto err_put;
	dev_set_drvdata(&mdev_dev->dev, mdev);

	scoped_guard(mutex, &mtty_mig_list_lock)
		list_add_tail(&mdev->node, &mtty_mig_list);
	mtty_mig_fault_debugfs_add(mdev);
	return 0;

err_put:
	vfio_put_device(&mdev->vdev);
	return ret;
}

static void mtty_mig_remove(struct mdev_device *mdev_dev)
{
	struct mtty_mig_dev *mdev = dev_get_drvdata(&mdev_dev->dev);

	mtty_mig_fault_debugfs_remove(mdev);
	/*
	 * Leave the list and cut every P2P link to or from this instance
	 * before it can go away; engine.lock in the unlink waits for a peer
	 * write in flight.
	 */
	scoped_guard(mutex, &mtty_mig_list_lock) {
		list_del_init(&mdev->node);
		mtty_mig_unlink_peers(mdev);
	}
	vfio_unregister_group_dev(&mdev->vdev);
	vfio_put_device(&mdev->vdev);
}

static unsigned int mtty_mig_get_available(struct mdev_type *mtype)
{
	struct mtty_mig_type *type =
		container_of(mtype, struct mtty_mig_type, type);

	return atomic_read(&mtty_mig_avail_ports) / type->nr_ports;
}

static ssize_t mtty_mig_show_description(struct mdev_type *mtype, char *buf)
{
	struct mtty_mig_type *type =
		container_of(mtype, struct mtty_mig_type, type);

	return sysfs_emit(buf, "%u 16550 port(s), device memory, migration v2 (PRE_COPY, P2P)\n",
			  type->nr_ports);
}

static struct mdev_driver mtty_mig_driver = {
	.device_api = VFIO_DEVICE_API_PCI_STRING,
	.driver = {
		.name = MTTY_MIG_NAME,
		.owner = THIS_MODULE,
		.mod_name = KBUILD_MODNAME,
		.dev_groups = mtty_mig_dev_groups,
	},
	.probe = mtty_mig_probe,
	.remove = mtty_mig_remove,
	.get_available = mtty_mig_get_available,
	.show_description = mtty_mig_show_description,
};

static void mtty_mig_parent_release(struct device *dev)
{
	/* Statically allocated; nothing to free. */
}

static int __init mtty_mig_init(void)
{
	int ret;

	ret = mtty_mig_debugfs_init();
	if (ret)
		return ret;

	ret = mdev_register_driver(&mtty_mig_driver);
	if (ret)
		goto err_debugfs;

	ret = class_register(&mtty_mig_class);
	if (ret)
		goto err_driver;

	mtty_mig_parent_dev.class = &mtty_mig_class;
	mtty_mig_parent_dev.release = mtty_mig_parent_release;
	dev_set_name(&mtty_mig_parent_dev, "%s", MTTY_MIG_NAME);
	ret = device_register(&mtty_mig_parent_dev);
	if (ret)
		goto err_put_dev;

	ret = mdev_register_parent(&mtty_mig_parent, &mtty_mig_parent_dev,
				   &mtty_mig_driver, mtty_mig_mdev_types,
				   ARRAY_SIZE(mtty_mig_mdev_types));
	if (ret)
		goto err_del_dev;
	return 0;

err_del_dev:
	device_del(&mtty_mig_parent_dev);
err_put_dev:
	put_device(&mtty_mig_parent_dev);
	class_unregister(&mtty_mig_class);
err_driver:
	mdev_unregister_driver(&mtty_mig_driver);
err_debugfs:
	mtty_mig_debugfs_exit();
	return ret;
}

static void __exit mtty_mig_exit(void)
{
	/* Removes every instance (remove() above) before returning. */
	mdev_unregister_parent(&mtty_mig_parent);
	device_unregister(&mtty_mig_parent_dev);
	class_unregister(&mtty_mig_class);
	mdev_unregister_driver(&mtty_mig_driver);
	mtty_mig_debugfs_exit();
}

module_init(mtty_mig_init);
module_exit(mtty_mig_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Mock mdev serial device with device memory implementing VFIO migration v2");
MODULE_AUTHOR("mtty-mig project");
