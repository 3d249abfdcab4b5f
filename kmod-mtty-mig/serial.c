// SPDX-License-Identifier: GPL-2.0
/*
 * The 16550-like serial ports behind BAR0: register semantics, the loopback
 * FIFO (bytes written to THR come back on RBR), interrupt conditions, and the
 * conversion of a port to and from its stream record.
 *
 * Everything here runs under regs_lock.  Register accesses are refused with
 * -EBUSY while the device is stopped (STOP, STOP_COPY, RESUMING): reading RBR
 * or IIR changes device state, and a stopped device must not change.
 */
#include <linux/serial_reg.h>
#include <linux/string.h>

#include "mtty_mig.h"

static void mtty_mig_port_reset(struct mtty_mig_port *p)
{
	memset(p, 0, sizeof(*p));
	p->max_fifo_size = MTTY_MIG_FIFO_SIZE;
	p->trigger_level = 1;
}

/**
 * mtty_mig_serial_reset() - put every port and the INTx mask in their
 * power-on state
 * @mdev: instance
 */
void mtty_mig_serial_reset(struct mtty_mig_dev *mdev)
{
	unsigned int i;

	guard(mutex)(&mdev->regs_lock);
	for (i = 0; i < MTTY_MIG_MAX_PORTS; i++)
		mtty_mig_port_reset(&mdev->ports[i]);
	mdev->intx_mask = false;
}

static bool fifo_empty(const struct mtty_mig_port *p)
{
	return !p->count;
}

static void fifo_push(struct mtty_mig_port *p, u8 val)
{
	p->fifo[p->head] = val;
	p->head = (p->head + 1) % MTTY_MIG_FIFO_SIZE;
	p->count++;
}

static u8 fifo_pop(struct mtty_mig_port *p)
{
	u8 val = p->fifo[p->tail];

	p->tail = (p->tail + 1) % MTTY_MIG_FIFO_SIZE;
	p->count--;
	return val;
}

static void fifo_clear(struct mtty_mig_port *p)
{
	p->head = 0;
	p->tail = 0;
	p->count = 0;
}

static u8 fcr_trigger_level(u8 fcr)
{
	if (!(fcr & UART_FCR_ENABLE_FIFO))
		return 1;
	switch (fcr & UART_FCR_TRIGGER_MASK) {
	case UART_FCR_TRIGGER_4:
		return 4;
	case UART_FCR_TRIGGER_8:
		return 8;
	case UART_FCR_TRIGGER_14:
		return 14;
	default:
		return 1;
	}
}

static u8 fcr_fifo_size(u8 fcr)
{
	return fcr & UART_FCR_ENABLE_FIFO ? MTTY_MIG_FIFO_SIZE : 1;
}

/*
 * The FIFO size a port can have with @fcr: the one FCR selects, or the
 * power-on FIFO while FCR was never written (fcr 0).
 */
static bool fcr_fifo_size_reachable(u8 fcr, u8 max_fifo_size)
{
	return max_fifo_size == fcr_fifo_size(fcr) ||
	       (!fcr && max_fifo_size == MTTY_MIG_FIFO_SIZE);
}

static void mtty_mig_serial_write(struct mtty_mig_dev *mdev,
				  struct mtty_mig_port *p, unsigned int reg,
				  u8 val)
{
	u8 ier = p->regs[UART_IER];

	switch (reg) {
	case UART_TX:
		if (p->dlab) {
			p->divisor = (p->divisor & 0xff00) | val;
			break;
		}
		if (p->count >= p->max_fifo_size) {
			p->overrun = true;
			if (ier & UART_IER_RLSI)
				mtty_mig_trigger_irq(mdev);
			break;
		}
		fifo_push(p, val);
		p->overrun = false;
		if ((ier & UART_IER_RDI) && p->count == p->trigger_level)
			mtty_mig_trigger_irq(mdev);
		break;
	case UART_IER:
		if (p->dlab) {
			p->divisor = (p->divisor & 0x00ff) | (u16)val << 8;
			break;
		}
		p->regs[UART_IER] = val & 0x0f;
		if ((val & UART_IER_THRI) && fifo_empty(p))
			mtty_mig_trigger_irq(mdev);
		break;
	case UART_FCR:
		/*
		 * A 16550 clears both FIFOs when FCR0 changes, and the
		 * power-on FIFO (fcr 0, 16 bytes, as in the mtty sample)
		 * becomes a one-byte holding register on the first write
		 * without ENABLE_FIFO: a change of size is such a change.
		 * So 'count' never exceeds 'max_fifo_size'.
		 */
		if ((val ^ p->fcr) & UART_FCR_ENABLE_FIFO ||
		    fcr_fifo_size(val) != p->max_fifo_size ||
		    val & (UART_FCR_CLEAR_RCVR | UART_FCR_CLEAR_XMIT))
			fifo_clear(p);
		p->fcr = val;
		p->max_fifo_size = fcr_fifo_size(val);
		p->trigger_level = fcr_trigger_level(val);
		break;
	case UART_LCR:
		p->dlab = val & UART_LCR_DLAB;
		p->regs[UART_LCR] = val;
		break;
	case UART_MCR:
		p->regs[UART_MCR] = val;
		if ((ier & UART_IER_MSI) &&
		    (val & (UART_MCR_OUT2 | UART_MCR_RTS | UART_MCR_DTR)))
			mtty_mig_trigger_irq(mdev);
		break;
	case UART_SCR:
		p->regs[UART_SCR] = val;
		break;
	default:
		/* LSR and MSR are read-only. */
		break;
	}
}

