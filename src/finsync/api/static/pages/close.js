// The Close page: every entity's periods (#/close), and one period (#/close/<entity>/<YYYY-MM>)
// with its checklist, revenue journals, period log, and the close and reopen actions. Every
// figure is the JSON API's (GET /v1/close, GET /v1/close/{entity}/{period}).
import { api, can, navigate, principal, register } from "/console/console.js";
import { actionForm, empty, field, h, iso, money, section, select, table } from "/console/ui.js";

const STATE_BADGE = { done: "ok", outstanding: "bad", in_queue: "warn", to_do: "",
                      posted: "ok", pending: "warn", held: "bad", not_sent: "",
                      closed: "ok", soft_closed: "warn", open: "" };
const STATE_TEXT = { done: "done", outstanding: "outstanding (blocks the close)",
                     in_queue: "in the exception queue", to_do: "to do at close",
                     posted: "posted", pending: "sent, not posted yet",
                     held: "held by an exception", not_sent: "not sent yet (the close sends it)",
                     closed: "closed", soft_closed: "soft-closed", open: "open" };

// The outcome of the last action, shown once at the top of the page it reloads.
let flash = null;

function done(message, reload) {
  flash = message;
  reload();
  return message;
}

function flashBox() {
  const message = flash;
  flash = null;
  return message ? h("p", { class: "action-status ok", role: "status",
                            "data-testid": "close-outcome" }, message) : null;
}

function badge(state) {
  return h("span", { class: `badge ${STATE_BADGE[state] || ""}`, "data-state": state },
           STATE_TEXT[state] || state);
}

const periodPath = (entity, period) =>
  `close/${encodeURIComponent(entity)}/${encodeURIComponent(period)}`;

function picker(board, entity, period) {
  const entities = board.entities.map((e) => [e.id, `${e.id} (${e.functional_currency})`]);
  const entitySelect = select("entity", entities, entity || (entities[0] || [""])[0]);
  const periodSelect = select("period", [], "");
  const fill = () => {
    const rows = board.periods.filter((p) => p.legal_entity === entitySelect.value);
    const next = rows.find((p) => p.status !== "closed");
    const chosen = period || (next ? next.period : "");
    periodSelect.replaceChildren(...rows.map((p) =>
      h("option", { value: p.period, selected: p.period === chosen },
        `${p.period} (${p.status})`)));
  };
  entitySelect.addEventListener("change", fill);
  fill();
  const go = h("button", { type: "submit" }, "Show the period");
  const form = h("form", { class: "filters", "data-testid": "close-picker" },
                 field("Legal entity", entitySelect), field("Period", periodSelect), go);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (periodSelect.value) navigate(periodPath(entitySelect.value, periodSelect.value));
  });
  return form;
}

function requestsBlock(requests, onDecided) {
  const decide = (request, approve) => actionForm(approve ? "Approve reopen" : "Reject reopen",
    async (reason) => {
      const verb = approve ? "approve" : "reject";
      const decided = await api(`/v1/approvals/requests/${request.id}/${verb}`,
                                { method: "POST", body: { reason } });
      return done(`request ${decided.id} (${decided.subject}) ${decided.status} by ` +
                  decided.decided_by, onDecided);
    });
  const listed = table({
    caption: "Requests to reopen a period, waiting for a second person",
    columns: [
      { key: "id", label: "Request", numeric: true },
      { key: "subject", label: "Period" },
      { key: "requested_by", label: "Asked by" },
      { key: "reason", label: "Reason" },
      { key: "requested_at", label: "Asked at", render: (r) => iso(r.requested_at) },
      { key: "expires_at", label: "Expires", render: (r) => iso(r.expires_at) },
    ],
    rows: requests, csv: "reopen-requests",
    empty: "No request to reopen a period is waiting.",
  });
  if (!can("exceptions:approve")) return [listed];
  // Shown to the person who asked too: the API refuses them (same_person), and says why.
  return [listed, ...requests.map((r) => h("div", { class: "decide",
                                                   "data-testid": `decide-${r.id}` },
    h("h3", {}, `Request ${r.id}: reopen ${r.subject}`),
    r.requested_by === principal()
      ? h("p", { class: "hint" }, "You asked for it: another person must decide.") : null,
    decide(r, true), decide(r, false)))];
}

