// OpenFeature's web SDK with the OFREP web provider, as a browser would use them, against a
// running Tailor server. Usage: node web_provider.mjs <base url> <placements.yaml to edit>
// Prints one JSON line with what the providers saw; tests/ofrep/test_web_provider.py checks it.
import { readFileSync, writeFileSync } from "node:fs";
import { EventSource } from "eventsource";
import { OpenFeature, ProviderEvents } from "@openfeature/web-sdk";
import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";

globalThis.EventSource = EventSource; // node 20 has fetch but no EventSource
const [base, rulesFile] = process.argv.slice(2);
const WAIT_MS = 20000; // generous: the machine running the tests is shared
const VIP = { targetingKey: "v-vip", orders_12m: 6, spend_12m: 900, consent: { personalization: true } };

function edit(from, to) {
  const text = readFileSync(rulesFile, "utf8");
  if (!text.includes(from)) throw new Error(`${from} not in ${rulesFile}`);
  writeFileSync(rulesFile, text.replace(from, to));
}

function changed(client, variant) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setTimeout(() => reject(new Error(`no ${variant} within ${WAIT_MS} ms`)), WAIT_MS);
    client.addHandler(ProviderEvents.ConfigurationChanged, () => {
      if (client.getObjectDetails("home_hero", {}).variant === variant) {
        clearTimeout(timer);
        resolve(Date.now() - started);
      }
    });
  });
}

function seen(details) {
  return { value: details.value, variant: details.variant, reason: details.reason, metadata: details.flagMetadata };
}

async function provider(domain, options) {
  const made = new OFREPWebProvider({ baseUrl: base, cacheMode: "disabled", ...options });
  await OpenFeature.setContext(domain, VIP);
  await OpenFeature.setProviderAndWait(domain, made);
  return OpenFeature.getClient(domain);
}

const out = {};
const polling = await provider("polling", { changeDetection: "polling", pollInterval: 200 });
out.bulk = seen(polling.getObjectDetails("home_hero", {}));
out.missing = polling.getObjectDetails("no_such_placement", { fallback: true });
out.missing = { value: out.missing.value, errorCode: out.missing.errorCode };
// Let a few polls find the bundle unchanged first (answered 304 to the ETag): reloads are fast
// enough that a poll right after the edit may already see the new revision.
await new Promise((resolve) => setTimeout(resolve, 3 * 200));
const byPolling = changed(polling, "hero_bold");
edit("serve: hero_vip }", "serve: hero_bold }");
out.pollingMs = await byPolling;
out.afterPolling = seen(polling.getObjectDetails("home_hero", {}));


const sse = await provider("sse", { changeDetection: "sse", pollInterval: 0 });
out.beforeEvent = sse.getObjectDetails("home_hero", {}).variant;
const byEvent = changed(sse, "hero_eu");
edit("serve: hero_bold }", "serve: hero_eu }");
out.eventMs = await byEvent;
out.afterEvent = seen(sse.getObjectDetails("home_hero", {}));
console.log(JSON.stringify(out));
await OpenFeature.close();
process.exit(0);
