// SPDX-License-Identifier: GPL-2.0-only
/*
 * The mdev device before migration: instance lifecycle through sysfs, the
 * VFIO container/group open path, device/region/irq info, register and
 * device-memory round trips, and bad input that must get an error (the VM
 * runner fails the run on any kernel splat these provoke).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"

/* 16550 register offsets within a port's 8-byte window in BAR0 */
#define UART_LCR 3
#define UART_SCR 7

TEST(types_are_advertised)
{
	char buf[256];

	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_sysfs_read(MT_TYPES "/" MT_PARENT "-1/device_api", buf, sizeof(buf)));
	ASSERT_STREQ("vfio-pci", buf);
	ASSERT_EQ(0, mt_sysfs_read(MT_TYPES "/" MT_PARENT "-2/device_api", buf, sizeof(buf)));
	ASSERT_STREQ("vfio-pci", buf);
	ASSERT_EQ(0, mt_sysfs_read(MT_TYPES "/" MT_PARENT "-1/available_instances", buf,
				   sizeof(buf)));
	ASSERT_GT(atoi(buf), 1);
	ASSERT_EQ(0, mt_sysfs_read(MT_TYPES "/" MT_PARENT "-1/name", buf, sizeof(buf)));
	ASSERT_NE(0, strlen(buf));
}

TEST(create_and_remove)
{
	char uuid[MT_UUID_LEN];

	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_mdev_create(MT_PARENT "-2", uuid));
	ASSERT_TRUE(mt_mdev_exists(uuid));
	ASSERT_EQ(0, mt_mdev_remove(uuid));
	ASSERT_FALSE(mt_mdev_exists(uuid));
}

TEST(create_uppercase_uuid_is_accepted)
{
	char uuid[MT_UUID_LEN], upper[MT_UUID_LEN];
	size_t i;

	ASSERT_EQ(0, mt_module_load());
	mt_uuid_random(uuid);
	for (i = 0; i < sizeof(upper); i++)
		upper[i] = (char)toupper((unsigned char)uuid[i]);
	ASSERT_EQ(0, mt_mdev_create_uuid(MT_PARENT "-1", upper));
	/* the device is named by the lower-case form */
	ASSERT_TRUE(mt_mdev_exists(uuid));
	ASSERT_EQ(0, mt_mdev_remove(uuid));
}

TEST(create_invalid_uuid_fails)
{
	static const char *const bad[] = {
		"\n",
		"not-a-uuid",
		"0123456789abcdef0123456789abcdef0123",   /* right length, no dashes */
		"zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",   /* not hex */
		"01234567-89ab-cdef-0123-456789abcdef00", /* too long */
		"01234567-89ab-cdef-0123-456789abcde",    /* too short */
	};
	size_t i;

	ASSERT_EQ(0, mt_module_load());
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = mt_mdev_create_uuid(MT_PARENT "-1", bad[i]);

		EXPECT_EQ(-EINVAL, ret) TH_LOG("uuid '%s'", bad[i]);
	}
}

TEST(create_duplicate_uuid_fails)
{
	char uuid[MT_UUID_LEN];

	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_mdev_create(MT_PARENT "-1", uuid));
	EXPECT_EQ(-EEXIST, mt_mdev_create_uuid(MT_PARENT "-1", uuid));
	EXPECT_EQ(-EEXIST, mt_mdev_create_uuid(MT_PARENT "-2", uuid));
	ASSERT_EQ(0, mt_mdev_remove(uuid));
}

TEST(remove_bad_value_is_ignored)
{
	char uuid[MT_UUID_LEN];

	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_mdev_create(MT_PARENT "-1", uuid));
	EXPECT_EQ(-EINVAL, mt_dev_attr_write(uuid, "remove", "banana"));
	EXPECT_TRUE(mt_mdev_exists(uuid));
	ASSERT_EQ(0, mt_mdev_remove(uuid));
}

FIXTURE(dev)
{
	char uuid[MT_UUID_LEN];
	struct mt_vfio v;
	int ports;
};

FIXTURE_VARIANT(dev)
{
	const char *type;
	int ports;
};

FIXTURE_VARIANT_ADD(dev, one_port)
{
	.type = MT_PARENT "-1",
	.ports = 1,
};

FIXTURE_VARIANT_ADD(dev, two_ports)
{
	.type = MT_PARENT "-2",
	.ports = 2,
};

