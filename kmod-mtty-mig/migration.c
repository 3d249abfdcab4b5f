// SPDX-License-Identifier: GPL-2.0
/*
 * The migration FSM: vfio_migration_ops (set_state, get_state,
 * get_data_size), one FSM step per arc in mtty_mig_step_state(), the gates
 * each state opens or closes (engine initiation, register and memory
 * access, P2P acceptance), reset, and the state digest.
 *
 * The FSM never knows how state is produced: it asks migfile.c for saving
 * and resuming files and stream.c (through migfile.c) for the records.
 *
 * state_lock protects 'state' and the saving/resuming file pointers and is
 * held for a whole set_state() call.  It is never held across a user copy,
 * so VFIO_DEVICE_RESET simply takes it (no deferred reset).
 */
#include <linux/file.h>
#include <linux/string.h>
#include <linux/kstrtox.h>
#include <linux/mdev.h>

#include "mtty_mig.h"
#include "sim.h"
#include "trace.h"

static const char * const mtty_mig_state_names[] = {
	[VFIO_DEVICE_STATE_ERROR] = "ERROR",
	[VFIO_DEVICE_STATE_STOP] = "STOP",
	[VFIO_DEVICE_STATE_RUNNING] = "RUNNING",
	[VFIO_DEVICE_STATE_STOP_COPY] = "STOP_COPY",
	[VFIO_DEVICE_STATE_RESUMING] = "RESUMING",
	[VFIO_DEVICE_STATE_RUNNING_P2P] = "RUNNING_P2P",
	[VFIO_DEVICE_STATE_PRE_COPY] = "PRE_COPY",
	[VFIO_DEVICE_STATE_PRE_COPY_P2P] = "PRE_COPY_P2P",
};

/**
 * mtty_mig_state_name() - printable name of a migration state
 * @state: state
 *
 * Return: "RUNNING" etc., "INVALID" if out of range.
 */
const char *mtty_mig_state_name(enum vfio_device_mig_state state)
{
	if ((unsigned int)state >= ARRAY_SIZE(mtty_mig_state_names))
		return "INVALID";
	return mtty_mig_state_names[state];
}

/**
 * mtty_mig_state_parse() - parse a state number or (case-insensitive) name
 * @name: "3", "stop_copy", "STOP_COPY"...
 * @state: result
 *
 * Return: 0 or -EINVAL.
 */
int mtty_mig_state_parse(const char *name, enum vfio_device_mig_state *state)
{
	unsigned int i;

	if (!kstrtouint(name, 0, &i)) {
		if (i >= ARRAY_SIZE(mtty_mig_state_names))
			return -EINVAL;
		*state = i;
		return 0;
	}
	for (i = 0; i < ARRAY_SIZE(mtty_mig_state_names); i++) {
		if (!strcasecmp(name, mtty_mig_state_names[i])) {
			*state = i;
			return 0;
		}
	}
	return -EINVAL;
}

