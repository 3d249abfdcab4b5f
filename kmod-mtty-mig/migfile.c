// SPDX-License-Identifier: GPL-2.0
/*
 * The migration data_fd: the saving file (read, poll,
 * VFIO_MIG_GET_PRECOPY_INFO) and the lifetime of both files; the resuming
 * file's write side is in resumefile.c.  The simulation (rates, load cost, injected failures) is in
 * sim.c, called through its hooks.
 *
 * Each file has its own lock (migf->lock) protecting its buffers and
 * position; read/write/ioctl/poll take only that lock, never state_lock, so
 * copy_to_user()/copy_from_user() never run under the FSM lock (the
 * hisi/pds 2024 shape).  The FSM ends a session with
 * mtty_mig_file_disable(), after which every call fails with -ENODEV and
 * the file no longer touches the device (which may then be freed).
 *
 * Saving stream: the initial data is HEADER + METADATA (built when the
 * session starts) and then one PAGE record per page of device memory, the
 * first full image (memory.c's first pass).  PRECOPY_INFO reports what is
 * left of it as initial_bytes, which only ever decreases.  Then PAGE
 * records of pages written after they were sent are produced one at a time
 * from the dirty bitmap: dirty_bytes, which starts at zero.  In STOP_COPY
 * the SERIAL, DEVICE and END records follow the last page.  In PRE_COPY a
 * read with nothing to give returns -ENOMSG; in STOP_COPY a read after END
 * returns 0.
 *
 * REINIT (mtty_mig_save_reinit()): if the user opted in to
 * VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 before the session started, a new
 * metadata_size written in PRE_COPY is new initial data: REINIT and a new
 * METADATA follow the record being read, the first pass starts again from
 * page 0 and the dirty bitmap is cleared.  The next PRECOPY_INFO reports
 * VFIO_PRECOPY_INFO_REINIT with the new initial_bytes and dirty_bytes 0.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/delay.h>

#include "migfile.h"
#include "sim.h"
#include "trace.h"

void mtty_mig_file_free(struct mtty_mig_file *migf)
{
	kvfree(migf->initial);
	kvfree(migf->reinit);
	kfree(migf->rec);
	mtty_mig_parser_destroy(&migf->parser);
	kfree(migf->bounce);
	mutex_destroy(&migf->lock);
	kfree(migf);
}

int mtty_mig_file_release(struct inode *inode, struct file *filp)
{
	mtty_mig_file_free(filp->private_data);
	return 0;
}

/* ---- saving ----------------------------------------------------------- */

/* Build the next record into migf->rec.  Return: false if none is due. */
static bool mtty_mig_save_produce(struct mtty_mig_file *migf)
{
	struct mtty_mig_dev *mdev = migf->mdev;
	u8 *payload = migf->rec + MTTY_MIG_REC_HDR_SIZE;
	struct mtty_mig_rec_page *page = (void *)payload;
	struct mtty_mig_rec_end *end = (void *)payload;
	unsigned long index;
	u16 type;
	u32 len;

	lockdep_assert_held(&migf->lock);

	migf->rec_initial = false;
	if (mtty_mig_mem_take_first(mdev, &index, page + 1)) {
		page->index = cpu_to_le64(index);
		type = MTTY_MIG_REC_PAGE;
		len = MTTY_MIG_REC_PAGE_PAYLOAD;
		migf->nr_page_recs++;
		migf->rec_initial = true;
	} else if (mtty_mig_mem_take_dirty(mdev, &migf->cursor, &index,
					   page + 1)) {
		page->index = cpu_to_le64(index);
		type = MTTY_MIG_REC_PAGE;
		len = MTTY_MIG_REC_PAGE_PAYLOAD;
		migf->nr_page_recs++;
	} else if (!migf->stop_copy || migf->final_next > mdev->nr_ports + 1) {
		return false;
	} else if (migf->final_next < mdev->nr_ports) {
		type = MTTY_MIG_REC_SERIAL;
		len = sizeof(struct mtty_mig_rec_serial);
		memcpy(payload, &migf->final_serial[migf->final_next], len);
		migf->final_next++;
	} else if (migf->final_next == mdev->nr_ports) {
		type = MTTY_MIG_REC_DEVICE;
		len = sizeof(struct mtty_mig_rec_device);
		memcpy(payload, &migf->final_device, len);
		migf->final_next++;
	} else {
		type = MTTY_MIG_REC_END;
		len = sizeof(struct mtty_mig_rec_end);
		memset(end, 0, len);
		end->nr_pages = cpu_to_le64(migf->nr_page_recs);
		end->nr_records = cpu_to_le32(migf->next_seq);
		migf->final_next++;
	}

	trace_mtty_mig_record(migf_name(migf), true, type, migf->next_seq, len);
	migf->rec_len = mtty_mig_rec_seal(migf->rec, type, migf->next_seq++,
					  len);
	migf->rec_pos = 0;
	return true;
}