FIXTURE_SETUP(dev)
{
	mt_vfio_init(&self->v);
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_mdev_create(variant->type, self->uuid));
	ASSERT_EQ(0, mt_vfio_open(&self->v, self->uuid));
	self->ports = variant->ports;
}

FIXTURE_TEARDOWN(dev)
{
	mt_vfio_close(&self->v);
	EXPECT_EQ(0, mt_mdev_remove(self->uuid));
}

TEST_F(dev, device_info)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };

	ASSERT_EQ(0, ioctl(self->v.device, VFIO_DEVICE_GET_INFO, &info));
	EXPECT_TRUE(info.flags & VFIO_DEVICE_FLAGS_PCI);
	EXPECT_TRUE(info.flags & VFIO_DEVICE_FLAGS_RESET);
	EXPECT_EQ(VFIO_PCI_NUM_REGIONS, info.num_regions);
	EXPECT_EQ(VFIO_PCI_NUM_IRQS, info.num_irqs);
}

TEST_F(dev, region_info)
{
	struct vfio_region_info r;

	ASSERT_EQ(0, mt_region_info(self->v.device, VFIO_PCI_CONFIG_REGION_INDEX, &r));
	EXPECT_GE(r.size, 256);
	EXPECT_TRUE(r.flags & VFIO_REGION_INFO_FLAG_READ);
	EXPECT_TRUE(r.flags & VFIO_REGION_INFO_FLAG_WRITE);

	ASSERT_EQ(0, mt_region_info(self->v.device, VFIO_PCI_BAR0_REGION_INDEX, &r));
	EXPECT_EQ(8 * self->ports, r.size);
	EXPECT_TRUE(r.flags & VFIO_REGION_INFO_FLAG_READ);
	EXPECT_TRUE(r.flags & VFIO_REGION_INFO_FLAG_WRITE);

	/* the device memory BAR: large, readable and writable */
	ASSERT_EQ(0, mt_region_info(self->v.device, VFIO_PCI_BAR1_REGION_INDEX, &r));
	EXPECT_GE(r.size, 64ull << 20);
	EXPECT_TRUE(r.flags & VFIO_REGION_INFO_FLAG_READ);
	EXPECT_TRUE(r.flags & VFIO_REGION_INFO_FLAG_WRITE);

	/* no such region */
	EXPECT_EQ(-EINVAL, mt_region_info(self->v.device, 1000, &r));
}

