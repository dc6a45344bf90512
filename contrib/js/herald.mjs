/* herald.mjs -- the JavaScript client of herald's native protocol (browsers and
 * Node >= 18): reconnects with backoff and jitter, resumes every room from the
 * last seq and epoch it delivered, and never hands an event over twice. */

const VERSION = "1.0.0";
const PROTOCOL = "herald.v1";
const REQUEST_TIMEOUT_MS = 15000;

/* An error the server (or the connection) gave to a request. */
class HeraldError extends Error {
	constructor(code, message, reply) {
		super(message || code);
		this.name = "HeraldError";
		this.code = code;
		this.reply = reply || null;
	}
}

/* A tiny event emitter; a listener that throws does not stop the others. */
class Emitter {
	constructor() {
		this._listeners = new Map();
	}

	on(name, fn) {
		if (typeof fn !== "function")
			throw new TypeError("listener must be a function");
		if (!this._listeners.has(name))
			this._listeners.set(name, new Set());
		this._listeners.get(name).add(fn);
		return this;
	}

	off(name, fn) {
		const set = this._listeners.get(name);
		if (set)
			set.delete(fn);
		return this;
	}

	once(name, fn) {
		const wrap = (...args) => {
			this.off(name, wrap);
			fn(...args);
		};
		return this.on(name, wrap);
	}

	_emit(name, arg) {
		const set = this._listeners.get(name);
		if (!set || set.size === 0)
			return false;
		for (const fn of Array.from(set)) {
			try {
				fn(arg);
			} catch (e) {
				if (name !== "error")
					this._emit("error", e);
				else
					setTimeout(() => { throw e; }, 0);
			}
		}
		return true;
	}
}

/* One application handler set on one room; unsubscribe() removes it. */
class Subscription extends Emitter {
	constructor(client, room) {
		super();
		this.client = client;
		this.room = room;
		this.active = true;
	}

	/* Position of the room: the last seq and epoch delivered. */
	get position() {
		const r = this.client._rooms.get(this.room);
		return r ? { seq: r.seq, epoch: r.epoch } : null;
	}

	unsubscribe() {
		if (!this.active)
			return Promise.resolve();
		this.active = false;
		return this.client._removeSubscription(this);
	}
}

/* Full jitter: a random delay in [0, min(max, min * 2^attempt)]. */
function backoffDelay(attempt, min, max) {
	const cap = Math.min(max, min * Math.pow(2, Math.min(attempt, 30)));
	return Math.floor(Math.random() * cap);
}

function messageText(data) {
	if (typeof data === "string")
		return data;
	if (data && typeof data.toString === "function" && !(data instanceof ArrayBuffer))
		return data.toString("utf8");
	return new TextDecoder().decode(data);
}

/* The client. States: idle -> connecting -> connected -> disconnected
 * (-> connecting ...) until close(). */
class HeraldClient extends Emitter {
	constructor(opts) {
		super();
		if (!opts || typeof opts.url !== "string")
			throw new TypeError("connect needs {url}");
		this.url = opts.url;
		this._token = opts.token || null;
		this._getToken = typeof opts.getToken === "function" ? opts.getToken : null;
		this._tokenStale = !this._token && !!this._getToken;
		this._WS = opts.WebSocket || (typeof WebSocket !== "undefined" ? WebSocket : null);
		if (!this._WS)
			throw new TypeError("no WebSocket: pass {WebSocket} (e.g. the ws package) on Node < 22");
		const b = opts.backoff || {};
		this._backoffMin = b.min > 0 ? b.min : 500;
		this._backoffMax = b.max >= this._backoffMin ? b.max : Math.max(30000, this._backoffMin);
		this._requestTimeout = opts.requestTimeout > 0 ? opts.requestTimeout : REQUEST_TIMEOUT_MS;
		this.state = "idle";
		this.clientId = null;
		this.user = null;
		this.unread = 0;
		this._ws = null;
		this._attempt = 0;
		this._timer = null;         /* reconnect */
		this._heartbeat = null;     /* app-level ping */
		this._lastRx = 0;
		this._closed = false;
		this._nextId = 1;
		this._pending = new Map();  /* id -> {resolve, reject, timer, room?} */
		this._queue = [];           /* requests made while not connected */
		/* room -> {seq, epoch, subs: Set<Subscription>, since, confirmed, auto} */
		this._rooms = new Map();
		this._autoRooms = new Set();
	}

