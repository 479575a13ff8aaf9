# RedisRaft for the wordcount cluster (compose.raft.yml): Redis 7.2.6 with the
# RedisRaft module, built from pinned sources that live OUTSIDE the repo.
# The build context is staged by scripts/build-images.sh (`make images`):
#   build/raft-context/redis/        Redis 7.2.6 sources      } from the source cache,
#   build/raft-context/redisraft/    RedisRaft ade4aa8e       } scripts/raft-sources.sh
#   build/raft-context/wordcount/    redis/raft-*.sh (entrypoint, healthcheck, init), acl.sh, cli.sh, *.acl
# By hand, offline (local bases from scripts/base-images.sh build runtime):
#   scripts/raft-sources.sh --stage build/raft-context && cp redis/raft-*.sh redis/acl.sh redis/cli.sh redis/*.acl build/raft-context/wordcount/
#   DOCKER_BUILDKIT=0 docker build -f redis/raft.Dockerfile \
#       --build-arg BUILD_BASE=wordcount/build-base:bookworm \
#       --build-arg BASE=wordcount/runtime-base:bookworm -t wordcount/redisraft build/raft-context
# With a registry, the defaults (debian:bookworm, debian:bookworm-slim) work too;
# then, and only then, the build stage apt-gets its compilers (a local
# build-base has them already, so an offline build never touches the network).
# Runtime: the passwords of redis/raft-entrypoint.sh under /run/secrets:
# compose.raft.yml mounts one volume per user at /run/secrets/{admin,worker,
# client,raft} (these directories belong to redis here, so docker gives a new
# volume the same owner and mode), where the nodes generate them the first
# time; RAFT_ADDR (default $(hostname):6379), RAFT_NODES (set: the nodes form
# the cluster by themselves), REDIS_PORT (6379). The Raft log is
# /data/raft.db: mount a volume. `wordcount-redis-cli ARGS`: redis-cli as admin.
ARG BUILD_BASE=debian:bookworm
ARG BASE=debian:bookworm-slim

FROM ${BUILD_BASE} AS build
ARG JOBS=2
RUN if ! command -v cc >/dev/null || ! command -v make >/dev/null || ! command -v cmake >/dev/null; then \
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            build-essential cmake pkg-config && rm -rf /var/lib/apt/lists/*; \
    fi
# Redis: no TLS, no systemd, jemalloc (vendored in deps/); binaries in /out/bin
COPY redis /src/redis
RUN make -C /src/redis -j"${JOBS}" BUILD_TLS=no USE_SYSTEMD=no >/tmp/redis-build.log 2>&1 \
        || { tail -n 50 /tmp/redis-build.log; exit 1; } \
 && make -C /src/redis install PREFIX=/out >/dev/null \
 && strip /out/bin/redis-server /out/bin/redis-cli \
 && /out/bin/redis-server --version
# RedisRaft: its raft library and hiredis are vendored in deps/; lands at /src/redisraft/redisraft.so
COPY redisraft /src/redisraft
RUN mkdir -p /src/redisraft/build && cd /src/redisraft/build \
 && { cmake .. -DCMAKE_BUILD_TYPE=Release && make -j"${JOBS}" redisraft; } >/tmp/raft-build.log 2>&1 \
        || { tail -n 50 /tmp/raft-build.log; exit 1; } \
 && strip --strip-unneeded /src/redisraft/redisraft.so \
 && mkdir -p /out/lib && cp /src/redisraft/redisraft.so /out/lib/redisraft.so

FROM ${BASE}
COPY --from=build /out/bin/redis-server /out/bin/redis-cli /usr/local/bin/
COPY --from=build /out/lib/redisraft.so /usr/local/lib/redis/modules/redisraft.so
RUN ln -s redis-server /usr/local/bin/redis-check-rdb \
 && ln -s redis-server /usr/local/bin/redis-check-aof \
 && (getent group redis >/dev/null || groupadd --system --gid 999 redis) \
 && (getent passwd redis >/dev/null || useradd --system --uid 999 --gid redis --home-dir /data \
        --no-create-home --shell /usr/sbin/nologin redis) \
 && mkdir -p /data && chown redis:redis /data \
 && redis-server --version \
 && ! ldd /usr/local/lib/redis/modules/redisraft.so | grep 'not found'
# which sources this is (scripts/raft-bin.sh compares it with the pins)
COPY SOURCES /usr/local/share/wordcount/raft-SOURCES
COPY wordcount/raft-entrypoint.sh /usr/local/bin/wordcount-raft-entrypoint
COPY wordcount/raft-healthcheck.sh /usr/local/bin/wordcount-raft-healthcheck
COPY wordcount/raft-init.sh /usr/local/bin/wordcount-raft-init
COPY wordcount/acl.sh /usr/local/bin/wordcount-redis-acl
COPY wordcount/cli.sh /usr/local/bin/wordcount-redis-cli
COPY wordcount/users.acl wordcount/raft-users.acl /etc/wordcount/
# (admin's and raft's directories: only redis may enter them; the worker's and
# the client's are read by those containers, as other uids)
RUN chmod 0755 /usr/local/bin/wordcount-raft-entrypoint /usr/local/bin/wordcount-raft-healthcheck \
        /usr/local/bin/wordcount-raft-init /usr/local/bin/wordcount-redis-acl \
        /usr/local/bin/wordcount-redis-cli \
 && chmod 0644 /etc/wordcount/users.acl /etc/wordcount/raft-users.acl \
 && mkdir -p /run/secrets/admin /run/secrets/worker /run/secrets/client /run/secrets/raft \
        /run/secrets/dashboard /run/secrets/chaos \
 && chown redis:redis /run/secrets/admin /run/secrets/worker /run/secrets/client /run/secrets/raft \
        /run/secrets/dashboard /run/secrets/chaos \
 && chmod 0700 /run/secrets/admin /run/secrets/raft \
 && chmod 0755 /run/secrets/worker /run/secrets/client /run/secrets/dashboard /run/secrets/chaos
USER redis
WORKDIR /data
EXPOSE 6379
HEALTHCHECK --interval=2s --timeout=3s --start-period=10s --retries=5 \
    CMD ["wordcount-raft-healthcheck"]
ENTRYPOINT ["wordcount-raft-entrypoint"]
CMD []
