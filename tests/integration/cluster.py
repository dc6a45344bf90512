"""Scale-out harness: a real redis-server on a free loopback port (persistence
off) and heraldd nodes sharing it, one primary and edges, each stopped by PID."""
import requests

from conftest import Herald, RedisServer


class Cluster:
    """A primary and n edges on one redis-server."""

    def __init__(self, tmp_path, edges=2, workers=2, extra=""):
        (tmp_path / "redis").mkdir()
        self.redis = RedisServer(tmp_path / "redis")
        self.primary = self._node(tmp_path / "primary", "primary", workers, extra)
        self.edges = [self._node(tmp_path / f"edge{i}", "edge", workers, extra)
                      for i in range(edges)]

    def _node(self, d, role, workers, extra):
        d.mkdir()
        h = Herald(d, workers=workers, extra=f"""cluster_redis = {self.redis.url}/0
node_role = {role}
node_name = {d.name}
{extra}""")
        h.role = role
        return h

    @property
    def nodes(self):
        return [self.primary] + self.edges

    def start(self):
        self.redis.start()
        self.primary.start()
        for e in self.edges:
            e.start()
        return self

    def stop(self):
        for h in reversed(self.nodes):
            try:
                h.stop()
            except AssertionError:
                raise
            except Exception:
                pass
        self.redis.stop()


def relay_pid(h):
    """The edge's relay process (in the hub's place)."""
    for p in h.child_pids():
        with open(f"/proc/{p}/cmdline", "rb") as f:
            if f.read().startswith(b"heraldd: relay"):
                return p
    return None


def ready(h):
    """The node's /health/ready status code (0: no answer)."""
    try:
        return requests.get(h.admin_url("/health/ready"), timeout=2).status_code
    except requests.RequestException:
        return 0
