"""Approval workflows (SPEC §7, §9): definitions, rule-checked transitions
committed with their events and webhook deliveries, live events in every room
they must reach, bulk actions with progress, and the WebSocket `workflow`
message."""
import json
import subprocess
import threading
import time

import pytest

from conftest import HERALDCTL, TS_RE, connect_on_all_workers, make_token

ODDS_CHANGE = {
    "name": "odds_change",
    "steps": [
        {"name": "trader", "approvers": {"roles": ["trader"]}, "required": 1},
        {"name": "risk", "approvers": {"roles": ["risk"], "users": ["rita"]}, "required": 2},
    ],
}


def define(h, body=ODDS_CHANGE, expect=201):
    r = h.api("POST", "/api/workflow-definitions", body)
    assert r.status_code == expect, r.text
    return r.json()


def create(h, created_by="carl", data=None, definition="odds_change", expect=201):
    r = h.api("POST", "/api/workflows", {"definition": definition, "created_by": created_by,
                                         "data": data if data is not None else {"market": 7}})
    assert r.status_code == expect, r.text
    return r.json()


def act(h, wf, action, actor, roles=(), expect=200, **extra):
    body = {"actor": actor, "roles": list(roles), **extra}
    r = h.api("POST", f"/api/workflows/{wf}/{action}", body)
    assert r.status_code == expect, r.text
    return r.json()


def show(h, wf):
    r = h.api("GET", f"/api/workflows/{wf}")
    assert r.status_code == 200, r.text
    return r.json()