TEST_F(dev, irq_info)
{
	struct vfio_irq_info irq = { .argsz = sizeof(irq), .index = VFIO_PCI_INTX_IRQ_INDEX };

	ASSERT_EQ(0, ioctl(self->v.device, VFIO_DEVICE_GET_IRQ_INFO, &irq));
	EXPECT_EQ(1, irq.count);
	irq.index = VFIO_PCI_MSI_IRQ_INDEX;
	ASSERT_EQ(0, ioctl(self->v.device, VFIO_DEVICE_GET_IRQ_INFO, &irq));
	EXPECT_GE(irq.count, 1);
	irq.index = VFIO_PCI_NUM_IRQS + 5;
	EXPECT_EQ(-1, ioctl(self->v.device, VFIO_DEVICE_GET_IRQ_INFO, &irq));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(dev, config_space_ids)
{
	uint16_t vendor = 0, cmd;
	uint8_t hdr[64];

	ASSERT_EQ(sizeof(hdr), mt_region_read(self->v.device, VFIO_PCI_CONFIG_REGION_INDEX, 0,
					      hdr, sizeof(hdr)));
	memcpy(&vendor, hdr, 2);
	EXPECT_NE(0, vendor);
	EXPECT_NE(0xffff, vendor);
	/* class code: a serial controller (0x07) */
	EXPECT_EQ(0x07, hdr[0x0b]);
	/* command register round trip */
	cmd = 0x0003;
	ASSERT_EQ(2, mt_region_write(self->v.device, VFIO_PCI_CONFIG_REGION_INDEX, 4, &cmd, 2));
	cmd = 0;
	ASSERT_EQ(2, mt_region_read(self->v.device, VFIO_PCI_CONFIG_REGION_INDEX, 4, &cmd, 2));
	EXPECT_EQ(0x0003, cmd & 0x0003);
}

TEST_F(dev, uart_register_round_trip)
{
	int port;

	for (port = 0; port < self->ports; port++) {
		uint8_t v = (uint8_t)(0x5a + port), r = 0;

		ASSERT_EQ(1, mt_region_write(self->v.device, VFIO_PCI_BAR0_REGION_INDEX,
					     port * 8 + UART_SCR, &v, 1));
		ASSERT_EQ(1, mt_region_read(self->v.device, VFIO_PCI_BAR0_REGION_INDEX,
					    port * 8 + UART_SCR, &r, 1));
		EXPECT_EQ(v, r);
		v = 0x03; /* 8N1 */
		ASSERT_EQ(1, mt_region_write(self->v.device, VFIO_PCI_BAR0_REGION_INDEX,
					     port * 8 + UART_LCR, &v, 1));
		ASSERT_EQ(1, mt_region_read(self->v.device, VFIO_PCI_BAR0_REGION_INDEX,
					    port * 8 + UART_LCR, &r, 1));
		EXPECT_EQ(0x03, r);
	}
}

TEST_F(dev, uart_loopback_through_fifo)
{
	const char msg[] = "mtty";
	uint8_t r;
	size_t i;

	/* what is written to THR comes back from RBR in order */
	for (i = 0; i < sizeof(msg) - 1; i++)
		ASSERT_EQ(1, mt_region_write(self->v.device, VFIO_PCI_BAR0_REGION_INDEX, 0,
					     &msg[i], 1));
	for (i = 0; i < sizeof(msg) - 1; i++) {
		ASSERT_EQ(1, mt_region_read(self->v.device, VFIO_PCI_BAR0_REGION_INDEX, 0, &r, 1));
		EXPECT_EQ(msg[i], r);
	}
}

TEST_F(dev, device_memory_round_trip)
{
	struct vfio_region_info r;
	uint8_t out[4096], in[4096];
	uint64_t offs[3];
	size_t i, k;

	ASSERT_EQ(0, mt_region_info(self->v.device, VFIO_PCI_BAR1_REGION_INDEX, &r));
	offs[0] = 0;
	offs[1] = r.size / 2 + 123; /* unaligned, across a page boundary */
	offs[2] = r.size - sizeof(out);
	for (k = 0; k < 3; k++) {
		for (i = 0; i < sizeof(out); i++)
			out[i] = (uint8_t)(i * 7 + k);
		ASSERT_EQ(sizeof(out), mt_region_write(self->v.device, VFIO_PCI_BAR1_REGION_INDEX,
						       offs[k], out, sizeof(out)));
		memset(in, 0, sizeof(in));
		ASSERT_EQ(sizeof(in), mt_region_read(self->v.device, VFIO_PCI_BAR1_REGION_INDEX,
						     offs[k], in, sizeof(in)));
		EXPECT_EQ(0, memcmp(out, in, sizeof(in))) TH_LOG("offset %llu",
								 (unsigned long long)offs[k]);
	}
}

TEST(device_memory_of_one_gib)
{
	uint8_t out[4096], in[4096];
	char uuid[MT_UUID_LEN];
	struct mt_vfio v;
	struct vfio_region_info r;
	size_t i;

	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_mdev_create(MT_PARENT "-1", uuid));
	ASSERT_EQ(0, mt_dev_attr_write(uuid, "mem_size", "1073741824"));
	ASSERT_EQ(0, mt_vfio_open(&v, uuid));
	ASSERT_EQ(0, mt_region_info(v.device, VFIO_PCI_BAR1_REGION_INDEX, &r));
	EXPECT_EQ(1ull << 30, r.size);
	for (i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i ^ 0x5a);
	/* the last page of the gigabyte round-trips */
	ASSERT_EQ(sizeof(out), mt_region_write(v.device, VFIO_PCI_BAR1_REGION_INDEX,
					       r.size - sizeof(out), out, sizeof(out)));
	ASSERT_EQ(sizeof(in), mt_region_read(v.device, VFIO_PCI_BAR1_REGION_INDEX,
					     r.size - sizeof(in), in, sizeof(in)));
	EXPECT_EQ(0, memcmp(out, in, sizeof(in)));
	mt_vfio_close(&v);
	/* one page more than the maximum is refused */
	EXPECT_EQ(-EINVAL, mt_dev_attr_write(uuid, "mem_size", "1073745920"));
	ASSERT_EQ(0, mt_mdev_remove(uuid));
}

/*
 * PCI sizing: writing all ones to BAR1 reads back the size mask, which must
 * describe exactly the region VFIO reports (QEMU sizes the BAR from the
 * region and requires a power of two).
 */