async function renderBoard(body) {
  const board = await api("/v1/close");
  body.dataset.closeView = "board";
  body.append(flashBox() || "", section("Choose a period", picker(board)));
  if (board.ledger === "external") {
    body.append(empty("The ERP is an external system: the months below are its statuses; " +
                      "reopening a period is done in the ERP."));
  }
  const entities = h("div", { class: "grid" });
  body.append(entities);
  for (const entity of board.entities) {
    const rows = board.periods.filter((p) => p.legal_entity === entity.id);
    const closed = rows.filter((p) => p.status === "closed");
    const next = rows.find((p) => p.status !== "closed");
    const summary = h("p", { "data-testid": `next-${entity.id}` },
      closed.length ? `Last closed: ${closed[closed.length - 1].period}. ` : "Nothing closed yet. ",
      next ? h("span", {}, "Next to close: ",
                h("a", { href: `#/${periodPath(entity.id, next.period)}` }, next.period))
        : "Every period is closed.");
    entities.append(section(`${entity.id} (${entity.functional_currency})`, summary, table({
      caption: `Accounting periods of ${entity.id}`,
      columns: [
        { key: "period", label: "Period", render: (p) =>
          h("a", { href: `#/${periodPath(p.legal_entity, p.period)}`, class: "nowrap" },
            p.period) },
        { key: "status", label: "Status", render: (p) => badge(p.status) },
        { key: "start", label: "From", csv: (p) => p.start, render: (p) => p.start },
        { key: "end", label: "Until (exclusive)" },
      ],
      rows, csv: `periods-${entity.id}`,
      empty: "No period is open for this entity yet: the ERP opens a year when its first " +
             "document arrives.",
      rowAttrs: (p) => ({ "data-period": `${p.legal_entity}:${p.period}` }),
    })));
  }
  body.append(section("Reopen requests", ...requestsBlock(board.reopen_requests,
                                                          () => navigate("close"))));
}

function checklistBlock(view) {
  const rows = view.checklist;
  const details = (item) => item.items.length
    ? h("details", {}, h("summary", {}, `${item.count}${item.more ? "+" : ""} item(s)`),
        h("pre", {}, JSON.stringify(item.items, null, 1)))
    : "";
  return table({
    caption: "Cut-off checklist",
    columns: [
      { key: "label", label: "Check" },
      { key: "state", label: "State", render: (r) => badge(r.state) },
      { key: "count", label: "Items", numeric: true,
        render: (r) => `${r.count}${r.more ? "+" : ""}` },
      { key: "items", label: "Detail", csv: (r) => JSON.stringify(r.items), render: details },
    ],
    rows, csv: `checklist-${view.legal_entity}-${view.period}`,
    rowAttrs: (r) => ({ "data-check": r.key, "data-state": r.state }),
  });
}

function journalsBlock(view) {
  const lines = view.journals.flatMap((j) => j.lines.map((l) => ({ ...l, journal: j.id })));
  return h("div", {}, table({
    caption: "Revenue journals of the period",
    // The figures first: at 390 px the long ids scroll, the amounts stay in view.
    columns: [
      { key: "state", label: "State", render: (j) => h("span", {}, badge(j.state),
                                                         j.held_by ? ` ${j.held_by}` : "") },
      { key: "total", label: "Debits = credits", numeric: true,
        // Per currency: a journal in several currencies shows each (never one sum).
        render: (j) => j.totals.map((t) => money(t.amount, t.currency)).join(", "),
        csv: (j) => (j.totals.length === 1 ? j.totals[0].amount
          : j.totals.map((t) => `${t.amount} ${t.currency}`).join(", ")) },
      { key: "posting_date", label: "Posting date" },
      { key: "id", label: "Journal" },
      { key: "memo", label: "Memo" },
    ],
    rows: view.journals, csv: `revenue-journals-${view.legal_entity}-${view.period}`,
    empty: "The revenue engine has no journal for this period: nothing was recognised in it.",
    rowAttrs: (j) => ({ "data-journal": j.id, "data-state": j.state }),
  }), lines.length ? table({
    caption: "Their lines",
    columns: [
      { key: "account", label: "Account" },
      { key: "side", label: "Side" },
      { key: "amount", label: "Amount", numeric: true,
        render: (l) => money(l.amount, l.currency) },
      { key: "currency", label: "Currency" },
      { key: "journal", label: "Journal" },
    ],
    rows: lines, csv: `revenue-journal-lines-${view.legal_entity}-${view.period}`,
  }) : null);
}