/*
 * What the session still owes, split as PRECOPY_INFO reports it: the rest
 * of the initial data (HEADER, METADATA and the first full image) and the
 * pages written since they were sent.  Final records are not counted.
 */
static void mtty_mig_save_owed(struct mtty_mig_file *migf, u64 *initial,
			       u64 *dirty)
{
	unsigned long first_left, nr_dirty;
	u64 rec_left = migf->rec_len - migf->rec_pos;

	lockdep_assert_held(&migf->lock);
	mtty_mig_mem_pending(migf->mdev, &first_left, &nr_dirty);
	*initial = (migf->initial_len - migf->initial_pos) +
		   (migf->rec_initial ? rec_left : 0) +
		   (migf->reinit_len - migf->reinit_pos) +
		   (u64)first_left * MTTY_MIG_PAGE_REC_SIZE;
	*dirty = (migf->rec_initial ? 0 : rec_left) +
		 (u64)nr_dirty * MTTY_MIG_PAGE_REC_SIZE;
}

static ssize_t mtty_mig_save_read(struct file *filp, char __user *ubuf,
				  size_t len, loff_t *ppos)
{
	struct mtty_mig_file *migf = filp->private_data;
	unsigned int sleep_ms = 0;
	bool fault = false;
	size_t done = 0;
	ssize_t ret;
	int err;

	mutex_lock(&migf->lock);
	if (migf->disabled) {
		mutex_unlock(&migf->lock);
		return -ENODEV;
	}

	/* A short read is a normal stream read: bound the lock hold. */
	len = min_t(size_t, len, MTTY_MIG_IO_MAX);
	len = mtty_mig_sim_io_limit(migf->mdev, true, migf->pos, len, &err);
	if (err) {
		ret = err;
		goto out_unlock;
	}

	while (done < len) {
		size_t *pos, avail, n;
		const u8 *src;

		if (migf->initial_pos < migf->initial_len) {
			src = migf->initial + migf->initial_pos;
			avail = migf->initial_len - migf->initial_pos;
			pos = &migf->initial_pos;
		} else if (migf->rec_pos < migf->rec_len) {
			src = migf->rec + migf->rec_pos;
			avail = migf->rec_len - migf->rec_pos;
			pos = &migf->rec_pos;
		} else if (migf->reinit_pos < migf->reinit_len) {
			src = migf->reinit + migf->reinit_pos;
			avail = migf->reinit_len - migf->reinit_pos;
			pos = &migf->reinit_pos;
		} else if (mtty_mig_save_produce(migf)) {
			continue;
		} else {
			break;
		}

		n = min(avail, len - done);
		if (copy_to_user(ubuf + done, src, n)) {
			fault = true;
			break;
		}
		*pos += n;
		done += n;
	}

	if (done) {
		migf->pos += done;
		ret = done;
		sleep_ms = mtty_mig_sim_io_pace(migf->mdev, &migf->pace, true,
						migf->pos, done);
	} else if (fault) {
		ret = -EFAULT;
	} else if (migf->stop_copy) {
		ret = 0;		/* permanent end of stream */
	} else {
		ret = len ? -ENOMSG : 0;	/* temporary end in PRE_COPY */
	}

out_unlock:
	trace_mtty_mig_save_read(migf_name(migf), len, migf->pos, ret);
	mutex_unlock(&migf->lock);
	if (sleep_ms)
		msleep_interruptible(sleep_ms);
	return ret;
}