TEST(bar1_sizing_mask_matches_the_region)
{
	static const char *const sizes[] = { "4096", "65536", "1048576", "67108864" };
	char uuid[MT_UUID_LEN];
	size_t i;

	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_mdev_create(MT_PARENT "-1", uuid));
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t ones = 0xffffffff, mask = 0;
		struct vfio_region_info r;
		struct mt_vfio v;

		ASSERT_EQ(0, mt_dev_attr_write(uuid, "mem_size", sizes[i]));
		ASSERT_EQ(0, mt_vfio_open(&v, uuid));
		ASSERT_EQ(0, mt_region_info(v.device, VFIO_PCI_BAR1_REGION_INDEX, &r));
		EXPECT_EQ(strtoull(sizes[i], NULL, 10), r.size);
		ASSERT_EQ(4, mt_region_write(v.device, VFIO_PCI_CONFIG_REGION_INDEX,
					     PCI_BASE_ADDRESS_1, &ones, 4));
		ASSERT_EQ(4, mt_region_read(v.device, VFIO_PCI_CONFIG_REGION_INDEX,
					    PCI_BASE_ADDRESS_1, &mask, 4));
		EXPECT_EQ(0, r.size & (r.size - 1)) TH_LOG("region size %llu",
							  (unsigned long long)r.size);
		EXPECT_EQ((uint32_t)~(r.size - 1), mask & PCI_BASE_ADDRESS_MEM_MASK)
		TH_LOG("mem_size %s: mask 0x%08x", sizes[i], mask);
		mt_vfio_close(&v);
	}
	EXPECT_EQ(-EINVAL, mt_dev_attr_write(uuid, "mem_size", "12288"));
	ASSERT_EQ(0, mt_mdev_remove(uuid));
}

TEST_F(dev, out_of_range_access_fails)
{
	struct vfio_region_info r;
	uint8_t buf[16] = { 0 };

	/* past the end of each region, and straddling it */
	ASSERT_EQ(0, mt_region_info(self->v.device, VFIO_PCI_BAR0_REGION_INDEX, &r));
	EXPECT_EQ(-EINVAL, mt_region_read(self->v.device, VFIO_PCI_BAR0_REGION_INDEX, r.size,
					  buf, 1));
	EXPECT_EQ(-EINVAL, mt_region_write(self->v.device, VFIO_PCI_BAR0_REGION_INDEX,
					   r.size - 1, buf, 2));
	ASSERT_EQ(0, mt_region_info(self->v.device, VFIO_PCI_BAR1_REGION_INDEX, &r));
	EXPECT_EQ(-EINVAL, mt_region_read(self->v.device, VFIO_PCI_BAR1_REGION_INDEX, r.size,
					  buf, 1));
	EXPECT_EQ(-EINVAL, mt_region_write(self->v.device, VFIO_PCI_BAR1_REGION_INDEX,
					   r.size - 8, buf, 16));
	ASSERT_EQ(0, mt_region_info(self->v.device, VFIO_PCI_CONFIG_REGION_INDEX, &r));
	EXPECT_EQ(-EINVAL, mt_region_read(self->v.device, VFIO_PCI_CONFIG_REGION_INDEX, r.size,
					  buf, 4));
	/* a region index the device does not have */
	EXPECT_EQ(-1, pread(self->v.device, buf, 1, (off_t)60 << 40));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(dev, second_group_open_is_busy)
{
	struct mt_vfio w;

	/* one opener per group: a second user gets EBUSY, the first is unharmed */
	EXPECT_EQ(-EBUSY, mt_vfio_open(&w, self->uuid));
	{
		struct vfio_device_info info = { .argsz = sizeof(info) };

		EXPECT_EQ(0, ioctl(self->v.device, VFIO_DEVICE_GET_INFO, &info));
	}
}

TEST_F(dev, reset_succeeds)
{
	EXPECT_EQ(0, ioctl(self->v.device, VFIO_DEVICE_RESET));
}

TEST_F(dev, migration_is_advertised)
{
	uint64_t flags = 0;
	uint32_t state = 0;

	ASSERT_EQ(0, mt_mig_flags(self->v.device, &flags));
	EXPECT_TRUE(flags & VFIO_MIGRATION_STOP_COPY);
	ASSERT_EQ(0, mt_mig_get_state(self->v.device, &state));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, state);
}

TEST_HARNESS_MAIN