static u8 mtty_mig_serial_iir(const struct mtty_mig_port *p)
{
	u8 ier = p->regs[UART_IER];
	u8 iir;

	/* Highest priority pending source only, as on a real 16550. */
	if ((ier & UART_IER_RLSI) && p->overrun)
		iir = UART_IIR_RLSI;
	else if ((ier & UART_IER_RDI) && p->count >= p->trigger_level)
		iir = UART_IIR_RDI;
	else if ((ier & UART_IER_THRI) && fifo_empty(p))
		iir = UART_IIR_THRI;
	else if ((ier & UART_IER_MSI) &&
		 (p->regs[UART_MCR] & (UART_MCR_RTS | UART_MCR_DTR)))
		iir = UART_IIR_MSI;
	else
		iir = UART_IIR_NO_INT;

	if (p->fcr & UART_FCR_ENABLE_FIFO)
		iir |= 0xc0;		/* FIFOs enabled */
	return iir;
}

static u8 mtty_mig_serial_read(struct mtty_mig_dev *mdev,
			       struct mtty_mig_port *p, unsigned int reg)
{
	u8 val;

	switch (reg) {
	case UART_RX:
		if (p->dlab)
			return p->divisor & 0xff;
		val = fifo_empty(p) ? 0 : fifo_pop(p);
		if (fifo_empty(p) && (p->regs[UART_IER] & UART_IER_THRI))
			mtty_mig_trigger_irq(mdev);
		return val;
	case UART_IER:
		if (p->dlab)
			return p->divisor >> 8;
		return p->regs[UART_IER];
	case UART_IIR:
		return mtty_mig_serial_iir(p);
	case UART_LCR:
	case UART_MCR:
	case UART_SCR:
		return p->regs[reg];
	case UART_LSR:
		val = 0;
		if (!fifo_empty(p))
			val |= UART_LSR_DR;
		if (p->overrun)
			val |= UART_LSR_OE;
		if (fifo_empty(p))
			val |= UART_LSR_TEMT | UART_LSR_THRE;
		return val;
	case UART_MSR:
		val = UART_MSR_DSR | UART_MSR_DDSR | UART_MSR_DCD;
		/* With auto flow control CTS follows the FIFO having room. */
		if (!(p->regs[UART_MCR] & UART_MCR_AFE) ||
		    p->count < p->max_fifo_size)
			val |= UART_MSR_CTS | UART_MSR_DCTS;
		return val;
	default:
		return 0;
	}
}

/**
 * mtty_mig_serial_access() - one byte-wide register access from the user
 * @mdev: instance
 * @port: port number, < nr_ports
 * @reg: register offset in the port, < MTTY_MIG_PORT_STRIDE
 * @val: value to write, or where the read value goes
 * @write: direction
 *
 * Return: 0, or -EBUSY while the device is stopped.
 */
int mtty_mig_serial_access(struct mtty_mig_dev *mdev, unsigned int port,
			   unsigned int reg, u8 *val, bool write)
{
	struct mtty_mig_port *p = &mdev->ports[port];

	guard(mutex)(&mdev->regs_lock);
	if (!mdev->regs_running)
		return -EBUSY;
	if (write)
		mtty_mig_serial_write(mdev, p, reg, *val);
	else
		*val = mtty_mig_serial_read(mdev, p, reg);
	return 0;
}

