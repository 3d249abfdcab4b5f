// SPDX-License-Identifier: GPL-2.0
/*
 * The VFIO face of an mtty_mig instance: vfio_device_ops (init, release,
 * open, close, region read/write, ioctl), the emulated PCI configuration
 * space, the region and IRQ descriptions and the INTx/MSI eventfds.
 *
 * Regions (offset = index << 40, see uapi/linux/mtty_mig.h):
 *   BAR0   I/O, 8 byte-wide 16550 registers per port (serial.c)
 *   BAR1   memory, the instance's device memory (memory.c)
 *   CONFIG 256 bytes of PCI configuration space (here)
 * Any other index, or an access that does not fit the region, is -EINVAL.
 */
#include <linux/module.h>
#include <linux/pci_regs.h>
#include <linux/eventfd.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/unaligned.h>
#include <linux/log2.h>
#include <linux/mdev.h>

#include "mtty_mig.h"

static_assert(MTTY_MIG_SERIAL_REGION == VFIO_PCI_BAR0_REGION_INDEX);
static_assert(MTTY_MIG_MEM_REGION == VFIO_PCI_BAR1_REGION_INDEX);
static_assert(MTTY_MIG_CONFIG_REGION == VFIO_PCI_CONFIG_REGION_INDEX);

static u32 mtty_mig_bar_size(struct mtty_mig_dev *mdev, unsigned int bar)
{
	switch (bar) {
	case MTTY_MIG_SERIAL_REGION:
		return mdev->nr_ports * MTTY_MIG_PORT_STRIDE;
	case MTTY_MIG_MEM_REGION:
		/* A power of two (mtty_mig_mem_set_size()): the region's size too. */
		return mtty_mig_mem_size(mdev);
	default:
		return 0;
	}
}

static void mtty_mig_config_init(struct mtty_mig_dev *mdev)
{
	u8 *cfg = mdev->vconfig;

	memset(cfg, 0, MTTY_MIG_CONFIG_SIZE);
	put_unaligned_le16(MTTY_MIG_PCI_VENDOR_ID, cfg + PCI_VENDOR_ID);
	put_unaligned_le16(MTTY_MIG_PCI_DEVICE_ID, cfg + PCI_DEVICE_ID);
	put_unaligned_le16(PCI_COMMAND_IO | PCI_COMMAND_MEMORY,
			   cfg + PCI_COMMAND);
	put_unaligned_le16(PCI_STATUS_DEVSEL_MEDIUM, cfg + PCI_STATUS);
	cfg[PCI_REVISION_ID] = 0x10;
	cfg[PCI_CLASS_PROG] = 0x02;		/* 16550-compatible */
	cfg[PCI_CLASS_DEVICE] = 0x00;		/* serial controller */
	cfg[PCI_CLASS_DEVICE + 1] = 0x07;	/* communication controller */
	put_unaligned_le32(PCI_BASE_ADDRESS_SPACE_IO, cfg + PCI_BASE_ADDRESS_0);
	put_unaligned_le32(PCI_BASE_ADDRESS_SPACE_MEMORY |
			   PCI_BASE_ADDRESS_MEM_TYPE_32,
			   cfg + PCI_BASE_ADDRESS_1);
	put_unaligned_le16(MTTY_MIG_PCI_VENDOR_ID,
			   cfg + PCI_SUBSYSTEM_VENDOR_ID);
	put_unaligned_le16(MTTY_MIG_PCI_DEVICE_ID, cfg + PCI_SUBSYSTEM_ID);
	cfg[PCI_INTERRUPT_PIN] = 1;		/* INTA# */
}

/* A BAR keeps its type bits; the address is aligned to the BAR size. */
static void mtty_mig_config_write_bar(struct mtty_mig_dev *mdev,
				      unsigned int bar, u32 val)
{
	u8 *reg = mdev->vconfig + PCI_BASE_ADDRESS_0 + bar * 4;
	u32 size = mtty_mig_bar_size(mdev, bar);
	u32 type_mask = bar == MTTY_MIG_SERIAL_REGION ?
			~PCI_BASE_ADDRESS_IO_MASK : ~PCI_BASE_ADDRESS_MEM_MASK;

	if (!size) {
		put_unaligned_le32(0, reg);
		return;
	}
	val &= ~(size - 1) & ~type_mask;
	put_unaligned_le32(val | (get_unaligned_le32(reg) & type_mask), reg);
}