	/* ---- connection ------------------------------------------------------ */

	open() {
		if (this._closed || this._ws || this._timer)
			return this;
		this._connect();
		return this;
	}

	_setState(state, extra) {
		this.state = state;
		this._emit("state", Object.assign({ state }, extra || {}));
	}

	async _connect() {
		this._timer = null;
		this._setState("connecting", { attempt: this._attempt });
		if (this._getToken && (this._tokenStale || !this._token)) {
			try {
				this._token = await this._getToken();
				this._tokenStale = false;
			} catch (e) {
				this._emit("error", new HeraldError("token", "getToken failed: " + (e && e.message)));
				this._scheduleReconnect("getToken failed", 0);
				return;
			}
			if (this._closed)
				return;
		}
		let ws;
		try {
			ws = new this._WS(this.url, PROTOCOL);
		} catch (e) {
			this._emit("error", e);
			this._scheduleReconnect("connect failed", 0);
			return;
		}
		this._ws = ws;
		this._lastRx = Date.now();
		ws.onopen = () => { this._lastRx = Date.now(); };
		ws.onmessage = (ev) => {
			if (this._ws !== ws)
				return;
			this._lastRx = Date.now();
			let msg;
			try {
				msg = JSON.parse(messageText(ev.data));
			} catch (e) {
				this._emit("error", new HeraldError("bad_message", "unparsable message from server"));
				return;
			}
			this._onMessage(msg);
		};
		ws.onerror = () => { /* onclose follows with the code */ };
		ws.onclose = (ev) => {
			if (this._ws !== ws)
				return;
			this._lost(ev && ev.code, (ev && ev.reason) || "closed");
		};
	}

	/* The socket is gone: fail what was in flight, then come back. */
	_lost(code, reason) {
		this._ws = null;
		this._stopHeartbeat();
		for (const [id, p] of this._pending) {
			clearTimeout(p.timer);
			this._pending.delete(id);
			p.reject(new HeraldError("disconnected", "connection lost before the reply"));
		}
		for (const r of this._rooms.values())
			r.confirmed = false;
		if (code === 4003)
			this._tokenStale = true;
		if (this._closed) {
			this._setState("disconnected", { code, reason, willReconnect: false });
			return;
		}
		this._scheduleReconnect(reason, code);
	}

	_scheduleReconnect(reason, code) {
		if (this._closed)
			return;
		const delay = backoffDelay(this._attempt++, this._backoffMin, this._backoffMax);
		this._setState("disconnected", { code: code || 0, reason, willReconnect: true, delay });
		this._timer = setTimeout(() => this._connect(), delay);
	}

	/* Closes the socket on purpose (to reconnect), reason for the state event. */
	_drop(reason, code) {
		const ws = this._ws;
		if (!ws)
			return;
		try {
			ws.close(4000, reason.slice(0, 100));
		} catch (e) { /* already closing */ }
		this._lost(code || 0, reason);
	}

	_send(obj) {
		if (!this._ws || this._ws.readyState !== 1)
			return false;
		try {
			this._ws.send(JSON.stringify(obj));
			return true;
		} catch (e) {
			return false;
		}
	}

