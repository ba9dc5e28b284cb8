/*
 * A group consumer on libraftq: joins GROUP on TOPIC, prints each record
 * as "PARTITION OFFSET VALUE", commits after each poll, and stops after N
 * records or once a poll waited 2 s for nothing. Run several: the group
 * shares the topic's partitions among them, and a record is processed
 * again only if its consumer died before committing it.
 *
 *   group_consumer MANAGERS GROUP TOPIC [N]
 */
#include <inttypes.h>
#include <raftq.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MANAGERS GROUP TOPIC [N]\n", argv[0]);
        return 2;
    }
    unsigned long want = argc > 4 ? strtoul(argv[4], NULL, 10) : 0;
    struct raftq_config cfg = {.managers = argv[1]};
    struct raftq_consumer_config cc = {.group = argv[2], .topic = argv[3]};
    struct raftq_client *client;
    struct raftq_consumer *consumer;
    struct raftq_error e;
    if (raftq_client_new(&cfg, &client, &e) != RAFTQ_OK ||
        raftq_consumer_new(client, &cc, &consumer, &e) != RAFTQ_OK) {
        fprintf(stderr, "%s\n", e.message);
        return 1;
    }
    unsigned long seen = 0;
    int rv = RAFTQ_OK;
    while (want == 0 || seen < want) {
        struct raftq_records *rs = NULL;
        rv = raftq_consumer_poll(consumer, 100, 2000, &rs, &e);
        if (rv == RAFTQ_ERR_CONFLICT) {
            continue; /* Rejoined the group: poll again. */
        }
        if (rv != RAFTQ_OK || rs->n == 0) {
            raftq_records_free(rs);
            break;
        }
        for (size_t i = 0; i < rs->n; i++) {
            const struct raftq_record *r = &rs->records[i];
            printf("%" PRIu32 " %" PRIu64 " %s\n", r->partition, r->offset,
                   r->value);
        }
        seen += rs->n;
        raftq_records_free(rs);
        rv = raftq_consumer_commit(consumer, &e);
        if (rv != RAFTQ_OK && rv != RAFTQ_ERR_CONFLICT) {
            break;
        }
    }
    if (rv != RAFTQ_OK) {
        fprintf(stderr, "%s\n", e.message);
    }
    raftq_consumer_free(consumer);
    raftq_client_free(client);
    return rv == RAFTQ_OK ? 0 : 1;
}
