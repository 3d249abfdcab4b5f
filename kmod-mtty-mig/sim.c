// SPDX-License-Identifier: GPL-2.0
/*
 * The simulation hooks (sim.h): transition latency, data_fd pacing and
 * the initial-load cost, from the sysfs tunables; injected faults come
 * from fault.c (debugfs).
 *
 *   stop_copy_latency_ms  entering STOP_COPY takes this long
 *   transition_delay_ms   every FSM step takes this long (debugfs)
 *   save_rate             bytes/s a saving data_fd yields
 *   resume_rate           bytes/s a resuming data_fd accepts
 *   initial_load_ms       loading METADATA takes this long (preallocation)
 */
#include <linux/bits.h>
#include <linux/delay.h>
#include <linux/math64.h>
#include <linux/minmax.h>

#include "mtty_mig.h"
#include "sim.h"

/**
 * mtty_mig_sim_transition_delay() - sleep the latency of a transition
 * @mdev: instance
 * @new: target state of the whole transition
 *
 * transition_delay_ms per step of the path the core would take now, plus
 * stop_copy_latency_ms if the path enters STOP_COPY: a latency of the
 * request, slept before it takes state_lock (if a reset moves the device
 * meanwhile, the path then taken may differ), interruptibly: get_state, MIG_DATA_SIZE,
 * the state attribute and VFIO_DEVICE_RESET never wait for it, and the
 * caller still sees the transition take that long.  A signal ends the
 * sleep early; the transition then proceeds.
 */
void mtty_mig_sim_transition_delay(struct mtty_mig_dev *mdev,
				   enum vfio_device_mig_state new)
{
	u32 step_ms = mtty_mig_fault_step_delay_ms(mdev);
	enum vfio_device_mig_state cur, next;
	unsigned int ms = 0;

	scoped_guard(mutex, &mdev->state_lock) {
		for (cur = mdev->state;
		     cur != new && cur != VFIO_DEVICE_STATE_ERROR; cur = next) {
			if (vfio_mig_get_next_state(&mdev->vdev, cur, new,
						    &next))
				break;
			ms += step_ms;
			if (next == VFIO_DEVICE_STATE_STOP_COPY)
				ms += READ_ONCE(mdev->tun.stop_copy_latency_ms);
		}
	}
	if (ms)
		msleep_interruptible(ms);
}

/**
 * mtty_mig_sim_step() - an FSM step is about to run
 * @mdev: instance, state_lock held
 * @next: target state of the step
 *
 * Return: 0, or the errno of an armed fail_state for @next (fault.c).
 */
int mtty_mig_sim_step(struct mtty_mig_dev *mdev,
		      enum vfio_device_mig_state next)
{
	int err;

	lockdep_assert_held(&mdev->state_lock);
	err = mtty_mig_fault_take_state(mdev, next);
	if (err)
		dev_info_ratelimited(mtty_mig_dev(mdev),
				     "injected failure entering %s: %d\n",
				     mtty_mig_state_name(next), err);
	return err;
}

/**
 * mtty_mig_sim_io_limit() - how much of a data_fd transfer may happen
 * @mdev: instance
 * @save: saving (read) or resuming (write)
 * @pos: stream bytes already moved on this data_fd
 * @len: bytes the caller wants to move now
 * @err: set to -EIO once fail_save_after/fail_resume_after fires
 *
 * Return: bytes that may move.
 */
size_t mtty_mig_sim_io_limit(struct mtty_mig_dev *mdev, bool save, u64 pos,
			     size_t len, int *err)
{
	len = mtty_mig_fault_limit(mdev, save, pos, len, err);
	if (*err)
		dev_info_ratelimited(mtty_mig_dev(mdev),
				     "injected %s failure after %llu bytes\n",
				     save ? "save" : "resume", pos);
	return len;
}

/* A paced link does not bank more idle time than this. */
#define MTTY_MIG_PACE_BURST_NS	(10 * NSEC_PER_MSEC)
/*
 * The pace restarts every this many bytes, so bytes * NSEC_PER_SEC / rate
 * always fits in 64 bits (mul_u64_u64_div_u64() traps on x86 otherwise).
 */
#define MTTY_MIG_PACE_SPAN	BIT_ULL(32)

/**
 * mtty_mig_sim_io_pace() - pace a data_fd to save_rate or resume_rate
 * @mdev: instance
 * @pace: the data_fd's pacing state (under the data_fd's lock)
 * @save: saving (save_rate) or resuming (resume_rate)
 * @pos: stream position after the transfer
 * @done: bytes the transfer moved
 *
 * Return: milliseconds the caller must sleep (after dropping its lock) so
 * the stream goes no faster than the rate; 0 if unlimited.
 */
unsigned int mtty_mig_sim_io_pace(struct mtty_mig_dev *mdev,
				  struct mtty_mig_pace *pace, bool save,
				  u64 pos, size_t done)
{
	u64 rate = save ? READ_ONCE(mdev->tun.save_rate) :
			  READ_ONCE(mdev->tun.resume_rate);
	ktime_t now = ktime_get();
	u64 due, elapsed;

	if (!rate || !done) {
		pace->rate = rate;
		return 0;
	}
	/* One call moves at most MTTY_MIG_IO_MAX bytes: done < SPAN. */
	if (rate != pace->rate || pos - done - pace->pos0 >= MTTY_MIG_PACE_SPAN) {
		pace->rate = rate;
		pace->t0 = now;
		pace->pos0 = pos - done;
	}
	due = mul_u64_u64_div_u64(pos - done - pace->pos0, NSEC_PER_SEC, rate);
	elapsed = ktime_to_ns(ktime_sub(now, pace->t0));
	/*
	 * A device link does not bank idle time: after a pause (the user read
	 * another device meanwhile) the pace restarts with at most
	 * MTTY_MIG_PACE_BURST_NS of credit, instead of letting the device
	 * burst at CPU speed until it has caught up with the clock.
	 */
	if (elapsed > due + MTTY_MIG_PACE_BURST_NS) {
		elapsed = due + MTTY_MIG_PACE_BURST_NS;
		pace->t0 = ktime_sub_ns(now, elapsed);
	}
	due += mul_u64_u64_div_u64(done, NSEC_PER_SEC, rate);
	if (due <= elapsed)
		return 0;
	return min_t(u64, DIV_ROUND_UP_ULL(due - elapsed, NSEC_PER_MSEC),
		     MTTY_MIG_DELAY_MAX_MS);
}

/**
 * mtty_mig_sim_record_loaded() - the destination loaded a record
 * @mdev: instance
 * @type: enum mtty_mig_rec_type
 *
 * Return: initial_load_ms after METADATA (simulated preallocation of what
 * it describes), else 0.
 */
unsigned int mtty_mig_sim_record_loaded(struct mtty_mig_dev *mdev, u16 type)
{
	return type == MTTY_MIG_REC_METADATA ?
	       READ_ONCE(mdev->tun.initial_load_ms) : 0;
}