	/* Sends a request with an id; the reply (or an error with that id)
	 * settles the promise. While not connected it waits in a queue. */
	_request(obj, room) {
		return new Promise((resolve, reject) => {
			const id = "h" + this._nextId++;
			const entry = { obj: Object.assign({ id }, obj), resolve, reject, room };
			entry.timer = setTimeout(() => {
				this._pending.delete(id);
				const i = this._queue.indexOf(entry);
				if (i >= 0)
					this._queue.splice(i, 1);
				reject(new HeraldError("timeout", "no reply in time"));
			}, this._requestTimeout);
			if (this.state === "connected" && this._send(entry.obj))
				this._pending.set(id, entry);
			else
				this._queue.push(entry);
		});
	}

	_flushQueue() {
		const q = this._queue;
		this._queue = [];
		for (const entry of q) {
			if (this._send(entry.obj))
				this._pending.set(entry.obj.id, entry);
			else
				this._queue.push(entry);
		}
	}

	_startHeartbeat(seconds) {
		this._stopHeartbeat();
		const every = Math.max(1, seconds || 25) * 1000;
		this._heartbeat = setInterval(() => {
			const quiet = Date.now() - this._lastRx;
			if (quiet > 2 * every + 5000) {
				this._drop("heartbeat timeout");
				return;
			}
			if (quiet >= every)
				this._send({ type: "ping" });
		}, every / 2);
		if (this._heartbeat && typeof this._heartbeat.unref === "function")
			this._heartbeat.unref();
	}

	_stopHeartbeat() {
		if (this._heartbeat)
			clearInterval(this._heartbeat);
		this._heartbeat = null;
	}

	/* ---- the protocol ------------------------------------------------------ */

	_positions(filter) {
		const out = {};
		for (const [room, r] of this._rooms) {
			if (r.epoch !== null && (!filter || filter(room)))
				out[room] = { seq: r.seq, epoch: r.epoch };
		}
		return out;
	}

	_onMessage(msg) {
		switch (msg.type) {
		case "welcome":
			this.clientId = msg.client_id;
			this.unread = msg.unread || 0;
			this._autoRooms = new Set(msg.rooms || []);
			this._startHeartbeat(msg.heartbeat);
			if (this._token) {
				/* The token goes in a message, not the URL: no access log keeps
				 * it, and auto-joined rooms resume from their positions. */
				this._send({ type: "auth", id: "auth", token: this._token, rooms: this._positions() });
			} else {
				this.user = msg.user;
				this._ready();
			}
			return;
		case "authenticated":
			if (this.state === "connected")
				return;  /* a refresh */
			this.user = msg.user;
			this.unread = msg.unread || 0;
			this._autoRooms = new Set(msg.rooms || []);
			for (const room of this._autoRooms) {
				const r = this._rooms.get(room);
				if (r)
					r.resumedByAuth = true;
			}
			this._ready();
			return;
		case "event":
			this._onEvent(msg);
			return;
		case "subscribed":
			this._onSubscribed(msg);
			break;
		case "error":
			if (msg.id === "auth" || msg.id === "refresh") {
				this._authFailed(msg);
				return;
			}
			if (msg.code === "token_expired" && msg.id === undefined) {
				this._refreshToken();
				return;
			}
			break;
		default:
			break;
		}
		if (msg.id !== undefined && msg.id !== null && this._pending.has(String(msg.id))) {
			const p = this._pending.get(String(msg.id));
			this._pending.delete(String(msg.id));
			clearTimeout(p.timer);
			if (msg.type === "error")
				p.reject(new HeraldError(msg.code, msg.message, msg));
			else
				p.resolve(msg);
			return;
		}
		if (msg.type === "error")
			this._emit("error", new HeraldError(msg.code, msg.message, msg));
	}

	_authFailed(msg) {
		this._tokenStale = true;
		this._emit("error", new HeraldError(msg.code, msg.message, msg));
		if (msg.id === "refresh" && this._getToken)
			return;  /* the server closes with 4003 after its grace; we reconnect */
		this._drop(msg.code || "auth_failed");
	}

