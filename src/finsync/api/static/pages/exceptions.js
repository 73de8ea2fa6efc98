// The Exceptions page: the queue (filtered, sorted by money at stake), one exception's
// detail with its actions, and the Approvals inbox. Every figure comes from
// /v1/exceptions/queue, /v1/exceptions/{id}/detail and /v1/approvals; every action is a
// POST the API carries out as the logged-in principal (and audits).
import { api, can, navigate, register } from "/console/console.js";
import {
  actionForm, age, clear, empty, field, h, iso, jobProgress, money, section,
  select, table,
} from "/console/ui.js";

const ACT = "exceptions:act";
const APPROVE = "exceptions:approve";
const AGES = [
  ["", "any age", null, null],
  ["0-1", "0–1 d", null, 86400],
  ["1-7", "1–7 d", 86400, 7 * 86400],
  ["7-30", "7–30 d", 7 * 86400, 30 * 86400],
  ["30-90", "30–90 d", 30 * 86400, 90 * 86400],
  ["90-", "90+ d", 90 * 86400, null],
];
const PAGE_ROWS = 100;  // rows drawn at first; the API gives at most QUEUE_MAX
const QUEUE_MAX = 500;
const FILTERS = ["status", "class", "entity", "currency", "age", "amount_min", "amount_max"];
const LABELS = {
  retry: "Retry", reroute: "Re-route to the first open period", resolve: "Resolve",
  ignore: "Ignore", resolve_duplicate: "Choose the standing version",
};

const stake = (m) => (m ? money(m.amount, m.currency) : "");
const badge = (text, kind) => h("span", { class: `badge ${kind || ""}` }, text);
const statusKind = (s) => (s === "resolved" ? "ok" : s === "ignored" ? "" : s === "open" ? "bad"
  : "warn");

// The API's query of the page's hash query (the age bucket becomes its bounds).
function apiQuery(query) {
  const out = new URLSearchParams();
  for (const name of FILTERS) {
    const value = query.get(name);
    if (!value) continue;
    if (name === "age") {
      const bucket = AGES.find((a) => a[0] === value);
      if (bucket && bucket[2] !== null) out.set("age_min_s", bucket[2]);
      if (bucket && bucket[3] !== null) out.set("age_max_s", bucket[3]);
    } else {
      out.set(name, value);
    }
  }
  return out;
}

function withLimit(query) {
  const more = new URLSearchParams(query);
  more.set("limit", String(QUEUE_MAX));
  return more.toString();
}

function filterForm(query, choices) {
  const opts = (values, anyText) => [["", anyText], ...values.map((v) => [v, v])];
  const controls = {
    status: select("status", choices.status.map((v) => [v, v]), query.get("status") || "unresolved"),
    class: select("class", opts(choices.class, "every class"), query.get("class") || ""),
    entity: select("entity", opts(choices.entity, "every entity"), query.get("entity") || ""),
    currency: h("input", { name: "currency", size: 4, maxlength: 3, pattern: "[A-Z]{3}",
                           value: query.get("currency") || "", placeholder: "USD" }),
    age: select("age", AGES.map((a) => [a[0], a[1]]), query.get("age") || ""),
    amount_min: h("input", { name: "amount_min", inputmode: "decimal", size: 10,
                             value: query.get("amount_min") || "" }),
    amount_max: h("input", { name: "amount_max", inputmode: "decimal", size: 10,
                             value: query.get("amount_max") || "" }),
  };
  const labels = { status: "Status", class: "Class", entity: "Legal entity",
                   currency: "Currency", age: "Age", amount_min: "At stake from",
                   amount_max: "At stake up to" };
  const form = h("form", { class: "filters", "data-testid": "queue-filters" },
                 FILTERS.map((name) => field(labels[name], controls[name])),
                 h("button", { type: "submit" }, "Apply"),
                 h("button", { type: "button", onclick: () => navigate("exceptions") },
                   "Clear"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const name of FILTERS) {
      const value = controls[name].value.trim();
      if (value && !(name === "status" && value === "unresolved")) chosen.set(name, value);
    }
    const text = chosen.toString();
    navigate(text ? `exceptions?${text}` : "exceptions");
  });
  return form;
}

