/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The simulation hooks: what makes mtty_mig behave like a real device that
 * is slow and sometimes fails.  The essential files (migration.c,
 * migfile.c) call only these; a vendor driver has none of it, so read
 * those files as if every hook were a no-op (0 ms, no limit, no error).
 *
 * Every delay is returned or slept with no lock held, interruptibly.
 */
#ifndef MTTY_MIG_SIM_H
#define MTTY_MIG_SIM_H

#include <linux/ktime.h>
#include <linux/types.h>
#include <linux/vfio.h>

struct mtty_mig_dev;

/* Pacing of one data_fd to save_rate or resume_rate. */
struct mtty_mig_pace {
	u64 rate;		/* bytes/s the pace was started with */
	ktime_t t0;		/* when it started */
	u64 pos0;		/* stream position then */
};

/* Before an FSM transition to @new, no lock held: sleeps its latency. */
void mtty_mig_sim_transition_delay(struct mtty_mig_dev *mdev,
				   enum vfio_device_mig_state new);

/* At each FSM step (state_lock held). Return: 0 or an injected -errno. */
int mtty_mig_sim_step(struct mtty_mig_dev *mdev,
		      enum vfio_device_mig_state next);

/*
 * Before a data_fd read (@save) or write moves @len bytes at stream
 * position @pos.  Return: how many may move; *@err = -EIO once an
 * injected failure fires.
 */
size_t mtty_mig_sim_io_limit(struct mtty_mig_dev *mdev, bool save, u64 pos,
			     size_t len, int *err);

/*
 * After a data_fd read or write moved @done bytes, the stream now at @pos.
 * Return: milliseconds the caller sleeps after dropping its lock.
 */
unsigned int mtty_mig_sim_io_pace(struct mtty_mig_dev *mdev,
				  struct mtty_mig_pace *pace, bool save,
				  u64 pos, size_t done);

/* After the destination loaded a record of @type.  Return: ms to sleep. */
unsigned int mtty_mig_sim_record_loaded(struct mtty_mig_dev *mdev, u16 type);

#endif /* MTTY_MIG_SIM_H */