/*
 * VFIO_MIG_GET_PRECOPY_INFO.  The input checks are those of the 7.1 core's
 * vfio_check_precopy_ioctl(), done here on every kernel and before
 * migf->lock: that helper reads the vfio_device, which this file may
 * outlive, and a copy-in under migf->lock could hold it (and a
 * VFIO_DEVICE_RESET waiting for it) for as long as the user's page takes.
 * The REINIT report is consumed only once the answer reached the user.
 */
static long mtty_mig_precopy_ioctl(struct file *filp, unsigned int cmd,
				   unsigned long arg)
{
	struct mtty_mig_file *migf = filp->private_data;
	unsigned long minsz = offsetofend(struct vfio_precopy_info, dirty_bytes);
	struct vfio_precopy_info info;
	u64 initial, dirty;
	bool reinit;

	if (cmd != VFIO_MIG_GET_PRECOPY_INFO)
		return -ENOTTY;
	if (copy_from_user(&info, (void __user *)arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;

	scoped_guard(mutex, &migf->lock) {
		/* A reset or close killed the session: -ENODEV. */
		if (migf->disabled && !migf->ended_by_fsm)
			return -ENODEV;
		/* Valid only in PRE_COPY and PRE_COPY_P2P. */
		if (migf->disabled || migf->stop_copy)
			return -EINVAL;
		mtty_mig_save_owed(migf, &initial, &dirty);
		/* Reported once, and only to a user who opted in. */
		reinit = migf->reinit_report;
		migf->reinit_report = false;
	}
	info.initial_bytes = initial;
	info.dirty_bytes = dirty;
	/*
	 * Without the opt-in flags is reserved: never echo the input back
	 * (vfio_check_precopy_ioctl() leaves it as the user wrote it).
	 */
	info.flags = reinit ? VFIO_PRECOPY_INFO_REINIT : 0;
	if (copy_to_user((void __user *)arg, &info, minsz)) {
		/* Not seen: the next call reports it. */
		if (reinit) {
			guard(mutex)(&migf->lock);
			migf->reinit_report = true;
		}
		return -EFAULT;
	}
	return 0;
}

static __poll_t mtty_mig_save_poll(struct file *filp,
				   struct poll_table_struct *wait)
{
	struct mtty_mig_file *migf = filp->private_data;
	u64 initial, dirty;

	poll_wait(filp, &migf->wq, wait);

	guard(mutex)(&migf->lock);
	if (migf->disabled)
		return EPOLLIN | EPOLLRDNORM | EPOLLERR;
	/* STOP_COPY is always readable: data or the end of stream. */
	if (migf->stop_copy)
		return EPOLLIN | EPOLLRDNORM;
	mtty_mig_save_owed(migf, &initial, &dirty);
	return initial || dirty ? EPOLLIN | EPOLLRDNORM : 0;
}

const struct file_operations mtty_mig_save_fops = {
	.owner = THIS_MODULE,
	.read = mtty_mig_save_read,
	.poll = mtty_mig_save_poll,
	.unlocked_ioctl = mtty_mig_precopy_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = mtty_mig_file_release,
};

/* ---- lifetime (called by migration.c under state_lock) ---------------- */

struct mtty_mig_file *mtty_mig_file_alloc(struct mtty_mig_dev *mdev,
					  bool saving)
{
	struct mtty_mig_file *migf;

	migf = kzalloc(sizeof(*migf), GFP_KERNEL_ACCOUNT);
	if (!migf)
		return NULL;
	mutex_init(&migf->lock);
	init_waitqueue_head(&migf->wq);
	migf->mdev = mdev;
	migf->saving = saving;
	return migf;
}

/* Last step of creation: nothing may fail after the file exists. */
int mtty_mig_file_open(struct mtty_mig_file *migf)
{
	migf->filp = anon_inode_getfile(migf->saving ? "mtty_mig_save" :
					"mtty_mig_resume",
					migf->saving ? &mtty_mig_save_fops :
					&mtty_mig_resume_fops,
					migf,
					migf->saving ? O_RDONLY : O_WRONLY);
	if (IS_ERR(migf->filp))
		return PTR_ERR(migf->filp);
	stream_open(migf->filp->f_inode, migf->filp);
	return 0;
}

/**
 * mtty_mig_save_create() - start a saving session
 * @mdev: instance, in STOP or RUNNING(_P2P), state_lock held
 *
 * Builds HEADER + METADATA and starts the first pass.  The returned file
 * holds the driver's reference; the FSM hands out a second one as data_fd.
 *
 * Return: the file or an ERR_PTR.
 */
struct mtty_mig_file *mtty_mig_save_create(struct mtty_mig_dev *mdev)
{
	struct mtty_mig_file *migf;
	int ret = -ENOMEM;

	lockdep_assert_held(&mdev->state_lock);

	migf = mtty_mig_file_alloc(mdev, true);
	if (!migf)
		return ERR_PTR(-ENOMEM);
	migf->rec = kmalloc(MTTY_MIG_PAGE_REC_SIZE, GFP_KERNEL_ACCOUNT);
	if (!migf->rec)
		goto err_free;
	/* Only an opted-in user can be told of a REINIT: stream 1.1. */
	migf->reinit_ok = mtty_mig_precopy_info_v2(mdev);
	migf->meta_size = READ_ONCE(mdev->tun.metadata_size);
	migf->initial = mtty_mig_stream_build_initial(mdev->nr_ports,
						      mtty_mig_mem_size(mdev),
						      migf->meta_size,
						      migf->reinit_ok ? 1 : 0,
						      &migf->initial_len);
	if (!migf->initial)
		goto err_free;
	migf->next_seq = 2;	/* HEADER and METADATA are 0 and 1 */

	ret = mtty_mig_file_open(migf);
	if (ret)
		goto err_free;

	mtty_mig_mem_track_start(mdev, &migf->wq);
	return migf;

err_free:
	mtty_mig_file_free(migf);
	return ERR_PTR(ret);
}

/**
 * mtty_mig_save_stop_copy() - the device stopped: queue the final records
 * @migf: saving file
 *
 * Snapshots the serial ports and the engine sequence numbers; they are
 * sent after the last dirty page, followed by END.
 */
void mtty_mig_save_stop_copy(struct mtty_mig_file *migf)
{
	struct mtty_mig_dev *mdev = migf->mdev;
	u64 seq, p2p_seq;
	unsigned int i;

	scoped_guard(mutex, &migf->lock) {
		for (i = 0; i < mdev->nr_ports; i++)
			mtty_mig_serial_save(mdev, i, &migf->final_serial[i]);
		mtty_mig_engine_get_seq(mdev, &seq, &p2p_seq);
		migf->final_device.engine_seq = cpu_to_le64(seq);
		migf->final_device.p2p_seq = cpu_to_le64(p2p_seq);
		migf->stop_copy = true;
		migf->final_next = 0;
	}
	wake_up_interruptible_all(&migf->wq);
}

/**
 * mtty_mig_save_reinit() - the device was reconfigured: new initial data
 * @migf: saving file of a device in PRE_COPY, state_lock held
 * @metadata_size: the new METADATA payload size
 *
 * Queues REINIT + METADATA after the record being read, restarts the first
 * pass and clears the dirty bitmap; the record being read becomes part of
 * the new initial data.  A REINIT queued and not started yet is replaced
 * (same record numbers).
 *
 * Return: 1 if a REINIT was queued, 0 if the session cannot carry one (no
 * opt-in at its start, or it is ending) or already carries @metadata_size,
 * -EBUSY while a REINIT is half read, -ENOMEM.
 */
int mtty_mig_save_reinit(struct mtty_mig_file *migf, u32 metadata_size)
{
	struct mtty_mig_dev *mdev = migf->mdev;
	size_t len;
	u32 seq;
	u8 *buf;

	lockdep_assert_held(&mdev->state_lock);
	guard(mutex)(&migf->lock);
	if (!migf->reinit_ok || migf->disabled || migf->stop_copy)
		return 0;
	/* The stream's size, not the attribute's (written in PRE_COPY_P2P). */
	if (metadata_size == migf->meta_size)
		return 0;
	if (migf->reinit_pos && migf->reinit_pos < migf->reinit_len)
		return -EBUSY;
	/* A queued REINIT nobody read yet keeps its record numbers. */
	seq = migf->reinit && !migf->reinit_pos ? migf->reinit_seq :
						  migf->next_seq;
	buf = mtty_mig_stream_build_reinit(mdev->nr_ports,
					   mtty_mig_mem_size(mdev),
					   metadata_size, seq, &len);
	if (!buf)
		return -ENOMEM;
	kvfree(migf->reinit);
	migf->reinit = buf;
	migf->reinit_len = len;
	migf->reinit_pos = 0;
	migf->reinit_seq = seq;
	migf->meta_size = metadata_size;
	migf->next_seq = seq + 2;
	migf->rec_initial = true;
	migf->reinit_report = true;
	mtty_mig_mem_track_start(mdev, &migf->wq);
	atomic64_inc(&mdev->cnt.reinits);
	trace_mtty_mig_record(migf_name(migf), true, MTTY_MIG_REC_REINIT, seq,
			      sizeof(struct mtty_mig_rec_reinit));
	wake_up_interruptible_all(&migf->wq);
	return 1;
}

/**
 * mtty_mig_save_pending() - bytes the saving file would still yield
 * @migf: saving file
 *
 * The rest of the initial data, one PAGE record per dirty page and, until
 * sent, the final records: what STOP_COPY would produce if entered now.
 *
 * Return: bytes.
 */
u64 mtty_mig_save_pending(struct mtty_mig_file *migf)
{
	struct mtty_mig_dev *mdev = migf->mdev;
	u64 pending, initial, dirty;
	unsigned int i;

	guard(mutex)(&migf->lock);
	if (migf->disabled)
		return 0;
	mtty_mig_save_owed(migf, &initial, &dirty);
	pending = initial + dirty;
	/* Final records not produced yet (all of them before STOP_COPY). */
	for (i = migf->stop_copy ? migf->final_next : 0;
	     i <= mdev->nr_ports + 1; i++)
		pending += MTTY_MIG_REC_HDR_SIZE +
			   (i < mdev->nr_ports ?
			    sizeof(struct mtty_mig_rec_serial) :
			    i == mdev->nr_ports ?
			    sizeof(struct mtty_mig_rec_device) :
			    sizeof(struct mtty_mig_rec_end));
	return pending;
}

/**
 * mtty_mig_stop_copy_estimate() - stop-copy size without a session
 * @mdev: instance
 *
 * Return: initial data + every page + final records.
 */
u64 mtty_mig_stop_copy_estimate(struct mtty_mig_dev *mdev)
{
	return mtty_mig_stream_initial_size(READ_ONCE(mdev->tun.metadata_size)) +
	       (u64)MTTY_MIG_NR_PAGES(mtty_mig_mem_size(mdev)) *
	       MTTY_MIG_PAGE_REC_SIZE +
	       mtty_mig_stream_final_size(mdev->nr_ports);
}

/**
 * mtty_mig_file_disable() - end a session and drop the driver's reference
 * @migf: saving or resuming file
 * @by_fsm: ended by an FSM arc (PRECOPY_INFO then says -EINVAL) rather
 *	    than by reset or close (-ENODEV)
 *
 * Waits for a read/write in progress.  Afterwards the file never touches
 * the device again.
 */
void mtty_mig_file_disable(struct mtty_mig_file *migf, bool by_fsm)
{
	struct mtty_mig_dev *mdev = migf->mdev;

	scoped_guard(mutex, &migf->lock) {
		migf->disabled = true;
		migf->ended_by_fsm = by_fsm;
		kvfree(migf->initial);
		migf->initial = NULL;
		migf->initial_len = 0;
		migf->initial_pos = 0;
		kvfree(migf->reinit);
		migf->reinit = NULL;
		migf->reinit_len = 0;
		migf->reinit_pos = 0;
	}
	if (migf->saving)
		mtty_mig_mem_dirty_stop(mdev);
	wake_up_interruptible_all(&migf->wq);
	fput(migf->filp);
}

/**
 * mtty_mig_file_get() - a new reference to the file, to become the data_fd
 * @migf: saving or resuming file
 *
 * Return: the file with an extra reference.
 */
struct file *mtty_mig_file_get(struct mtty_mig_file *migf)
{
	return get_file(migf->filp);
}