function actionsBlock(view, reload) {
  const forms = [];
  const closed = view.status === "closed";
  const path = `/v1/close/${encodeURIComponent(view.legal_entity)}/${view.period}`;
  if (can("periods:manage") && !closed) {
    forms.push(h("div", { "data-testid": "close-action" }, actionForm("Close the period",
      async () => {
        const result = await api(path, { method: "POST", body: {} });
        return done(`${result.legal_entity} ${result.period}: ${result.status} ` +
                    `(${result.journals.length} revenue journal(s))`, reload);
      }, { needsReason: false })));
  }
  if (can("periods:manage") && closed && !view.reopen_requests.length) {
    forms.push(h("div", { "data-testid": "reopen-action" }, actionForm("Ask to reopen",
      async (reason) => {
        const asked = await api(`${path}/reopen`, { method: "POST", body: { reason } });
        return done(`request ${asked.id}: ${asked.status}; another person with ` +
                    "periods:manage and exceptions:approve must approve it", reload);
      })));
  }
  if (can("periods:manage") && closed && view.journals.some((j) => j.state === "not_sent")) {
    forms.push(h("div", { "data-testid": "into-open-action" }, actionForm(
      "Send the journals to the first open period", async () => {
        const result = await api(path, { method: "POST", body: { into_open_period: true } });
        return done(`${result.status}: ${result.awaiting_reroute.join(", ")}`, reload);
      }, { needsReason: false })));
  }
  if (!forms.length) {
    const why = can("periods:manage") ? "A reopen request is waiting for a second person."
      : "Closing and reopening need periods:manage; this session has read access only.";
    forms.push(h("p", { class: "hint" }, why));
  }
  return forms;
}

async function renderPeriod(body, entity, period) {
  const [board, view] = await Promise.all([
    api("/v1/close"), api(`/v1/close/${encodeURIComponent(entity)}/${encodeURIComponent(period)}`)]);
  const reload = () => navigate(periodPath(entity, period));
  body.dataset.closeView = "period";
  body.dataset.periodStatus = view.status;
  body.append(flashBox() || "");
  body.append(section("Choose a period", picker(board, entity, period)));
  const verdict = view.blocks
    ? h("p", { class: "error-box", role: "alert" }, "The close would be refused now " +
        "(cutoff_incomplete): work the outstanding items first.")
    : h("p", {}, view.status === "closed" ? "The period is closed."
        : "Nothing blocks the close.");
  body.append(section(`${view.legal_entity} ${view.period}`,
    h("p", {}, "Status: ", h("span", { "data-testid": "period-status" }, badge(view.status)),
      ` — ${view.start} to ${view.end} (exclusive)`),
    verdict, checklistBlock(view)));
  const correlation = `close:${view.legal_entity}:${view.period}`;
  body.append(section("Revenue journals", journalsBlock(view),
    view.journals.some((j) => j.event_id) ? h("p", {}, "Their way to the ERP: ",
      h("a", { href: `#/timeline/${encodeURIComponent(correlation)}` },
        `the timeline of ${correlation}`)) : null));
  body.append(section("Close and reopen", ...actionsBlock(view, reload),
                      ...requestsBlock(view.reopen_requests, reload)));
  body.append(section("Period log", table({
    caption: "Who closed or reopened the period, and why",
    columns: [
      { key: "at", label: "At", render: (r) => iso(r.at) },
      { key: "from_status", label: "From" },
      { key: "to_status", label: "To" },
      { key: "actor", label: "By" },
      { key: "reason", label: "Reason" },
    ],
    rows: view.log, csv: `period-log-${view.legal_entity}-${view.period}`,
    empty: "The period has never been closed: close it when its checklist is done.",
  })));
}

register({
  path: "close", title: "Close", order: 7, scope: "finance:read",
  async render(body, { params }) {
    if (params.length >= 2) await renderPeriod(body, params[0], params[1]);
    else await renderBoard(body);
  },
});
