"""The harness's topology for the scripts in bench/ that need it without timing three fronts:
the PKI, backend and front configurations of ../shared/bench/mtls_bench.py (imported as
`harness`), a certgate node started the way the harness starts it, and their teardown."""
import collections
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
import mtls_bench as harness  # noqa: E402,F401  (re-exported)


Workdir = collections.namedtuple("Workdir", "fingerprint lua")


def prepare(d):
    """The harness's files in work directory `d`: its PKI, the bulk scenario's blob (readable by
    the nginx workers, which are not root) and wrk's report script. The client certificate's
    fingerprint (for `check_fronts`) and the script's path."""
    fingerprint = harness.make_pki(d)
    with open(os.path.join(d, "blob"), "wb") as f:
        f.write(os.urandom(harness.BLOB_BYTES))
    os.chmod(d, 0o755)
    os.chmod(os.path.join(d, "blob"), 0o644)
    lua = os.path.join(d, "report.lua")
    with open(lua, "w") as f:
        f.write(harness.WRK_LUA)
    return Workdir(fingerprint, lua)


def gateway_env(d, **extra):
    """What bench/gateway-under-bench needs from the harness, for a node on the harness's ports."""
    return dict(os.environ,
                BENCH_LISTEN=f"127.0.0.1:{harness.FRONT_PORTS['gateway']}",
                BENCH_BACKEND_URL=f"https://127.0.0.1:{harness.BACKEND_TLS_PORT}",
                BENCH_CLIENT_PFX=f"{d}/client.pfx", BENCH_PFX_PASSWORD="bench-pass",
                BENCH_CLIENT_PEM=f"{d}/client-full.pem", BENCH_CA_PEM=f"{d}/ca.pem", BENCH_WORKDIR=d, **extra)


def start_backend(d, config_text):
    """The backend nginx (on CPU 0, as in the harness), with `config_text` as its configuration."""
    with open(os.path.join(d, "backend.conf"), "w") as f:
        f.write(config_text)
    backend = subprocess.Popen(["taskset", "-c", "0", "nginx", "-c", f"{d}/backend.conf", "-p", d],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    harness.wait_port(harness.BACKEND_TLS_PORT, backend)
    return backend


def start_gateway(d, env):
    """bench/gateway-under-bench on CPU 1, in its own process group, its log in d/gateway.log."""
    return subprocess.Popen(["taskset", "-c", "1", os.path.join(HERE, "gateway-under-bench")], env=env,
                            stdout=open(f"{d}/gateway.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def start_fronts(d, edit=lambda text: text, handshake=False):
    """nginx and HAProxy as the harness configures them for the scenario (each configuration through
    `edit`) and a certgate node, all on CPU 1; their processes by name."""
    procs = {}
    for file, text in [("front.conf", harness.nginx_front_conf(d, handshake)),
                       ("haproxy.cfg", harness.haproxy_conf(d, handshake))]:
        with open(os.path.join(d, file), "w") as f:
            f.write(edit(text))
    procs["nginx"] = subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", f"{d}/front.conf", "-p", d],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs["haproxy"] = subprocess.Popen(["taskset", "-c", "1", "haproxy", "-db", "-f", f"{d}/haproxy.cfg"],
                                        stdout=subprocess.DEVNULL, stderr=open(f"{d}/haproxy.log", "w"))
    procs["gateway"] = start_gateway(d, gateway_env(d))
    return procs


def check_fronts(procs, fingerprint):
    """Waits for each front's port and checks it proxies to the backend with the client certificate."""
    for name in ["nginx", "haproxy", "gateway"]:
        harness.wait_port(harness.FRONT_PORTS[name], procs[name], timeout=120)
        harness.check_front(name, harness.FRONT_PORTS[name], fingerprint)


def stop(procs):
    """Stops what was started: the gateway's process group with SIGTERM, nginx with SIGQUIT."""
    for name, p in procs.items():
        if p.poll() is None:
            if name == "gateway":
                os.killpg(p.pid, 15)
            else:
                p.send_signal(3 if name in ("nginx", "backend") else 15)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
