/*
 * bclient's follow/retry policy (see bclient_policy.h).
 */
#include "bclient_policy.h"

#include <stdio.h>

uint32_t bclient_policy_produce_target(struct bclient_policy_cursor *cur,
                                       uint32_t route_leader,
                                       const uint32_t replicas[MCMD_RF])
{
    if (cur->redirect_to != 0) {
        uint32_t t = cur->redirect_to;
        cur->redirect_to = 0;
        return t;
    }
    if (route_leader != 0 && cur->next == 0) {
        cur->next++;
        return route_leader;
    }
    /* The preferred leader first, then the others in turn. */
    return replicas[cur->next++ % MCMD_RF];
}

void bclient_policy_read_order(struct bclient_policy_cursor *cur,
                               uint32_t route_leader,
                               const uint32_t replicas[MCMD_RF])
{
    unsigned n = 0;
    if (route_leader != 0) {
        cur->order[n++] = route_leader;
    }
    for (unsigned k = 0; k < MCMD_RF; k++) {
        if (n == 0 || replicas[k] != cur->order[0]) {
            cur->order[n++] = replicas[k];
        }
    }
    cur->n_order = n;
    cur->next = 0;
    cur->redirects = 0;
}

uint32_t bclient_policy_read_target(struct bclient_policy_cursor *cur)
{
    if (cur->redirect_to != 0) {
        uint32_t t = cur->redirect_to;
        cur->redirect_to = 0;
        return t;
    }
    if (cur->next < cur->n_order) {
        return cur->order[cur->next++];
    }
    return 0;
}

/* A produce waits a little and asks again; a read asks the next broker
 * at once (a pause comes once the round is over). */
static enum bclient_policy_step again(bool produce)
{
    return produce ? BCLIENT_PAUSE : BCLIENT_NEXT;
}

void bclient_policy_answer(const struct bclient_policy_answer *a, bool produce,
                           uint32_t target, unsigned redirects,
                           struct bclient_policy_next *out)
{
    *out = (struct bclient_policy_next){.step = BCLIENT_FINISH};
    bool may_follow = a->named != 0 && a->named != target &&
                      redirects < BCLIENT_POLICY_REDIRECTS;

    if (a->canceled) {
        out->step = BCLIENT_UNAVAILABLE;
        out->why_set = true;
        snprintf(out->why, sizeof out->why, "the manager is shutting down");
        return;
    }
    out->why_set = true;
    if (a->failed != NULL) {
        snprintf(out->why, sizeof out->why, "broker %u: %s", target, a->failed);
        out->drop_target = true;
        out->step = again(produce);
        return;
    }
    if (a->status == 421) {
        snprintf(out->why, sizeof out->why, "broker %u is not the leader",
                 target);
        out->drop_target = true;
        out->step = may_follow ? BCLIENT_FOLLOW : again(produce);
        out->follow = may_follow ? a->named : 0;
        return;
    }
    if (a->status == 507) {
        /* A volume under its reserve (broker/disk.h): nothing was written,
         * and another replica cannot take it, so the answer is final. */
        out->why_set = false;
        return;
    }
    if (a->status >= 500 || (a->status == 404 && !a->retention)) {
        /* No leader yet, a transfer, or a replica not created yet. */
        snprintf(out->why, sizeof out->why, "broker %u: %ld %s", target,
                 a->status, a->message != NULL ? a->message : "");
        out->step = again(produce);
        return;
    }
    out->why_set = false;
    if (a->status != 200) {
        return; /* A refusal (4xx) or a retention 404 ends the call. */
    }
    if (!produce && a->json && !a->final) {
        /* Not the confirmed leader's answer (an older broker's follower),
         * or no records below the high watermark: ask the leader it
         * names, else the next replica. */
        out->why_set = true;
        snprintf(out->why, sizeof out->why,
                 "broker %u answered without confirmed records", target);
        out->step = may_follow ? BCLIENT_FOLLOW : BCLIENT_NEXT;
        out->follow = may_follow ? a->named : 0;
        return;
    }
    out->target_leads = produce || a->json;
    if (!a->json) {
        out->why_set = true;
        snprintf(out->why, sizeof out->why, "broker %u answered no JSON",
                 target);
        out->step = BCLIENT_UNAVAILABLE;
    }
}

void bclient_policy_fan_answer(const struct bclient_policy_answer *a,
                               uint32_t broker, bool delivered,
                               struct bclient_policy_next *out)
{
    *out = (struct bclient_policy_next){.step = BCLIENT_NEXT};
    if (a->failed != NULL) {
        out->why_set = true;
        snprintf(out->why, sizeof out->why, "broker %u: %s", broker, a->failed);
        return;
    }
    bool final = (a->status == 200 && a->json && a->final) || a->retention;
    if (final) {
        /* The confirmed leader's answer needs no other, and a replica
         * that does not answer (a stopped process) does not hold it up. */
        if (!delivered && !a->canceled) {
            out->step = BCLIENT_FINISH;
            out->target_leads = true;
        }
        return;
    }
    out->follow = a->named != broker ? a->named : 0;
    out->why_set = true;
    snprintf(out->why, sizeof out->why, "broker %u: %ld %s", broker, a->status,
             a->message != NULL ? a->message : "");
}

#define PAUSE_FIRST_MS 5u
#define PAUSE_MAX_MS 100u

unsigned bclient_policy_pause_ms(unsigned pauses)
{
    unsigned ms = PAUSE_FIRST_MS;
    while (pauses-- > 0 && ms < PAUSE_MAX_MS) {
        ms *= 2;
    }
    return ms < PAUSE_MAX_MS ? ms : PAUSE_MAX_MS;
}
