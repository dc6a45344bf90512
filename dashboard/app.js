/* app.js -- the herald dashboard: signs in with the API key (kept in
 * sessionStorage only), reads live figures and a room's events from
 * GET /api/stream (server-sent events read with fetch, so the key travels
 * in the Authorization header), and drives the server API. Every value from
 * the server is written with textContent: nothing it sends becomes markup. */
(function () {
"use strict";

var KEY = "herald.apiKey";
var HISTORY = 120;               /* samples kept for the charts (one a second) */

var apiKey = sessionStorage.getItem(KEY);
var stream = null;               /* AbortController of the open stream */
var streamRoom = "";
var last = null;                 /* previous stats sample, for rates */
var series = { delivered: [], published: [], connections: [] };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, children) {
	var e = document.createElement(tag);
	if (attrs) {
		Object.keys(attrs).forEach(function (k) {
			if (k === "text")
				e.textContent = attrs[k];
			else if (k === "class")
				e.className = attrs[k];
			else if (k === "onclick")
				e.addEventListener("click", attrs[k]);
			else
				e.setAttribute(k, attrs[k]);
		});
	}
	(children || []).forEach(function (c) {
		e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
	});
	return e;
}

function td(text, cls) { return el("td", { text: text === null || text === undefined ? "" : String(text), class: cls || "" }); }

function fmt(n) {
	if (n === null || n === undefined || isNaN(n))
		return "–";
	if (n >= 1e6)
		return (n / 1e6).toFixed(n >= 1e7 ? 0 : 1) + "M";
	if (n >= 1e4)
		return (n / 1e3).toFixed(n >= 1e5 ? 0 : 1) + "k";
	return String(Math.round(n));
}

function duration(s) {
	var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
	return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
}

function showError(msg) {
	var e = $("app-error");
	e.textContent = msg || "";
	e.hidden = !msg;
}

/* ---- the API ---------------------------------------------------------------- */

function api(method, path, body) {
	var opts = { method: method, headers: { Authorization: "Bearer " + apiKey }, cache: "no-store" };
	if (body !== undefined) {
		opts.headers["Content-Type"] = "application/json";
		opts.body = JSON.stringify(body);
	}
	return fetch(path, opts).then(function (res) {
		if (res.status === 401) {
			signOut("The API key was refused.");
			throw new Error("unauthorized");
		}
		return res.text().then(function (text) {
			var json = null;
			try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
			return { status: res.status, body: json };
		});
	});
}

function errorText(r) {
	return r.body && r.body.error ? r.body.error.code + ": " + r.body.error.message : "HTTP " + r.status;
}

/* ---- sign in ------------------------------------------------------------------ */

function signIn(key) {
	apiKey = key;
	return api("GET", "/api/stats").then(function (r) {
		if (r.status !== 200)
			throw new Error(errorText(r));
		sessionStorage.setItem(KEY, key);
		$("signin").hidden = true;
		$("app").hidden = false;
		$("health").hidden = false;
		onStats({ ts: Date.now(), hub: "up", db: "writable", stats: r.body });
		openStream(streamRoom);
		loadRooms();
	});
}

function signOut(message) {
	sessionStorage.removeItem(KEY);
	apiKey = null;
	if (stream)
		stream.abort();
	stream = null;
	last = null;
	$("app").hidden = true;
	$("health").hidden = true;
	$("signin").hidden = false;
	var e = $("signin-error");
	e.textContent = message || "";
	e.hidden = !message;
}

/* ---- the live stream ----------------------------------------------------------- */

function openStream(room) {
	if (stream)
		stream.abort();
	var ctrl = new AbortController();
	stream = ctrl;
	streamRoom = room || "";
	var url = "/api/stream" + (streamRoom ? "?room=" + encodeURIComponent(streamRoom) : "");
	fetch(url, { headers: { Authorization: "Bearer " + apiKey }, signal: ctrl.signal, cache: "no-store" })
		.then(function (res) {
			if (res.status === 401) {
				signOut("The API key was refused.");
				return;
			}
			if (res.status !== 200 || !res.body)
				throw new Error("stream: HTTP " + res.status);
			setLive(true);
			return readEvents(res.body.getReader(), ctrl);
		})
		.catch(function () { /* aborted or dropped: retried below */ })
		.then(function () {
			setLive(false);
			if (stream === ctrl && apiKey)
				setTimeout(function () { if (stream === ctrl && apiKey) openStream(streamRoom); }, 2000);
		});
}

function readEvents(reader, ctrl) {
	var decoder = new TextDecoder();
	var pending = "";
	function pump() {
		return reader.read().then(function (chunk) {
			if (chunk.done || ctrl.signal.aborted)
				return;
			pending += decoder.decode(chunk.value, { stream: true });
			var i;
			while ((i = pending.indexOf("\n\n")) >= 0) {
				dispatch(pending.slice(0, i));
				pending = pending.slice(i + 2);
			}
			return pump();
		});
	}
	return pump();
}

function dispatch(block) {
	var name = "message", data = [];
	block.split("\n").forEach(function (line) {
		if (line.indexOf("event: ") === 0)
			name = line.slice(7);
		else if (line.indexOf("data: ") === 0)
			data.push(line.slice(6));
	});
	if (!data.length)
		return;
	var v;
	try { v = JSON.parse(data.join("\n")); } catch (e) { return; }
	if (name === "stats")
		onStats(v);
	else if (name === "message")
		onRoomEvent(v);
}

function setLive(on) {
	var d = $("live-dot");
	d.className = on ? "on" : "off";
	d.title = on ? "live stream connected" : "live stream reconnecting";
}

/* ---- figures ------------------------------------------------------------------ */

function badge(id, text, ok) {
	var b = $(id);
	b.textContent = text;
	b.className = "badge " + (ok ? "ok" : "bad");
}

function onStats(ev) {
	badge("hub-badge", "hub " + ev.hub, ev.hub === "up");
	badge("db-badge", "db " + ev.db, ev.db === "writable");
	var s = ev.stats;
	if (!s)
		return;
	var msgs = s.messages || {}, wh = s.webhooks || {};
	$("uptime").textContent = "up " + duration(s.uptime || 0);
	$("t-connections").textContent = fmt(s.connections);
	$("t-users").textContent = fmt(s.unique_users);
	$("t-anonymous").textContent = fmt(s.anonymous);
	$("t-rooms").textContent = fmt(s.rooms);
	$("t-slow").textContent = fmt(msgs.slow_consumers_closed);
	$("t-webhooks").textContent = fmt(wh.queued) + " / " + fmt(wh.dead);
	var now = { ts: ev.ts, delivered: msgs.delivered || 0, published: msgs.published || 0 };
	if (last && now.ts > last.ts) {
		var dt = (now.ts - last.ts) / 1000;
		var dr = Math.max(0, now.delivered - last.delivered) / dt;
		var pr = Math.max(0, now.published - last.published) / dt;
		$("t-delivered").textContent = fmt(dr);
		$("t-published").textContent = fmt(pr);
		push("delivered", dr);
		push("published", pr);
	}
	push("connections", s.connections || 0);
	last = now;
	renderWorkers(s.workers || []);
	draw("c-delivered", series.delivered, "#1f6feb");
	draw("c-published", series.published, "#8250df");
	draw("c-connections", series.connections, "#1a7f37");
}

function push(name, v) {
	var a = series[name];
	a.push(v);
	if (a.length > HISTORY)
		a.shift();
}

function draw(id, data, color) {
	var c = $(id);
	var ratio = window.devicePixelRatio || 1;
	var w = c.clientWidth || 600, h = c.clientHeight || 120;
	if (c.width !== Math.round(w * ratio)) {
		c.width = Math.round(w * ratio);
		c.height = Math.round(h * ratio);
	}
	var g = c.getContext("2d");
	g.setTransform(ratio, 0, 0, ratio, 0, 0);
	g.clearRect(0, 0, w, h);
	var max = Math.max.apply(null, data.concat([1]));
	g.fillStyle = "#656d76";
	g.font = "11px system-ui, sans-serif";
	g.fillText(fmt(max), 4, 12);
	g.strokeStyle = "#eaeef2";
	g.beginPath();
	g.moveTo(0, h / 2);
	g.lineTo(w, h / 2);
	g.stroke();
	if (data.length < 2)
		return;
	var step = w / (HISTORY - 1);
	var x0 = w - (data.length - 1) * step;
	g.beginPath();
	data.forEach(function (v, i) {
		var x = x0 + i * step, y = h - 4 - (v / max) * (h - 20);
		if (i === 0)
			g.moveTo(x, y);
		else
			g.lineTo(x, y);
	});
	g.strokeStyle = color;
	g.lineWidth = 2;
	g.stroke();
	g.lineTo(w, h);
	g.lineTo(x0, h);
	g.closePath();
	g.globalAlpha = 0.12;
	g.fillStyle = color;
	g.fill();
	g.globalAlpha = 1;
}

function renderWorkers(workers) {
	var body = $("workers").tBodies[0];
	body.textContent = "";
	workers.forEach(function (w) {
		body.appendChild(el("tr", null, [
			td(w.slot + 1), td(w.pid, "mono"), td(fmt(w.connections), "num"), td(fmt(w.rooms), "num"),
			td(fmt(w.handshakes), "num"), td(fmt(w.delivered), "num"), td(fmt(w.slow_closed), "num"),
			td(fmt(w.rate_limited), "num"), td(fmt(w.rejected), "num"),
		]));
	});
}

/* ---- rooms and their events ----------------------------------------------------- */

function loadRooms() {
	var prefix = $("rooms-search").value.trim();
	api("GET", "/api/rooms" + (prefix ? "?prefix=" + encodeURIComponent(prefix) : "")).then(function (r) {
		if (r.status !== 200)
			return showError(errorText(r));
		var body = $("rooms").tBodies[0];
		body.textContent = "";
		(r.body.rooms || []).slice(0, 500).forEach(function (room) {
			body.appendChild(el("tr", null, [
				td(room.room, "mono"), td(room.seq, "num"), td(room.subscribers, "num"),
				el("td", null, [el("button", { type: "button", text: "Watch",
					onclick: function () { watch(room.room); } })]),
			]));
		});
		if (!body.rows.length)
			body.appendChild(el("tr", null, [el("td", { colspan: "4", class: "muted", text: "No rooms" })]));
	}).catch(function () {});
}

function watch(room) {
	$("watch-room").value = room;
	$("events").textContent = "";
	$("watch-title").textContent = room ? "Events of " + room + " (live)" : "No room watched";
	$("watch-title").className = room ? "" : "muted";
	openStream(room);
}

function onRoomEvent(m) {
	if (m.room !== streamRoom)
		return;
	var list = $("events");
	var li = el("li", { class: "fresh" }, [
		el("span", { class: "seq", text: "#" + m.seq }),
		el("span", { class: "ts", text: (m.ts || "").slice(11, 23) }),
		el("span", { class: "ev", text: m.event }),
		document.createTextNode(JSON.stringify(m.data)),
	]);
	list.insertBefore(li, list.firstChild);
	setTimeout(function () { li.className = ""; }, 1500);
	while (list.children.length > 200)
		list.removeChild(list.lastChild);
}

/* ---- connections ----------------------------------------------------------------- */

function loadConnections() {
	var user = $("conns-user").value.trim();
	api("GET", "/api/connections" + (user ? "?user=" + encodeURIComponent(user) : "")).then(function (r) {
		if (r.status !== 200)
			return showError(errorText(r));
		var body = $("conns").tBodies[0];
		body.textContent = "";
		(r.body.connections || []).slice(0, 1000).forEach(function (c) {
			body.appendChild(el("tr", { "data-id": String(c.id) }, [
				td(c.id, "mono"), td(c.user === null ? "(anonymous)" : c.user), td(c.worker, "num"),
				td(c.remote_addr, "mono"), td((c.rooms || []).join(", "), "mono"), td(c.connected_at, "mono"),
				el("td", null, [el("button", { type: "button", class: "danger kick", text: "Kick",
					onclick: function () { kick(c.id); } })]),
			]));
		});
		if (!body.rows.length)
			body.appendChild(el("tr", null, [el("td", { colspan: "7", class: "muted", text: "No connections" })]));
	}).catch(function () {});
}

function kick(id) {
	api("DELETE", "/api/connections/" + encodeURIComponent(id)).then(function (r) {
		if (r.status !== 200)
			showError(errorText(r));
		setTimeout(loadConnections, 300);
	}).catch(function () {});
}

/* ---- notifications ---------------------------------------------------------------- */

function loadNotifications() {
	var user = $("notes-user").value.trim();
	if (!user)
		return;
	var q = "?limit=100" + ($("notes-unread").checked ? "&unread=true" : "");
	api("GET", "/api/users/" + encodeURIComponent(user) + "/notifications" + q).then(function (r) {
		if (r.status !== 200)
			return showError(errorText(r));
		$("notes-summary").textContent = r.body.unread + " unread for " + r.body.user;
		var body = $("notes").tBodies[0];
		body.textContent = "";
		(r.body.notifications || []).forEach(function (n) {
			body.appendChild(el("tr", null, [
				td(n.id, "mono"), td(n.type), td(n.title), td(n.message), td(n.created_at, "mono"),
				td(n.read_at ? n.read_at : "unread", n.read_at ? "mono" : "status-pending"),
			]));
		});
	}).catch(function () {});
}

/* ---- webhooks ----------------------------------------------------------------------- */

var hookShown = null;

function loadWebhooks() {
	api("GET", "/api/webhooks").then(function (r) {
		if (r.status !== 200)
			return showError(errorText(r));
		var body = $("hooks").tBodies[0];
		body.textContent = "";
		(r.body.webhooks || []).forEach(function (w) {
			var circuit = w.circuit ? w.circuit.state : "";
			body.appendChild(el("tr", null, [
				td(w.id, "mono"), td(w.url, "mono"), td((w.events || []).join(", "), "mono"),
				td(w.enabled ? "yes" : "no" + (w.disabled_reason ? " (" + w.disabled_reason + ")" : "")),
				td(circuit),
				el("td", null, [el("button", { type: "button", text: "Deliveries",
					onclick: function () { hookShown = w.id; loadDeliveries(); } })]),
			]));
		});
		if (!body.rows.length)
			body.appendChild(el("tr", null, [el("td", { colspan: "6", class: "muted", text: "No webhook endpoints" })]));
	}).catch(function () {});
}

function loadDeliveries() {
	if (!hookShown)
		return;
	var st = $("deliveries-status").value;
	$("deliveries-box").hidden = false;
	$("deliveries-title").textContent = "Deliveries of " + hookShown;
	api("GET", "/api/webhooks/" + encodeURIComponent(hookShown) + "/deliveries?limit=100" +
	    (st ? "&status=" + st : "")).then(function (r) {
		if (r.status !== 200)
			return showError(errorText(r));
		var body = $("deliveries").tBodies[0];
		body.textContent = "";
		(r.body.deliveries || []).forEach(function (d) {
			var cells = [
				td(d.id, "mono"), td(d.event), td(d.room, "mono"), td(d.seq, "num"),
				td(d.status, "status-" + d.status), td(d.attempts, "num"),
				td((d.last_status || "") + (d.last_error ? " " + d.last_error : "")),
				td(d.next_attempt_at, "mono"),
			];
			var action = el("td");
			if (d.status === "failed" || d.status === "dead") {
				action.appendChild(el("button", { type: "button", text: "Retry", onclick: function () {
					api("POST", "/api/webhooks/" + encodeURIComponent(hookShown) + "/deliveries/" +
					    encodeURIComponent(d.id) + "/retry").then(function (x) {
						if (x.status !== 200)
							showError(errorText(x));
						loadDeliveries();
					}).catch(function () {});
				} }));
			}
			cells.push(action);
			body.appendChild(el("tr", null, cells));
		});
	}).catch(function () {});
}

/* ---- workflows ---------------------------------------------------------------------- */

function loadWorkflows() {
	var waiting = [];
	var statuses = ["pending", "in_progress"];
	Promise.all(statuses.map(function (s) {
		return api("GET", "/api/workflows?limit=500&status=" + s);
	})).then(function (rs) {
		var missing = rs.some(function (r) { return r.status === 404; });
		$("wf-note").textContent = missing
			? "Workflows are not available on this server."
			: "Workflows waiting (pending or in progress), by current step.";
		rs.forEach(function (r) {
			if (r.status === 200)
				waiting = waiting.concat(r.body.workflows || []);
		});
		var bySteps = {};
		waiting.forEach(function (w) {
			var k = w.definition + " · " + (w.current_step || "?");
			bySteps[k] = (bySteps[k] || 0) + 1;
		});
		var steps = $("wf-steps");
		steps.textContent = "";
		Object.keys(bySteps).sort().forEach(function (k) {
			steps.appendChild(el("div", { class: "step" }, [
				el("div", { class: "n", text: String(bySteps[k]) }), el("div", { class: "muted", text: k }),
			]));
		});
		var body = $("wf").tBodies[0];
		body.textContent = "";
		waiting.slice(0, 500).forEach(function (w) {
			body.appendChild(el("tr", null, [
				td(w.id, "mono"), td(w.definition), td(w.status), td(w.current_step),
				td(w.created_by), td(w.updated_at, "mono"),
			]));
		});
	}).catch(function () {});
}

/* ---- wiring --------------------------------------------------------------------------- */

var loaders = { rooms: loadRooms, connections: loadConnections, notifications: loadNotifications,
		webhooks: loadWebhooks, workflows: loadWorkflows };

function showTab(name) {
	Array.prototype.forEach.call(document.querySelectorAll("#tabs button"), function (b) {
		b.className = b.getAttribute("data-tab") === name ? "active" : "";
	});
	Object.keys(loaders).forEach(function (k) { $("tab-" + k).hidden = k !== name; });
	showError("");
	loaders[name]();
}

function submit(id, fn) {
	$(id).addEventListener("submit", function (e) {
		e.preventDefault();
		fn();
	});
}

document.addEventListener("DOMContentLoaded", function () {
	submit("signin-form", function () {
		var key = $("apikey").value;
		$("signin-error").hidden = true;
		signIn(key).catch(function (e) {
			signOut(e.message === "unauthorized" ? "The API key was refused." : String(e.message));
		});
		$("apikey").value = "";
	});
	$("signout").addEventListener("click", function () { signOut(""); });
	Array.prototype.forEach.call(document.querySelectorAll("#tabs button"), function (b) {
		b.addEventListener("click", function () { showTab(b.getAttribute("data-tab")); });
	});
	submit("rooms-form", loadRooms);
	submit("watch-form", function () { watch($("watch-room").value.trim()); });
	submit("conns-form", loadConnections);
	submit("notes-form", loadNotifications);
	submit("deliveries-form", loadDeliveries);
	if (apiKey)
		signIn(apiKey).catch(function () { signOut(""); });
	else
		signOut("");
});
})();
