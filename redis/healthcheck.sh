#!/bin/sh
# Docker/compose healthcheck: healthy when Redis answers PING as the admin user
# (wordcount-redis-cli: the password from its secret file, through
# REDISCLI_AUTH, neither in argv nor echoed).
set -eu
wordcount-redis-cli ping | grep -q PONG