static void mtty_mig_config_write(struct mtty_mig_dev *mdev, unsigned int off,
				  u32 val, unsigned int len)
{
	lockdep_assert_held(&mdev->regs_lock);

	switch (off) {
	case PCI_COMMAND:
		if (len >= 2)
			put_unaligned_le16(val & (PCI_COMMAND_IO |
						  PCI_COMMAND_MEMORY |
						  PCI_COMMAND_INTX_DISABLE),
					   mdev->vconfig + PCI_COMMAND);
		break;
	case PCI_BASE_ADDRESS_0 ... PCI_BASE_ADDRESS_5:
		if (len == 4 && !(off & 3))
			mtty_mig_config_write_bar(mdev,
						  (off - PCI_BASE_ADDRESS_0) / 4,
						  val);
		break;
	case PCI_INTERRUPT_LINE:
		mdev->vconfig[PCI_INTERRUPT_LINE] = val;
		break;
	default:
		/* Read-only or unimplemented: ignored like real hardware. */
		break;
	}
}

static ssize_t mtty_mig_config_rw(struct mtty_mig_dev *mdev, char __user *ubuf,
				  size_t count, u64 off, bool write)
{
	size_t done = 0;

	if (off >= MTTY_MIG_CONFIG_SIZE || count > MTTY_MIG_CONFIG_SIZE - off)
		return -EINVAL;

	while (done < count) {
		unsigned int len;
		u32 val = 0;

		if (count - done >= 4 && !(off % 4))
			len = 4;
		else if (count - done >= 2 && !(off % 2))
			len = 2;
		else
			len = 1;

		if (write) {
			u8 bytes[4];

			if (copy_from_user(bytes, ubuf + done, len))
				return -EFAULT;
			val = len == 4 ? get_unaligned_le32(bytes) :
			      len == 2 ? get_unaligned_le16(bytes) : bytes[0];
			scoped_guard(mutex, &mdev->regs_lock)
				mtty_mig_config_write(mdev, off, val, len);
		} else {
			u8 bytes[4];

			scoped_guard(mutex, &mdev->regs_lock)
				memcpy(bytes, mdev->vconfig + off, len);
			if (copy_to_user(ubuf + done, bytes, len))
				return -EFAULT;
		}
		off += len;
		done += len;
	}
	return done;
}

static ssize_t mtty_mig_serial_rw(struct mtty_mig_dev *mdev, char __user *ubuf,
				  size_t count, u64 off, bool write)
{
	u64 size = mdev->nr_ports * MTTY_MIG_PORT_STRIDE;
	size_t done;
	int ret;

	if (off >= size || count > size - off)
		return -EINVAL;

	/* Byte-wide registers: a wider access is a run of byte accesses. */
	for (done = 0; done < count; done++, off++) {
		u8 val;

		if (write && get_user(val, (u8 __user *)ubuf + done))
			return -EFAULT;
		ret = mtty_mig_serial_access(mdev, off / MTTY_MIG_PORT_STRIDE,
					     off % MTTY_MIG_PORT_STRIDE, &val,
					     write);
		if (ret)
			return done ? done : ret;
		if (!write && put_user(val, (u8 __user *)ubuf + done))
			return -EFAULT;
	}
	return done;
}

static ssize_t mtty_mig_region_rw(struct mtty_mig_dev *mdev, char __user *ubuf,
				  size_t count, loff_t *ppos, bool write)
{
	u64 index = MTTY_MIG_OFFSET_TO_INDEX(*ppos);
	u64 off = *ppos & MTTY_MIG_OFFSET_MASK;
	ssize_t ret;

	if (*ppos < 0)
		return -EINVAL;

	switch (index) {
	case MTTY_MIG_CONFIG_REGION:
		ret = mtty_mig_config_rw(mdev, ubuf, count, off, write);
		break;
	case MTTY_MIG_SERIAL_REGION:
		ret = mtty_mig_serial_rw(mdev, ubuf, count, off, write);
		break;
	case MTTY_MIG_MEM_REGION:
		ret = mtty_mig_mem_rw(mdev, ubuf, count, off, write);
		break;
	default:
		ret = -EINVAL;
		break;
	}
	if (ret > 0)
		*ppos += ret;
	return ret;
}

static ssize_t mtty_mig_read(struct vfio_device *vdev, char __user *buf,
			     size_t count, loff_t *ppos)
{
	return mtty_mig_region_rw(to_mtty_mig(vdev), buf, count, ppos, false);
}

