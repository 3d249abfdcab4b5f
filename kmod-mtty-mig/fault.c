// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection through debugfs: /sys/kernel/debug/mtty_mig/<uuid>/
 *
 *   fail_state           "<state> <errno>": next FSM step into <state> fails
 *   fail_save_after      N: the saving data_fd fails with -EIO after N bytes
 *   fail_resume_after    N: the resuming data_fd fails with -EIO after N bytes
 *   transition_delay_ms  per FSM step of a request, slept before it (sim.c)
 *
 * The exact semantics are in uapi/linux/mtty_mig.h.  The settings are
 * protected by fault.lock (a spinlock: they are read on every data_fd I/O).
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include <linux/string.h>
#include <linux/kstrtox.h>
#include <linux/delay.h>
#include <linux/mdev.h>

#include "mtty_mig.h"

static struct dentry *mtty_mig_debugfs_root;

/**
 * mtty_mig_fault_init() - disarm every fault of a new instance
 * @mdev: instance
 */
void mtty_mig_fault_init(struct mtty_mig_dev *mdev)
{
	spin_lock_init(&mdev->fault.lock);
	mdev->fault.fail_state = -1;
	mdev->fault.fail_save_after = -1;
	mdev->fault.fail_resume_after = -1;
}

/**
 * mtty_mig_fault_take_state() - fire an armed fail_state for @next
 * @mdev: instance
 * @next: target state of the FSM step about to run
 *
 * Return: 0, or the injected negative errno (the fault is disarmed).
 */
int mtty_mig_fault_take_state(struct mtty_mig_dev *mdev,
			      enum vfio_device_mig_state next)
{
	struct mtty_mig_fault *f = &mdev->fault;
	int err = 0;

	spin_lock(&f->lock);
	if (f->fail_state == next) {
		err = -f->fail_errno;
		f->fail_state = -1;
	}
	spin_unlock(&f->lock);
	return err;
}

/**
 * mtty_mig_fault_step_delay_ms() - injected delay of every FSM step
 * @mdev: instance
 *
 * Return: transition_delay_ms.
 */
u32 mtty_mig_fault_step_delay_ms(struct mtty_mig_dev *mdev)
{
	struct mtty_mig_fault *f = &mdev->fault;
	u32 ms;

	spin_lock(&f->lock);
	ms = f->transition_delay_ms;
	spin_unlock(&f->lock);
	return ms;
}

/**
 * mtty_mig_fault_limit() - apply fail_save_after / fail_resume_after
 * @mdev: instance
 * @save: saving (read) or resuming (write) side
 * @done: stream bytes already transferred on this data_fd
 * @len: bytes the caller wants to transfer now
 * @err: set to -EIO (and the fault disarmed) when the limit is reached
 *
 * Return: how many of @len bytes may be transferred.
 */
size_t mtty_mig_fault_limit(struct mtty_mig_dev *mdev, bool save, u64 done,
			    size_t len, int *err)
{
	struct mtty_mig_fault *f = &mdev->fault;
	s64 *after = save ? &f->fail_save_after : &f->fail_resume_after;

	*err = 0;
	spin_lock(&f->lock);
	if (*after >= 0) {
		if (done >= *after) {
			*after = -1;
			*err = -EIO;
			len = 0;
		} else {
			len = min_t(u64, len, *after - done);
		}
	}
	spin_unlock(&f->lock);
	return len;
}

static int fail_state_show(struct seq_file *s, void *unused)
{
	struct mtty_mig_dev *mdev = s->private;
	struct mtty_mig_fault *f = &mdev->fault;
	int state, err;

	spin_lock(&f->lock);
	state = f->fail_state;
	err = f->fail_errno;
	spin_unlock(&f->lock);
	if (state < 0)
		seq_puts(s, "none\n");
	else
		seq_printf(s, "%s %d\n", mtty_mig_state_name(state), err);
	return 0;
}

static int fail_state_open(struct inode *inode, struct file *file)
{
	return single_open(file, fail_state_show, inode->i_private);
}

static ssize_t fail_state_write(struct file *file, const char __user *ubuf,
				size_t count, loff_t *ppos)
{
	struct mtty_mig_dev *mdev = file_inode(file)->i_private;
	struct mtty_mig_fault *f = &mdev->fault;
	enum vfio_device_mig_state state;
	char buf[64], *p, *name;
	int err, ret;

	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	p = strim(buf);

	if (!strcasecmp(p, "none")) {
		spin_lock(&f->lock);
		f->fail_state = -1;
		spin_unlock(&f->lock);
		return count;
	}

	name = strsep(&p, " \t");
	if (!p)
		return -EINVAL;
	ret = mtty_mig_state_parse(name, &state);
	if (ret)
		return ret;
	p = skip_spaces(p);
	if (kstrtoint(p, 0, &err))
		return -EINVAL;
	if (err < 0)
		err = -err;
	if (err < 1 || err > MAX_ERRNO)
		return -EINVAL;

	spin_lock(&f->lock);
	f->fail_state = state;
	f->fail_errno = err;
	spin_unlock(&f->lock);
	return count;
}