/**
 * mtty_mig_serial_set_running() - allow or refuse register accesses
 * @mdev: instance
 * @running: true in RUNNING, RUNNING_P2P, PRE_COPY and PRE_COPY_P2P
 */
void mtty_mig_serial_set_running(struct mtty_mig_dev *mdev, bool running)
{
	guard(mutex)(&mdev->regs_lock);
	mdev->regs_running = running;
}

/**
 * mtty_mig_serial_save() - encode one port as a stream record payload
 * @mdev: instance
 * @port: port number
 * @rec: destination, fully initialised (reserved bytes zero)
 */
void mtty_mig_serial_save(struct mtty_mig_dev *mdev, unsigned int port,
			  struct mtty_mig_rec_serial *rec)
{
	const struct mtty_mig_port *p = &mdev->ports[port];

	memset(rec, 0, sizeof(*rec));
	guard(mutex)(&mdev->regs_lock);
	rec->divisor = cpu_to_le16(p->divisor);
	rec->port = port;
	rec->flags = (p->dlab ? MTTY_MIG_SERIAL_DLAB : 0) |
		     (p->overrun ? MTTY_MIG_SERIAL_OVERRUN : 0);
	rec->fcr = p->fcr;
	rec->max_fifo_size = p->max_fifo_size;
	rec->trigger_level = p->trigger_level;
	rec->count = p->count;
	rec->head = p->head;
	rec->tail = p->tail;
	memcpy(rec->regs, p->regs, sizeof(rec->regs));
	memcpy(rec->fifo, p->fifo, sizeof(rec->fifo));
}

/**
 * mtty_mig_serial_check() - validate a serial record before it is applied
 * @rec: record payload from the stream
 * @port: port number the record must describe
 *
 * Accepts exactly the states a port can reach through register writes
 * and reads from power-on: the FIFO size FCR selects (or the power-on
 * size), at most that many bytes queued, a ring whose head follows its
 * tail by count, the trigger level FCR selects, DLAB as LCR says, and
 * zero in the registers nothing writes.
 *
 * Return: 0 if the record describes a state this model can be in.
 */
int mtty_mig_serial_check(const struct mtty_mig_rec_serial *rec,
			  unsigned int port)
{
	if (rec->port != port ||
	    rec->flags & ~(MTTY_MIG_SERIAL_DLAB | MTTY_MIG_SERIAL_OVERRUN) ||
	    memchr_inv(rec->reserved, 0, sizeof(rec->reserved)))
		return -EINVAL;
	/* Only IER (4 bits), LCR, MCR and SCR are ever written. */
	if (rec->regs[UART_RX] || rec->regs[UART_IIR] || rec->regs[UART_LSR] ||
	    rec->regs[UART_MSR] || rec->regs[UART_IER] & ~0x0f ||
	    !(rec->regs[UART_LCR] & UART_LCR_DLAB) !=
	    !(rec->flags & MTTY_MIG_SERIAL_DLAB))
		return -EINVAL;
	if (!fcr_fifo_size_reachable(rec->fcr, rec->max_fifo_size) ||
	    rec->count > rec->max_fifo_size ||
	    rec->head >= MTTY_MIG_FIFO_SIZE || rec->tail >= MTTY_MIG_FIFO_SIZE ||
	    (rec->tail + rec->count) % MTTY_MIG_FIFO_SIZE != rec->head ||
	    rec->trigger_level != fcr_trigger_level(rec->fcr))
		return -EINVAL;
	return 0;
}

/**
 * mtty_mig_serial_load() - apply a record checked by mtty_mig_serial_check()
 * @mdev: instance
 * @rec: record payload
 */
void mtty_mig_serial_load(struct mtty_mig_dev *mdev,
			  const struct mtty_mig_rec_serial *rec)
{
	struct mtty_mig_port *p = &mdev->ports[rec->port];

	guard(mutex)(&mdev->regs_lock);
	p->divisor = le16_to_cpu(rec->divisor);
	p->dlab = rec->flags & MTTY_MIG_SERIAL_DLAB;
	p->overrun = rec->flags & MTTY_MIG_SERIAL_OVERRUN;
	p->fcr = rec->fcr;
	p->max_fifo_size = rec->max_fifo_size;
	p->trigger_level = rec->trigger_level;
	p->count = rec->count;
	p->head = rec->head;
	p->tail = rec->tail;
	memcpy(p->regs, rec->regs, sizeof(p->regs));
	memcpy(p->fifo, rec->fifo, sizeof(p->fifo));
}