	/* The server said the token ran out: fetch a new one and send it. */
	async _refreshToken() {
		this._tokenStale = true;
		if (!this._getToken)
			return;
		try {
			const t = await this._getToken();
			this._token = t;
			this._tokenStale = false;
			this._send({ type: "auth", id: "refresh", token: t });
		} catch (e) {
			this._emit("error", new HeraldError("token", "getToken failed: " + (e && e.message)));
		}
	}

	/* Connected and authenticated: resume every room, then send what waited. */
	_ready() {
		this._attempt = 0;
		this._setState("connected", { clientId: this.clientId, user: this.user });
		for (const [room, r] of this._rooms) {
			r.retries = 0;
			if (r.subs.size === 0 && !this._autoRooms.has(room))
				continue;
			if (r.resumedByAuth) {
				r.resumedByAuth = false;
				continue;
			}
			if (this._autoRooms.has(room) && r.epoch === null)
				continue;  /* joined live by the server already */
			this._sendSubscribe(room, r);
		}
		this._flushQueue();
	}

	_roomEntry(room) {
		let r = this._rooms.get(room);
		if (!r) {
			r = { seq: 0, epoch: null, subs: new Set(), confirmed: false, since: null,
			      resumedByAuth: false, waiters: [], retries: 0 };
			this._rooms.set(room, r);
		}
		return r;
	}

	/* subscribe with since from the room's position (or the caller's since). */
	_sendSubscribe(room, r) {
		const msg = { type: "subscribe", room };
		if (r.epoch !== null)
			msg.since = { seq: r.seq, epoch: r.epoch };
		else if (r.since)
			msg.since = r.since;
		const ws = this._ws;
		this._request(msg, room).catch((e) => {
			if (e.code === "disconnected" || e.code === "timeout" || e.code === "closed")
				return;  /* the next connection subscribes again */
			if (e.code === "unavailable") {
				/* The server is reconnecting to its hub: ask again shortly. */
				const delay = backoffDelay(r.retries++, this._backoffMin, this._backoffMax);
				setTimeout(() => {
					if (this._ws === ws && this.state === "connected" &&
					    (r.subs.size > 0 || this._autoRooms.has(room)))
						this._sendSubscribe(room, r);
				}, delay);
				return;
			}
			const waiters = r.waiters;
			r.waiters = [];
			for (const w of waiters)
				w.reject(e);
			for (const s of r.subs)
				s._emit("error", e);
			this._emit("error", e);
		});
	}

	_onEvent(msg) {
		const r = this._roomEntry(msg.room);
		if (r.epoch !== null && r.epoch !== "" && msg.epoch === r.epoch && msg.seq <= r.seq)
			return;  /* seen already: never twice, never backwards */
		r.seq = msg.seq;
		r.epoch = msg.epoch;
		const ev = { room: msg.room, seq: msg.seq, epoch: msg.epoch, event: msg.event,
			     data: msg.data, ts: msg.ts };
		for (const s of r.subs)
			s._emit("event", ev);
		this._emit("event", ev);
		if (msg.event === "notification" && msg.room.startsWith("user:"))
			this._emit("notification", Object.assign({ seq: msg.seq }, msg.data));
	}

	_onSubscribed(msg) {
		const r = this._roomEntry(msg.room);
		r.confirmed = true;
		/* subscribed.seq is the last seq this connection has for the room. */
		if (r.epoch === null || msg.epoch !== r.epoch || msg.seq > r.seq) {
			if (msg.epoch !== "" || r.epoch === null) {
				r.seq = msg.seq;
				r.epoch = msg.epoch;
			}
		}
		const info = { room: msg.room, seq: msg.seq, epoch: msg.epoch,
			       recovered: msg.recovered !== false, replayed: msg.replayed || 0 };
		const waiters = r.waiters;
		r.waiters = [];
		for (const w of waiters)
			w.resolve(info);
		for (const s of r.subs)
			s._emit("subscribed", info);
		this._emit("subscribed", info);
		if (msg.recovered === false) {
			for (const s of r.subs)
				s._emit("unrecovered", info);
			this._emit("unrecovered", info);
		}
	}

