// The Contract timeline page: a search (#/timeline?q=<id>: a correlation id, or an
// invoice, contract, payment… id -> its correlation ids), and one correlation id
// (#/timeline/<correlation id>): its milestones across the systems, its technical and
// financial status, the exceptions raised for it and, with audit:read, the external calls.
import { api, navigate, register } from "/console/console.js";
import { empty, field, h, iso, money, section, table } from "/console/ui.js";

const STATUS_BADGE = { delivered: "ok", in_progress: "warn", failed: "bad", no_deliveries: "",
                       at_risk: "bad", booked: "ok", recognised: "ok",
                       booked_and_recognised: "ok", declined: "warn" };

function badge(value) {
  return h("span", { class: `badge ${STATUS_BADGE[value] || ""}` }, value);
}

function searchForm(value) {
  const input = h("input", { type: "search", name: "q", value: value || "", required: true,
                             maxlength: 255, placeholder: "amd_acme_0002, inv_…, con_…",
                             "data-testid": "timeline-search" });
  const form = h("form", { class: "filters", role: "search" },
                 field("Correlation id, or an invoice, contract or payment id", input),
                 h("button", { type: "submit" }, "Find"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text) navigate(`timeline?q=${encodeURIComponent(text)}`);
  });
  return form;
}

async function renderSearch(body, text) {
  body.dataset.timelineView = "search";
  body.append(section("Find a timeline", searchForm(text)));
  if (!text) {
    body.append(empty("Enter a correlation id (an amendment's, an order's, a close's) or " +
                      "the id of an invoice, a contract or a payment.",
                      "The exception queue and the reconciliation drill-down link here too."));
    return;
  }
  const found = await api(`/v1/correlations?q=${encodeURIComponent(text)}`);
  if (found.correlations.length === 1 && found.correlations[0].correlation_id === text) {
    navigate(`timeline/${encodeURIComponent(text)}`);
    return;
  }
  body.append(section("Correlation ids", table({
    caption: `What ${found.query} names`,
    columns: [
      { key: "correlation_id", label: "Correlation id", render: (r) =>
        h("a", { href: `#/timeline/${encodeURIComponent(r.correlation_id)}`, class: "break" },
          r.correlation_id) },
      { key: "object_type", label: "Found as", render: (r) => r.object_type || "correlation id" },
      { key: "events", label: "Events", numeric: true },
      { key: "first_at", label: "First", render: (r) => iso(r.first_at) },
      { key: "last_at", label: "Last", render: (r) => iso(r.last_at) },
    ],
    rows: found.correlations, csv: "correlations",
    empty: `No event carries or names ${found.query}. Check the id (ids are exact), or ` +
           "search the exception queue for it.",
  })));
}

function summary(t) {
  const kpi = (label, value) => h("div", { class: "kpi" }, h("div", { class: "label" }, label),
                                  h("div", { class: "value" }, value));
  const deliveries = Object.entries(t.deliveries).map(([s, n]) => `${n} ${s}`).join(", ");
  return h("div", { class: "kpis", "data-testid": "timeline-status",
                    "data-technical": t.technical, "data-financial": t.financial,
                    "data-dunning": String(t.dunning) },
           kpi("Technical status", badge(t.technical)),
           kpi("Financial status", badge(t.financial)),
           kpi("Dunning", t.dunning ? badge("declined") : "no"),
           kpi("Deliveries", deliveries || "none"),
           kpi("Unresolved exceptions", String(t.unresolved_exceptions.length)));
}

function callsBlock(t) {
  if (t.calls === null) {
    return empty(`The external calls are withheld: ${t.calls_withheld}.`,
                 "An auditor or a controller holding audit:read sees them here.");
  }
  return table({
    caption: "External calls made for it (the call log, oldest first)",
    columns: [
      { key: "started_at", label: "At", render: (c) => iso(c.started_at) },
      { key: "system", label: "System" },
      { key: "method", label: "Call" },
      { key: "endpoint", label: "Endpoint" },
      { key: "status", label: "Status", render: (c) =>
        h("span", { class: `badge ${c.status === "ok" ? "ok" : "bad"}` }, c.status) },
      { key: "error", label: "Error" },
      { key: "duration_ms", label: "ms", numeric: true },
      { key: "idempotency_keys", label: "Idempotency keys",
        render: (c) => (c.idempotency_keys || []).join(" "),
        csv: (c) => (c.idempotency_keys || []).join(" ") },
    ],
    rows: t.calls, csv: `calls-${t.correlation_id}`,
    empty: "No external call was made for it.",
  });
}

async function renderTimeline(body, correlationId) {
  body.dataset.timelineView = "timeline";
  body.append(section("Find a timeline", searchForm(correlationId)));
  const t = await api(`/v1/correlations/${encodeURIComponent(correlationId)}/timeline`);
  body.dataset.correlation = t.correlation_id;
  const systems = table({
    caption: "Technical status per system",
    columns: [
      { key: "system", label: "System" },
      { key: "technical", label: "Status", render: (r) => badge(r.technical) },
      { key: "deliveries", label: "Deliveries",
        render: (r) => Object.entries(r.deliveries).map(([s, n]) => `${n} ${s}`).join(", "),
        csv: (r) => Object.entries(r.deliveries).map(([s, n]) => `${n} ${s}`).join(" ") },
    ],
    rows: t.systems, csv: `systems-${t.correlation_id}`,
    empty: "Nothing was sent to another system for it (yet).",
    rowAttrs: (r) => ({ "data-system": r.system, "data-state": r.technical }),
  });
  body.append(section(t.correlation_id, summary(t), systems, table({
    caption: "Milestones across the systems",
    columns: [
      { key: "at", label: "At", render: (m) => iso(m.at) },
      { key: "milestone", label: "Milestone" },
      { key: "system", label: "System" },
      { key: "event_id", label: "Event" },
    ],
    rows: t.milestones, csv: `milestones-${t.correlation_id}`,
    empty: "No milestone yet: its events have not reached a system. Search for the id, or " +
           "look in the exception queue.",
    rowAttrs: (m) => ({ "data-milestone": m.milestone }),
  })));
  body.append(section("Exceptions raised for it", table({
    caption: "Exceptions (resolved ones too)",
    columns: [
      { key: "id", label: "Exception", numeric: true, render: (e) =>
        h("a", { href: `#/exceptions/${e.id}` }, String(e.id)) },
      { key: "class", label: "Class" },
      { key: "status", label: "Status" },
      { key: "amount_at_stake", label: "At stake", numeric: true,
        render: (e) => e.amount_at_stake ? money(e.amount_at_stake.amount,
                                                 e.amount_at_stake.currency) : "",
        csv: (e) => e.amount_at_stake ? e.amount_at_stake.amount : "" },
      { key: "summary", label: "Summary" },
      { key: "opened_at", label: "Opened", render: (e) => iso(e.opened_at) },
      { key: "resolved_at", label: "Resolved", render: (e) => iso(e.resolved_at) },
    ],
    rows: t.exceptions, csv: `exceptions-${t.correlation_id}`,
    empty: "No exception was raised for it.",
  })));
  body.append(section("External calls", callsBlock(t)));
}

register({
  path: "timeline", title: "Contract timeline", order: 4, scope: "finance:read",
  async render(body, { params, query }) {
    if (params.length) await renderTimeline(body, params[0]);
    else await renderSearch(body, (query.get("q") || "").trim());
  },
});
