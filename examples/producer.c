/*
 * A producer on libraftq: sends N messages to a topic one call at a time
 * (the library batches them behind the calls) and prints how many were
 * delivered. Each message "message-I" is keyed "key-I%10", so the ten keys
 * spread over the partitions and each key's messages keep their order.
 *
 *   producer MANAGERS TOPIC [N]
 *   producer http://127.0.0.1:8080,http://127.0.0.1:8081 orders 1000
 */
#include <raftq.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned long delivered, failed;

/* Runs on the producer's thread, once per message. */
static void on_delivery(const struct raftq_delivery *d, void *opaque)
{
    (void)opaque;
    if (d->err == RAFTQ_OK) {
        delivered++;
    } else if (failed++ == 0) {
        fprintf(stderr, "not delivered: %s\n", d->e->message);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MANAGERS TOPIC [N]\n", argv[0]);
        return 2;
    }
    unsigned long n = argc > 3 ? strtoul(argv[3], NULL, 10) : 1000;
    struct raftq_config cfg = {.managers = argv[1]};
    struct raftq_client *client;
    struct raftq_producer *producer;
    struct raftq_error e;
    if (raftq_client_new(&cfg, &client, &e) != RAFTQ_OK ||
        raftq_producer_new(client, NULL, &producer, &e) != RAFTQ_OK) {
        fprintf(stderr, "%s\n", e.message);
        return 1;
    }
    for (unsigned long i = 0; i < n; i++) {
        char key[16], value[32];
        struct raftq_message m = {
            .topic = argv[2],
            .partition = RAFTQ_PARTITION_ANY,
            .key = key,
            .key_len = (size_t)snprintf(key, sizeof key, "key-%lu", i % 10),
            .value = value,
            .value_len =
                (size_t)snprintf(value, sizeof value, "message-%lu", i)};
        if (raftq_produce(producer, &m, on_delivery, NULL, &e) != RAFTQ_OK) {
            fprintf(stderr, "%s\n", e.message);
            break;
        }
    }
    int rv = raftq_producer_flush(producer, 60000);
    raftq_producer_free(producer);
    raftq_client_free(client);
    printf("delivered %lu, failed %lu\n", delivered, failed);
    return rv == RAFTQ_OK && failed == 0 ? 0 : 1;
}