static ssize_t mtty_mig_write(struct vfio_device *vdev, const char __user *buf,
			      size_t count, loff_t *ppos)
{
	return mtty_mig_region_rw(to_mtty_mig(vdev), (char __user *)buf, count,
				  ppos, true);
}

/* ---- interrupts ------------------------------------------------------- */

/**
 * mtty_mig_trigger_irq() - signal the guest through the configured eventfd
 * @mdev: instance; regs_lock held
 *
 * INTx is level-like and auto-masked: once signalled it stays masked until
 * the user unmasks it through VFIO_DEVICE_SET_IRQS.
 */
void mtty_mig_trigger_irq(struct mtty_mig_dev *mdev)
{
	lockdep_assert_held(&mdev->regs_lock);

	if (mdev->irq_index == VFIO_PCI_MSI_IRQ_INDEX) {
		if (mdev->msi_evtfd)
			eventfd_signal(mdev->msi_evtfd);
	} else if (mdev->irq_index == VFIO_PCI_INTX_IRQ_INDEX) {
		if (mdev->intx_evtfd && !mdev->intx_mask) {
			eventfd_signal(mdev->intx_evtfd);
			mdev->intx_mask = true;
		}
	}
}

static void mtty_mig_irq_disable(struct mtty_mig_dev *mdev)
{
	lockdep_assert_held(&mdev->regs_lock);

	if (mdev->intx_evtfd)
		eventfd_ctx_put(mdev->intx_evtfd);
	if (mdev->msi_evtfd)
		eventfd_ctx_put(mdev->msi_evtfd);
	mdev->intx_evtfd = NULL;
	mdev->msi_evtfd = NULL;
	mdev->intx_mask = false;
	mdev->irq_index = -1;
}

static int mtty_mig_irq_set_trigger(struct mtty_mig_dev *mdev,
				    unsigned int index, u32 flags,
				    unsigned int count, void *data)
{
	struct eventfd_ctx **slot = index == VFIO_PCI_INTX_IRQ_INDEX ?
				    &mdev->intx_evtfd : &mdev->msi_evtfd;
	struct eventfd_ctx *ctx;
	s32 fd;

	/* count == 0 with DATA_NONE tears the index down. */
	if (!count) {
		if (!(flags & VFIO_IRQ_SET_DATA_NONE))
			return -EINVAL;
		if (mdev->irq_index == index)
			mtty_mig_irq_disable(mdev);
		return 0;
	}
	if (mdev->irq_index >= 0 && mdev->irq_index != index)
		return -EBUSY;

	if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		fd = *(s32 *)data;
		if (fd < 0) {
			mtty_mig_irq_disable(mdev);
			return 0;
		}
		ctx = eventfd_ctx_fdget(fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
		mtty_mig_irq_disable(mdev);
		*slot = ctx;
		mdev->irq_index = index;
		return 0;
	}

	/* Loopback trigger from the user (DATA_NONE or DATA_BOOL true). */
	if (mdev->irq_index != index)
		return -EINVAL;
	if ((flags & VFIO_IRQ_SET_DATA_NONE) || *(u8 *)data)
		mtty_mig_trigger_irq(mdev);
	return 0;
}

static int mtty_mig_irq_set_mask(struct mtty_mig_dev *mdev, u32 action,
				 u32 flags, void *data)
{
	bool set;

	if (mdev->irq_index != VFIO_PCI_INTX_IRQ_INDEX)
		return -EINVAL;
	if (flags & VFIO_IRQ_SET_DATA_EVENTFD)
		return -ENOTTY;		/* no (un)mask eventfds */
	set = (flags & VFIO_IRQ_SET_DATA_NONE) || *(u8 *)data;
	if (set)
		mdev->intx_mask = action == VFIO_IRQ_SET_ACTION_MASK;
	return 0;
}

static int mtty_mig_set_irqs(struct mtty_mig_dev *mdev,
			     struct vfio_irq_set *hdr, void *data)
{
	u32 action = hdr->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;

	if (hdr->index != VFIO_PCI_INTX_IRQ_INDEX &&
	    hdr->index != VFIO_PCI_MSI_IRQ_INDEX)
		return -EINVAL;

