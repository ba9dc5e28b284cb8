/*
 * The ledger as a Raft state machine: rq_fsm_ops over struct atm_ledger.
 * apply decodes an atm_write and applies it; snapshot and restore use the
 * ledger's canonical encoding. A malformed entry is logged and skipped on
 * every replica alike (it cannot come from a raftq ATM).
 */
#ifndef ATM_FSM_H
#define ATM_FSM_H

#include "atm_ledger.h"
#include "rq_fsm.h"

extern const struct rq_fsm_ops atm_fsm_ops; /* data: struct atm_ledger * */

#endif /* ATM_FSM_H */