# ---- definitions ------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"name": "x"},                                                      # no steps
    {"name": "x", "steps": []},
    {"steps": [{"name": "a", "approvers": {"roles": ["r"]}}]},           # no name
    {"name": "", "steps": [{"name": "a", "approvers": {"roles": ["r"]}}]},
    {"name": "x", "steps": [{"name": "a", "approvers": {"roles": ["r"]}, "required": 0}]},
    {"name": "x", "steps": [{"name": "a", "approvers": {"roles": ["r"]}, "required": "1"}]},
    {"name": "x", "steps": [{"name": "a", "approvers": {}}]},            # no approvers
    {"name": "x", "steps": [{"name": "a", "approvers": {"roles": [], "users": []}}]},
    {"name": "x", "steps": [{"name": "a"}]},
    {"name": "x", "steps": [{"approvers": {"roles": ["r"]}}]},           # step without a name
    {"name": "x", "steps": [{"name": "a", "approvers": {"roles": [5]}}]},
    {"name": "x", "steps": [{"name": "a", "approvers": {"users": ["bad user"]}}]},
    {"name": "x", "steps": [{"name": "a", "approvers": {"users": ["u"]}, "required": 2}]},
    {"name": "x", "steps": [{"name": "a", "approvers": {"roles": ["r"]}},
                            {"name": "a", "approvers": {"roles": ["r"]}}]},
    {"name": "x", "steps": "a"},
])
def test_definition_validation(shared_herald, body):
    r = shared_herald.api("POST", "/api/workflow-definitions", body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"


def test_definitions_created_listed_and_unique(herald):
    d = define(herald)
    assert d["name"] == "odds_change" and TS_RE.match(d["created_at"])
    assert d["steps"][0] == {"name": "trader", "approvers": {"roles": ["trader"], "users": []},
                             "required": 1}
    assert d["steps"][1]["approvers"] == {"roles": ["risk"], "users": ["rita"]}
    r = herald.api("POST", "/api/workflow-definitions", ODDS_CHANGE)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    # required defaults to 1
    define(herald, {"name": "simple", "steps": [{"name": "only", "approvers": {"users": ["u1"]}}]})
    lst = herald.api("GET", "/api/workflow-definitions").json()["definitions"]
    assert [x["name"] for x in lst] == ["odds_change", "simple"]
    assert lst[1]["steps"][0]["required"] == 1
    assert lst[0]["steps"] == d["steps"]


def test_create_validation(herald):
    define(herald)
    create(herald, definition="nope", expect=404)
    for body in ({"created_by": "carl"}, {"definition": "odds_change"},
                 {"definition": "odds_change", "created_by": "bad user"}, []):
        r = herald.api("POST", "/api/workflows", body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "bad_request"
    assert herald.sqlite("SELECT count(*) AS n FROM workflows")[0]["n"] == 0


# ---- the seed case end to end ----------------------------------------------------------

def test_full_approval_path_with_live_events(herald):
    define(herald)
    carl = herald.client(token=make_token("carl"))            # the creator
    carl.expect("subscribed", room="user:carl")
    rita = herald.client(token=make_token("rita"))            # named approver of step 2
    rita.expect("subscribed", room="user:rita")
    admin = herald.client(token=make_token("boss", roles=["admin"]))
    admin.subscribe("workflows")
    other = herald.client(token=make_token("olga"))
    other.expect("subscribed", room="user:olga")

    wf = create(herald, data={"market": 7, "odds": 2.5})
    wid = wf["id"]
    assert wid.startswith("wf_")
    assert wf["status"] == "pending" and wf["current_step"] == "trader" and wf["version"] == 1
    assert wf["definition"] == "odds_change" and wf["created_by"] == "carl"
    assert wf["data"] == {"market": 7, "odds": 2.5}
    assert TS_RE.match(wf["created_at"]) and wf["updated_at"] == wf["created_at"]

    watcher = herald.client(token=make_token("wanda"))
    watcher.subscribe(f"workflow:{wid}", since={"seq": 0, "epoch": ""})

    # trader approves: step 1 done
    s = act(herald, wid, "approve", "tom", ["trader"], comment="fine")
    assert s["status"] == "in_progress" and s["current_step"] == "risk" and s["version"] == 2
    # a non-approver of the current step
    r = herald.api("POST", f"/api/workflows/{wid}/approve", {"actor": "tom", "roles": ["trader"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    # first risk officer
    s = act(herald, wid, "approve", "rick", ["risk"])
    assert s["status"] == "in_progress" and s["current_step"] == "risk" and s["version"] == 3
    # the same one again: 409, not counted
    r = herald.api("POST", f"/api/workflows/{wid}/approve", {"actor": "rick", "roles": ["risk"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    g = show(herald, wid)
    assert g["version"] == 3 and [a["actor"] for a in g["approvals"]] == ["rick"]
    # rita (by name) completes it
    s = act(herald, wid, "approve", "rita", comment="ok by me")
    assert s["status"] == "approved" and s["version"] == 4 and s["current_step"] is None
    # finished: 409 before any permission check
    for action, actor in (("approve", "rita"), ("reject", "nobody"), ("cancel", "nobody")):
        r = herald.api("POST", f"/api/workflows/{wid}/{action}", {"actor": actor})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "conflict"

    g = show(herald, wid)
    assert [(x["actor"], x["action"], x["step"], x["comment"]) for x in g["history"]] == [
        ("carl", "created", "trader", None), ("tom", "approved", "trader", "fine"),
        ("rick", "approved", "risk", None), ("rita", "approved", "risk", "ok by me")]
    assert all(TS_RE.match(x["time"]) for x in g["history"])

    seq_events = ["workflow.created",
                  "workflow.approved", "workflow.updated",
                  "workflow.approved", "workflow.updated",
                  "workflow.approved", "workflow.updated", "workflow.completed"]
    for c, room in ((watcher, f"workflow:{wid}"), (carl, "user:carl"), (admin, "workflows")):
        evs = c.wait_events(room, len(seq_events))
        assert [e["event"] for e in evs] == seq_events, room
        assert [e["data"]["version"] for e in evs] == [1, 2, 2, 3, 3, 4, 4, 4]
        assert all(e["data"]["id"] == wid for e in evs)
        assert evs[1]["data"]["change"] == {"action": "approved", "actor": "tom", "step": "trader",
                                            "comment": "fine", "time": evs[1]["data"]["change"]["time"]}
        assert evs[-1]["data"]["status"] == "approved"
    # rita is named on step 2: she hears of it from the moment it waits for her
    evs = rita.wait_events("user:rita", 4)
    assert [e["event"] for e in evs] == ["workflow.approved", "workflow.updated",
                                         "workflow.approved", "workflow.updated"]
    assert [e["data"]["version"] for e in evs] == [2, 2, 3, 3]
    other.drain(0.3)
    assert other.events() == []
    # replayable like every event
    hist = herald.api("GET", f"/api/rooms/workflow:{wid}/history").json()["messages"]
    assert [m["event"] for m in hist] == seq_events
    epoch = herald.api("GET", f"/api/rooms/workflow:{wid}").json()["epoch"]
    late = herald.client(token=make_token("late"))
    late.subscribe(f"workflow:{wid}", since={"seq": 3, "epoch": epoch})
    evs = late.wait_events(f"workflow:{wid}", len(seq_events) - 3)
    assert [e["seq"] for e in evs] == list(range(4, len(seq_events) + 1))
    for c in (carl, rita, admin, other, watcher, late):
        c.close()


def test_version_conflict(herald):
    define(herald)
    wid = create(herald)["id"]
    r = herald.api("POST", f"/api/workflows/{wid}/approve",
                   {"actor": "tom", "roles": ["trader"], "version": 5})
    assert r.status_code == 409
    e = r.json()["error"]
    assert e["code"] == "conflict" and e["version"] == 1
    s = act(herald, wid, "approve", "tom", ["trader"], version=1)
    assert s["version"] == 2
    r = herald.api("POST", f"/api/workflows/{wid}/cancel", {"actor": "carl", "version": 1})
    assert r.status_code == 409 and r.json()["error"]["version"] == 2
    assert show(herald, wid)["status"] == "in_progress"


def test_reject_path(herald):
    define(herald)
    wid = create(herald)["id"]
    watcher = herald.client(token=make_token("w"))
    watcher.subscribe(f"workflow:{wid}")
    # rejecting needs an approver of the current step
    r = herald.api("POST", f"/api/workflows/{wid}/reject", {"actor": "rick", "roles": ["risk"]})
    assert r.status_code == 403
    act(herald, wid, "approve", "tom", ["trader"])
    s = act(herald, wid, "reject", "rick", ["risk"], comment="too risky")
    assert s["status"] == "rejected" and s["version"] == 3 and s["current_step"] == "risk"
    r = herald.api("POST", f"/api/workflows/{wid}/approve", {"actor": "rita"})
    assert r.status_code == 409
    evs = watcher.wait_events(f"workflow:{wid}", 4)
    assert [e["event"] for e in evs] == ["workflow.approved", "workflow.updated",
                                         "workflow.rejected", "workflow.updated"]
    assert evs[2]["data"]["change"]["comment"] == "too risky"
    assert [h["action"] for h in show(herald, wid)["history"]] == ["created", "approved", "rejected"]
    watcher.close()


def test_cancel_rules(herald):
    define(herald)
    a, b = create(herald)["id"], create(herald)["id"]
    # neither an approver nor someone else may cancel
    for actor, roles in (("tom", ["trader"]), ("olga", [])):
        r = herald.api("POST", f"/api/workflows/{a}/cancel", {"actor": actor, "roles": roles})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    s = act(herald, a, "cancel", "carl", comment="changed my mind")
    assert s["status"] == "cancelled" and s["version"] == 2
    s = act(herald, b, "cancel", "boss", ["admin"])
    assert s["status"] == "cancelled"
    r = herald.api("POST", f"/api/workflows/{b}/cancel", {"actor": "carl"})
    assert r.status_code == 409
    events = [m["event"] for m in herald.api("GET", f"/api/rooms/workflow:{a}/history").json()["messages"]]
    assert events == ["workflow.created", "workflow.cancelled", "workflow.updated"]


def test_unknown_workflow_and_bad_requests(herald):
    define(herald)
    wid = create(herald)["id"]
    for path in ("/api/workflows/wf_999/approve", "/api/workflows/nope/approve"):
        r = herald.api("POST", path, {"actor": "tom", "roles": ["trader"]})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    for path in ("/api/workflows/wf_999", "/api/workflows/x"):
        assert herald.api("GET", path).status_code == 404
    for body in ({}, {"actor": ""}, {"actor": "a b"}, {"actor": "tom", "roles": "trader"},
                 {"actor": "tom", "comment": 5}, {"actor": "tom", "version": "1"}):
        r = herald.api("POST", f"/api/workflows/{wid}/approve", body)
        assert r.status_code == 400, (body, r.text)
    assert herald.api("POST", f"/api/workflows/{wid}/frobnicate", {"actor": "t"}).status_code == 404
    assert show(herald, wid)["version"] == 1


def test_list_filters_and_paging(herald):
    define(herald)
    define(herald, {"name": "simple", "steps": [{"name": "only", "approvers": {"users": ["u1"]}}]})
    ids = [create(herald, created_by=f"c{i % 3}", definition="simple" if i % 2 else "odds_change")["id"]
           for i in range(12)]
    act(herald, ids[1], "approve", "u1")
    act(herald, ids[2], "cancel", "c2")
    lst = herald.api("GET", "/api/workflows").json()["workflows"]
    assert [w["id"] for w in lst] == ids[::-1]
    q = herald.api("GET", "/api/workflows?status=approved").json()["workflows"]
    assert [w["id"] for w in q] == [ids[1]]
    q = herald.api("GET", "/api/workflows?definition=simple&created_by=c0").json()["workflows"]
    assert [w["id"] for w in q] == [ids[i] for i in (9, 3)]
    seen, before = [], ""
    while True:
        page = herald.api("GET", f"/api/workflows?limit=5{before}").json()
        seen += [w["id"] for w in page["workflows"]]
        if not page["next_before"]:
            break
        before = "&before=" + page["next_before"]
    assert seen == ids[::-1]
    for q in ("?limit=0", "?limit=501", "?status=done", "?before=xyz", "?limit=x"):
        r = herald.api("GET", "/api/workflows" + q)
        assert r.status_code == 400, q


# ---- bulk --------------------------------------------------------------------------------

def create_many(h, n, created_by="carl", definition="odds_change"):
    s = h.api_session()
    out = []
    for _ in range(n):
        r = s.post(h.admin_url("/api/workflows"), json={"definition": definition,
                                                         "created_by": created_by})
        assert r.status_code == 201, r.text
        out.append(r.json()["id"])
    return out


def test_bulk_cancel_of_500_with_progress_and_unknown_ids(herald):
    define(herald)
    ids = create_many(herald, 500)
    done_one = ids[5]
    act(herald, done_one, "cancel", "carl")                  # already finished: a per-id 409
    carl = herald.client(token=make_token("carl"))
    carl.expect("subscribed", room="user:carl")
    carl.drain(0.2)
    before = len(carl.events("user:carl"))
    body = {"action": "cancel", "ids": ids + ["wf_99999", "bogus"], "actor": "carl",
            "comment": "bulk clean-up"}
    r = herald.api("POST", "/api/workflows/bulk", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["bulk_id"] and len(out["results"]) == 502
    res = {x["id"]: x for x in out["results"]}
    assert [x["id"] for x in out["results"]] == body["ids"]
    for i in ids:
        if i == done_one:
            assert res[i]["ok"] is False and res[i]["error"]["code"] == "conflict"
        else:
            assert res[i]["ok"] is True and res[i]["status"] == "cancelled", res[i]
    for i in ("wf_99999", "bogus"):
        assert res[i]["ok"] is False and res[i]["error"]["code"] == "not_found"
        assert res[i]["status"] is None
    assert out["succeeded"] == 499 and out["failed"] == 3

    def bulk_events():
        return [e for e in carl.events("user:carl")[before:] if e["event"].startswith("bulk.")]
    done = carl._pump_until(lambda: (lambda ev: ev if ev and ev[-1]["event"] == "bulk.completed"
                                     else None)(bulk_events()), 10, lambda: "bulk.completed")
    progress = [e["data"] for e in done if e["event"] == "bulk.progress"]
    assert all(p["bulk_id"] == out["bulk_id"] and p["total"] == 502 for p in progress)
    values = [p["done"] for p in progress]
    assert values == sorted(values) and values[-1] == 502
    assert all(b - a <= 10 for a, b in zip([0] + values, values))
    assert done[-1]["data"] == {"bulk_id": out["bulk_id"], "succeeded": 499, "failed": 3}
    rows = herald.sqlite("SELECT status, count(*) AS n FROM workflows GROUP BY status")
    assert {r["status"]: r["n"] for r in rows} == {"cancelled": 500}
    carl.close()


def test_bulk_validation(shared_herald):
    h = shared_herald
    for body in ({"action": "cancel", "ids": [], "actor": "a"},
                 {"action": "cancel", "ids": ["wf_1"] * 1001, "actor": "a"},
                 {"action": "burn", "ids": ["wf_1"], "actor": "a"},
                 {"action": "cancel", "ids": "wf_1", "actor": "a"},
                 {"action": "cancel", "ids": ["wf_1"]}):
        r = h.api("POST", "/api/workflows/bulk", body)
        assert r.status_code == 400, (body, r.text)


def test_bulk_does_not_stall_publishes(herald):
    define(herald)
    ids = create_many(herald, 300)
    result = {}

    def run():
        result["r"] = herald.api("POST", "/api/workflows/bulk",
                                 {"action": "cancel", "ids": ids, "actor": "carl"})
    t = threading.Thread(target=run)
    t.start()
    worst = 0.0
    s = herald.api_session()
    while t.is_alive():
        t0 = time.time()
        r = s.post(herald.admin_url("/api/publish"), json={"room": "race:1", "event": "e", "data": {}})
        assert r.status_code == 200
        worst = max(worst, time.time() - t0)
    t.join()
    assert result["r"].status_code == 200 and result["r"].json()["succeeded"] == 300
    assert worst < 2.0


# ---- concurrency, durability, outbox ----------------------------------------------------------

def test_concurrent_approvals_from_two_workers_count_once(herald):
    define(herald, {"name": "two", "steps": [{"name": "s", "approvers": {"roles": ["risk"]},
                                             "required": 2}]})
    clients, workers = connect_on_all_workers(herald, token=make_token("rick", roles=["risk"]))
    assert len(workers) == 2
    by_worker = {}
    conns = herald.api("GET", "/api/connections").json()["connections"]
    where = {str(x["id"]): x["worker"] for x in conns}
    for c in clients:
        by_worker.setdefault(where[c.welcome["client_id"]], c)
    a, b = list(by_worker.values())[:2]
    for round_ in range(10):
        wid = create(herald, definition="two")["id"]
        a.send({"type": "workflow", "id": "a", "action": "approve", "workflow": wid})
        b.send({"type": "workflow", "id": "b", "action": "approve", "workflow": wid})
        ra, rb = a.expect(id="a"), b.expect(id="b")
        kinds = sorted([ra["type"], rb["type"]])
        assert kinds == ["error", "workflow"], (ra, rb)
        err = ra if ra["type"] == "error" else rb
        assert err["code"] == "conflict"
        g = show(herald, wid)
        assert g["version"] == 2 and g["status"] == "in_progress"
        assert [x["actor"] for x in g["approvals"]] == ["rick"]
    for c in clients:
        c.close()


def test_acknowledged_transitions_survive_kill_9(herald):
    define(herald)
    wid = create(herald)["id"]
    act(herald, wid, "approve", "tom", ["trader"])
    act(herald, wid, "approve", "rick", ["risk"])
    herald.kill_all()
    herald.start()
    g = show(herald, wid)
    assert g["version"] == 3 and g["status"] == "in_progress"
    assert [x["actor"] for x in g["approvals"]] == ["rick"]
    events = [m["event"] for m in herald.api("GET", f"/api/rooms/workflow:{wid}/history").json()["messages"]]
    assert events == ["workflow.created"] + ["workflow.approved", "workflow.updated"] * 2
    s = act(herald, wid, "approve", "rita")
    assert s["status"] == "approved" and s["version"] == 4
    r = herald.api("POST", f"/api/workflows/{wid}/approve", {"actor": "rick", "roles": ["risk"]})
    assert r.status_code == 409


def test_workflow_events_create_webhook_deliveries(herald):
    r = herald.api("POST", "/api/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["workflow.*"]})
    assert r.status_code == 201, r.text
    endpoint = r.json()["id"]
    define(herald)
    wid = create(herald)["id"]
    act(herald, wid, "approve", "tom", ["trader"])
    herald.publish("race:1", "odds", {})                      # not a workflow event
    rows = herald.sqlite(f"SELECT event, room, seq FROM webhook_deliveries WHERE endpoint_id = '{endpoint}' "
                         f"AND room = 'workflow:{wid}' ORDER BY seq")
    assert [(r["event"], r["seq"]) for r in rows] == [
        ("workflow.created", 1), ("workflow.approved", 2), ("workflow.updated", 3)]
    msgs = herald.sqlite("SELECT count(*) AS n FROM messages WHERE event LIKE 'workflow.%'")[0]["n"]
    total = herald.sqlite(f"SELECT count(*) AS n FROM webhook_deliveries WHERE endpoint_id = '{endpoint}'")
    assert total[0]["n"] == msgs
    assert herald.sqlite("SELECT count(*) AS n FROM webhook_deliveries WHERE event = 'odds'")[0]["n"] == 0


# ---- WebSocket ---------------------------------------------------------------------------------

def test_websocket_workflow_message(herald):
    define(herald)
    wid = create(herald)["id"]
    tom = herald.client(token=make_token("tom", roles=["trader"]))
    r = tom.call("workflow", action="approve", workflow=wid, comment="via ws")
    assert r["type"] == "workflow" and r["workflow"]["id"] == wid
    assert r["workflow"]["version"] == 2 and r["workflow"]["current_step"] == "risk"
    r = tom.call("workflow", action="approve", workflow=wid)
    assert r["type"] == "error" and r["code"] == "forbidden"
    r = tom.call("workflow", action="approve", workflow="wf_424242")
    assert r["type"] == "error" and r["code"] == "not_found"
    rita = herald.client(token=make_token("rita"))
    r = rita.call("workflow", action="approve", workflow=wid, version=1)
    assert r["type"] == "error" and r["code"] == "conflict"
    r = rita.call("workflow", action="bless", workflow=wid)
    assert r["type"] == "error" and r["code"] == "bad_request"
    r = rita.call("workflow", action="approve")
    assert r["type"] == "error" and r["code"] == "bad_request"
    carl = herald.client(token=make_token("carl"))
    r = carl.call("workflow", action="cancel", workflow=wid)
    assert r["type"] == "workflow" and r["workflow"]["status"] == "cancelled"
    r = rita.call("workflow", action="approve", workflow=wid)
    assert r["type"] == "error" and r["code"] == "conflict"
    anon = herald.client()
    r = anon.call("workflow", action="approve", workflow=wid)
    assert r["type"] == "error" and r["code"] == "auth_required"
    assert show(herald, wid)["history"][1]["comment"] == "via ws"
    for c in (tom, rita, carl, anon):
        c.close()


# ---- heraldctl ----------------------------------------------------------------------------------

def test_heraldctl_workflows(herald):
    def ctl(*args, ok=True):
        p = subprocess.run([HERALDCTL, "-c", herald.conf, "workflows", *args],
                           capture_output=True, text=True, timeout=30)
        assert (p.returncode == 0) == ok, (args, p.stdout, p.stderr)
        return json.loads(p.stdout) if ok else p.stderr

    d = ctl("define", "odds_change", "--steps", json.dumps(ODDS_CHANGE["steps"]))
    assert d["name"] == "odds_change" and len(d["steps"]) == 2
    assert [x["name"] for x in ctl("definitions")["definitions"]] == ["odds_change"]
    wf = ctl("create", "odds_change", "--by", "carl", "--data", '{"market": 7}')
    assert wf["status"] == "pending" and wf["data"] == {"market": 7}
    s = ctl("approve", wf["id"], "--actor", "tom", "--roles", "trader", "--comment", "ok",
            "--version", "1")
    assert s["version"] == 2 and s["current_step"] == "risk"
    assert "conflict" in ctl("approve", wf["id"], "--actor", "tom", "--roles", "trader",
                             "--version", "1", ok=False)
    s = ctl("reject", wf["id"], "--actor", "rita")
    assert s["status"] == "rejected"
    g = ctl("show", wf["id"])
    assert [h["action"] for h in g["history"]] == ["created", "approved", "rejected"]
    others = [ctl("create", "odds_change", "--by", "carl")["id"] for _ in range(3)]
    out = ctl("bulk", "cancel", ",".join(others + ["wf_999"]), "--actor", "carl")
    assert [r["ok"] for r in out["results"]] == [True, True, True, False]
    assert [w["id"] for w in ctl("list", "--status", "cancelled", "--limit", "2")["workflows"]] == \
        others[::-1][:2]
    assert len(ctl("list")["workflows"]) == 4


def test_workflow_figures_in_stats_and_metrics(herald):
    define(herald)
    a, b = create(herald)["id"], create(herald)["id"]
    act(herald, a, "cancel", "carl")
    herald.api("POST", f"/api/workflows/{b}/approve", {"actor": "nobody"})
    st = herald.api("GET", "/api/stats").json()["workflows"]
    assert st["by_status"] == {"pending": 1, "in_progress": 0, "approved": 0, "rejected": 0,
                               "cancelled": 1}
    assert st["created"] == 2 and st["transitions"] == 1 and st["refused"] == 1
    text = herald.api("GET", "/metrics").text
    assert 'herald_workflows{status="cancelled"} 1' in text
    assert "herald_workflow_transitions_total 1" in text
