// The fan-out server of the bench, in Bun (uWebSockets under a JS handler): the same protocol
// as ws-endpoint's (`ws-endpoint-bench/src/fanout.rs`): `/fan` sessions subscribe to "all";
// `/control` takes `members` and `fire SEQ`, which calls `server.publish("all", payload)` with a
// 64 B text payload starting with SEQ and answers `fired SEQ SENT DROPPED CLOSED CALL_NS`.
// No compression, no idle timeout, as on our side.
//
//   bun fanout.js 127.0.0.1:9001
const [host, port] = (process.argv[2] || "127.0.0.1:9001").split(":");
let members = 0;

const server = Bun.serve({
  hostname: host,
  port: Number(port),
  fetch(req, server) {
    const path = new URL(req.url).pathname;
    if ((path === "/fan" || path === "/control") && server.upgrade(req, { data: { path } })) {
      return;
    }
    return new Response("not found", { status: 404 });
  },
  websocket: {
    perMessageDeflate: false,
    idleTimeout: 0,
    open(ws) {
      if (ws.data.path === "/fan") {
        ws.subscribe("all");
        members++;
      }
    },
    close(ws) {
      if (ws.data.path === "/fan") members--;
    },
    message(ws, msg) {
      if (ws.data.path !== "/control") return;
      const text = String(msg);
      if (text === "members") {
        ws.send(`members ${members}`);
        return;
      }
      const m = /^fire (\d+)$/.exec(text);
      if (!m) {
        ws.send(`error: unknown command \`${text}\``);
        return;
      }
      let payload = `${m[1]} `;
      while (payload.length < 64) payload += "x";
      const t0 = Bun.nanoseconds();
      server.publish("all", payload);
      const ns = Bun.nanoseconds() - t0;
      ws.send(`fired ${m[1]} ${members} 0 0 ${ns}`);
    },
  },
});