	/* ---- the application's API --------------------------------------------- */

	/* Subscribes handler to room's events. opts.since {seq, epoch} starts
	 * from a stored position (the first time only). Returns the
	 * Subscription; its ready promise settles with the subscribed reply. */
	subscribe(room, handler, opts) {
		if (typeof room !== "string" || !room)
			throw new TypeError("subscribe needs a room name");
		const r = this._roomEntry(room);
		const sub = new Subscription(this, room);
		if (typeof handler === "function")
			sub.on("event", handler);
		const first = r.subs.size === 0;
		r.subs.add(sub);
		if (opts && opts.since && r.epoch === null)
			r.since = { seq: opts.since.seq | 0, epoch: String(opts.since.epoch || "") };
		if (r.confirmed && (!first || this._autoRooms.has(room))) {
			sub.ready = Promise.resolve({ room, seq: r.seq, epoch: r.epoch, recovered: true,
						      replayed: 0 });
		} else {
			sub.ready = new Promise((resolve, reject) => r.waiters.push({ resolve, reject }));
			sub.ready.catch(() => {});
			/* Not connected: the connection subscribes every room when ready. */
			if (first && this.state === "connected")
				this._sendSubscribe(room, r);
		}
		return sub;
	}

	_removeSubscription(sub) {
		const r = this._rooms.get(sub.room);
		if (!r)
			return Promise.resolve();
		r.subs.delete(sub);
		if (r.subs.size > 0 || this._autoRooms.has(sub.room))
			return Promise.resolve();
		this._rooms.delete(sub.room);
		if (this.state !== "connected")
			return Promise.resolve();
		return this._request({ type: "unsubscribe", room: sub.room }).catch(() => {});
	}

	/* Rooms with a position: {room: {seq, epoch}}, to keep across page loads. */
	positions() {
		return this._positions();
	}

	publish(room, event, data) {
		return this._request({ type: "publish", room, event, data: data === undefined ? null : data })
			.then((m) => ({ room: m.room, seq: m.seq, epoch: m.epoch }));
	}

	/* read([ids]) or read({all: true}): marks notifications read. */
	read(what) {
		const msg = { type: "read" };
		if (Array.isArray(what))
			msg.ids = what;
		else if (what && what.all)
			msg.all = true;
		else if (what && Array.isArray(what.ids))
			msg.ids = what.ids;
		else
			return Promise.reject(new TypeError("read needs ids or {all: true}"));
		return this._request(msg).then((m) => ({ count: m.count }));
	}

	/* workflow('approve'|'reject'|'cancel', id, {comment, version}). */
	workflow(action, id, opts) {
		const msg = { type: "workflow", action, workflow: String(id) };
		if (opts && opts.comment !== undefined)
			msg.comment = opts.comment;
		if (opts && opts.version !== undefined)
			msg.version = opts.version;
		return this._request(msg).then((m) => m.workflow);
	}

	ping() {
		return this._request({ type: "ping" });
	}

	/* Closes for good: no reconnect; requests still waiting fail. */
	close() {
		this._closed = true;
		if (this._timer)
			clearTimeout(this._timer);
		this._timer = null;
		for (const entry of this._queue) {
			clearTimeout(entry.timer);
			entry.reject(new HeraldError("closed", "client closed"));
		}
		this._queue = [];
		const ws = this._ws;
		if (ws) {
			try {
				ws.close(1000, "bye");
			} catch (e) { /* closing already */ }
			this._lost(1000, "closed by the application");
		} else if (this.state !== "disconnected") {
			this._stopHeartbeat();
			this._setState("disconnected", { code: 1000, reason: "closed by the application",
							 willReconnect: false });
		}
	}
}

/* Creates a client and starts connecting. */
function connect(opts) {
	return new HeraldClient(opts).open();
}

export { connect, HeraldClient, HeraldError, Subscription, VERSION };
export default { connect, HeraldClient, HeraldError, Subscription, VERSION };
