#!/bin/sh
# The steps every Python image of the cluster shares (services/worker/Dockerfile,
# services/client/Dockerfile, chaos/Dockerfile), in one place:
#   image.sh deps REQUIREMENTS   third-party wheels from /wheels into /opt/venv
#                                (offline: --no-index; the pip that installs
#                                them never reaches the final image)
#   image.sh app                 /opt/app: the project as copied from src/, with
#                                the Functions library in place of its link and
#                                the `wordcount` console script
#   image.sh user                uid/gid 10001 and /data, /results owned by it
#                                (the same owner in every image, so a shared
#                                named volume has it whichever mounts it first)
set -eu
case ${1:-} in
deps)
    req=/wheels/$2
    if [ ! -f "$req" ]; then
        echo "ERROR: build/wheelhouse/ is missing or incomplete ($2): run \`make images\` (or \`bash scripts/wheelhouse.sh\`) on the host first" >&2
        exit 1
    fi
    python3 -m venv /opt/pip
    python3 -m venv --without-pip /opt/venv
    /opt/pip/bin/pip --python /opt/venv/bin/python install --quiet --no-index \
        --disable-pip-version-check --find-links /wheels --requirement "$req"
    ;;
app)
    # src/wordcount/wordcount.lua is a link to redis/wordcount.lua: the file replaces it
    mv -f /opt/app/wordcount.lua /opt/app/wordcount/wordcount.lua
    mkdir -p /opt/app/bin
    printf '#!/opt/venv/bin/python\nimport sys\nfrom wordcount.cli import main\nsys.exit(main())\n' \
        > /opt/app/bin/wordcount
    chmod 0755 /opt/app/bin/wordcount
    find /opt/app -name __pycache__ -prune -exec rm -rf {} +
    ;;
user)
    groupadd --gid 10001 wordcount
    useradd --uid 10001 --gid 10001 --home-dir /home/wordcount --create-home \
        --shell /usr/sbin/nologin wordcount
    mkdir -p /data /results
    chown wordcount:wordcount /data /results
    ;;
*)
    echo "usage: image.sh deps REQUIREMENTS | app | user" >&2
    exit 2
    ;;
esac