	guard(mutex)(&mdev->regs_lock);
	switch (action) {
	case VFIO_IRQ_SET_ACTION_MASK:
	case VFIO_IRQ_SET_ACTION_UNMASK:
		if (hdr->index != VFIO_PCI_INTX_IRQ_INDEX)
			return -ENOTTY;
		return mtty_mig_irq_set_mask(mdev, action, hdr->flags, data);
	case VFIO_IRQ_SET_ACTION_TRIGGER:
		return mtty_mig_irq_set_trigger(mdev, hdr->index, hdr->flags,
						hdr->count, data);
	default:
		return -EINVAL;
	}
}

/* ---- ioctls ----------------------------------------------------------- */

static long mtty_mig_ioctl_get_info(void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_device_info, num_irqs);
	struct vfio_device_info info;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	info.flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
	info.num_regions = VFIO_PCI_NUM_REGIONS;
	info.num_irqs = VFIO_PCI_NUM_IRQS;
	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}

/* Fills @info for info->index; the caller checked argsz. */
static int mtty_mig_region_info(struct mtty_mig_dev *mdev,
				struct vfio_region_info *info)
{
	if (info->index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;

	info->cap_offset = 0;
	info->offset = MTTY_MIG_INDEX_TO_OFFSET(info->index);
	info->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	switch (info->index) {
	case MTTY_MIG_CONFIG_REGION:
		info->size = MTTY_MIG_CONFIG_SIZE;
		break;
	case MTTY_MIG_SERIAL_REGION:
		info->size = mdev->nr_ports * MTTY_MIG_PORT_STRIDE;
		break;
	case MTTY_MIG_MEM_REGION:
		info->size = mtty_mig_mem_size(mdev);
		break;
	default:
		info->size = 0;
		info->flags = 0;
		break;
	}
	return 0;
}

#ifdef MTTY_MIG_CORE_REGION_INFO
/* 6.19+: the core copies the argument in and out (vfio_get_region_info()). */
static int mtty_mig_get_region_info_caps(struct vfio_device *vdev,
					 struct vfio_region_info *info,
					 struct vfio_info_cap *caps)
{
	return mtty_mig_region_info(to_mtty_mig(vdev), info);
}
#else
static long mtty_mig_ioctl_region_info(struct mtty_mig_dev *mdev,
				       void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_region_info, offset);
	struct vfio_region_info info;
	int ret;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	ret = mtty_mig_region_info(mdev, &info);
	if (ret)
		return ret;
	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}
#endif

static long mtty_mig_ioctl_irq_info(void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_irq_info, count);
	struct vfio_irq_info info;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz || info.index >= VFIO_PCI_NUM_IRQS)
		return -EINVAL;

	switch (info.index) {
	case VFIO_PCI_INTX_IRQ_INDEX:
		info.flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
			     VFIO_IRQ_INFO_AUTOMASKED;
		info.count = 1;
		break;
	case VFIO_PCI_MSI_IRQ_INDEX:
		info.flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
		info.count = 1;
		break;
	default:
		info.flags = 0;
		info.count = 0;
		break;
	}
	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}

static long mtty_mig_ioctl_set_irqs(struct mtty_mig_dev *mdev,
				    void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_irq_set, count);
	struct vfio_irq_set hdr;
	size_t data_size = 0;
	void *data = NULL;
	int nr_vectors;
	int ret;

	if (copy_from_user(&hdr, arg, minsz))
		return -EFAULT;
	/* INTx and MSI have one vector each, the other indexes none. */
	nr_vectors = hdr.index == VFIO_PCI_INTX_IRQ_INDEX ||
		     hdr.index == VFIO_PCI_MSI_IRQ_INDEX;
	ret = vfio_set_irqs_validate_and_prepare(&hdr, nr_vectors,
						 VFIO_PCI_NUM_IRQS, &data_size);
	if (ret)
		return ret;
	if (data_size) {
		data = memdup_user(arg + minsz, data_size);
		if (IS_ERR(data))
			return PTR_ERR(data);
	}
	ret = mtty_mig_set_irqs(mdev, &hdr, data);
	kfree(data);
	return ret;
}

static void mtty_mig_device_reset(struct mtty_mig_dev *mdev)
{
	mtty_mig_migration_reset(mdev, true);
}

