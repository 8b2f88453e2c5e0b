"""`make cluster`: Herald's production topology on this machine's loopback.

A 3-node NATS JetStream cluster (routes, its own storage per node), the
config service on PostgreSQL twice, and ingest, fanout and delivery twice
each, every stream replicated three times: the settings of the production
overlay (deploy/kubernetes/overlays/production). It prints where everything
listens and stops everything it started on Ctrl-C (or SIGTERM).

Standard library only, so it runs with any Python 3.
"""

import argparse
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

NODES = 3
REPLICAS = 2
READY_TIMEOUT = 60.0


def wait_until(what, check, timeout=READY_TIMEOUT, processes=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in processes:
            if process.poll() is not None:
                raise SystemExit(f"error: {name} exited with {process.returncode} while starting; see its log")
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"error: {what} not ready within {timeout:.0f} s")


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def nats_config(node, base, store):
    routes = ", ".join(
        f"nats-route://127.0.0.1:{base['route'] + other}" for other in range(NODES) if other != node
    )
    return (
        f"server_name: herald-n{node + 1}\n"
        f"listen: 127.0.0.1:{base['client'] + node}\n"
        f"http: 127.0.0.1:{base['monitor'] + node}\n"
        f"jetstream {{ store_dir: \"{store}\" }}\n"
        f"cluster {{\n"
        f"  name: herald-local\n"
        f"  listen: 127.0.0.1:{base['route'] + node}\n"
        f"  routes: [{routes}]\n"
        f"}}\n"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--herald", required=True, help="the herald binary")
    parser.add_argument("--nats-server", required=True, help="the nats-server binary")
    parser.add_argument("--state", default=".herald/cluster", help="where data, logs and credentials go")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="the PostgreSQL database both config replicas share (DATABASE_URL)",
    )
    parser.add_argument("--schema", default="herald_cluster", help="the PostgreSQL schema Herald's tables go in")
    parser.add_argument("--fresh", action="store_true", help="forget the cluster's earlier NATS data first")
    args = parser.parse_args()

    state = pathlib.Path(args.state).resolve()
    if args.fresh and state.exists():
        shutil.rmtree(state / "nats", ignore_errors=True)
    (state / "logs").mkdir(parents=True, exist_ok=True)
    base = {"client": 4311, "route": 6311, "monitor": 8311}
    nats_urls = ",".join(f"nats://127.0.0.1:{base['client'] + node}" for node in range(NODES))
    config_addrs = [f"127.0.0.1:{7170 + replica}" for replica in range(REPLICAS)]
    ingest_addrs = [f"127.0.0.1:{7180 + replica}" for replica in range(REPLICAS)]

    children = []

    def stop(*_):
        for name, process in reversed(children):
            if process.poll() is None:
                process.terminate()
        for name, process in reversed(children):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def spawn(name, command, env=None):
        log = open(state / "logs" / f"{name}.log", "ab")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        children.append((name, process))
        return process

    for node in range(NODES):
        store = state / "nats" / f"n{node + 1}"
        store.mkdir(parents=True, exist_ok=True)
        config = state / f"nats-n{node + 1}.conf"
        config.write_text(nats_config(node, base, store))
        spawn(f"nats-n{node + 1}", [args.nats_server, "-c", str(config)])
    for node in range(NODES):
        url = f"http://127.0.0.1:{base['monitor'] + node}/healthz?js-enabled-only=true"
        wait_until(f"NATS node {node + 1}", lambda url=url: http_ok(url), processes=children)

    common = dict(os.environ)
    common.update(
        {
            "NATS_URL": nats_urls,
            "HERALD_STREAM_REPLICAS": "3",
            "HERALD_STATE_DIR": str(state),
            "HERALD_CONFIG_URL": ",".join(f"http://{addr}" for addr in config_addrs),
            "HERALD_LOG_FORMAT": common.get("HERALD_LOG_FORMAT", "json"),
        }
    )
    ops_port = iter(range(7190, 7290))
    services = []
    for replica in range(REPLICAS):
        services.append(
            (
                f"config-{replica + 1}",
                ["config"],
                {
                    "HERALD_CONFIG_ADDR": config_addrs[replica],
                    "DATABASE_URL": args.database_url,
                    "HERALD_DATABASE_SCHEMA": args.schema,
                },
            )
        )
    for replica in range(REPLICAS):
        services.append((f"ingest-{replica + 1}", ["ingest"], {"HERALD_INGEST_ADDR": ingest_addrs[replica]}))
        services.append((f"fanout-{replica + 1}", ["fanout"], {}))
        services.append((f"delivery-{replica + 1}", ["delivery"], {}))

    ready = []
    for index, (name, command, env) in enumerate(services):
        ops_addr = f"127.0.0.1:{next(ops_port)}"
        environment = dict(common)
        environment.update(env)
        environment["HERALD_OPS_ADDR"] = ops_addr
        process = spawn(name, [args.herald, *command], environment)
        ready.append((name, process, ops_addr))
        # The first config replica generates the local credentials the
        # others read: let it finish before anything else starts.
        if index == 0:
            wait_until(name, lambda ops_addr=ops_addr: http_ok(f"http://{ops_addr}/readyz"), processes=children)
    for name, process, ops_addr in ready:
        wait_until(name, lambda ops_addr=ops_addr: http_ok(f"http://{ops_addr}/readyz"), processes=children)

    print(f"NATS cluster (JetStream, streams replicated 3 times): {nats_urls}")
    print(f"  monitoring: " + ", ".join(f"http://127.0.0.1:{base['monitor'] + node}" for node in range(NODES)))
    print(f"Database: {args.database_url} (schema {args.schema})")
    for replica in range(REPLICAS):
        print(f"Config {replica + 1}: gRPC, JSON API and console at http://{config_addrs[replica]} (/console, /api/v1)")
    for replica in range(REPLICAS):
        print(f"Ingest {replica + 1}: webhooks and the Publish API at http://{ingest_addrs[replica]}")
    for name, _, ops_addr in ready:
        print(f"  {name:<11} health and metrics: http://{ops_addr}/readyz /metrics")
    print(f"Credentials: {state}/admin.token, {state}/service.token, {state}/master.key")
    print(f"Logs: {state}/logs/. Ctrl-C stops everything.")
    sys.stdout.flush()
    while True:
        for name, process in children:
            if process.poll() is not None:
                print(f"{name} exited with {process.returncode}; stopping the cluster (see {state}/logs/{name}.log)")
                stop()
        time.sleep(0.5)


if __name__ == "__main__":
    main()
