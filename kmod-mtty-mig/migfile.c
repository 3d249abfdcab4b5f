// SPDX-License-Identifier: GPL-2.0
/*
 * The migration data_fd: the saving file (read, poll,
 * VFIO_MIG_GET_PRECOPY_INFO) and the resuming file (write), their
 * lifetime, throttling to the configured save/resume rates, and the
 * fault-injection hooks on their I/O.
 *
 * Each file has its own lock (migf->lock) protecting its buffers and
 * position; read/write/ioctl/poll take only that lock, never state_lock, so
 * copy_to_user()/copy_from_user() never run under the FSM lock (the
 * hisi/pds 2024 shape).  The FSM ends a session with
 * mtty_mig_file_disable(), after which every call fails with -ENODEV and
 * the file no longer touches the device (which may then be freed).
 *
 * Saving stream: the initial data (HEADER + METADATA, built when the
 * session starts) is read first; then PAGE records are produced one at a
 * time from the dirty bitmap; in STOP_COPY the SERIAL, DEVICE and END
 * records follow the last dirty page.  In PRE_COPY a read with nothing to
 * give returns -ENOMSG; in STOP_COPY a read after END returns 0.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/delay.h>
#include <linux/math64.h>
#include <linux/ktime.h>

#include "mtty_mig.h"
#include "stream.h"
#include "trace.h"

struct mtty_mig_file {
	struct file *filp;
	struct mtty_mig_dev *mdev;	/* only used while !disabled */
	struct mutex lock;		/* protects everything below */
	wait_queue_head_t wq;		/* poll: data, STOP_COPY, disable */
	bool saving;
	bool disabled;
	bool ended_by_fsm;		/* disabled by an FSM arc, not reset */
	u64 pos;			/* stream bytes read or written */

	/* Throttling to save_rate / resume_rate. */
	u64 rate;
	ktime_t rate_t0;
	u64 rate_pos0;

	/* Saving. */
	u8 *initial;			/* HEADER + METADATA records */
	size_t initial_len;
	size_t initial_pos;
	u8 *rec;			/* the record being read */
	size_t rec_len;
	size_t rec_pos;
	u32 next_seq;
	u64 nr_page_recs;
	unsigned long cursor;		/* dirty bitmap scan position */
	bool stop_copy;			/* final records may follow */
	unsigned int final_next;	/* SERIAL 0..n-1, DEVICE, END */
	struct mtty_mig_rec_serial final_serial[MTTY_MIG_MAX_PORTS];
	struct mtty_mig_rec_device final_device;

	/* Resuming. */
	struct mtty_mig_parser parser;
	u8 *bounce;
};

#define MTTY_MIG_BOUNCE_SIZE	MTTY_MIG_PAGE_REC_SIZE

static const char *migf_name(struct mtty_mig_file *migf)
{
	return dev_name(mtty_mig_dev(migf->mdev));
}

static void mtty_mig_file_free(struct mtty_mig_file *migf)
{
	kvfree(migf->initial);
	kfree(migf->rec);
	mtty_mig_parser_destroy(&migf->parser);
	kfree(migf->bounce);
	mutex_destroy(&migf->lock);
	kfree(migf);
}

static int mtty_mig_file_release(struct inode *inode, struct file *filp)
{
	mtty_mig_file_free(filp->private_data);
	return 0;
}

#define MTTY_MIG_RATE_BURST_NS	(10 * NSEC_PER_MSEC)

/*
 * Under migf->lock, after @done more bytes moved: how long the caller must
 * sleep (after unlocking) so the stream goes no faster than @rate bytes/s.
 */
