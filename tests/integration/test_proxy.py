"""trusted_proxies: the forwarded client address counts (limits, logs,
/api/connections) only when the peer is a trusted proxy; with raw
X-Forwarded-For headers, and behind a real nginx with TLS built from
contrib/nginx/herald.conf and a certificate made at test time."""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import API_KEY, HERALDD, JWT_SECRET, ROOT, free_ports, wait_until

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
OPENSSL = shutil.which("openssl")
NODE = shutil.which("node")


def conn_of(h, client_id):
    def find():
        for c in h.api("GET", "/api/connections").json()["connections"]:
            if str(c["id"]) == str(client_id):
                return c
        return None
    c = wait_until(find, timeout=5)
    assert c, f"connection {client_id} not listed"
    return c


def test_forwarded_address_from_trusted_peer(herald_factory):
    h = herald_factory(extra="trusted_proxies = 10.0.0.0/8, 127.0.0.1\nmax_connections_per_ip = 2").start()
    a1 = h.client(headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.5"})
    assert conn_of(h, a1.welcome["client_id"])["remote_addr"] == "203.0.113.5"
    # a chain of trusted proxies is skipped; IPv6 clients are kept as such
    b = h.client(headers={"X-Forwarded-For": "2001:db8::7, 10.1.2.3"})
    assert conn_of(h, b.welcome["client_id"])["remote_addr"] == "2001:db8::7"
    # the per-address limit counts the forwarded address
    a2 = h.client(headers={"X-Forwarded-For": "203.0.113.5"})
    conn_of(h, a2.welcome["client_id"])
    a3 = h.client(headers={"X-Forwarded-For": "203.0.113.5"})
    assert a3.expect_close(timeout=5) == 1008
    other = h.client(headers={"X-Forwarded-For": "203.0.113.6"})
    conn_of(h, other.welcome["client_id"])
    # no header, or garbage: the peer's own address
    plain = h.client()
    assert conn_of(h, plain.welcome["client_id"])["remote_addr"] == "127.0.0.1"
    junk = h.client(headers={"X-Forwarded-For": "not-an-address"})
    assert conn_of(h, junk.welcome["client_id"])["remote_addr"] == "127.0.0.1"
    for c in (a1, a2, b, other, plain, junk):
        assert not c.closed
        c.close()


def test_header_ignored_from_untrusted_peer(herald_factory):
    h = herald_factory(extra="trusted_proxies = 10.0.0.0/8\nmax_connections_per_ip = 2").start()
    c1 = h.client(headers={"X-Forwarded-For": "203.0.113.1"})
    assert conn_of(h, c1.welcome["client_id"])["remote_addr"] == "127.0.0.1"
    c2 = h.client(headers={"X-Forwarded-For": "203.0.113.2"})
    conn_of(h, c2.welcome["client_id"])
    c3 = h.client(headers={"X-Forwarded-For": "203.0.113.3"})
    assert c3.expect_close(timeout=5) == 1008
    c1.close()
    c2.close()


def test_trusted_proxies_is_checked(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("trusted_proxies = 127.0.0.1, 10.0.0.1/8\n")
    r = subprocess.run([HERALDD, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "trusted_proxies" in r.stderr + r.stdout and "10.0.0.1/8" in r.stderr + r.stdout


# ---- a real nginx --------------------------------------------------------------------

def nginx_site(h, tls_port, http_port, cert, key):
    """contrib/nginx/herald.conf pointed at this daemon, this test's ports and
    certificate (IPv6 listeners dropped)."""
    with open(os.path.join(ROOT, "contrib", "nginx", "herald.conf")) as f:
        text = f.read()
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{h.port}")
    text = text.replace("127.0.0.1:8081", f"127.0.0.1:{h.admin_port}")
    text = re.sub(r"^\s*listen \[::\].*$", "", text, flags=re.M)
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{tls_port} ssl;")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    text = text.replace("/etc/letsencrypt/live/herald.example.com/fullchain.pem", cert)
    text = text.replace("/etc/letsencrypt/live/herald.example.com/privkey.pem", key)
    assert f"127.0.0.1:{tls_port} ssl" in text and cert in text
    return text


class Nginx:
    def __init__(self, tmp, site):
        self.dir = str(tmp)
        for d in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(os.path.join(self.dir, "site.conf"), "w") as f:
            f.write(site)
        with open(self.conf, "w") as f:
            f.write(f"""daemon off;
master_process off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {self.dir}/access.log;
    client_body_temp_path {self.dir}/client;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    include {self.dir}/site.conf;
}}
""")
        self.proc = None

    def start(self, port):
        r = subprocess.run([NGINX, "-t", "-p", self.dir, "-c", self.conf, "-e", "stderr"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-c", self.conf, "-e", "stderr"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return self.proc.poll() is not None
        assert wait_until(up, timeout=10) and self.proc.poll() is None, self.log()

    def log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.mark.skipif(NGINX is None or OPENSSL is None or NODE is None or
                    not os.path.isdir(os.path.join(ROOT, "tests", "node", "node_modules", "ws")),
                    reason="nginx, openssl, node or tests/node/node_modules missing: run contrib/setup.sh")
@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "untrusted"])
def test_behind_nginx_with_tls(herald_factory, tmp_path, trusted):
    extra = "max_connections_per_ip = 3\n" + ("trusted_proxies = 127.0.0.1\n" if trusted else "")
    h = herald_factory(extra=extra).start()
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    tls_port, http_port = free_ports(2)
    ng = Nginx(tmp_path / "nginx", nginx_site(h, tls_port, http_port, cert, key))
    try:
        ng.start(tls_port)
        env = {**os.environ,
               "HERALD_PROXY_WSS": f"wss://127.0.0.1:{tls_port}/ws",
               "HERALD_PROXY_API": f"https://127.0.0.1:{tls_port}",
               "HERALD_ADMIN_URL": h.admin_url(""),
               "HERALD_API_KEY": API_KEY, "HERALD_JWT_SECRET": JWT_SECRET,
               "HERALD_EXPECT": "trusted" if trusted else "untrusted",
               "NODE_TLS_REJECT_UNAUTHORIZED": "0", "NODE_NO_WARNINGS": "1"}
        r = subprocess.run([NODE, os.path.join(ROOT, "tests", "js", "proxy.mjs")], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr + ng.log() + h.read_log()
        # plain HTTP is redirected to HTTPS
        red = requests.get(f"http://127.0.0.1:{http_port}/ws", allow_redirects=False, timeout=5)
        assert red.status_code == 301 and red.headers["location"].startswith("https://")
    finally:
        ng.stop()
