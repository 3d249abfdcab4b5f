/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mtty_mig internal header: the per-instance structure and the interfaces
 * between the files of the module.
 *
 * Lock order (outer first):
 *
 *   mtty_mig_list_lock  (main.c: instance list, peer links)
 *     state_lock        (migration.c: FSM state, saving/resuming files)
 *       migf->lock      (migfile.c: one data_fd's buffers and position)
 *         engine.lock   (engine.c: gating of the internal writer, peer link)
 *           mem.lock    (memory.c: memory, dirty bitmap, P2P acceptance)
 *         regs_lock     (serial.c/device.c: registers, config, IRQs)
 *           mem.lock    (BAR1 sizing in config space reads mem_size)
 *
 * fault.lock (fault.c) is a leaf spinlock around plain loads and stores.
 *
 * engine.lock of one instance may be taken with mem.lock of another (a peer
 * write); two engine.locks or two mem.locks are never held together.
 * mem.lock is the innermost mutex (only a wait queue is woken under it).
 * No lock is held across a sleep of simulated latency or rate throttling.
 * state_lock is never held across copy_to_user()/copy_from_user(); the
 * data_fd paths only take migf->lock, so VFIO_DEVICE_RESET simply takes
 * state_lock: an mdev has no memory_lock shared with an mmap fault path
 * (which is what makes vfio-pci drivers defer their reset).
 */
#ifndef MTTY_MIG_INTERNAL_H
#define MTTY_MIG_INTERNAL_H

#include <linux/types.h>
#include <linux/mutex.h>
#include <linux/list.h>
#include <linux/vfio.h>
#include <linux/workqueue.h>
#include <linux/wait.h>
#include <linux/xxhash.h>
#include <linux/mtty_mig.h>

#include "compat.h"

#define MTTY_MIG_NR_PAGES(size)	((unsigned long)((size) >> MTTY_MIG_PAGE_SHIFT))
#define MTTY_MIG_REC_HDR_SIZE	sizeof(struct mtty_mig_rec_hdr)
#define MTTY_MIG_PAGE_REC_SIZE	(MTTY_MIG_REC_HDR_SIZE + MTTY_MIG_REC_PAGE_PAYLOAD)
/*
 * Most bytes one data_fd read() or write() moves: migf->lock is held for
 * one call, and the FSM (state_lock, then migf->lock) may wait for it.
 */
#define MTTY_MIG_IO_MAX		(4UL << 20)

struct mtty_mig_dev;
struct mtty_mig_file;

/* One 16550-like port (serial.c). */
struct mtty_mig_port {
	u8 regs[MTTY_MIG_PORT_STRIDE];
	u8 fifo[MTTY_MIG_FIFO_SIZE];
	u8 head;
	u8 tail;
	u8 count;
	u8 fcr;
	u8 max_fifo_size;
	u8 trigger_level;
	bool dlab;
	bool overrun;
	u16 divisor;
};

/* Device memory with dirty tracking (memory.c). */
struct mtty_mig_mem {
	struct mutex lock;		/* protects all fields below */
	u64 size;			/* configured size, bytes */
	unsigned long nr_pages;
	void *base;			/* vzalloc'd, NULL until first open */
	unsigned long *dirty;		/* one bit per MTTY_MIG_PAGE_SIZE */
	unsigned long nr_dirty;
	unsigned long first;		/* next page of a saving first pass */
	u64 gen;			/* bumped when base is freed or replaced */
	bool open;			/* device open: memory in use */
	bool running;			/* accepts user and P2P writes */
	wait_queue_head_t *saving_wq;	/* woken when a page gets dirty */
};

/* Internal writer (engine.c). */
struct mtty_mig_engine {
	struct mutex lock;		/* gates batches; seq, peer, rates */
	struct delayed_work work;
	bool open;			/* device open: may tick */
	bool initiate;			/* RUNNING or PRE_COPY */
	struct mtty_mig_dev *peer;	/* protected by lock + list lock */
	u64 seq;			/* next own write */
	u64 p2p_seq;			/* next peer write */
	u64 own_acc;			/* rate accumulators, pages * ns */
	u64 p2p_acc;
	u64 own_owed;			/* whole writes due, not done yet */
	u64 p2p_owed;
	ktime_t last;
	void *page;			/* scratch page for the pattern */
};

/* debugfs fault injection (fault.c). */
struct mtty_mig_fault {
	spinlock_t lock;		/* protects the settings below */
	int fail_state;			/* -1 = disarmed */
	int fail_errno;
	s64 fail_save_after;		/* -1 = disarmed */
	s64 fail_resume_after;
	u32 transition_delay_ms;
	struct dentry *dir;
};

struct mtty_mig_counters {
	atomic64_t engine_writes;
	atomic64_t p2p_tx;
	atomic64_t p2p_rx;
	atomic64_t p2p_violations;
	atomic64_t p2p_dropped;
	atomic64_t reinits;		/* REINITs a saving session reported */
};

/* Tunables set through sysfs, read with READ_ONCE(). */
struct mtty_mig_tunables {
	u32 dirty_rate;
	u32 p2p_rate;
	u32 metadata_size;
	u32 initial_load_ms;
	u32 stop_copy_latency_ms;
	u64 save_rate;
	u64 resume_rate;
};

struct mtty_mig_dev {
	struct vfio_device vdev;
	struct list_head node;		/* mtty_mig_list, under list lock */
	unsigned int nr_ports;

	/* Device model, under regs_lock. */
	struct mutex regs_lock;
	u8 vconfig[MTTY_MIG_CONFIG_SIZE];
	struct mtty_mig_port ports[MTTY_MIG_MAX_PORTS];
	bool regs_running;		/* BAR0 accessible */
	int irq_index;			/* VFIO_PCI_*_IRQ_INDEX or -1 */
	struct eventfd_ctx *intx_evtfd;
	struct eventfd_ctx *msi_evtfd;
	bool intx_mask;

	struct mtty_mig_mem mem;
	struct mtty_mig_engine engine;

	/* Migration, under state_lock. */
	struct mutex state_lock;
	enum vfio_device_mig_state state;
	struct mtty_mig_file *saving;
	struct mtty_mig_file *resuming;

#ifndef MTTY_MIG_CORE_PRECOPY_INFO_V2
	bool precopy_info_v2;		/* opted in (the core's field in 7.1) */
#endif

	struct mtty_mig_tunables tun;
	struct mtty_mig_counters cnt;
	struct mtty_mig_fault fault;
};

static inline struct mtty_mig_dev *to_mtty_mig(struct vfio_device *vdev)
{
	return container_of(vdev, struct mtty_mig_dev, vdev);
}

/* Did the user opt in to VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2? */
static inline bool mtty_mig_precopy_info_v2(struct mtty_mig_dev *mdev)
{
#ifdef MTTY_MIG_CORE_PRECOPY_INFO_V2
	return READ_ONCE(mdev->vdev.precopy_info_v2);
#else
	return READ_ONCE(mdev->precopy_info_v2);
#endif
}

static inline struct device *mtty_mig_dev(struct mtty_mig_dev *mdev)
{
	return mdev->vdev.dev;
}

/* main.c */
int mtty_mig_reserve_ports(struct vfio_device *vdev);
void mtty_mig_release_ports(unsigned int nr_ports);

/* device.c */
extern const struct vfio_device_ops mtty_mig_dev_ops;

/* serial.c */
void mtty_mig_serial_reset(struct mtty_mig_dev *mdev);
int mtty_mig_serial_access(struct mtty_mig_dev *mdev, unsigned int port,
			   unsigned int reg, u8 *val, bool write);
void mtty_mig_serial_set_running(struct mtty_mig_dev *mdev, bool running);
void mtty_mig_serial_save(struct mtty_mig_dev *mdev, unsigned int port,
			  struct mtty_mig_rec_serial *rec);
int mtty_mig_serial_check(const struct mtty_mig_rec_serial *rec,
			  unsigned int port);
void mtty_mig_serial_load(struct mtty_mig_dev *mdev,
			  const struct mtty_mig_rec_serial *rec);
void mtty_mig_trigger_irq(struct mtty_mig_dev *mdev);

/* memory.c */
void mtty_mig_mem_init(struct mtty_mig_dev *mdev);
void mtty_mig_mem_destroy(struct mtty_mig_dev *mdev);
int mtty_mig_mem_set_size(struct mtty_mig_dev *mdev, u64 size);
u64 mtty_mig_mem_size(struct mtty_mig_dev *mdev);
int mtty_mig_mem_open(struct mtty_mig_dev *mdev);
void mtty_mig_mem_close(struct mtty_mig_dev *mdev);
ssize_t mtty_mig_mem_rw(struct mtty_mig_dev *mdev, char __user *ubuf,
			size_t count, u64 off, bool write);
void mtty_mig_mem_set_running(struct mtty_mig_dev *mdev, bool running);
void mtty_mig_mem_write_page(struct mtty_mig_dev *mdev, unsigned long index,
			     const void *data);
int mtty_mig_mem_peer_write(struct mtty_mig_dev *target, u64 seq,
			    void *scratch);
void mtty_mig_mem_track_start(struct mtty_mig_dev *mdev, wait_queue_head_t *wq);
bool mtty_mig_mem_take_first(struct mtty_mig_dev *mdev, unsigned long *index,
			     void *dst);
void mtty_mig_mem_pending(struct mtty_mig_dev *mdev, unsigned long *first_left,
			  unsigned long *nr_dirty);
void mtty_mig_mem_dirty_stop(struct mtty_mig_dev *mdev);
bool mtty_mig_mem_take_dirty(struct mtty_mig_dev *mdev, unsigned long *cursor,
			     unsigned long *index, void *dst);
unsigned long mtty_mig_mem_nr_dirty(struct mtty_mig_dev *mdev);
int mtty_mig_mem_digest(struct mtty_mig_dev *mdev, struct xxh64_state *st);
void mtty_mig_fill_pattern(void *page, u64 seq, u64 tag);

/* engine.c */
int mtty_mig_engine_init(struct mtty_mig_dev *mdev);
void mtty_mig_engine_destroy(struct mtty_mig_dev *mdev);
void mtty_mig_engine_start(struct mtty_mig_dev *mdev);
void mtty_mig_engine_stop(struct mtty_mig_dev *mdev);
void mtty_mig_engine_set_initiate(struct mtty_mig_dev *mdev, bool initiate);
void mtty_mig_engine_kick(struct mtty_mig_dev *mdev);
int mtty_mig_engine_link(struct mtty_mig_dev *mdev, struct mtty_mig_dev *peer);
void mtty_mig_engine_get_seq(struct mtty_mig_dev *mdev, u64 *seq, u64 *p2p_seq);
void mtty_mig_engine_set_seq(struct mtty_mig_dev *mdev, u64 seq, u64 p2p_seq);

/* migration.c */
void mtty_mig_migration_init(struct mtty_mig_dev *mdev);
void mtty_mig_migration_reset(struct mtty_mig_dev *mdev, bool device);
const char *mtty_mig_state_name(enum vfio_device_mig_state state);
int mtty_mig_state_parse(const char *name, enum vfio_device_mig_state *state);
enum vfio_device_mig_state mtty_mig_get_state_locked(struct mtty_mig_dev *mdev);
int mtty_mig_digest(struct mtty_mig_dev *mdev, u64 *digest);
int mtty_mig_set_metadata_size(struct mtty_mig_dev *mdev, u32 size);
#ifndef MTTY_MIG_CORE_PRECOPY_INFO_V2
int mtty_mig_device_feature(struct vfio_device *vdev, u32 flags,
			    void __user *arg, size_t argsz);
#endif

/* migfile.c */
struct mtty_mig_file *mtty_mig_save_create(struct mtty_mig_dev *mdev);
void mtty_mig_save_stop_copy(struct mtty_mig_file *migf);
u64 mtty_mig_save_pending(struct mtty_mig_file *migf);
int mtty_mig_save_reinit(struct mtty_mig_file *migf, u32 metadata_size);
u64 mtty_mig_stop_copy_estimate(struct mtty_mig_dev *mdev);
struct mtty_mig_file *mtty_mig_resume_create(struct mtty_mig_dev *mdev);
int mtty_mig_resume_finish(struct mtty_mig_file *migf);
void mtty_mig_file_disable(struct mtty_mig_file *migf, bool by_fsm);
struct file *mtty_mig_file_get(struct mtty_mig_file *migf);

/* fault.c */
void mtty_mig_fault_init(struct mtty_mig_dev *mdev);
void mtty_mig_fault_debugfs_add(struct mtty_mig_dev *mdev);
void mtty_mig_fault_debugfs_remove(struct mtty_mig_dev *mdev);
int mtty_mig_debugfs_init(void);
void mtty_mig_debugfs_exit(void);
int mtty_mig_fault_take_state(struct mtty_mig_dev *mdev,
			      enum vfio_device_mig_state next);
u32 mtty_mig_fault_step_delay_ms(struct mtty_mig_dev *mdev);
size_t mtty_mig_fault_limit(struct mtty_mig_dev *mdev, bool save, u64 done,
			    size_t len, int *err);

#endif /* MTTY_MIG_INTERNAL_H */
