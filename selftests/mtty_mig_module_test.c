// SPDX-License-Identifier: GPL-2.0-only
/*
 * Loading and unloading mtty_mig.ko with libkmod, its dependencies resolved
 * from modinfo "depends", with and without instances present.
 */
#include <errno.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"

TEST(module_load_resolves_dependencies)
{
	if (mt_module_loaded())
		ASSERT_EQ(0, mt_module_unload());
	ASSERT_FALSE(mt_module_loaded());
	ASSERT_EQ(0, mt_module_load());
	ASSERT_TRUE(mt_module_loaded());
	/* the dependencies named in modinfo were loaded first */
	ASSERT_EQ(0, access("/sys/module/vfio", F_OK));
	ASSERT_EQ(0, access("/sys/module/mdev", F_OK));
	/* the parent and its types registered */
	ASSERT_EQ(0, access(MT_TYPES "/" MT_PARENT "-1/create", F_OK));
	ASSERT_EQ(0, access(MT_TYPES "/" MT_PARENT "-2/create", F_OK));
}

TEST(module_load_twice_is_harmless)
{
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_module_load());
	ASSERT_TRUE(mt_module_loaded());
}

TEST(module_unload_and_reload)
{
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_module_unload());
	ASSERT_FALSE(mt_module_loaded());
	ASSERT_EQ(-ENOENT, access(MT_MDEV_BUS, F_OK) ? -errno : 0);
	ASSERT_EQ(0, mt_module_load());
	ASSERT_TRUE(mt_module_loaded());
}

TEST(module_unload_with_instances_present)
{
	char a[MT_UUID_LEN], b[MT_UUID_LEN];

	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_mdev_create(MT_PARENT "-1", a));
	ASSERT_EQ(0, mt_mdev_create(MT_PARENT "-2", b));
	ASSERT_TRUE(mt_mdev_exists(a));
	/* unregistering the parent removes every instance */
	ASSERT_EQ(0, mt_module_unload());
	ASSERT_FALSE(mt_mdev_exists(a));
	ASSERT_FALSE(mt_mdev_exists(b));
	ASSERT_EQ(0, mt_module_load());
}

TEST(module_unload_refused_while_device_open)
{
	struct mt_vfio v;
	char a[MT_UUID_LEN];

	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_mdev_create(MT_PARENT "-1", a));
	ASSERT_EQ(0, mt_vfio_open(&v, a));
	/* an open VFIO device pins the module: unload fails, nothing breaks */
	EXPECT_EQ(-EWOULDBLOCK, mt_module_unload());
	EXPECT_TRUE(mt_module_loaded());
	mt_vfio_close(&v);
	ASSERT_EQ(0, mt_mdev_remove(a));
}

TEST_HARNESS_MAIN
