// A checkout written in Node.js: orders a new address limit and confirms its payment,
// with celery-node (https://www.npmjs.com/package/celery-node), Celery's protocol 2.
//
//   npm ci
//   QUOTA_BROKER_URL=redis://localhost:6379/0 node checkout.mjs \
//     --service-mail sm-example-ch --account acc-1009 --from 10 --to 20 --amount 1500
//
// QUOTA_BROKER_URL may be redis://, rediss://, amqp:// or the embedded default's
// redis+socket:///path/to/redis.sock. Payloads are keyword arguments only.
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import celery from "celery-node";

const { values: opt } = parseArgs({
  options: {
    "service-mail": { type: "string" },
    account: { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
    amount: { type: "string", default: "0" },
    currency: { type: "string", default: "CHF" },
    order: { type: "string", default: `ord-${randomUUID()}` },
    "no-payment": { type: "boolean", default: false },
  },
});
for (const name of ["service-mail", "account", "from", "to"]) {
  if (!opt[name]) {
    console.error(`--${name} is required (see the top of checkout.mjs)`);
    process.exit(2);
  }
}

// One celery-node client per queue: celery-node publishes to the queue it was created with.
function client(queue) {
  let url = process.env.QUOTA_BROKER_URL ?? "redis://localhost:6379/0";
  let options = {};
  if (url.startsWith("redis+socket://")) {
    options = { path: url.slice("redis+socket://".length) };
    url = "redis://localhost";
  }
  const c = celery.createClient(url, url, queue);
  c.conf.CELERY_BROKER_OPTIONS = options;
  c.conf.CELERY_BACKEND_OPTIONS = options;
  return c;
}

async function send(queue, task, kwargs) {
  const c = client(queue);
  await c.isReady();
  const taskId = randomUUID();
  // What c.sendTask(task, [], kwargs, taskId) does, but awaited: it returns before the
  // broker has the message, and a short-lived script must not disconnect before that.
  const message = c.createTaskMessage(taskId, task, [], kwargs); // protocol 2: args [], kwargs
  await c.broker.publish(message.body, "", queue, message.headers, message.properties);
  await c.disconnect();
  return taskId;
}

const now = new Date().toISOString(); // UTC, "Z": a timezone offset as the contract wants
const amount = Number(opt.amount);
const request = {
  schema_version: 1,
  request_id: `req-${opt.order}`,
  order_id: opt.order,
  account_id: opt.account,
  service_mail_id: opt["service-mail"],
  expected_address_limit: Number(opt.from),
  new_address_limit: Number(opt.to),
  amount_due: amount,
  currency: opt.currency,
  requested_at: now,
};
const sent = { order_id: opt.order };
sent.request_task_id = await send("quota.orders", "quota.request_change", request);
if (amount > 0 && !opt["no-payment"]) {
  sent.payment_task_id = await send("quota.payments", "quota.payment_confirmed", {
    schema_version: 1,
    payment_id: `pay-${opt.order}`,
    order_id: opt.order,
    amount,
    currency: opt.currency,
    paid_at: now,
  });
}
console.log(JSON.stringify(sent));
