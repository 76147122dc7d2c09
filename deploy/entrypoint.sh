#!/usr/bin/env bash
# Start one service of a fedbench party from its environment: `node` (writes node.json on first start, then
# runs the node until SIGTERM), `lab` (JupyterLab on the node's home), `voila` (the dashboards); anything
# else runs as given. The same script runs in the containers of deploy/compose*.yaml and in the tests.
#
# node:  FEDBENCH_HOME (default /data/home), FEDBENCH_PARTY (required on first start), FEDBENCH_PEERS
#        ("name=host:port,name=host:port"), FEDBENCH_FEDERATION_HOST (0.0.0.0), FEDBENCH_FEDERATION_PORT
#        (50051), FEDBENCH_CONTROL_PORT (50052, loopback only), FEDBENCH_HEALTH_PORT (8080, GET /healthz),
#        FEDBENCH_ADVERTISED_ADDRESS, FEDBENCH_DATABASE_URL (default SQLite in the home),
#        FEDBENCH_LOG_FORMAT (json); TLS files go in $FEDBENCH_HOME/tls (`fedbench certs ...`).
# lab:   FEDBENCH_WORK_DIR (/data/work, notebooks are copied there on first start from FEDBENCH_NOTEBOOKS),
#        FEDBENCH_LAB_IP (0.0.0.0), FEDBENCH_LAB_PORT (8888), JUPYTER_TOKEN (required).
# voila: FEDBENCH_VOILA_PORT (8866), FEDBENCH_LAB_IP, FEDBENCH_DASHBOARDS (the dashboards folder),
#        JUPYTER_TOKEN (required), FEDBENCH_CULL_IDLE (600: seconds before the kernel of a page left open but
#        unused is freed), FEDBENCH_CULL_CLOSED (30: seconds after a page closed before its kernel is freed),
#        FEDBENCH_TEMPLATES (/opt/fedbench/templates: where the `fedbench` Voila template and its landing page
#        are; plain Voila pages when it is absent).
# dask-scheduler / dask-worker: the party's Dask cluster (compose profile `dask`), TLS with the files in
#        FEDBENCH_DASK_TLS_DIR (/data/compute-tls: party.key, party.pem, ca.pem of the party's own CA);
#        the worker joins FEDBENCH_DASK_SCHEDULER with FEDBENCH_DASK_WORKER_PROCESSES single-threaded processes
#        (2); the scheduler listens on FEDBENCH_DASK_HOST (0.0.0.0), FEDBENCH_DASK_PORT (8786) and serves its
#        dashboard on FEDBENCH_DASK_DASHBOARD (8787). The node uses the cluster when FEDBENCH_DASK_SCHEDULER is
#        set (tls://host:8786).
# compute-certs: once, in the scheduler's container: a CA of the party's own in FEDBENCH_DASK_CA_DIR
#        (/data/compute-ca) and a certificate from it for FEDBENCH_PARTY in FEDBENCH_DASK_TLS_DIR.
set -euo pipefail

home="${FEDBENCH_HOME:-/data/home}"
work="${FEDBENCH_WORK_DIR:-/data/work}"
notebooks="${FEDBENCH_NOTEBOOKS:-/opt/fedbench/notebooks}"
python="${FEDBENCH_PYTHON:-python3}"
export FEDBENCH_HOME="$home"

init_node() {
    if [ -f "$home/node.json" ]; then
        return
    fi
    if [ -z "${FEDBENCH_PARTY:-}" ]; then
        echo "entrypoint: FEDBENCH_PARTY is not set and $home/node.json does not exist yet" >&2
        exit 2
    fi
    local args=(
        node init --home "$home" --party "$FEDBENCH_PARTY"
        --federation-host "${FEDBENCH_FEDERATION_HOST:-0.0.0.0}"
        --federation-port "${FEDBENCH_FEDERATION_PORT:-50051}"
        --control-port "${FEDBENCH_CONTROL_PORT:-50052}"
        --health-port "${FEDBENCH_HEALTH_PORT:-8080}"
    )
    if [ -n "${FEDBENCH_ADVERTISED_ADDRESS:-}" ]; then
        args+=(--advertised-address "$FEDBENCH_ADVERTISED_ADDRESS")
    fi
    if [ -n "${FEDBENCH_DATABASE_URL:-}" ]; then
        args+=(--database-url "$FEDBENCH_DATABASE_URL")
    fi
    local peer
    IFS=',' read -r -a peers <<<"${FEDBENCH_PEERS:-}"
    for peer in "${peers[@]}"; do
        if [ -n "$peer" ]; then
            args+=(--peer "$peer")
        fi
    done
    "$python" -m fedbench "${args[@]}"
}

root_flag() {
    if [ "$(id -u)" = 0 ]; then
        echo "--allow-root"
    fi
}

command="${1:-node}"
case "$command" in
node)
    init_node
    if [ ! -f "$home/tls/party.pem" ]; then
        echo "entrypoint: no certificate in $home/tls yet; create one with" \
            "\`fedbench certs request --party ${FEDBENCH_PARTY:-NAME} --dir $home/tls\`, have the CA sign it," \
            "then \`fedbench certs install\`" >&2
    fi
    exec "$python" -m fedbench node start --home "$home" --log-format "${FEDBENCH_LOG_FORMAT:-json}"
    ;;