function replayForm(query) {
  const box = h("div", { class: "replay-job" });
  const form = actionForm("Replay this filtered set", async (reason) => {
    const filter = Object.fromEntries(apiQuery(query));
    for (const key of ["age_min_s", "age_max_s"]) {
      if (filter[key] !== undefined) filter[key] = Number(filter[key]);
    }
    delete filter.status;  // a replay takes the unresolved ones of the filter
    const job = await api("/v1/exceptions/replay", { method: "POST", body: { reason, filter } });
    clear(box);
    box.append(jobProgress(api, job, (done) => {
      const r = done.result;
      box.append(h("p", { role: "status", "data-testid": "replay-result" }, r
        ? `${r.replayed.length} of ${r.chosen} replayed, ${r.refused.length} refused`
          + (r.matching > r.chosen ? ` (${r.matching} match: replay again for the rest)` : "")
        : `failed: ${done.error && done.error.message}`));
    }));
    return `replay ${job.id} started`;
  });
  return h("div", { "data-testid": "replay" }, form, box);
}

async function renderQueue(body, query) {
  const wanted = apiQuery(query);
  wanted.set("limit", query.get("limit") === String(QUEUE_MAX) ? QUEUE_MAX : PAGE_ROWS);
  const [shown, inbox] = await Promise.all([
    api(`/v1/exceptions/queue?${wanted}`),
    can(APPROVE) ? api("/v1/approvals") : Promise.resolve(null)]);
  body.dataset.count = String(shown.count);
  if (inbox && inbox.count) {
    body.append(h("p", { class: "action-status", role: "status", "data-testid": "waiting" },
                  `${inbox.count} request(s) await a second person's approval: `,
                  h("a", { href: "#/approvals" }, "open Approvals")));
  }
  const totals = shown.at_stake.map((m) => money(m.amount, m.currency)).join(", ") || "nothing";
  body.append(section("Filter", filterForm(query, shown.choices)));
  const summary = h("p", { "data-testid": "queue-summary" },
                    `${shown.count} exception(s); money at stake (unresolved): ${totals}`,
                    shown.count > shown.shown ? ` — showing the ${shown.shown} with the most at stake ` : "",
                    shown.count > shown.shown && shown.limit < QUEUE_MAX
                      ? h("a", { href: `#/exceptions?${withLimit(query)}` }, `show ${QUEUE_MAX}`) : null);
  const rows = table({
    caption: "Exceptions, the most money at stake first", csv: "exceptions",
    rows: shown.exceptions,
    rowAttrs: (row) => ({ "data-testid": "exception-row", "data-id": row.id }),
    empty: query.toString()
      ? "No exception matches this filter. Clear the filter, or choose another status."
      : "No unresolved exception: nothing waits for finance. Reconciliation breaks and failed deliveries will appear here.",
    columns: [
      { key: "id", label: "#", render: (r) => h("a", { href: `#/exceptions/${r.id}` }, `#${r.id}`) },
      { key: "class", label: "Class" },
      { key: "status", label: "Status", render: (r) => badge(r.status, statusKind(r.status)) },
      { key: "entity", label: "Entity" },
      { key: "at_stake", label: "At stake", numeric: true, render: (r) => stake(r.at_stake),
        csv: (r) => (r.at_stake ? `${r.at_stake.amount} ${r.at_stake.currency}` : "") },
      { key: "age_s", label: "Age", numeric: true, render: (r) => age(r.age_s) },
      { key: "opened_at", label: "Opened", render: (r) => iso(r.opened_at) },
      { key: "summary", label: "Summary" },
    ],
  });
  body.append(section("Queue", summary, rows));
  if (can(ACT) && shown.count) body.append(section("Bulk replay", replayForm(query)));
}

