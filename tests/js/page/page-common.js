/* page-common.js -- what the test page does with a client: subscribe to the
 * room from the query string and record everything on window.__herald. */
function runPage(Herald) {
	var q = new URLSearchParams(location.search);
	var rec = { states: [], events: [], unrecovered: [], errors: [], subscribed: false };
	window.__herald = rec;
	var client = Herald.connect({
		url: q.get("ws"),
		getToken: function () { return q.get("token"); },
		backoff: { min: 100, max: 1000 },
	});
	rec.client = client;
	client.on("state", function (s) {
		rec.states.push({ state: s.state, code: s.code || 0, reason: s.reason || "" });
		document.getElementById("state").textContent = s.state + (s.reason ? " (" + s.reason + ")" : "");
	});
	client.on("error", function (e) { rec.errors.push(String(e && e.code)); });
	client.on("unrecovered", function (i) { rec.unrecovered.push(i.room); });
	var sub = client.subscribe(q.get("room"), function (ev) {
		rec.events.push(ev.seq);
		var li = document.createElement("li");
		li.textContent = ev.room + " #" + ev.seq + " " + ev.event + " " + JSON.stringify(ev.data);
		document.getElementById("events").appendChild(li);
	});
	sub.ready.then(function () { rec.subscribed = true; });
}
