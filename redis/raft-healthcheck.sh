#!/bin/sh
# Docker healthcheck of a RedisRaft node: healthy when it answers PING as the
# admin user (wordcount-redis-cli: the password from its file, never in argv)
# AND it is in the cluster (raft_state up) and knows a leader. Workers and the
# client of compose.raft.yml start once all three nodes are healthy, so once
# the nodes formed the cluster by themselves (wordcount-raft-init) and writes
# go through. Docker does not restart an unhealthy container: a node cut off
# from the majority is only reported, never restarted for it. Prints the
# node's Raft state and role, which `docker inspect` shows.
set -eu
wordcount-redis-cli ping | grep -q PONG
info=$(wordcount-redis-cli info raft 2>/dev/null | tr -d '\r' \
       | grep -E '^raft_(state|role|leader_id|num_voting_nodes):' | tr '\n' ' ' || true)
echo "$info"
case " $info" in
    *" raft_state:up "*) ;;
    *) exit 1 ;;
esac
case " $info" in
    *" raft_leader_id:-1 "*|*" raft_leader_id: "*) exit 1 ;;
esac
