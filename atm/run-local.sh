#!/usr/bin/env bash
# A local 3-member ATM network on 127.0.0.1 in a tmux session, one pane per
# ATM, data under ./data. Run by `make run-atm`.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${RAFTQ_BASE_PORT:-7001}
session=raftq-atm
peers="1=127.0.0.1:$base,2=127.0.0.1:$((base + 1)),3=127.0.0.1:$((base + 2))"

if tmux has-session -t "$session" 2>/dev/null; then
    echo "run: the network is already running: tmux attach -t $session" >&2
    exit 1
fi
for i in 0 1 2; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$((base + i))") 2>/dev/null; then
        echo "run: port $((base + i)) is in use; set RAFTQ_BASE_PORT to move" >&2
        exit 1
    fi
done
mkdir -p data
# The ATMs share one random secret, made on the first run and kept (mode
# 0600) so that later runs resume the same network; the file keeps it off
# the command line.
secret=data/atm-secret
if [ ! -s "$secret" ]; then
    (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n' >"$secret")
fi
chmod 600 "$secret"
for id in 1 2 3; do
    cmd="build/atm --id $id --peers $peers --data data/atm-$id --cluster-secret-file $secret 2>>data/atm-$id.log"
    if [ "$id" = 1 ]; then
        tmux new-session -d -s "$session" -x 160 -y 45 "$cmd"
    else
        tmux split-window -t "$session" "$cmd"
    fi
done
tmux select-layout -t "$session" even-vertical >/dev/null
echo "ATM network running in tmux session '$session' on 127.0.0.1:$base-$((base + 2))."
echo "  attach:  tmux attach -t $session   (detach: C-b d)"
echo "  logs:    data/atm-1.log data/atm-2.log data/atm-3.log"
echo "  stop:    tmux kill-session -t $session"
if [ -t 0 ] && [ -t 1 ]; then
    exec tmux attach -t "$session"
fi
