/* race-odds client: watches two races' odds (race:{id}, throttled) and
 * status (raceinfo:{id}); checks that updates arrive at most once a second
 * per race and that the last one is the newest published.
 *
 *   node contrib/examples/race-odds/client.mjs      then run backend.py
 */
import { connect } from "../../js/herald.mjs";
import { WS_URL, WebSocket, check, main, waitFor } from "../examplelib.mjs";

const RACES = ["1", "2"];

main(async () => {
	/* Anonymous: race rooms are public. */
	const client = connect({ url: WS_URL, WebSocket });
	const odds = {};      /* race -> [{tick, at}] */
	const status = {};    /* race -> status data */
	const subs = [];
	for (const id of RACES) {
		odds[id] = [];
		subs.push(client.subscribe(`race:${id}`, (ev) => {
			odds[id].push({ tick: ev.data.tick, at: Date.parse(ev.ts) });   /* when herald stored it */
			console.log(`race ${id}: odds tick ${ev.data.tick} (seq ${ev.seq})`, JSON.stringify(ev.data.runners));
		}));
		subs.push(client.subscribe(`raceinfo:${id}`, (ev) => {
			status[id] = ev.data;
			console.log(`race ${id}: ${ev.event}`, JSON.stringify(ev.data));
		}));
	}
	await Promise.all(subs.map((s) => s.ready));
	console.log("ready");

	for (const id of RACES) {
		await waitFor(() => status[id], 15000, `race ${id} status`);
		/* The backend posts the status once every odds publish was answered. */
		await waitFor(() => odds[id].length && odds[id].at(-1).tick === status[id].last_tick,
			      3000, `race ${id}: the last tick ${status[id].last_tick}`);
	}
	for (const id of RACES) {
		const got = odds[id];
		const gaps = got.slice(1).map((e, i) => e.at - got[i].at);
		console.log(`race ${id}: ${got.length} updates for ${status[id].last_tick} ticks, gaps ${gaps.join(" ")} ms`);
		check(got.length <= 5, `race ${id}: ${got.length} updates in about 3 s, not ${status[id].last_tick}`);
		check(gaps.every((g) => g >= 950), `race ${id}: updates at least a second apart`);
		check(got.every((e, i) => i === 0 || e.tick > got[i - 1].tick), `race ${id}: ticks only move forward`);
		check(got.at(-1).tick === status[id].last_tick, `race ${id}: the last update is the newest tick`);
	}
	client.close();
}, 30000);
