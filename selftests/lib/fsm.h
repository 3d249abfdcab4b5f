/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The VFIO core's migration state machine, as data: the next-hop table of
 * vfio_mig_get_next_state() (drivers/vfio/vfio_main.c; include/uapi/linux/
 * vfio.h documents it, every driver's set_state loop walks it), the
 * migration flags each state needs, and the path a request walks on a device
 * with given flags. Shared by the mtty_mig FSM test and the device-agnostic
 * conformance test, so both hold drivers to the one table.
 */
#ifndef MT_FSM_H
#define MT_FSM_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/vfio.h>

/*
 * Short names for the tables and the walks over them; include this header
 * after the system ones.
 */
#define ERR VFIO_DEVICE_STATE_ERROR
#define STOP VFIO_DEVICE_STATE_STOP
#define RUN VFIO_DEVICE_STATE_RUNNING
#define SC VFIO_DEVICE_STATE_STOP_COPY
#define RES VFIO_DEVICE_STATE_RESUMING
#define RP2P VFIO_DEVICE_STATE_RUNNING_P2P
#define PC VFIO_DEVICE_STATE_PRE_COPY
#define PCP2P VFIO_DEVICE_STATE_PRE_COPY_P2P

#define F_SC VFIO_MIGRATION_STOP_COPY
#define F_P2P VFIO_MIGRATION_P2P
#define F_PC VFIO_MIGRATION_PRE_COPY

#define MT_FSM_NSTATES 8 /* ERROR (0) .. PRE_COPY_P2P (7) */

/* all the optional features: STOP_COPY | P2P | PRE_COPY */
#define MT_FSM_ALL_FLAGS (F_SC | F_P2P | F_PC)

/*
 * vfio_mig_get_next_state() with every feature supported: the next hop from
 * @cur towards @target; ERROR where there is none (also for states out of
 * range).
 */
uint32_t mt_fsm_next_state(uint32_t cur, uint32_t target);

/* @state is one a device with migration flags @flags implements (never ERROR) */
bool mt_fsm_supported(uint64_t flags, uint32_t state);

/*
 * The arcs a request from @from to @to walks on a device with @flags, as
 * vfio_mig_get_next_state() computes them (hops through unsupported states
 * skipped): the number of hops (0 if @from is @to), each state reached in
 * @path, or -EINVAL for a request the core refuses.
 */
int mt_fsm_path(uint64_t flags, uint32_t from, uint32_t to, uint32_t path[MT_FSM_NSTATES]);

#endif