lab)
    : "${JUPYTER_TOKEN:?set JUPYTER_TOKEN: the token that opens JupyterLab}"
    mkdir -p "$work"
    if [ -d "$notebooks" ] && [ ! -e "$work/notebooks" ]; then
        cp -R "$notebooks" "$work/notebooks"
    fi
    # shellcheck disable=SC2046
    exec "$python" -m jupyterlab --no-browser --ip="${FEDBENCH_LAB_IP:-0.0.0.0}" \
        --port="${FEDBENCH_LAB_PORT:-8888}" --ServerApp.root_dir="$work" $(root_flag)
    ;;
voila)
    dashboards="${FEDBENCH_DASHBOARDS:-$notebooks/dashboards}"
    : "${JUPYTER_TOKEN:?set JUPYTER_TOKEN: the token that opens the dashboards}"
    # `--token` (no value) makes Voila require a token and read it from $JUPYTER_TOKEN: never put it on the
    # command line, which every user of the host can read. The Host check stays off (the port is published
    # under the server's own name); the token is what protects the dashboards, XSRF cookies are on.
    # Each page holds a kernel: fedbench's kernel manager frees it once the page closed or sat unused (as
    # `fedbench dashboards` does), so the dashboards can run for weeks. Kernels listen on Unix sockets in Voila's
    # private connection folder (`--KernelManager.transport=ipc`), never on TCP ports.
    idle="${FEDBENCH_CULL_IDLE:-600}"
    closed="${FEDBENCH_CULL_CLOSED:-30}"
    interval=$(((idle < closed ? idle : closed) / 3))
    interval=$((interval < 1 ? 1 : (interval > 60 ? 60 : interval)))
    templates="${FEDBENCH_TEMPLATES:-/opt/fedbench/templates}"
    template=()
    if [ -f "$templates/voila/fedbench/index.html.j2" ]; then
        # Voila looks for a template under <a JUPYTER_PATH entry>/voila/templates/<name>.
        data="$(mktemp -d)"
        mkdir -p "$data/voila/templates"
        ln -s "$templates/voila/fedbench" "$data/voila/templates/fedbench"
        export JUPYTER_PATH="$data${JUPYTER_PATH:+:$JUPYTER_PATH}"
        template=(--template=fedbench --strip_sources=True)
    fi
    exec "$python" -m voila --no-browser --Voila.ip="${FEDBENCH_LAB_IP:-0.0.0.0}" \
        --port="${FEDBENCH_VOILA_PORT:-8866}" --token --Voila.tornado_settings xsrf_cookies=True \
        --VoilaConfiguration.multi_kernel_manager_class=fedbench.cli.dashboard_kernels.DashboardKernelManager \
        --DashboardKernelManager.cull_idle_timeout="$idle" --DashboardKernelManager.cull_connected=True \
        --DashboardKernelManager.cull_interval="$interval" --DashboardKernelManager.closed_timeout="$closed" \
        --KernelManager.transport=ipc \
        "${template[@]}" "$dashboards"
    ;;
compute-certs)
    : "${FEDBENCH_PARTY:?set FEDBENCH_PARTY: the party named in the certificate of its cluster}"
    ca="${FEDBENCH_DASK_CA_DIR:-/data/compute-ca}"
    tls="${FEDBENCH_DASK_TLS_DIR:-/data/compute-tls}"
    if [ ! -f "$ca/ca.pem" ]; then
        "$python" -m fedbench certs init-ca --ca "$ca" --name "$FEDBENCH_PARTY compute CA"
    fi
    if [ ! -f "$tls/party.pem" ]; then
        "$python" -m fedbench certs issue --ca "$ca" --party "$FEDBENCH_PARTY" --dir "$tls" \
            --host dask-scheduler --host localhost --host 127.0.0.1
    fi
    ;;
dask-scheduler | dask-worker)
    tls="${FEDBENCH_DASK_TLS_DIR:-/data/compute-tls}"
    if [ ! -f "$tls/party.pem" ]; then
        echo "entrypoint: no certificate in $tls; issue the cluster's with" \
            "\`docker compose -f deploy/compose.yaml --profile dask run --rm dask-scheduler compute-certs\`" >&2
        exit 2
    fi
    tls_args=(--tls-ca-file "$tls/ca.pem" --tls-cert "$tls/party.pem" --tls-key "$tls/party.key")
    # Dask keeps each connection's last messages under 1 MB (1,000 by default): ours carry chunks of up to
    # 512 KiB, so the default holds about half a gigabyte per connection (fedbench/compute/cluster.py).
    export DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH="${DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH:-16}"
    # A worker's profiler samples every 10 ms and every process checks its event loop every 20 ms by default,
    # taking the GIL and the cores from the tasks; 100 ms and 500 ms cost 5 points less of a dot's time.
    export DASK_DISTRIBUTED__WORKER__PROFILE__INTERVAL="${DASK_DISTRIBUTED__WORKER__PROFILE__INTERVAL:-100ms}"
    export DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL="${DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL:-500ms}"
    if [ "$command" = dask-scheduler ]; then
        host="${FEDBENCH_DASK_HOST:-0.0.0.0}"
        exec "$python" -m distributed.cli.dask_scheduler --protocol tls --host "$host" \
            --port "${FEDBENCH_DASK_PORT:-8786}" --dashboard-address "$host:${FEDBENCH_DASK_DASHBOARD:-8787}" \
            "${tls_args[@]}"
    fi
    : "${FEDBENCH_DASK_SCHEDULER:?set FEDBENCH_DASK_SCHEDULER: the tls:// address of the Dask scheduler of this party}"
    exec "$python" -m distributed.cli.dask_worker "$FEDBENCH_DASK_SCHEDULER" \
        --nworkers "${FEDBENCH_DASK_WORKER_PROCESSES:-2}" --nthreads 1 "${tls_args[@]}"
    ;;
*)
    exec "$@"
    ;;
esac
