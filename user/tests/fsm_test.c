// SPDX-License-Identifier: GPL-2.0-only
/*
 * fsm_test - the state machine tables: the next-hop table (kernel
 * semantics) against a breadth-first search over the arc list, for every
 * combination of migration flags; plus names and refusals.
 */
#include "kselftest_harness.h"
#include "test_util.h"

static bool saving(enum vfmig_state s)
{
	return s == VFMIG_STATE_PRE_COPY || s == VFMIG_STATE_PRE_COPY_P2P ||
	       s == VFMIG_STATE_STOP_COPY;
}

/*
 * Shortest distance from -> to over valid arcs; a saving state may be
 * interior only while the path has not left the saving group (PRE_COPY ->
 * PRE_COPY_P2P -> STOP_COPY keeps one data session).  -1 if unreachable.
 */
static int bfs(enum vfmig_state from, enum vfmig_state to, uint64_t flags)
{
	int dist[VFMIG_STATE_NR];
	bool insave[VFMIG_STATE_NR];
	enum vfmig_state q[VFMIG_STATE_NR];
	int h = 0, t = 0;

	for (int i = 0; i < VFMIG_STATE_NR; i++)
		dist[i] = -1;
	dist[from] = 0;
	insave[from] = saving(from);
	q[t++] = from;
	while (h < t) {
		enum vfmig_state c = q[h++];

		if (c == to)
			return dist[c];
		if (c != from && saving(c) && !insave[c])
			continue; /* may end here, not pass through */
		for (int n = 1; n < VFMIG_STATE_NR; n++) {
			if (dist[n] < 0 && vfmig_fsm_arc_valid(c, n, flags)) {
				dist[n] = dist[c] + 1;
				insave[n] = insave[c] && saving(n);
				q[t++] = n;
			}
		}
	}
	return -1;
}

static const uint64_t flag_sets[] = {
	VFMIG_MIG_STOP_COPY,
	VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P,
	VFMIG_MIG_STOP_COPY | VFMIG_MIG_PRE_COPY,
	VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P | VFMIG_MIG_PRE_COPY,
};

TEST(fsm_next_step_walks_bfs_shortest_paths)
{
	unsigned checked = 0;

	for (size_t k = 0; k < ARRAY_SIZE(flag_sets); k++) {
		uint64_t fl = flag_sets[k];

		for (int a = 1; a < VFMIG_STATE_NR; a++) {
			for (int b = 1; b < VFMIG_STATE_NR; b++) {
				enum vfmig_state cur = a, next;
				int want, hops = 0;

				if (!vfmig_state_supported(a, fl) ||
				    !vfmig_state_supported(b, fl) || a == b)
					continue;
				want = bfs(a, b, fl);
				/* uAPI: "STOP_COPY -> PRE_COPY(_P2P): not permitted", although a
				 * path through STOP and RUNNING exists. */
				if (a == VFMIG_STATE_STOP_COPY &&
				    (b == VFMIG_STATE_PRE_COPY || b == VFMIG_STATE_PRE_COPY_P2P))
					want = -1;
				if (want < 0) {
					EXPECT_EQ(-EINVAL, vfmig_fsm_next(a, b, fl, &next))
					TH_LOG("%s->%s flags %llx should be refused",
					       vfmig_state_name(a), vfmig_state_name(b),
					       (unsigned long long)fl);
					continue;
				}
				bool insave = saving(a);

				while (cur != (enum vfmig_state)b) {
					ASSERT_EQ(0, vfmig_fsm_next(cur, b, fl, &next))
					TH_LOG("%s->%s (at %s) flags %llx: BFS says %d hops",
					       vfmig_state_name(a), vfmig_state_name(b),
					       vfmig_state_name(cur), (unsigned long long)fl, want);
					ASSERT_TRUE(vfmig_fsm_arc_valid(cur, next, fl))
					TH_LOG("%s->%s not an arc", vfmig_state_name(cur),
					       vfmig_state_name(next));
					insave = insave && saving(next);
					if (next != (enum vfmig_state)b)
						ASSERT_FALSE(saving(next) && !insave)
					TH_LOG("saving state %s interior on %s->%s",
					       vfmig_state_name(next), vfmig_state_name(a),
					       vfmig_state_name(b));
					cur = next;
					ASSERT_LE(++hops, 8);
				}
				EXPECT_EQ(want, hops)
				TH_LOG("%s->%s flags %llx: %d hops, BFS %d", vfmig_state_name(a),
				       vfmig_state_name(b), (unsigned long long)fl, hops, want);
				checked++;
			}
		}
	}
	EXPECT_LT(60, checked);
}

