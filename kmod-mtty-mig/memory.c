// SPDX-License-Identifier: GPL-2.0
/*
 * Device memory (BAR1) and its page-granular dirty tracking.
 *
 * The memory is allocated (zeroed, memcg-accounted) when the device is first opened with a given
 * mem_size and kept across close/open (so its digest can still be read);
 * writing mem_size while closed frees it.  Every write, whoever makes it
 * (user through BAR1, the engine, a peer, the resume stream), sets the bit
 * of each page it touches, if that page has already been sent.
 *
 * A saving session reads the memory in two ways.  Its first pass copies
 * every page once, in index order, from 'first' = 0 up to nr_pages: that is
 * the first full image, PRECOPY_INFO's initial_bytes.  Only a page below
 * 'first' (already sent) is marked dirty when written; a page at or above
 * it will be read with its new content anyway.  So the bitmap starts empty
 * (dirty_bytes starts at zero, as the uAPI says) and counts exactly the
 * state changed after it was read; a dirty page is taken out of the bitmap
 * as it is serialised and simply sent again if written again.
 *
 * mem.lock protects everything here.  'running' is the P2P gate: peer writes
 * and user writes are applied only in RUNNING, RUNNING_P2P, PRE_COPY and
 * PRE_COPY_P2P; a peer write arriving in another state is a violation.
 */
#include <linux/bitmap.h>
#include <linux/log2.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/uaccess.h>
#include <linux/minmax.h>
#include <linux/sched/signal.h>

#include "mtty_mig.h"
#include "trace.h"

/**
 * mtty_mig_mem_init() - initialise the memory of a new instance (no alloc)
 * @mdev: instance
 */
void mtty_mig_mem_init(struct mtty_mig_dev *mdev)
{
	mutex_init(&mdev->mem.lock);
	mdev->mem.size = MTTY_MIG_MEM_SIZE_DEFAULT;
	mdev->mem.nr_pages = MTTY_MIG_NR_PAGES(mdev->mem.size);
	mdev->mem.first = mdev->mem.nr_pages;
}

static void mtty_mig_mem_free(struct mtty_mig_mem *mem)
{
	vfree(mem->base);
	bitmap_free(mem->dirty);
	mem->base = NULL;
	mem->dirty = NULL;
	mem->nr_dirty = 0;
	mem->gen++;
}

/**
 * mtty_mig_mem_destroy() - free the memory of an instance being released
 * @mdev: instance
 */
void mtty_mig_mem_destroy(struct mtty_mig_dev *mdev)
{
	mtty_mig_mem_free(&mdev->mem);
	mutex_destroy(&mdev->mem.lock);
}

/**
 * mtty_mig_mem_size() - configured memory size
 * @mdev: instance
 *
 * Return: size in bytes (BAR1 region size).
 */
u64 mtty_mig_mem_size(struct mtty_mig_dev *mdev)
{
	guard(mutex)(&mdev->mem.lock);
	return mdev->mem.size;
}

/**
 * mtty_mig_mem_set_size() - change the memory size (mem_size attribute)
 * @mdev: instance
 * @size: bytes, a multiple of MTTY_MIG_PAGE_SIZE within the limits
 *
 * Frees the current contents.
 *
 * Return: 0, -EINVAL if out of range or -EBUSY while the device is open.
 */
int mtty_mig_mem_set_size(struct mtty_mig_dev *mdev, u64 size)
{
	struct mtty_mig_mem *mem = &mdev->mem;

	/* BAR1 is this size, and a BAR's size is a power of two (PCI sizing). */
	if (size < MTTY_MIG_MEM_SIZE_MIN || size > MTTY_MIG_MEM_SIZE_MAX ||
	    !is_power_of_2(size))
		return -EINVAL;

	void *base;
	unsigned long *dirty;

	/* Detach under the lock, free (up to 1 GiB of vmalloc) outside it. */
	scoped_guard(mutex, &mem->lock) {
		if (mem->open)
			return -EBUSY;
		base = mem->base;
		dirty = mem->dirty;
		mem->base = NULL;
		mem->dirty = NULL;
		mem->nr_dirty = 0;
		mem->gen++;
		mem->size = size;
		mem->nr_pages = MTTY_MIG_NR_PAGES(size);
		mem->first = mem->nr_pages;
	}
	vfree(base);
	bitmap_free(dirty);
	return 0;
}

