/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints of mtty_mig: FSM steps, data_fd I/O, resume stream records
 * and P2P violations.  Enable with
 *   echo 1 > /sys/kernel/tracing/events/mtty_mig/enable
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM mtty_mig

#if !defined(MTTY_MIG_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define MTTY_MIG_TRACE_H

#include <linux/tracepoint.h>

#define mtty_mig_show_state(s)					\
	__print_symbolic(s,					\
			 { 0, "ERROR" },			\
			 { 1, "STOP" },				\
			 { 2, "RUNNING" },			\
			 { 3, "STOP_COPY" },			\
			 { 4, "RESUMING" },			\
			 { 5, "RUNNING_P2P" },			\
			 { 6, "PRE_COPY" },			\
			 { 7, "PRE_COPY_P2P" })

TRACE_EVENT(mtty_mig_transition,
	    TP_PROTO(const char *dev, int from, int to, int ret),
	    TP_ARGS(dev, from, to, ret),
	    TP_STRUCT__entry(__string(dev, dev)
			     __field(int, from)
			     __field(int, to)
			     __field(int, ret)),
	    TP_fast_assign(__assign_str(dev);
			   __entry->from = from;
			   __entry->to = to;
			   __entry->ret = ret;),
	    TP_printk("%s %s -> %s ret=%d", __get_str(dev),
		      mtty_mig_show_state(__entry->from),
		      mtty_mig_show_state(__entry->to), __entry->ret)
);

DECLARE_EVENT_CLASS(mtty_mig_file_io,
		    TP_PROTO(const char *dev, size_t len, u64 pos, ssize_t ret),
		    TP_ARGS(dev, len, pos, ret),
		    TP_STRUCT__entry(__string(dev, dev)
				     __field(size_t, len)
				     __field(u64, pos)
				     __field(ssize_t, ret)),
		    TP_fast_assign(__assign_str(dev);
				   __entry->len = len;
				   __entry->pos = pos;
				   __entry->ret = ret;),
		    TP_printk("%s len=%zu pos=%llu ret=%zd", __get_str(dev),
			      __entry->len, __entry->pos, __entry->ret)
);

DEFINE_EVENT(mtty_mig_file_io, mtty_mig_save_read,
	     TP_PROTO(const char *dev, size_t len, u64 pos, ssize_t ret),
	     TP_ARGS(dev, len, pos, ret)
);

DEFINE_EVENT(mtty_mig_file_io, mtty_mig_resume_write,
	     TP_PROTO(const char *dev, size_t len, u64 pos, ssize_t ret),
	     TP_ARGS(dev, len, pos, ret)
);

TRACE_EVENT(mtty_mig_record,
	    TP_PROTO(const char *dev, bool save, u16 type, u32 seq, u32 length),
	    TP_ARGS(dev, save, type, seq, length),
	    TP_STRUCT__entry(__string(dev, dev)
			     __field(bool, save)
			     __field(u16, type)
			     __field(u32, seq)
			     __field(u32, length)),
	    TP_fast_assign(__assign_str(dev);
			   __entry->save = save;
			   __entry->type = type;
			   __entry->seq = seq;
			   __entry->length = length;),
	    TP_printk("%s %s type=%u seq=%u length=%u", __get_str(dev),
		      __entry->save ? "save" : "load", __entry->type,
		      __entry->seq, __entry->length)
);

TRACE_EVENT(mtty_mig_p2p_violation,
	    TP_PROTO(const char *dev, u64 seq),
	    TP_ARGS(dev, seq),
	    TP_STRUCT__entry(__string(dev, dev)
			     __field(u64, seq)),
	    TP_fast_assign(__assign_str(dev);
			   __entry->seq = seq;),
	    TP_printk("%s refused peer write seq=%llu", __get_str(dev),
		      __entry->seq)
);

#endif /* MTTY_MIG_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