static const struct file_operations fail_state_fops = {
	.owner = THIS_MODULE,
	.open = fail_state_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = single_release,
	.write = fail_state_write,
};

/* Signed 64-bit settings: -1 disarms. */
static int fault_s64_get(struct mtty_mig_dev *mdev, s64 *field, u64 *val)
{
	spin_lock(&mdev->fault.lock);
	*val = *field;
	spin_unlock(&mdev->fault.lock);
	return 0;
}

static int fault_s64_set(struct mtty_mig_dev *mdev, s64 *field, u64 val)
{
	if ((s64)val < -1)
		return -EINVAL;
	spin_lock(&mdev->fault.lock);
	*field = val;
	spin_unlock(&mdev->fault.lock);
	return 0;
}

static int fail_save_after_get(void *data, u64 *val)
{
	struct mtty_mig_dev *mdev = data;

	return fault_s64_get(mdev, &mdev->fault.fail_save_after, val);
}

static int fail_save_after_set(void *data, u64 val)
{
	struct mtty_mig_dev *mdev = data;

	return fault_s64_set(mdev, &mdev->fault.fail_save_after, val);
}
DEFINE_DEBUGFS_ATTRIBUTE_SIGNED(fail_save_after_fops, fail_save_after_get,
				fail_save_after_set, "%lld\n");

static int fail_resume_after_get(void *data, u64 *val)
{
	struct mtty_mig_dev *mdev = data;

	return fault_s64_get(mdev, &mdev->fault.fail_resume_after, val);
}

static int fail_resume_after_set(void *data, u64 val)
{
	struct mtty_mig_dev *mdev = data;

	return fault_s64_set(mdev, &mdev->fault.fail_resume_after, val);
}
DEFINE_DEBUGFS_ATTRIBUTE_SIGNED(fail_resume_after_fops,
				fail_resume_after_get, fail_resume_after_set,
				"%lld\n");

static int transition_delay_get(void *data, u64 *val)
{
	struct mtty_mig_dev *mdev = data;

	spin_lock(&mdev->fault.lock);
	*val = mdev->fault.transition_delay_ms;
	spin_unlock(&mdev->fault.lock);
	return 0;
}

static int transition_delay_set(void *data, u64 val)
{
	struct mtty_mig_dev *mdev = data;

	if (val > MTTY_MIG_DELAY_MAX_MS)
		return -EINVAL;
	spin_lock(&mdev->fault.lock);
	mdev->fault.transition_delay_ms = val;
	spin_unlock(&mdev->fault.lock);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(transition_delay_fops, transition_delay_get,
			 transition_delay_set, "%llu\n");

/**
 * mtty_mig_fault_debugfs_add() - create the instance's fault directory
 * @mdev: registered instance
 *
 * debugfs failures are not fatal: the device works without the files.
 */
void mtty_mig_fault_debugfs_add(struct mtty_mig_dev *mdev)
{
	struct dentry *dir;

	dir = debugfs_create_dir(dev_name(mtty_mig_dev(mdev)),
				 mtty_mig_debugfs_root);
	mdev->fault.dir = dir;
	debugfs_create_file(MTTY_MIG_FAULT_FAIL_STATE, 0600, dir, mdev,
			    &fail_state_fops);
	debugfs_create_file_unsafe(MTTY_MIG_FAULT_FAIL_SAVE_AFTER, 0600, dir,
				   mdev, &fail_save_after_fops);
	debugfs_create_file_unsafe(MTTY_MIG_FAULT_FAIL_RESUME_AFTER, 0600, dir,
				   mdev, &fail_resume_after_fops);
	debugfs_create_file_unsafe(MTTY_MIG_FAULT_TRANSITION_DELAY_MS, 0600,
				   dir, mdev, &transition_delay_fops);
}

/**
 * mtty_mig_fault_debugfs_remove() - remove the instance's fault directory
 * @mdev: instance being removed
 *
 * Waits for file operations in progress, so @mdev may be freed afterwards.
 */
void mtty_mig_fault_debugfs_remove(struct mtty_mig_dev *mdev)
{
	debugfs_remove(mdev->fault.dir);
	mdev->fault.dir = NULL;
}

/**
 * mtty_mig_debugfs_init() - create /sys/kernel/debug/mtty_mig
 *
 * Return: 0 (debugfs errors are ignored, as debugfs users should).
 */
int mtty_mig_debugfs_init(void)
{
	mtty_mig_debugfs_root = debugfs_create_dir(MTTY_MIG_NAME, NULL);
	return 0;
}

/**
 * mtty_mig_debugfs_exit() - remove /sys/kernel/debug/mtty_mig
 */
void mtty_mig_debugfs_exit(void)
{
	debugfs_remove(mtty_mig_debugfs_root);
	mtty_mig_debugfs_root = NULL;
}