function pre(value, what) {
  if (value === null || value === undefined) return empty(`No ${what} for this exception.`);
  return h("pre", { tabindex: 0 }, typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

function describe(result) {
  return result.outcomes.map((o) => `#${o.exception_id} ${o.action}: ${o.status} — ${o.detail}`)
    .join("; ");
}

function actionsSection(x, rerender) {
  if (!can(ACT)) return null;
  if (!x.offered.length) {
    if (x.status !== "awaiting_approval") {
      return section("Actions", empty("Nothing to do: this exception is closed."));
    }
    return section("Actions", empty("An action awaits a second person's approval.",
      can(APPROVE) ? h("a", { href: "#/approvals" }, "Decide it in Approvals")
        : "A person with exceptions:approve decides it."));
  }
  const forms = x.offered.map(({ action, needs_approval: needsApproval }) => {
    const label = LABELS[action] || action;
    const keep = select("keep", [["stored", "the stored event stands"],
                                 ["received", "the received body replaces it"]], "stored");
    const path = action === "resolve_duplicate" ? "resolve-duplicate" : action;
    const form = actionForm(label, async (reason) => {
      const body = action === "resolve_duplicate" ? { reason, keep: keep.value } : { reason };
      const result = await api(`/v1/exceptions/${x.id}/${path}`, { method: "POST", body });
      const message = describe(result);
      await rerender(message);
      return message;
    }, { extra: [action === "resolve_duplicate" ? field("Which version stands", keep) : null,
                 needsApproval ? h("p", { class: "hint" }, "Above the approval threshold: a second person must approve.") : null] });
    form.dataset.action = action;
    return form;
  });
  return section("Actions", h("div", { class: "action-grid" }, forms));
}

async function renderDetail(body, id, flash) {
  const x = await api(`/v1/exceptions/${encodeURIComponent(id)}/detail`);
  clear(body);
  const rerender = (message) => renderDetail(body, id, message);
  body.append(h("p", {}, h("a", { href: "#/exceptions" }, "← Back to the queue")));
  if (flash) body.append(h("p", { class: "action-status ok", role: "status", "data-testid": "outcome" }, flash));
  const facts = [
    ["Class", x.class], ["Status", badge(x.status, statusKind(x.status))],
    ["Money at stake", stake(x.at_stake) || "none"], ["Legal entity", x.entity || "—"],
    ["Correlation id", x.correlation_id
      ? h("a", { href: `#/timeline/${encodeURIComponent(x.correlation_id)}` }, x.correlation_id) : "—"],
    ["Opened", iso(x.opened_at)], ["Age", age(x.age_s)], ["Occurrences", x.occurrences],
    ["Objects", (x.objects || []).join(", ")], ["Summary", x.summary],
    ["Detail", x.detail || ""], ["Resolution", x.resolution_note || ""],
  ];
  const card = h("dl", { class: "facts", "data-testid": "exception-detail", "data-id": x.id,
                                 "data-status": x.status },
                 facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  body.append(section(`Exception #${x.id}`, card));
  const acts = actionsSection(x, rerender);
  if (acts) body.append(acts);
  body.append(section("Actions taken", table({
    rows: x.actions, empty: "No action taken yet.",
    columns: [{ key: "id", label: "#" }, { key: "action", label: "Action" },
              { key: "requested_by", label: "Asked by" },
              { key: "requested_at", label: "At", render: (r) => iso(r.requested_at) },
              { key: "reason", label: "Reason" },
              { key: "status", label: "Status", render: (r) => badge(r.status) },
              { key: "decided_by", label: "Decided by" },
              { key: "decision_note", label: "Decision note" }],
  })));
  body.append(section("Deliveries and attempts", table({
    rows: x.deliveries, empty: "No delivery: this exception arose before anything was sent.",
    columns: [{ key: "target", label: "Target" }, { key: "status", label: "Status" },
              { key: "attempts", label: "Attempts", numeric: true },
              { key: "lease_expiries", label: "Lost leases", numeric: true },
              { key: "last_error", label: "Last error" },
              { key: "next_attempt_at", label: "Next attempt", render: (r) => iso(r.next_attempt_at) },
              { key: "completed_at", label: "Completed", render: (r) => iso(r.completed_at) }],
  }), x.calls === null ? h("p", { class: "hint" }, "External calls are shown with audit:read.")
    : table({ caption: "External calls", rows: x.calls, empty: "No external call logged.",
              columns: [{ key: "started_at", label: "At", render: (r) => iso(r.started_at) },
                        { key: "system", label: "System" }, { key: "method", label: "Method" },
                        { key: "endpoint", label: "Endpoint" }, { key: "status", label: "Status" },
                        { key: "duration_ms", label: "ms", numeric: true },
                        { key: "error", label: "Error" }] })));
  body.append(section("Correlation chain", table({
    rows: x.correlation_chain, empty: "This exception names no correlation id.",
    columns: [{ key: "received_at", label: "Received", render: (r) => iso(r.received_at) },
              { key: "type", label: "Event" },
              { key: "aggregate", label: "Document", render: (r) => `${r.aggregate.type} ${r.aggregate.id}${r.aggregate.version ? ` v${r.aggregate.version}` : ""}` },
              { key: "source", label: "Source" }, { key: "status", label: "Status" },
              { key: "event_id", label: "Event id" }, { key: "causation_id", label: "Caused by" }],
  })));
  body.append(h("div", { class: "grid" },
                section("Raw payload", pre(x.raw_payload, "raw payload")),
                section("Mapped document", pre(x.document, "mapped document"))));
}

register({
  path: "exceptions", title: "Exceptions", order: 2, scope: "finance:read",
  async render(body, { params, query }) {
    if (params.length) await renderDetail(body, params[0]);
    else await renderQueue(body, query);
  },
});

// -- the approvals inbox (listed for approvers: exceptions:approve) ---------------------
function decideForms(kind, item, refresh) {
  if (!can(APPROVE)) return null;
  const path = kind === "triage_action" ? `actions/${item.id}` : `requests/${item.id}`;
  const decide = (verb) => actionForm(verb === "approve" ? "Approve" : "Reject", async (reason) => {
    const result = await api(`/v1/approvals/${path}/${verb}`, { method: "POST", body: { reason } });
    const message = result.outcomes ? describe(result) : `request ${result.id}: ${result.status}`;
    await refresh(message);
    return message;
  });
  return h("div", { class: "approval-decide" }, decide("approve"), decide("reject"));
}

function approvalCard(kind, item, refresh) {
  const title = kind === "triage_action"
    ? `${item.action} of exception #${item.exception.id} (${item.exception.class})`
    : `${item.kind} ${item.subject}`;
  const at = kind === "triage_action" && item.exception.at_stake ? stake(item.exception.at_stake) : "";
  return h("article", { class: "card approval", "data-testid": "approval", "data-kind": kind,
                        "data-id": item.id },
           h("h3", {}, title, item.mine ? [" ", badge("asked by you", "warn")] : null),
           h("p", {}, `Asked by ${item.requested_by} at ${iso(item.requested_at)}; expires ${iso(item.expires_at)}`,
             at ? `; at stake ${at}` : ""),
           h("p", {}, `Reason: ${item.reason}`),
           kind === "triage_action"
             ? h("p", {}, h("a", { href: `#/exceptions/${item.exception.id}` }, "Open the exception"))
             : null,
           item.mine ? h("p", { class: "hint" }, "You asked for this: a different person must approve it.") : null,
           decideForms(kind, item, refresh));
}

async function renderInbox(body, flash) {
  const inbox = await api("/v1/approvals");
  clear(body);
  body.dataset.count = String(inbox.count);
  if (flash) body.append(h("p", { class: "action-status ok", role: "status", "data-testid": "outcome" }, flash));
  const refresh = (message) => renderInbox(body, message);
  body.append(section("Exception actions awaiting approval", ...(inbox.actions.length
    ? inbox.actions.map((a) => approvalCard("triage_action", a, refresh))
    : [empty("No exception action awaits approval.",
            "Corrections above the threshold asked for on the Exceptions page appear here.")])));
  body.append(section("Two-person requests", ...(inbox.requests.length
    ? inbox.requests.map((r) => approvalCard("request", r, refresh))
    : [empty("No request awaits approval.",
             "Period reopens and configuration changes appear here.")])));
}

register({
  path: "approvals", title: "Approvals", order: 2.5, scope: APPROVE,
  async render(body) {
    await renderInbox(body);
  },
});
