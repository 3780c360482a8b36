// GrowthBook's remote evaluation (@growthbook/proxy-eval) behind a bare node:http server,
// the peer loadtests/compare_http.py measures Tailor against.
//
//   node loadtests/growthbook/server.mjs FEATURES_JSON PORT
//
// FEATURES_JSON is a GrowthBook payload ({"features": {...}}) written by compare_http.py:
// the 20 flags of tests/bench/flags20 as GrowthBook features. It is read once at start.
//
//   POST /eval    {"attributes": {...}}  ->  the payload evaluated for those attributes
//   GET  /healthz                        ->  {"status":"ok"}
//
// One process, 127.0.0.1 only, no logging: the cheapest door GrowthBook's evaluator can have,
// as Tailor's ceiling servers are for Litestar and granian.
import { readFileSync } from "node:fs";
import http from "node:http";
import { evaluateFeatures } from "@growthbook/proxy-eval";

const [featuresPath, port] = process.argv.slice(2);
if (!featuresPath || !port) {
  console.error("usage: node server.mjs FEATURES_JSON PORT");
  process.exit(2);
}
const payload = JSON.parse(readFileSync(featuresPath, "utf8"));
const JSON_HEADERS = { "content-type": "application/json" };

function answer(res, status, body) {
  res.writeHead(status, JSON_HEADERS);
  res.end(JSON.stringify(body));
}

async function evaluate(req, res) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  let attributes;
  try {
    attributes = JSON.parse(Buffer.concat(chunks).toString("utf8")).attributes;
  } catch {
    return answer(res, 400, { error: "body is not JSON" });
  }
  if (typeof attributes !== "object" || attributes === null) {
    return answer(res, 400, { error: "attributes must be an object" });
  }
  answer(res, 200, await evaluateFeatures({ payload, attributes }));
}

const server = http.createServer((req, res) => {
  if (req.method === "POST" && req.url === "/eval") {
    evaluate(req, res).catch((error) => answer(res, 500, { error: String(error) }));
  } else if (req.method === "GET" && req.url === "/healthz") {
    answer(res, 200, { status: "ok" });
  } else {
    answer(res, 404, { error: "not found" });
  }
});
server.keepAliveTimeout = 60_000; // wrk keeps its connections for the whole run
server.listen(Number(port), "127.0.0.1");
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref(); // whatever is left open
  });
}