TEST(fsm_stop_copy_to_pre_copy_is_refused)
{
	enum vfmig_state n;
	uint64_t all = ALL_FLAGS;

	EXPECT_EQ(-EINVAL, vfmig_fsm_next(VFMIG_STATE_STOP_COPY, VFMIG_STATE_PRE_COPY, all, &n));
	EXPECT_EQ(-EINVAL,
		  vfmig_fsm_next(VFMIG_STATE_STOP_COPY, VFMIG_STATE_PRE_COPY_P2P, all, &n));
}

TEST(fsm_error_and_out_of_range_are_refused)
{
	enum vfmig_state n;
	uint64_t all = ALL_FLAGS;

	EXPECT_EQ(-EINVAL, vfmig_fsm_next(VFMIG_STATE_ERROR, VFMIG_STATE_RUNNING, all, &n));
	EXPECT_EQ(-EINVAL, vfmig_fsm_next(VFMIG_STATE_RUNNING, VFMIG_STATE_ERROR, all, &n));
	EXPECT_EQ(-EINVAL, vfmig_fsm_next(VFMIG_STATE_RUNNING, VFMIG_STATE_NR, all, &n));
	EXPECT_FALSE(vfmig_state_supported(VFMIG_STATE_NR, all));
	EXPECT_FALSE(vfmig_state_supported(VFMIG_STATE_ERROR, all));
}

TEST(fsm_unsupported_states_need_their_flags)
{
	enum vfmig_state n;

	EXPECT_EQ(-EINVAL, vfmig_fsm_next(VFMIG_STATE_RUNNING, VFMIG_STATE_PRE_COPY,
					  VFMIG_MIG_STOP_COPY, &n));
	EXPECT_EQ(-EINVAL, vfmig_fsm_next(VFMIG_STATE_RUNNING, VFMIG_STATE_RUNNING_P2P,
					  VFMIG_MIG_STOP_COPY, &n));
	/* Without P2P, RUNNING -> STOP is direct. */
	ASSERT_EQ(0,
		  vfmig_fsm_next(VFMIG_STATE_RUNNING, VFMIG_STATE_STOP, VFMIG_MIG_STOP_COPY, &n));
	EXPECT_EQ(VFMIG_STATE_STOP, n);
	/* Without STOP_COPY nothing is supported. */
	EXPECT_EQ(-EINVAL,
		  vfmig_fsm_next(VFMIG_STATE_RUNNING, VFMIG_STATE_STOP, VFMIG_MIG_P2P, &n));
}

TEST(fsm_documented_combination_paths)
{
	enum vfmig_state n;
	uint64_t all = ALL_FLAGS;

	/* PRE_COPY -> STOP_COPY goes through PRE_COPY_P2P (keeps the data session). */
	ASSERT_EQ(0, vfmig_fsm_next(VFMIG_STATE_PRE_COPY, VFMIG_STATE_STOP_COPY, all, &n));
	EXPECT_EQ(VFMIG_STATE_PRE_COPY_P2P, n);
	/* RUNNING -> STOP_COPY: RUNNING_P2P, STOP, STOP_COPY. */
	ASSERT_EQ(0, vfmig_fsm_next(VFMIG_STATE_RUNNING, VFMIG_STATE_STOP_COPY, all, &n));
	EXPECT_EQ(VFMIG_STATE_RUNNING_P2P, n);
	ASSERT_EQ(0, vfmig_fsm_next(VFMIG_STATE_RUNNING_P2P, VFMIG_STATE_STOP_COPY, all, &n));
	EXPECT_EQ(VFMIG_STATE_STOP, n);
	/* RESUMING -> RUNNING: STOP, RUNNING_P2P, RUNNING. */
	ASSERT_EQ(0, vfmig_fsm_next(VFMIG_STATE_RESUMING, VFMIG_STATE_RUNNING, all, &n));
	EXPECT_EQ(VFMIG_STATE_STOP, n);
	ASSERT_EQ(0, vfmig_fsm_next(VFMIG_STATE_STOP, VFMIG_STATE_RUNNING, all, &n));
	EXPECT_EQ(VFMIG_STATE_RUNNING_P2P, n);
}

TEST(fsm_state_names_round_trip)
{
	for (int i = 0; i < VFMIG_STATE_NR; i++) {
		enum vfmig_state st;

		ASSERT_EQ(0, vfmig_state_parse(vfmig_state_name(i), &st));
		EXPECT_EQ(i, st);
	}
	EXPECT_STREQ("INVALID", vfmig_state_name(VFMIG_STATE_NR));
	EXPECT_STREQ("PRE_COPY_P2P", vfmig_state_name(VFMIG_STATE_PRE_COPY_P2P));
	EXPECT_EQ(0, vfmig_state_parse("running_p2p", &(enum vfmig_state){ 0 }));
	EXPECT_EQ(-EINVAL, vfmig_state_parse("flying", &(enum vfmig_state){ 0 }));
}

TEST_HARNESS_MAIN
