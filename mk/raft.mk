# mk/raft.mk — RedisRaft (compose.raft.yml, src/wordcount/lab/raft.py), included by
# the top-level Makefile. Upstream sources and binaries live outside the repo:
#   make raft-sources   the pinned Redis 7.2.6 + RedisRaft sources in the source
#                       cache ($WORDCOUNT_SRC_CACHE, default ~/.cache/wordcount/src);
#                       without network it says what to put where, and fails
#   make raft-image     wordcount/redisraft:latest from them (`make images` does
#                       it too; skipped, in one line saying why, without them)
#   make raft-bin       redis-server + redisraft.so for the host-side tests, in
#                       $WORDCOUNT_RAFT_BIN (default ~/.cache/wordcount/raft-bin)
# `make test` runs raft-bin when it can and never fails for lack of the sources:
# the raft tests then skip, naming what is missing.

RAFT_IMAGE := wordcount/redisraft:latest
RAFT_STAMP := build/.raft-image-stamp
RAFT_INPUTS := redis/raft.Dockerfile redis/raft-entrypoint.sh redis/raft-healthcheck.sh \
               redis/raft-init.sh redis/acl.sh redis/cli.sh redis/users.acl redis/raft-users.acl \
               scripts/raft-sources.sh scripts/build-images.sh scripts/base-images.sh

.PHONY: raft-sources raft-image raft-bin raft-bin-if-possible

raft-sources: ## fetch/verify the pinned Redis + RedisRaft sources (cache outside the repo)
	@bash scripts/raft-sources.sh

raft-image: ## build wordcount/redisraft from the cached sources (skipped when missing)
	@if ! why=$$(bash scripts/raft-sources.sh --check); then \
	    echo "images: $(RAFT_IMAGE) skipped: $$why"; \
	elif [ -f $(RAFT_STAMP) ] && docker image inspect $(RAFT_IMAGE) >/dev/null 2>&1 \
	    && [ -z "$$(find $(RAFT_INPUTS) -newer $(RAFT_STAMP) -print -quit)" ]; then \
	    echo "images: $(RAFT_IMAGE) up to date (since $(RAFT_STAMP))"; \
	else \
	    mkdir -p build && touch $(RAFT_STAMP).new \
	        && bash scripts/build-images.sh raft && mv $(RAFT_STAMP).new $(RAFT_STAMP); \
	fi

images: raft-image

raft-bin: ## redis-server 7.2.6 + redisraft.so on the host, for the raft tests
	@bash scripts/raft-bin.sh

# (make test) the same, but only a one-line note when the sources are missing
raft-bin-if-possible:
	@bash scripts/raft-bin.sh --if-possible

test: raft-bin-if-possible

# -- the cluster on three RedisRaft nodes (compose.raft.yml) ---------------------
RAFT_PROJECT ?= wordcount-raft
RAFT_CHAOS_MODE ?= kill
RAFT_CHAOS_TARGETS ?= raft
RAFT_COMPOSE_ENV = COMPOSE_FILE=compose.raft.yml COMPOSE_PROJECT_NAME=$(RAFT_PROJECT) \
                   WORDCOUNT_DATA=$(CLUSTER_DATA) WORDCOUNT_RESULTS=$(CLUSTER_RESULTS) \
                   WORKERS=$(WORKERS)

.PHONY: up-raft chaos-raft logs-raft down-raft raft-image-present

raft-image-present:
	@docker image inspect $(RAFT_IMAGE) >/dev/null 2>&1 || { \
	    echo "no $(RAFT_IMAGE): run \`make raft-sources\` (the pinned sources), then \`make images\`" >&2; \
	    exit 1; }

up-raft: images raft-image-present ## the sample job on 3 RedisRaft nodes + WORKERS=8 workers
	@$(DASHBOARD_LIVE)
	@rc=0; $(RAFT_COMPOSE_ENV) bash scripts/cluster-job.sh || rc=$$?; \
	$(call DASHBOARD_AFTER,docker compose -f compose.raft.yml up -d --wait raft1 raft2 raft3 worker dashboard); exit $$rc

chaos-raft: images raft-image-present install ## the job while RedisRaft nodes are killed (RAFT_CHAOS_MODE=kill|one-down|majority-down|partition|pause; RAFT_CHAOS_TARGETS=raft): PASS if exact
	@$(DASHBOARD_LIVE)
	@rc=0; $(RAFT_COMPOSE_ENV) COMPOSE_PROFILES=chaos CHAOS_MODE=$(RAFT_CHAOS_MODE) \
	    CHAOS_INTERVAL=$(CHAOS_INTERVAL) CHAOS_DOWNTIME=$(CHAOS_DOWNTIME) CHAOS_TARGETS=$(RAFT_CHAOS_TARGETS) \
	    WORKER_SLOWDOWN=$(CHAOS_SLOWDOWN) SUBMIT_ARGS="--chunk-size $(CHAOS_CHUNK)" \
	    WORDCOUNT_COMMIT_PAIRS=$(CHAOS_COMMIT_PAIRS) \
	    bash scripts/cluster-job.sh || rc=$$?; \
	$(call DASHBOARD_AFTER,docker compose -f compose.raft.yml up -d --wait raft1 raft2 raft3 worker dashboard); \
	$(BIN)/python -m wordcount.lab.clusterjob verdict --status $$rc $(CLUSTER_DATA) $(CLUSTER_RESULTS)

logs-raft: install ## the last RedisRaft cluster run's logs as one timeline (LOGS_ALL=1: everything)
	@$(RAFT_COMPOSE_ENV) docker compose --profile '*' logs --no-color --timestamps \
	    | $(BIN)/python -m wordcount.lab.clusterjob timeline $(if $(LOGS_ALL),--all)

down-raft: ## remove the RedisRaft cluster's containers, network and volumes: Raft logs, passwords
	@bash scripts/ensure-compose.sh >/dev/null
	$(RAFT_COMPOSE_ENV) docker compose --profile '*' down --volumes --remove-orphans