static bool mtty_mig_state_runs(enum vfio_device_mig_state state)
{
	return state == VFIO_DEVICE_STATE_RUNNING ||
	       state == VFIO_DEVICE_STATE_RUNNING_P2P ||
	       state == VFIO_DEVICE_STATE_PRE_COPY ||
	       state == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

static bool mtty_mig_state_initiates(enum vfio_device_mig_state state)
{
	return state == VFIO_DEVICE_STATE_RUNNING ||
	       state == VFIO_DEVICE_STATE_PRE_COPY;
}

/*
 * Make the device behave as @state: whether the engine may initiate writes,
 * whether registers and memory accept accesses and peer writes.  Each
 * setter waits for its lock, so when this returns nothing started under
 * the previous state is still running.
 */
static void mtty_mig_apply_gates(struct mtty_mig_dev *mdev,
				 enum vfio_device_mig_state state)
{
	bool runs = mtty_mig_state_runs(state);

	mtty_mig_engine_set_initiate(mdev, mtty_mig_state_initiates(state));
	mtty_mig_mem_set_running(mdev, runs);
	mtty_mig_serial_set_running(mdev, runs);
}

/**
 * mtty_mig_get_state_locked() - current state, for sysfs
 * @mdev: instance
 *
 * Return: the state, read under state_lock.
 */
enum vfio_device_mig_state mtty_mig_get_state_locked(struct mtty_mig_dev *mdev)
{
	guard(mutex)(&mdev->state_lock);
	return mdev->state;
}

static void mtty_mig_end_saving(struct mtty_mig_dev *mdev, bool by_fsm)
{
	lockdep_assert_held(&mdev->state_lock);
	if (mdev->saving) {
		mtty_mig_file_disable(mdev->saving, by_fsm);
		mdev->saving = NULL;
	}
}

static void mtty_mig_end_resuming(struct mtty_mig_dev *mdev, bool by_fsm)
{
	lockdep_assert_held(&mdev->state_lock);
	if (mdev->resuming) {
		mtty_mig_file_disable(mdev->resuming, by_fsm);
		mdev->resuming = NULL;
	}
}

static struct file *mtty_mig_start_saving(struct mtty_mig_dev *mdev,
					  bool stop_copy)
{
	struct mtty_mig_file *migf;

	migf = mtty_mig_save_create(mdev);
	if (IS_ERR(migf))
		return ERR_CAST(migf);
	mdev->saving = migf;
	if (stop_copy)
		mtty_mig_save_stop_copy(migf);
	return mtty_mig_file_get(migf);
}

/*
 * One arc of the FSM, cur -> new, with the gates for @new already applied.
 * vfio_mig_get_next_state() only ever asks for the arcs below when
 * STOP_COPY, P2P and PRE_COPY are all supported.
 *
 * Return: NULL, a new data_fd file, or an ERR_PTR (state unchanged).
 */
static struct file *mtty_mig_arc(struct mtty_mig_dev *mdev,
				 enum vfio_device_mig_state cur,
				 enum vfio_device_mig_state new)
{
	struct mtty_mig_file *migf;
	int ret;

	/* RUNNING -> RUNNING_P2P: the engine stops initiating peer writes. */
	if (cur == VFIO_DEVICE_STATE_RUNNING &&
	    new == VFIO_DEVICE_STATE_RUNNING_P2P)
		return NULL;

	/* RUNNING_P2P -> RUNNING: the engine may initiate again. */
	if (cur == VFIO_DEVICE_STATE_RUNNING_P2P &&
	    new == VFIO_DEVICE_STATE_RUNNING)
		return NULL;

	/* RUNNING_P2P -> STOP: registers, memory and peer writes freeze. */
	if (cur == VFIO_DEVICE_STATE_RUNNING_P2P &&
	    new == VFIO_DEVICE_STATE_STOP)
		return NULL;

	/* STOP -> RUNNING_P2P: accesses and peer writes accepted again. */
	if (cur == VFIO_DEVICE_STATE_STOP &&
	    new == VFIO_DEVICE_STATE_RUNNING_P2P)
		return NULL;

	/* PRE_COPY -> PRE_COPY_P2P: stop initiating, session continues. */
	if (cur == VFIO_DEVICE_STATE_PRE_COPY &&
	    new == VFIO_DEVICE_STATE_PRE_COPY_P2P)
		return NULL;

	/* PRE_COPY_P2P -> PRE_COPY: initiate again, session continues. */
	if (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P &&
	    new == VFIO_DEVICE_STATE_PRE_COPY)
		return NULL;

	/* RUNNING -> PRE_COPY: new saving session, initial data first. */
	if (cur == VFIO_DEVICE_STATE_RUNNING &&
	    new == VFIO_DEVICE_STATE_PRE_COPY)
		return mtty_mig_start_saving(mdev, false);

	/* RUNNING_P2P -> PRE_COPY_P2P: the same, P2P-quiesced. */
	if (cur == VFIO_DEVICE_STATE_RUNNING_P2P &&
	    new == VFIO_DEVICE_STATE_PRE_COPY_P2P)
		return mtty_mig_start_saving(mdev, false);

	/* STOP -> STOP_COPY: new saving session with everything at once. */
	if (cur == VFIO_DEVICE_STATE_STOP &&
	    new == VFIO_DEVICE_STATE_STOP_COPY)
		return mtty_mig_start_saving(mdev, true);

	/* PRE_COPY_P2P -> STOP_COPY: same fd, final records queued. */
	if (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P &&
	    new == VFIO_DEVICE_STATE_STOP_COPY) {
		mtty_mig_save_stop_copy(mdev->saving);
		return NULL;
	}

	/* PRE_COPY -> RUNNING: abandon the saving session. */
	if (cur == VFIO_DEVICE_STATE_PRE_COPY &&
	    new == VFIO_DEVICE_STATE_RUNNING) {
		mtty_mig_end_saving(mdev, true);
		return NULL;
	}

	/* PRE_COPY_P2P -> RUNNING_P2P: the same, P2P-quiesced. */
	if (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P &&
	    new == VFIO_DEVICE_STATE_RUNNING_P2P) {
		mtty_mig_end_saving(mdev, true);
		return NULL;
	}

	/* STOP_COPY -> STOP: the saving session is over. */
	if (cur == VFIO_DEVICE_STATE_STOP_COPY &&
	    new == VFIO_DEVICE_STATE_STOP) {
		mtty_mig_end_saving(mdev, true);
		return NULL;
	}

	/* STOP -> RESUMING: new resuming session. */
	if (cur == VFIO_DEVICE_STATE_STOP &&
	    new == VFIO_DEVICE_STATE_RESUMING) {
		migf = mtty_mig_resume_create(mdev);
		if (IS_ERR(migf))
			return ERR_CAST(migf);
		mdev->resuming = migf;
		return mtty_mig_file_get(migf);
	}

	/*
	 * RESUMING -> STOP: validate and load.  A refused stream leaves the
	 * device in ERROR (uAPI: "may also transition to ERROR"), its
	 * data_fd disabled, until VFIO_DEVICE_RESET.
	 */
	if (cur == VFIO_DEVICE_STATE_RESUMING &&
	    new == VFIO_DEVICE_STATE_STOP) {
		ret = mtty_mig_resume_finish(mdev->resuming);
		mtty_mig_end_resuming(mdev, true);
		if (ret) {
			mdev->state = VFIO_DEVICE_STATE_ERROR;
			return ERR_PTR(ret);
		}
		return NULL;
	}

	dev_err(mtty_mig_dev(mdev), "unexpected FSM arc %s -> %s\n",
		mtty_mig_state_name(cur), mtty_mig_state_name(new));
	return ERR_PTR(-EINVAL);
}

/* One FSM step: simulation hook, gates for the new state, the arc itself. */
static struct file *mtty_mig_step_state(struct mtty_mig_dev *mdev,
					enum vfio_device_mig_state new)
{
	enum vfio_device_mig_state cur = mdev->state;
	struct file *res;
	int ret;

	lockdep_assert_held(&mdev->state_lock);

	ret = mtty_mig_sim_step(mdev, new);
	if (ret) {
		res = ERR_PTR(ret);
		goto out;
	}
	/*
	 * Close (or open) the gates first: an arc into a stopped state then
	 * works on a device that no longer changes.
	 */
	mtty_mig_apply_gates(mdev, new);
	res = mtty_mig_arc(mdev, cur, new);
	/* A failed arc leaves cur, or ERROR if the arc said so. */
	if (IS_ERR(res))
		mtty_mig_apply_gates(mdev, mdev->state);
out:
	trace_mtty_mig_transition(dev_name(mtty_mig_dev(mdev)), cur, new,
				  IS_ERR(res) ? PTR_ERR(res) : 0);
	return res;
}

static struct file *mtty_mig_set_state(struct vfio_device *vdev,
				       enum vfio_device_mig_state new_state)
{
	struct mtty_mig_dev *mdev = to_mtty_mig(vdev);
	enum vfio_device_mig_state next;
	struct file *res = NULL;
	int ret;

	mtty_mig_sim_transition_delay(mdev, new_state);

	guard(mutex)(&mdev->state_lock);
	while (mdev->state != new_state) {
		/* Only VFIO_DEVICE_RESET leaves ERROR. */
		if (mdev->state == VFIO_DEVICE_STATE_ERROR)
			return ERR_PTR(-EINVAL);

		ret = vfio_mig_get_next_state(vdev, mdev->state, new_state,
					      &next);
		if (ret)
			return ERR_PTR(ret);

		res = mtty_mig_step_state(mdev, next);
		if (IS_ERR(res))
			return res;
		mdev->state = next;

		/* Only the last step of a path may open a data_fd. */
		if (res && next != new_state) {
			fput(res);
			dev_err(mtty_mig_dev(mdev),
				"data_fd opened on an interior FSM step\n");
			return ERR_PTR(-EINVAL);
		}
	}
	return res;
}

static int mtty_mig_get_state(struct vfio_device *vdev,
			      enum vfio_device_mig_state *state)
{
	*state = mtty_mig_get_state_locked(to_mtty_mig(vdev));
	return 0;
}

/*
 * Exactly what STOP_COPY would yield if entered now: pages dirtied after
 * this call come on top, so read it as a snapshot.
 */
static int mtty_mig_get_data_size(struct vfio_device *vdev,
				  unsigned long *stop_copy_length)
{
	struct mtty_mig_dev *mdev = to_mtty_mig(vdev);

	guard(mutex)(&mdev->state_lock);
	if (mdev->saving)
		*stop_copy_length = mtty_mig_save_pending(mdev->saving);
	else
		*stop_copy_length = mtty_mig_stop_copy_estimate(mdev);
	return 0;
}

static const struct vfio_migration_ops mtty_mig_migration_ops = {
	.migration_set_state = mtty_mig_set_state,
	.migration_get_state = mtty_mig_get_state,
	.migration_get_data_size = mtty_mig_get_data_size,
};

/*
 * The device never DMAs into guest memory (its P2P writes go to another
 * instance's device memory, which that instance tracks), so DMA dirty
 * logging has nothing to report.
 */
static int mtty_mig_log_start(struct vfio_device *vdev,
			      struct rb_root_cached *ranges, u32 nnodes,
			      u64 *page_size)
{
	return 0;
}

static int mtty_mig_log_stop(struct vfio_device *vdev)
{
	return 0;
}

static int mtty_mig_log_read_and_clear(struct vfio_device *vdev,
				       unsigned long iova, unsigned long length,
				       struct iova_bitmap *dirty)
{
	return 0;
}

static const struct vfio_log_ops mtty_mig_log_ops = {
	.log_start = mtty_mig_log_start,
	.log_stop = mtty_mig_log_stop,
	.log_read_and_clear = mtty_mig_log_read_and_clear,
};

/**
 * mtty_mig_migration_init() - migration setup of a new instance
 * @mdev: instance (vdev not yet registered)
 */
void mtty_mig_migration_init(struct mtty_mig_dev *mdev)
{
	mutex_init(&mdev->state_lock);
	mdev->state = VFIO_DEVICE_STATE_RUNNING;
	mdev->vdev.migration_flags = VFIO_MIGRATION_STOP_COPY |
				     VFIO_MIGRATION_P2P |
				     VFIO_MIGRATION_PRE_COPY;
	mdev->vdev.mig_ops = &mtty_mig_migration_ops;
	mdev->vdev.log_ops = &mtty_mig_log_ops;
}

/**
 * mtty_mig_migration_reset() - end any session and return to RUNNING
 * @mdev: instance
 * @device: also put the serial ports and the INTx mask in their power-on
 *	    state
 *	    (VFIO_DEVICE_RESET), in the same state_lock hold
 *
 * Used by VFIO_DEVICE_RESET (@device true), open_device and close_device.
 * Open data_fds are disabled and fail with -ENODEV from now on.  The whole
 * reset is one state_lock hold, so no FSM step sees a half-reset device: a
 * STOP_COPY entered after a reset snapshots the reset ports, one entered
 * before it is ended by it.  state_lock is held for kernel work and for
 * waits on migf->lock, which one data_fd read() or write() holds for at
 * most MTTY_MIG_IO_MAX bytes (a user copy faulting on userfaultfd memory
 * can stretch that, as in every driver that copies under a per-file lock).
 */
void mtty_mig_migration_reset(struct mtty_mig_dev *mdev, bool device)
{
	guard(mutex)(&mdev->state_lock);
	mtty_mig_end_saving(mdev, false);
	mtty_mig_end_resuming(mdev, false);
	if (device)
		mtty_mig_serial_reset(mdev);
	mdev->state = VFIO_DEVICE_STATE_RUNNING;
	mtty_mig_apply_gates(mdev, mdev->state);
}

/**
 * mtty_mig_set_metadata_size() - reconfigure the METADATA block
 * @mdev: instance
 * @size: new METADATA payload size (bounded by the caller)
 *
 * The device event behind VFIO_PRECOPY_INFO_REINIT: in PRE_COPY, a saving
 * session whose user opted in to PRECOPY_INFOv2 gets new initial data
 * (mtty_mig_save_reinit()).  Anywhere else the size applies to the next
 * session.  Only PRE_COPY: in PRE_COPY_P2P the device is quiesced, and a
 * REINIT there would come after the user's switchover decision.
 *
 * Return: 0, or -EBUSY/-ENOMEM from mtty_mig_save_reinit() (the size is
 * then unchanged).
 */
int mtty_mig_set_metadata_size(struct mtty_mig_dev *mdev, u32 size)
{
	int ret = 0;

	guard(mutex)(&mdev->state_lock);
	if (mdev->state == VFIO_DEVICE_STATE_PRE_COPY && mdev->saving)
		ret = mtty_mig_save_reinit(mdev->saving, size);
	if (ret < 0)
		return ret;
	WRITE_ONCE(mdev->tun.metadata_size, size);
	return 0;
}

#ifndef MTTY_MIG_CORE_PRECOPY_INFO_V2
/**
 * mtty_mig_device_feature() - VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 before 7.1
 * @vdev: device
 * @flags: VFIO_DEVICE_FEATURE flags, the feature number in the low bits
 * @arg: feature data (none)
 * @argsz: its size
 *
 * What the 7.1 core does in
 * vfio_ioctl_device_feature_migration_precopy_info_v2(): SET only, no
 * data, refused without PRE_COPY; the opt-in lasts until the device is
 * closed (mtty_mig_close_device()).
 *
 * Return: 0 (a PROBE or the opt-in done), or -errno.
 */
int mtty_mig_device_feature(struct vfio_device *vdev, u32 flags,
			    void __user *arg, size_t argsz)
{
	int ret;

	if ((flags & VFIO_DEVICE_FEATURE_MASK) !=
	    MTTY_MIG_FEATURE_PRECOPY_INFO_V2)
		return -ENOTTY;
	if (!(vdev->migration_flags & VFIO_MIGRATION_PRE_COPY))
		return -EINVAL;
	ret = vfio_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0);
	if (ret != 1)
		return ret;
	WRITE_ONCE(to_mtty_mig(vdev)->precopy_info_v2, true);
	return 0;
}
#endif

