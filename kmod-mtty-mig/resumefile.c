// SPDX-License-Identifier: GPL-2.0
/*
 * The resuming data_fd: write() feeds the incremental parser (stream.c),
 * which hands over each record once it is checked; PAGE records are
 * applied at once, SERIAL and DEVICE at RESUMING -> STOP
 * (mtty_mig_resume_finish()).  Locking and lifetime as in migfile.c.
 */
#include <linux/delay.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "migfile.h"
#include "sim.h"
#include "trace.h"

static void mtty_mig_resume_apply(struct mtty_mig_file *migf,
				  const struct mtty_mig_record *rec,
				  unsigned int *sleep_ms)
{
	const struct mtty_mig_rec_page *page = rec->payload;
	struct mtty_mig_dev *mdev = migf->mdev;

	trace_mtty_mig_record(migf_name(migf), false, rec->type, rec->seq,
			      rec->length);
	/* SERIAL and DEVICE are applied at RESUMING -> STOP. */
	if (rec->type == MTTY_MIG_REC_PAGE)
		mtty_mig_mem_write_page(mdev, le64_to_cpu(page->index),
					page + 1);
	*sleep_ms += mtty_mig_sim_record_loaded(mdev, rec->type);
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

	/* A short write is a normal stream write: bound the lock hold. */
	limit = mtty_mig_sim_io_limit(migf->mdev, false, migf->pos,
				      min_t(size_t, len, MTTY_MIG_IO_MAX), &err);
	if (err) {
		mtty_mig_parser_abort(&migf->parser, err,
				      "injected resume failure");
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
		sleep_ms += mtty_mig_sim_io_pace(migf->mdev, &migf->pace, false,
						 migf->pos, done);

out_unlock:
	trace_mtty_mig_resume_write(migf_name(migf), len, migf->pos, ret);
	mutex_unlock(&migf->lock);
	if (sleep_ms)
		msleep_interruptible(sleep_ms);
	return ret;
}

const struct file_operations mtty_mig_resume_fops = {
	.owner = THIS_MODULE,
	.write = mtty_mig_resume_write,
	.release = mtty_mig_file_release,
};

/* ---- lifetime (called by migration.c under state_lock) ---------------- */

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
 * The file is switched off in the same migf->lock hold: a write()
 * racing with RESUMING -> STOP is ordered either before it (and counts) or
 * after it (-ENODEV), never told the stream is truncated.
 *
 * Return: 0 once the serial ports and the engine state are loaded; the
 * stream's latched error; or -EINVAL if it ended before END.  On error the
 * serial ports and the engine state are not applied (PAGE records were,
 * as they arrived: the device goes to ERROR until reset).
 */
int mtty_mig_resume_finish(struct mtty_mig_file *migf)
{
	struct mtty_mig_parser *p = &migf->parser;
	struct mtty_mig_dev *mdev = migf->mdev;
	unsigned int i;
	int ret;

	guard(mutex)(&migf->lock);
	migf->disabled = true;
	migf->ended_by_fsm = true;
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