/**
 * mtty_mig_mem_open() - make the memory usable when the device is opened
 * @mdev: instance
 *
 * The device opens RUNNING: the memory becomes open and accepting writes
 * in one lock hold, so a peer write never sees an open but stopped device
 * (which would count as a P2P violation).
 *
 * Return: 0 or -ENOMEM.
 */
int mtty_mig_mem_open(struct mtty_mig_dev *mdev)
{
	struct mtty_mig_mem *mem = &mdev->mem;
	unsigned long *dirty = NULL;
	bool opened = false;
	void *base = NULL;
	u64 size = 0;

	/*
	 * Allocate (up to 1 GiB, zeroed) without mem.lock, which peer writes
	 * from another instance's engine take; install under it, unless
	 * mem_size changed meanwhile (then allocate again).
	 */
	for (;;) {
		scoped_guard(mutex, &mem->lock) {
			if (!mem->base && base && mem->size == size) {
				mem->base = base;
				mem->dirty = dirty;
				mem->nr_dirty = 0;
				mem->gen++;
				base = NULL;
				dirty = NULL;
			}
			if (mem->base) {
				mem->open = true;
				mem->running = true;
				opened = true;
			}
			size = mem->size;
		}
		vfree(base);
		bitmap_free(dirty);
		if (opened)
			return 0;
		/* Charged to the opener's memory cgroup. */
		base = __vmalloc(size, GFP_KERNEL_ACCOUNT | __GFP_ZERO);
		dirty = bitmap_zalloc(MTTY_MIG_NR_PAGES(size), GFP_KERNEL_ACCOUNT);
		if (!base || !dirty) {
			vfree(base);
			bitmap_free(dirty);
			return -ENOMEM;
		}
	}
}

/**
 * mtty_mig_mem_close() - the device was closed; contents are kept
 * @mdev: instance
 */
void mtty_mig_mem_close(struct mtty_mig_dev *mdev)
{
	guard(mutex)(&mdev->mem.lock);
	mdev->mem.open = false;
	mdev->mem.running = false;
	mdev->mem.saving_wq = NULL;
}

/**
 * mtty_mig_mem_set_running() - open or close the write gate
 * @mdev: instance
 * @running: accept user and peer writes
 */
void mtty_mig_mem_set_running(struct mtty_mig_dev *mdev, bool running)
{
	guard(mutex)(&mdev->mem.lock);
	mdev->mem.running = running;
}

static void mtty_mig_mem_mark(struct mtty_mig_mem *mem, unsigned long first,
			      unsigned long last)
{
	unsigned long i;
	bool was_clean = !mem->nr_dirty;

	lockdep_assert_held(&mem->lock);
	/* Pages the first pass has not read yet go out with this content. */
	for (i = first; i <= last && i < mem->first; i++)
		if (!__test_and_set_bit(i, mem->dirty))
			mem->nr_dirty++;
	if (was_clean && mem->nr_dirty && mem->saving_wq)
		wake_up_interruptible(mem->saving_wq);
}

/* One chunk of mtty_mig_mem_rw(), within a page, under mem.lock. */
static int mtty_mig_mem_rw_chunk(struct mtty_mig_mem *mem, void *bounce,
				 u64 off, size_t len, bool write)
{
	guard(mutex)(&mem->lock);
	if (!mem->open || !mem->base)
		return -ENODEV;
	if (!write) {
		memcpy(bounce, mem->base + off, len);
		return 0;
	}
	/* A stopped device does not change. */
	if (!mem->running)
		return -EBUSY;
	memcpy(mem->base + off, bounce, len);
	mtty_mig_mem_mark(mem, off >> MTTY_MIG_PAGE_SHIFT,
			  (off + len - 1) >> MTTY_MIG_PAGE_SHIFT);
	return 0;
}