/**
 * mtty_mig_digest() - xxh64 of the migratable state
 * @mdev: instance
 *
 * Covers, in order: nr_ports and mem_size (le), every port as its SERIAL
 * record, the DEVICE record (engine sequence numbers), then the memory.
 * Not atomic against a running engine; read it while the device is stopped
 * or the engine is off to compare two devices.  The memory is hashed in
 * chunks (memory.c), so a digest never holds up the device for long.
 *
 * Return: 0 and the digest in @digest, -EINTR if a signal is pending, or
 * -EAGAIN if the memory was resized or freed meanwhile.
 */
int mtty_mig_digest(struct mtty_mig_dev *mdev, u64 *digest)
{
	struct mtty_mig_rec_serial serial;
	struct mtty_mig_rec_device devrec;
	struct xxh64_state st;
	__le64 size;
	__le32 ports;
	u64 seq, p2p_seq;
	unsigned int i;
	int ret;

	xxh64_reset(&st, 0);
	ports = cpu_to_le32(mdev->nr_ports);
	size = cpu_to_le64(mtty_mig_mem_size(mdev));
	xxh64_update(&st, &ports, sizeof(ports));
	xxh64_update(&st, &size, sizeof(size));
	for (i = 0; i < mdev->nr_ports; i++) {
		mtty_mig_serial_save(mdev, i, &serial);
		xxh64_update(&st, &serial, sizeof(serial));
	}
	mtty_mig_engine_get_seq(mdev, &seq, &p2p_seq);
	devrec.engine_seq = cpu_to_le64(seq);
	devrec.p2p_seq = cpu_to_le64(p2p_seq);
	xxh64_update(&st, &devrec, sizeof(devrec));
	ret = mtty_mig_mem_digest(mdev, &st);
	if (ret)
		return ret;
	*digest = xxh64_digest(&st);
	return 0;
}
