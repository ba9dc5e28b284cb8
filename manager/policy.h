/*
 * The manager's small pure decisions, kept apart from the handlers that
 * use them so they can be unit-tested: which partition a message goes to,
 * what a message may be, the order in which a partition's members are
 * given to brokers, and which read answers from brokers are final. (Topic
 * names: rq_names_topic_valid.)
 */
#ifndef POLICY_H
#define POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POLICY_NO_PARTITION UINT32_MAX

/* true if @s (@len bytes) is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
bool policy_utf8_valid(const char *s, size_t len);

/* The partition of @key among @n (n > 0): FNV-1a over its bytes, mod n. */
uint32_t policy_key_partition(const char *key, size_t len, uint32_t n);

/*
 * The partition a produce goes to (API.md section 1): the producer's bound
 * partition, else the one given, else the key's, else @rr (the producer's
 * next round-robin position) mod @n. Either partition may be
 * POLICY_NO_PARTITION; @key may be NULL. The result may be >= @n when a
 * bound or given partition is (the caller answers 404).
 */
uint32_t policy_partition(uint32_t bound, uint32_t given, const char *key,
                          size_t key_len, uint64_t rr, uint32_t n);

/*
 * A group's three members in the order brokers are given them (the same
 * list for all three, as bootstrapping needs): brokers are told
 * replicas[0] is the preferred leader, and one that was not told would
 * prefer members[group_id % 3], so replicas[0] goes there too and the
 * others follow in turn.
 */
void policy_member_order(uint64_t group_id, const uint32_t replicas[3],
                         uint32_t out[3]);

/*
 * Whether @answer, a broker's 200 answer to a read from @offset, is final:
 * it comes from the group's confirmed leader (brokers serve reads there
 * alone and say so in "leader"; an older broker's follower answered too,
 * with "leader" false), and it does not answer a read below its high
 * watermark with no records. The second never comes from a broker that
 * works as it should (a leader still fetching a gap answers 503), and
 * taking it would tell a consumer "no new messages" about records that
 * were acknowledged. @answer may be NULL (not final).
 */
bool policy_read_final(const json_t *answer, uint64_t offset);

/* The same for an answer in the binary form (shared/rq_reads.h), which
 * only the confirmed leader gives: @count records, @high_watermark. */
bool policy_read_final_binary(uint32_t count, uint64_t high_watermark,
                              uint64_t offset);

/*
 * Forwarded consumes (DESIGN.md section 8). A follower forwards a consume
 * on a kept connection to the leader, and then cannot tell from a failure
 * whether the leader read it: libcurl sends a request again on a new
 * connection when a kept one dies unanswered and reports that connect's
 * refusal, though the leader, killed after reading the first, may have
 * proposed the advance. So a kept connection's failure says the consume
 * may have been sent, and the forwards after it go out on new connections
 * (where a refused connect proves the leader never saw them) until one is
 * answered again. Zeroed: kept connections.
 */
struct policy_forward {
    bool doubt; /* The last forwarded consume that ended got no answer. */
};

/* Whether the next forwarded consume goes out on a new connection. */
bool policy_forward_fresh(const struct policy_forward *pf);

/*
 * A forwarded consume sent on a new connection (@fresh) or not ended:
 * @answered (the leader's answer came back, relayed as it is), else with
 * its connect @refused or not. Returns whether a failure must say the
 * consume may have reached the leader (false when answered).
 */
bool policy_forward_end(struct policy_forward *pf, bool fresh, bool answered,
                        bool refused);

#endif /* POLICY_H */
