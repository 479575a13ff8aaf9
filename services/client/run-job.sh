#!/bin/sh
# The compose service `client`: one job, start to finish, then exit with its
# status (0 = complete and self-checked, 3 = some tasks were dead-lettered, 4 =
# Redis unreachable or refused us, 5 = the result failed the self-check, ...).
# All of it is Python in the package (src/wordcount/lab/clusterjob.py, `job`): the
# sample corpus when /data is empty, `wordcount submit`, the text report of
# report.py, and how to go on. Env (defaults in brackets):
#   SAMPLE_FILES [16] SAMPLE_SIZE [4MiB] SAMPLE_SKEW [32MiB] SAMPLE_SEED [0]
#   SAMPLE_UNICODE [empty; 1 = mix in non-ASCII words]   the generated corpus
#   SUBMIT_ARGS  extra `wordcount submit` flags, e.g. "--chunk-size 8MiB --timeout 600"
#   APP [wordcount]  the app (`wordcount apps`): APP=index make up builds the index
#   SUBMIT_FRESH [1]  drop the job's old state first: Redis keeps finished jobs (in
#                its volume), and the same data is the same job, so without this a
#                second `make up` would just read the previous result back
#   WORDCOUNT_RESULTS_HOST, WORDCOUNT_DATA_HOST  the host paths, for the last lines
# REDIS_URL / REDIS_USERNAME / REDIS_PASSWORD_FILE / WORDCOUNT_* reach `wordcount`.
exec python -m wordcount.lab.clusterjob job "$@"