/**
 * mtty_mig_mem_rw() - user access to BAR1
 * @mdev: instance (open)
 * @ubuf: user buffer
 * @count: bytes
 * @off: offset in the memory
 * @write: direction
 *
 * Data moves through a bounce page so mem.lock is never held across a user
 * copy.  Writes are refused with -EBUSY while the device is stopped.
 *
 * Return: bytes transferred, or -EINVAL if the access does not fit, or
 * another negative errno if nothing was transferred.
 */
ssize_t mtty_mig_mem_rw(struct mtty_mig_dev *mdev, char __user *ubuf,
			size_t count, u64 off, bool write)
{
	struct mtty_mig_mem *mem = &mdev->mem;
	size_t done = 0;
	void *bounce;
	ssize_t ret;

	scoped_guard(mutex, &mem->lock) {
		if (off >= mem->size || count > mem->size - off)
			return -EINVAL;
		if (!mem->open)
			return -ENODEV;
	}
	if (!count)
		return 0;

	bounce = kmalloc(MTTY_MIG_PAGE_SIZE, GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;

	while (done < count) {
		size_t len = min_t(size_t, count - done,
				   MTTY_MIG_PAGE_SIZE -
				   (off & (MTTY_MIG_PAGE_SIZE - 1)));

		if (write && copy_from_user(bounce, ubuf + done, len)) {
			ret = -EFAULT;
			goto out;
		}
		ret = mtty_mig_mem_rw_chunk(mem, bounce, off, len, write);
		if (ret)
			goto out;
		if (!write && copy_to_user(ubuf + done, bounce, len)) {
			ret = -EFAULT;
			goto out;
		}
		done += len;
		off += len;
	}
	ret = done;
out:
	kfree(bounce);
	return done && ret < 0 ? done : ret;
}

/**
 * mtty_mig_fill_pattern() - the engine's page content for write @seq
 * @page: MTTY_MIG_PAGE_SIZE bytes
 * @seq: sequence number of the write
 * @tag: MTTY_MIG_PATTERN_OWN or MTTY_MIG_PATTERN_PEER
 */
void mtty_mig_fill_pattern(void *page, u64 seq, u64 tag)
{
	__le64 *w = page;
	unsigned int i;

	w[0] = cpu_to_le64(seq);
	w[1] = cpu_to_le64(tag);
	for (i = 2; i < MTTY_MIG_PAGE_SIZE / sizeof(*w); i++)
		w[i] = cpu_to_le64(seq * MTTY_MIG_PATTERN_MUL + i);
}

/**
 * mtty_mig_mem_write_page() - device-internal write of one whole page
 * @mdev: instance (engine or resume stream)
 * @index: page number, < nr_pages
 * @data: MTTY_MIG_PAGE_SIZE bytes
 *
 * Bypasses the running gate: the caller is the device itself.
 */
void mtty_mig_mem_write_page(struct mtty_mig_dev *mdev, unsigned long index,
			     const void *data)
{
	struct mtty_mig_mem *mem = &mdev->mem;

	guard(mutex)(&mem->lock);
	if (!mem->base || index >= mem->nr_pages)
		return;
	memcpy(mem->base + ((size_t)index << MTTY_MIG_PAGE_SHIFT), data,
	       MTTY_MIG_PAGE_SIZE);
	mtty_mig_mem_mark(mem, index, index);
}

/**
 * mtty_mig_mem_peer_write() - a simulated P2P DMA write arriving at @target
 * @target: the peer receiving the write
 * @seq: sequence number of the write (selects page and content)
 * @scratch: a page of scratch memory owned by the sender
 *
 * Return: 0 if applied, -EPERM if it was a violation (target stopped),
 * -ENODEV if the target is not open.  Counters of @target are updated.
 */
int mtty_mig_mem_peer_write(struct mtty_mig_dev *target, u64 seq,
			    void *scratch)
{
	struct mtty_mig_mem *mem = &target->mem;
	unsigned long index;

	mtty_mig_fill_pattern(scratch, seq, MTTY_MIG_PATTERN_PEER);

	guard(mutex)(&mem->lock);
	if (!mem->open || !mem->base) {
		atomic64_inc(&target->cnt.p2p_dropped);
		return -ENODEV;
	}
	if (!mem->running) {
		atomic64_inc(&target->cnt.p2p_violations);
		trace_mtty_mig_p2p_violation(dev_name(mtty_mig_dev(target)),
					     seq);
		return -EPERM;
	}
	/* nr_pages is a power of two (mem_size is): no 64-bit division. */
	index = seq & (mem->nr_pages - 1);
	memcpy(mem->base + ((size_t)index << MTTY_MIG_PAGE_SHIFT), scratch,
	       MTTY_MIG_PAGE_SIZE);
	mtty_mig_mem_mark(mem, index, index);
	atomic64_inc(&target->cnt.p2p_rx);
	return 0;
}

/**
 * mtty_mig_mem_track_start() - start dirty tracking for a saving session
 * @mdev: instance
 * @wq: wait queue of the saving file, woken when a page gets dirty
 *
 * The first pass starts at page 0 and nothing is dirty yet.
 */
void mtty_mig_mem_track_start(struct mtty_mig_dev *mdev, wait_queue_head_t *wq)
{
	struct mtty_mig_mem *mem = &mdev->mem;

	guard(mutex)(&mem->lock);
	if (!mem->dirty)
		return;
	bitmap_zero(mem->dirty, mem->nr_pages);
	mem->nr_dirty = 0;
	mem->first = 0;
	mem->saving_wq = wq;
}

/**
 * mtty_mig_mem_take_first() - the next page of the first pass
 * @mdev: instance
 * @index: page taken
 * @dst: MTTY_MIG_PAGE_SIZE bytes receiving the page's content
 *
 * Copying the page and moving 'first' past it happen under one lock hold,
 * so a concurrent write either lands before the copy or marks it dirty.
 *
 * Return: false once the first pass is complete.
 */
bool mtty_mig_mem_take_first(struct mtty_mig_dev *mdev, unsigned long *index,
			     void *dst)
{
	struct mtty_mig_mem *mem = &mdev->mem;

	guard(mutex)(&mem->lock);
	if (!mem->base || mem->first >= mem->nr_pages)
		return false;
	*index = mem->first++;
	memcpy(dst, mem->base + ((size_t)*index << MTTY_MIG_PAGE_SHIFT),
	       MTTY_MIG_PAGE_SIZE);
	return true;
}

/**
 * mtty_mig_mem_pending() - what a saving session still owes of the memory
 * @mdev: instance
 * @first_left: pages of the first pass not read yet (may be NULL)
 * @nr_dirty: pages read and written again since (may be NULL)
 */
void mtty_mig_mem_pending(struct mtty_mig_dev *mdev, unsigned long *first_left,
			  unsigned long *nr_dirty)
{
	struct mtty_mig_mem *mem = &mdev->mem;

	guard(mutex)(&mem->lock);
	if (first_left)
		*first_left = mem->base ? mem->nr_pages - mem->first : 0;
	if (nr_dirty)
		*nr_dirty = mem->nr_dirty;
}

/**
 * mtty_mig_mem_dirty_stop() - the saving session ended; forget its wait queue
 * @mdev: instance
 */
void mtty_mig_mem_dirty_stop(struct mtty_mig_dev *mdev)
{
	guard(mutex)(&mdev->mem.lock);
	mdev->mem.saving_wq = NULL;
	mdev->mem.first = mdev->mem.nr_pages;
}

/**
 * mtty_mig_mem_take_dirty() - take the next dirty page out of the bitmap
 * @mdev: instance
 * @cursor: where the scan resumes; advanced past the page taken
 * @index: page taken
 * @dst: MTTY_MIG_PAGE_SIZE bytes receiving the page's content
 *
 * Clearing the bit and copying the page happen under one lock hold, so a
 * concurrent write either lands before the copy or sets the bit again.
 *
 * Return: false if no page is dirty.
 */
bool mtty_mig_mem_take_dirty(struct mtty_mig_dev *mdev, unsigned long *cursor,
			     unsigned long *index, void *dst)
{
	struct mtty_mig_mem *mem = &mdev->mem;
	unsigned long i;

	guard(mutex)(&mem->lock);
	if (!mem->nr_dirty || !mem->base)
		return false;
	i = find_next_bit(mem->dirty, mem->nr_pages, *cursor);
	if (i >= mem->nr_pages)
		i = find_first_bit(mem->dirty, mem->nr_pages);
	if (i >= mem->nr_pages)
		return false;
	__clear_bit(i, mem->dirty);
	mem->nr_dirty--;
	memcpy(dst, mem->base + ((size_t)i << MTTY_MIG_PAGE_SHIFT),
	       MTTY_MIG_PAGE_SIZE);
	*index = i;
	*cursor = i + 1;
	return true;
}

/**
 * mtty_mig_mem_nr_dirty() - number of dirty pages
 * @mdev: instance
 *
 * Return: pages marked dirty and not yet taken by a saving session.
 */
unsigned long mtty_mig_mem_nr_dirty(struct mtty_mig_dev *mdev)
{
	guard(mutex)(&mdev->mem.lock);
	return mdev->mem.nr_dirty;
}

/* Pages hashed per mem.lock hold: 256 KiB, well under a millisecond. */
#define MTTY_MIG_DIGEST_CHUNK	64UL

static int mtty_mig_mem_digest_chunk(struct mtty_mig_mem *mem,
				     const void *base, u64 gen, u64 size,
				     struct xxh64_state *st,
				     unsigned long first, unsigned long n)
{
	static const u8 zero[MTTY_MIG_PAGE_SIZE];

	guard(mutex)(&mem->lock);
	if (mem->gen != gen || mem->base != base || mem->size != size)
		return -EAGAIN;
	if (base) {
		xxh64_update(st, base + (first << MTTY_MIG_PAGE_SHIFT),
			     n << MTTY_MIG_PAGE_SHIFT);
		return 0;
	}
	while (n--)
		xxh64_update(st, zero, sizeof(zero));
	return 0;
}

/**
 * mtty_mig_mem_digest() - feed the memory contents into a digest
 * @mdev: instance
 * @st: xxh64 state
 *
 * Hashes MTTY_MIG_DIGEST_CHUNK pages per lock hold and lets others in
 * between (the engine, peer writes, BAR1 and the data_fd all take
 * mem.lock), so reading the digest of a 1 GiB device does not stall a
 * migration.  Memory never allocated reads as zeroes, as it will when
 * first opened.
 *
 * Return: 0, -EINTR if a fatal signal is pending, -EAGAIN if the memory
 * was resized or freed while it was being hashed.
 */
int mtty_mig_mem_digest(struct mtty_mig_dev *mdev, struct xxh64_state *st)
{
	struct mtty_mig_mem *mem = &mdev->mem;
	unsigned long i, n, nr_pages;
	const void *base;
	u64 size, gen;
	int ret;

	scoped_guard(mutex, &mem->lock) {
		base = mem->base;
		size = mem->size;
		gen = mem->gen;
	}
	nr_pages = MTTY_MIG_NR_PAGES(size);
	for (i = 0; i < nr_pages; i += n) {
		n = min(nr_pages - i, MTTY_MIG_DIGEST_CHUNK);
		ret = mtty_mig_mem_digest_chunk(mem, base, gen, size, st, i, n);
		if (ret)
			return ret;
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}
