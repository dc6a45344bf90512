/* herald.d.ts -- TypeScript declarations of the herald JavaScript client
 * (herald.mjs, and the global `Herald` of herald.js). */

export declare const VERSION: string;

/** A room's position: the last seq delivered and the room's epoch. */
export interface Position {
	seq: number;
	epoch: string;
}

/** One event of a room, as delivered to handlers (never twice, in seq order). */
export interface HeraldEvent<T = unknown> {
	room: string;
	seq: number;
	epoch: string;
	event: string;
	/** The publisher's JSON. */
	data: T;
	/** RFC 3339 UTC with milliseconds. */
	ts: string;
}

/** The server's `subscribed` reply for a room. */
export interface SubscribedInfo {
	room: string;
	seq: number;
	epoch: string;
	/** false: the position could not be honoured; refetch the room's state. */
	recovered: boolean;
	replayed: number;
}

export type ConnectionState = "idle" | "connecting" | "connected" | "disconnected";

export interface StateChange {
	state: ConnectionState;
	/** Why the connection went down (close reason, "auth_failed", "heartbeat timeout"...). */
	reason?: string;
	/** WebSocket close code, when there was one. */
	code?: number;
	willReconnect?: boolean;
	/** Milliseconds until the next attempt. */
	delay?: number;
	attempt?: number;
	clientId?: string;
	user?: string | null;
}

export interface Notification {
	id: number;
	seq: number;
	type: string;
	title?: string | null;
	message?: string | null;
	data?: unknown;
	action_url?: string | null;
	[key: string]: unknown;
}

/** A WebSocket constructor: the browser's, Node 22's global, or the `ws` package. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => {
	readyState: number;
	send(data: string): void;
	close(code?: number, reason?: string): void;
	onopen: ((ev: any) => void) | null;
	onmessage: ((ev: { data: any }) => void) | null;
	onclose: ((ev: { code: number; reason: string }) => void) | null;
	onerror: ((ev: any) => void) | null;
};

export interface ConnectOptions {
	/** ws:// or wss:// URL of /ws. */
	url: string;
	/** A JWT; without token or getToken the connection is anonymous. */
	token?: string;
	/** Called for the first token and again after close 4003, token_expired or auth_failed. */
	getToken?: () => string | Promise<string>;
	/** WebSocket constructor (required on Node < 22: pass the `ws` package). */
	WebSocket?: WebSocketConstructor;
	/** Reconnect delays in ms: full jitter over min * 2^attempt, capped at max. Default 500 / 30000. */
	backoff?: { min?: number; max?: number };
	/** Milliseconds a request waits for its reply. Default 15000. */
	requestTimeout?: number;
}

export declare class HeraldError extends Error {
	/** The protocol's error code (forbidden, not_found, ...), or disconnected, timeout, closed. */
	code: string;
	reply: Record<string, unknown> | null;
	constructor(code: string, message?: string, reply?: Record<string, unknown>);
}

export interface SubscriptionEvents {
	event: HeraldEvent;
	subscribed: SubscribedInfo;
	unrecovered: SubscribedInfo;
	error: HeraldError;
}

export declare class Subscription {
	readonly room: string;
	readonly active: boolean;
	/** Settles with the first `subscribed` reply for the room. */
	readonly ready: Promise<SubscribedInfo>;
	readonly position: Position | null;
	on<K extends keyof SubscriptionEvents>(name: K, fn: (arg: SubscriptionEvents[K]) => void): this;
	off<K extends keyof SubscriptionEvents>(name: K, fn: (arg: SubscriptionEvents[K]) => void): this;
	unsubscribe(): Promise<void>;
}

export interface ClientEvents {
	event: HeraldEvent;
	notification: Notification;
	state: StateChange;
	error: Error;
	subscribed: SubscribedInfo;
	unrecovered: SubscribedInfo;
}

export declare class HeraldClient {
	constructor(opts: ConnectOptions);
	readonly url: string;
	readonly state: ConnectionState;
	readonly clientId: string | null;
	readonly user: string | null;
	/** The user's unread notifications when this connection was authenticated. */
	readonly unread: number;
	open(): this;
	on<K extends keyof ClientEvents>(name: K, fn: (arg: ClientEvents[K]) => void): this;
	once<K extends keyof ClientEvents>(name: K, fn: (arg: ClientEvents[K]) => void): this;
	off<K extends keyof ClientEvents>(name: K, fn: (arg: ClientEvents[K]) => void): this;
	subscribe<T = unknown>(room: string, handler?: (ev: HeraldEvent<T>) => void,
			       opts?: { since?: Position }): Subscription;
	/** Every room with a position, to store and pass back as `since` later. */
	positions(): Record<string, Position>;
	publish(room: string, event: string, data?: unknown): Promise<{ room: string; seq: number; epoch: string }>;
	read(what: Array<number> | { ids: Array<number> } | { all: true }): Promise<{ count: number }>;
	workflow(action: "approve" | "reject" | "cancel", id: string | number,
		 opts?: { comment?: string; version?: number }): Promise<Record<string, unknown>>;
	ping(): Promise<{ type: "pong"; ts: string }>;
	/** Closes for good: no reconnect. */
	close(): void;
}

/** Creates a client and starts connecting. */
export declare function connect(opts: ConnectOptions): HeraldClient;

declare const Herald: {
	connect: typeof connect;
	HeraldClient: typeof HeraldClient;
	HeraldError: typeof HeraldError;
	Subscription: typeof Subscription;
	VERSION: string;
};
export default Herald;
