/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every difference between the kernels mtty_mig builds against (Linux 6.12
 * to 7.2), in one place, keyed on LINUX_VERSION_CODE.  The rest of the
 * module is written against the newest API and reads these names only.
 *
 *   6.19  VFIO_DEVICE_GET_REGION_INFO moved into the core
 *         (vfio_get_region_info() in drivers/vfio/vfio_main.c), which calls
 *         the driver's .get_region_info_caps op and fails with -EINVAL
 *         without one.  Before, the driver's .ioctl answered it.
 *   7.1   VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 is the core's
 *         (vfio_ioctl_device_feature_migration_precopy_info_v2()): it sets
 *         vfio_device.precopy_info_v2 and clears it when the device is
 *         closed (vfio_df_device_last_close()).  Before, the feature number
 *         reaches the driver's .device_feature op, which answers it the
 *         same way here (mtty_mig_device_feature()).  The ioctl's input
 *         checks (the core's vfio_check_precopy_ioctl()) are done by
 *         mtty_mig_precopy_ioctl() itself on every kernel (see there).
 *   7.2   the streaming xxh32 API (struct xxh32_state) is gone: the record
 *         checksums use csum.c, which computes the same XXH32 on every
 *         kernel.
 */
#ifndef MTTY_MIG_COMPAT_H
#define MTTY_MIG_COMPAT_H

#include <linux/bits.h>
#include <linux/version.h>
#include <linux/vfio.h>

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 19, 0)
#define MTTY_MIG_CORE_REGION_INFO	1
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 1, 0)
#define MTTY_MIG_CORE_PRECOPY_INFO_V2	1
#endif

/*
 * The 7.1 uAPI values, which 6.12's uapi/linux/vfio.h lacks: the feature
 * number of VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 (only the pre-7.1 path
 * needs it) and the REINIT output flag.
 */
#define MTTY_MIG_FEATURE_PRECOPY_INFO_V2	12
#ifndef VFIO_PRECOPY_INFO_REINIT
#define VFIO_PRECOPY_INFO_REINIT		BIT(0)
#endif

#endif /* MTTY_MIG_COMPAT_H */
