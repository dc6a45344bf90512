/* workflow-webhooks client: the people of the workflow, each connected as in
 * their browser.
 *   carl (creator)      -- his user:carl gets every event of his workflows,
 *                          and bulk.progress / bulk.completed of his bulk actions;
 *   rita (risk approver) -- user:rita gets the workflows waiting for her; she
 *                          approves over WebSocket (the actor is her token's sub);
 *   desk (role admin)   -- watches the `workflows` room: every workflow event.
 *
 *   node contrib/examples/workflow-webhooks/client.mjs   then run backend.py
 */
import { connect } from "../../js/herald.mjs";
import { WS_URL, WebSocket, check, main, token, waitFor } from "../examplelib.mjs";

const open = (sub, claims) => connect({ url: WS_URL, WebSocket, getToken: () => token(sub, claims) });

main(async () => {
	const carl = open("carl");
	const rita = open("rita", { roles: [] });
	const desk = open("desk", { roles: ["admin"] });

	const carlSaw = [];
	let bulkDone = null;
	carl.on("event", (ev) => {
		if (ev.room !== "user:carl")
			return;
		if (ev.event === "bulk.progress")
			console.log(`carl: bulk ${ev.data.bulk_id} ${ev.data.done}/${ev.data.total}`);
		else if (ev.event === "bulk.completed")
			bulkDone = ev.data;
		else
			console.log(`carl: ${ev.event} ${ev.data.id} ${ev.data.status}`);
		carlSaw.push(ev);
	});

	/* "Waiting for you": approve when a workflow reaches rita's step. */
	const approved = new Set();
	rita.on("event", async (ev) => {
		const wf = ev.data;
		if (ev.room !== "user:rita" || !ev.event.startsWith("workflow.") || approved.has(wf.id) ||
		    wf.current_step !== "risk" || !["pending", "in_progress"].includes(wf.status))
			return;
		approved.add(wf.id);
		console.log(`rita: ${wf.id} waits for risk, approving`);
		try {
			const after = await rita.workflow("approve", wf.id, { comment: "risk ok", version: wf.version });
			console.log(`rita: ${wf.id} is now ${after.status}`);
		} catch (e) {
			console.log(`rita: approve refused: ${e.code}`);
		}
	});

	const deskSaw = [];
	const all = desk.subscribe("workflows", (ev) => deskSaw.push(ev.event));

	await all.ready;
	await waitFor(() => carl.state === "connected" && rita.state === "connected", 10000, "connections");
	console.log("ready");

	await waitFor(() => carlSaw.some((e) => e.event === "workflow.completed"), 20000, "workflow.completed");
	const done = carlSaw.find((e) => e.event === "workflow.completed").data;
	check(done.change.actor === "rita", `carl saw ${done.id} completed, last approval by rita`);
	await waitFor(() => bulkDone, 20000, "bulk.completed");
	check(bulkDone.succeeded === 3 && bulkDone.failed === 1, "carl saw bulk.completed: 3 succeeded, 1 failed");
	check(carlSaw.some((e) => e.event === "bulk.progress" && e.data.done === e.data.total),
	      "carl saw bulk.progress up to done = total");
	await waitFor(() => deskSaw.filter((e) => e === "workflow.cancelled").length === 3, 5000, "desk events");
	check(deskSaw.includes("workflow.created") && deskSaw.includes("workflow.completed"),
	      `desk saw every workflow event in "workflows" (${deskSaw.length})`);
	for (const c of [carl, rita, desk])
		c.close();
}, 40000);