static long mtty_mig_ioctl(struct vfio_device *vdev, unsigned int cmd,
			   unsigned long arg)
{
	struct mtty_mig_dev *mdev = to_mtty_mig(vdev);
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case VFIO_DEVICE_GET_INFO:
		return mtty_mig_ioctl_get_info(uarg);
#ifndef MTTY_MIG_CORE_REGION_INFO
	case VFIO_DEVICE_GET_REGION_INFO:
		return mtty_mig_ioctl_region_info(mdev, uarg);
#endif
	case VFIO_DEVICE_GET_IRQ_INFO:
		return mtty_mig_ioctl_irq_info(uarg);
	case VFIO_DEVICE_SET_IRQS:
		return mtty_mig_ioctl_set_irqs(mdev, uarg);
	case VFIO_DEVICE_RESET:
		mtty_mig_device_reset(mdev);
		return 0;
	default:
		return -ENOTTY;
	}
}

/* ---- lifecycle -------------------------------------------------------- */

static int mtty_mig_init_dev(struct vfio_device *vdev)
{
	struct mtty_mig_dev *mdev = to_mtty_mig(vdev);
	int ret;

	ret = mtty_mig_reserve_ports(vdev);
	if (ret < 0)
		return ret;
	mdev->nr_ports = ret;

	INIT_LIST_HEAD(&mdev->node);
	mutex_init(&mdev->regs_lock);
	mdev->irq_index = -1;
	mtty_mig_mem_init(mdev);
	ret = mtty_mig_engine_init(mdev);
	if (ret)
		goto err_mem;
	mtty_mig_fault_init(mdev);

	mdev->tun.metadata_size = MTTY_MIG_METADATA_DEFAULT;
	mtty_mig_config_init(mdev);
	mtty_mig_serial_reset(mdev);
	mtty_mig_migration_init(mdev);
	return 0;

err_mem:
	mtty_mig_mem_destroy(mdev);
	mutex_destroy(&mdev->regs_lock);
	mtty_mig_release_ports(mdev->nr_ports);
	return ret;
}

static void mtty_mig_release_dev(struct vfio_device *vdev)
{
	struct mtty_mig_dev *mdev = to_mtty_mig(vdev);

	mutex_destroy(&mdev->state_lock);
	mtty_mig_engine_destroy(mdev);
	mtty_mig_mem_destroy(mdev);
	mutex_destroy(&mdev->regs_lock);
	mtty_mig_release_ports(mdev->nr_ports);
}

static int mtty_mig_open_device(struct vfio_device *vdev)
{
	struct mtty_mig_dev *mdev = to_mtty_mig(vdev);
	int ret;

	/*
	 * A device always opens RUNNING, whatever state it was closed in:
	 * the memory opens accepting writes (one mem.lock hold, so a peer
	 * write never finds it open but stopped), then the FSM follows.
	 */
	ret = mtty_mig_mem_open(mdev);
	if (ret)
		return ret;
	mtty_mig_migration_reset(mdev, false);
	mtty_mig_engine_start(mdev);
	return 0;
}

static void mtty_mig_close_device(struct vfio_device *vdev)
{
	struct mtty_mig_dev *mdev = to_mtty_mig(vdev);

	mtty_mig_engine_stop(mdev);
	/* Ends any migration session: its data_fd now reads -ENODEV. */
	mtty_mig_migration_reset(mdev, false);
	mtty_mig_mem_close(mdev);
	scoped_guard(mutex, &mdev->regs_lock)
		mtty_mig_irq_disable(mdev);
#ifndef MTTY_MIG_CORE_PRECOPY_INFO_V2
	/* The opt-in ends with the open (as vfio_df_close() does in 7.1). */
	WRITE_ONCE(mdev->precopy_info_v2, false);
#endif
}

const struct vfio_device_ops mtty_mig_dev_ops = {
	.name = "vfio-mtty-mig",
	.init = mtty_mig_init_dev,
	.release = mtty_mig_release_dev,
	.open_device = mtty_mig_open_device,
	.close_device = mtty_mig_close_device,
	.read = mtty_mig_read,
	.write = mtty_mig_write,
	.ioctl = mtty_mig_ioctl,
#ifdef MTTY_MIG_CORE_REGION_INFO
	.get_region_info_caps = mtty_mig_get_region_info_caps,
#endif
#ifndef MTTY_MIG_CORE_PRECOPY_INFO_V2
	.device_feature = mtty_mig_device_feature,
#endif
	.bind_iommufd = vfio_iommufd_emulated_bind,
	.unbind_iommufd = vfio_iommufd_emulated_unbind,
	.attach_ioas = vfio_iommufd_emulated_attach_ioas,
	.detach_ioas = vfio_iommufd_emulated_detach_ioas,
};