static unsigned int mtty_mig_throttle_ms(struct mtty_mig_file *migf, u64 rate,
					 size_t done)
{
	ktime_t now = ktime_get();
	u64 due, elapsed;

	if (!rate || !done) {
		migf->rate = rate;
		return 0;
	}
	if (rate != migf->rate) {
		migf->rate = rate;
		migf->rate_t0 = now;
		migf->rate_pos0 = migf->pos - done;
	}
	due = mul_u64_u64_div_u64(migf->pos - done - migf->rate_pos0,
				  NSEC_PER_SEC, rate);
	elapsed = ktime_to_ns(ktime_sub(now, migf->rate_t0));
	/*
	 * A device link does not bank idle time: after a pause (the user read
	 * another device meanwhile) the pace restarts with at most
	 * MTTY_MIG_RATE_BURST_NS of credit, instead of letting the device
	 * burst at CPU speed until it has caught up with the clock.
	 */
	if (elapsed > due + MTTY_MIG_RATE_BURST_NS) {
		elapsed = due + MTTY_MIG_RATE_BURST_NS;
		migf->rate_t0 = ktime_sub_ns(now, elapsed);
	}
	due += mul_u64_u64_div_u64(done, NSEC_PER_SEC, rate);
	if (due <= elapsed)
		return 0;
	return min_t(u64, DIV_ROUND_UP_ULL(due - elapsed, NSEC_PER_MSEC),
		     MTTY_MIG_DELAY_MAX_MS);
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

	if (mtty_mig_mem_take_dirty(mdev, &migf->cursor, &index, page + 1)) {
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

/* Bytes queued in the file, not counting pages still in the bitmap. */
static u64 mtty_mig_save_queued(struct mtty_mig_file *migf)
{
	return (migf->initial_len - migf->initial_pos) +
	       (migf->rec_len - migf->rec_pos);
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

	len = mtty_mig_fault_limit(migf->mdev, true, migf->pos, len, &err);
	if (err) {
		dev_info_ratelimited(mtty_mig_dev(migf->mdev),
				     "injected save failure after %llu bytes\n",
				     migf->pos);
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
		sleep_ms = mtty_mig_throttle_ms(migf,
						READ_ONCE(migf->mdev->tun.save_rate),
						done);
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

static long mtty_mig_precopy_ioctl(struct file *filp, unsigned int cmd,
				   unsigned long arg)
{
	struct mtty_mig_file *migf = filp->private_data;
	unsigned long minsz = offsetofend(struct vfio_precopy_info, dirty_bytes);
	struct vfio_precopy_info info;

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
		info.initial_bytes = migf->initial_len - migf->initial_pos;
		info.dirty_bytes = (migf->rec_len - migf->rec_pos) +
				   (u64)mtty_mig_mem_nr_dirty(migf->mdev) *
				   MTTY_MIG_PAGE_REC_SIZE;
	}
	/* flags is an input in 6.12; never echo it back. */
	info.flags = 0;
	return copy_to_user((void __user *)arg, &info, minsz) ? -EFAULT : 0;
}

static __poll_t mtty_mig_save_poll(struct file *filp,
				   struct poll_table_struct *wait)
{
	struct mtty_mig_file *migf = filp->private_data;

	poll_wait(filp, &migf->wq, wait);

	guard(mutex)(&migf->lock);
	if (migf->disabled)
		return EPOLLIN | EPOLLRDNORM | EPOLLERR;
	/* STOP_COPY is always readable: data or the end of stream. */
	if (migf->stop_copy || mtty_mig_save_queued(migf) ||
	    mtty_mig_mem_nr_dirty(migf->mdev))
		return EPOLLIN | EPOLLRDNORM;
	return 0;
}

static const struct file_operations mtty_mig_save_fops = {
	.owner = THIS_MODULE,
	.read = mtty_mig_save_read,
	.poll = mtty_mig_save_poll,
	.unlocked_ioctl = mtty_mig_precopy_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = mtty_mig_file_release,
};

/* ---- resuming --------------------------------------------------------- */

static void mtty_mig_resume_apply(struct mtty_mig_file *migf,
				  const struct mtty_mig_record *rec,
				  unsigned int *sleep_ms)
{
	const struct mtty_mig_rec_page *page = rec->payload;
	struct mtty_mig_dev *mdev = migf->mdev;

	trace_mtty_mig_record(migf_name(migf), false, rec->type, rec->seq,
			      rec->length);
	switch (rec->type) {
	case MTTY_MIG_REC_PAGE:
		mtty_mig_mem_write_page(mdev, le64_to_cpu(page->index),
					page + 1);
		break;
	case MTTY_MIG_REC_METADATA:
		/* Simulated preallocation of what the metadata describes. */
		*sleep_ms += READ_ONCE(mdev->tun.initial_load_ms);
		break;
	default:
		/* SERIAL and DEVICE are applied at RESUMING -> STOP. */
		break;
	}
}

static int mtty_mig_resume_feed(struct mtty_mig_file *migf, const u8 *buf,
				size_t len, unsigned int *sleep_ms)
{
	struct mtty_mig_record rec;
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		n = mtty_mig_parse(&migf->parser, buf + off, len - off, &rec);
		if (n < 0) {
			dev_err_ratelimited(mtty_mig_dev(migf->mdev),
					    "resume stream refused at byte %llu: %s (%zd)\n",
					    migf->pos + off, migf->parser.why, n);
			return n;
		}
		off += n;
		if (rec.type)
			mtty_mig_resume_apply(migf, &rec, sleep_ms);
	}
	return 0;
}

static ssize_t mtty_mig_resume_write(struct file *filp, const char __user *ubuf,
				     size_t len, loff_t *ppos)
{
	struct mtty_mig_file *migf = filp->private_data;
	unsigned int sleep_ms = 0;
	size_t done = 0, limit;
	ssize_t ret = 0;
	int err;

	mutex_lock(&migf->lock);
	if (migf->disabled) {
		mutex_unlock(&migf->lock);
		return -ENODEV;
	}
	if (migf->parser.error) {
		ret = migf->parser.error;
		goto out_unlock;
	}

	limit = mtty_mig_fault_limit(migf->mdev, false, migf->pos, len, &err);
	if (err) {
		mtty_mig_parser_abort(&migf->parser, err,
				      "injected resume failure");
		dev_info_ratelimited(mtty_mig_dev(migf->mdev),
				     "injected resume failure after %llu bytes\n",
				     migf->pos);
		ret = err;
		goto out_unlock;
	}

	while (done < limit) {
		size_t n = min_t(size_t, limit - done, MTTY_MIG_BOUNCE_SIZE);

		if (copy_from_user(migf->bounce, ubuf + done, n)) {
			ret = -EFAULT;
			break;
		}
		ret = mtty_mig_resume_feed(migf, migf->bounce, n, &sleep_ms);
		if (ret)
			break;
		done += n;
	}
	migf->pos += done;

	/* A stream error wins over the bytes accepted before it. */
	if (!ret || (ret == -EFAULT && done))
		ret = done;
	if (ret > 0)
		sleep_ms += mtty_mig_throttle_ms(migf,
						 READ_ONCE(migf->mdev->tun.resume_rate),
						 done);

out_unlock:
	trace_mtty_mig_resume_write(migf_name(migf), len, migf->pos, ret);
	mutex_unlock(&migf->lock);
	if (sleep_ms)
		msleep_interruptible(sleep_ms);
	return ret;
}

static const struct file_operations mtty_mig_resume_fops = {
	.owner = THIS_MODULE,
	.write = mtty_mig_resume_write,
	.release = mtty_mig_file_release,
};

/* ---- lifetime (called by migration.c under state_lock) ---------------- */

static struct mtty_mig_file *mtty_mig_file_alloc(struct mtty_mig_dev *mdev,
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
static int mtty_mig_file_open(struct mtty_mig_file *migf)
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
 * Builds the initial data and marks every page dirty.  The returned file
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
	migf->initial = mtty_mig_stream_build_initial(mdev->nr_ports,
						      mtty_mig_mem_size(mdev),
						      READ_ONCE(mdev->tun.metadata_size),
						      &migf->initial_len);
	if (!migf->initial)
		goto err_free;
	migf->next_seq = 2;	/* HEADER and METADATA are 0 and 1 */

	ret = mtty_mig_file_open(migf);
	if (ret)
		goto err_free;

	mtty_mig_mem_dirty_all(mdev, &migf->wq);
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
 * mtty_mig_save_pending() - bytes the saving file would still yield
 * @migf: saving file
 *
 * Queued bytes, one PAGE record per dirty page and, until sent, the final
 * records: what STOP_COPY would produce if entered now.
 *
 * Return: bytes.
 */
u64 mtty_mig_save_pending(struct mtty_mig_file *migf)
{
	struct mtty_mig_dev *mdev = migf->mdev;
	unsigned int i;
	u64 pending;

	guard(mutex)(&migf->lock);
	if (migf->disabled)
		return 0;
	pending = mtty_mig_save_queued(migf) +
		  (u64)mtty_mig_mem_nr_dirty(mdev) * MTTY_MIG_PAGE_REC_SIZE;
	/* Final records not produced yet (all of them before STOP_COPY). */
	for (i = migf->stop_copy ? migf->final_next : 0;
	     i <= mdev->nr_ports + 1; i++)
		pending += MTTY_MIG_REC_HDR_SIZE +
			   (i < mdev->nr_ports ?
			    sizeof(struct mtty_mig_rec_serial) :
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
 * mtty_mig_resume_create() - start a resuming session
 * @mdev: instance in STOP, state_lock held
 *
 * Return: the file or an ERR_PTR.
 */
struct mtty_mig_file *mtty_mig_resume_create(struct mtty_mig_dev *mdev)
{
	struct mtty_mig_file *migf;
	int ret = -ENOMEM;

	lockdep_assert_held(&mdev->state_lock);

	migf = mtty_mig_file_alloc(mdev, false);
	if (!migf)
		return ERR_PTR(-ENOMEM);
	migf->bounce = kmalloc(MTTY_MIG_BOUNCE_SIZE, GFP_KERNEL_ACCOUNT);
	if (!migf->bounce)
		goto err_free;
	ret = mtty_mig_parser_init(&migf->parser, mdev->nr_ports,
				   mtty_mig_mem_size(mdev));
	if (ret)
		goto err_free;
	ret = mtty_mig_file_open(migf);
	if (ret)
		goto err_free;
	return migf;

err_free:
	mtty_mig_file_free(migf);
	return ERR_PTR(ret);
}

/**
 * mtty_mig_resume_finish() - RESUMING -> STOP: check and apply the stream
 * @migf: resuming file
 *
 * Return: 0 once the serial ports and the engine state are loaded; the
 * stream's latched error; or -EINVAL if it ended before END.  On error
 * nothing is applied and the file keeps its error.
 */
int mtty_mig_resume_finish(struct mtty_mig_file *migf)
{
	struct mtty_mig_parser *p = &migf->parser;
	struct mtty_mig_dev *mdev = migf->mdev;
	unsigned int i;
	int ret;

	guard(mutex)(&migf->lock);
	ret = mtty_mig_parser_finish(p);
	if (ret) {
		dev_err_ratelimited(mtty_mig_dev(mdev),
				    "RESUMING -> STOP refused after %llu bytes: %s (%d)\n",
				    migf->pos, p->why, ret);
		return ret;
	}
	for (i = 0; i < mdev->nr_ports; i++)
		mtty_mig_serial_load(mdev, &p->serial[i]);
	mtty_mig_engine_set_seq(mdev, le64_to_cpu(p->device.engine_seq),
				le64_to_cpu(p->device.p2p_seq));
	return 0;
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
