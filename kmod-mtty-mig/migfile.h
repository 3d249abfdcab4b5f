/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The migration file shared by migfile.c (saving, lifetime) and
 * resumefile.c (resuming): one data_fd session and its lock.
 */
#ifndef MTTY_MIG_MIGFILE_H
#define MTTY_MIG_MIGFILE_H

#include <linux/fs.h>
#include <linux/mutex.h>
#include <linux/wait.h>

#include "mtty_mig.h"
#include "sim.h"
#include "stream.h"

struct mtty_mig_file {
	struct file *filp;
	struct mtty_mig_dev *mdev;	/* only used while !disabled */
	struct mutex lock;		/* protects everything below */
	wait_queue_head_t wq;		/* poll: data, STOP_COPY, disable */
	bool saving;
	bool disabled;
	bool ended_by_fsm;		/* disabled by an FSM arc, not reset */
	u64 pos;			/* stream bytes read or written */

	struct mtty_mig_pace pace;	/* sim.c: save_rate / resume_rate */

	/* Saving. */
	u8 *initial;			/* HEADER + METADATA records */
	size_t initial_len;
	size_t initial_pos;
	bool reinit_ok;			/* opted in at start: stream 1.1 */
	bool reinit_report;		/* REINIT not reported yet */
	u8 *reinit;			/* REINIT + METADATA records */
	size_t reinit_len;
	size_t reinit_pos;
	u32 reinit_seq;			/* seq of the REINIT record */
	u32 meta_size;			/* METADATA size the stream carries now */
	u8 *rec;			/* the record being read */
	size_t rec_len;
	size_t rec_pos;
	bool rec_initial;		/* migf->rec is part of the first image */
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

static inline const char *migf_name(struct mtty_mig_file *migf)
{
	return dev_name(mtty_mig_dev(migf->mdev));
}

extern const struct file_operations mtty_mig_save_fops;
extern const struct file_operations mtty_mig_resume_fops;

struct mtty_mig_file *mtty_mig_file_alloc(struct mtty_mig_dev *mdev,
					  bool saving);
int mtty_mig_file_open(struct mtty_mig_file *migf);
void mtty_mig_file_free(struct mtty_mig_file *migf);
int mtty_mig_file_release(struct inode *inode, struct file *filp);

#endif /* MTTY_MIG_MIGFILE_H */
