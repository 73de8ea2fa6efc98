// The Reconciliation page: every check per entity as of a day (as the day's latest run
// recorded them, else computed without recording), the variance trend, a run started in
// the background with its progress, and the drill-down of a check's breaks to the
// documents behind each item.
//   #/recon?as_of=2026-03-31                                  the checks
//   #/recon/le_us/billing_vs_erp_ar?as_of=…&ref=invoice:inv_1  a check's breaks, one item's documents
import { api, can, navigate, register } from "/console/console.js";
import {
  actionForm, chart, empty, field, h, iso, jobProgress, money, section, table,
} from "/console/ui.js";

const ACT = "exceptions:act";

function amount(m) {
  return m ? money(m.amount, m.currency) : "";
}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) q.set(key, value);
  const text = q.toString();
  return text ? `?${text}` : "";
}

function checksHref(asOf) {
  return `#/recon${query({ as_of: asOf })}`;
}

function breaksHref(entity, check, asOf, ref) {
  const path = `recon/${encodeURIComponent(entity)}/${encodeURIComponent(check)}`;
  return `#/${path}${query({ as_of: asOf, ref })}`;
}

function sourceNote(view, entity) {
  if (view.source === "stored") {
    return `As recorded by the run of ${iso(entity ? entity.run_at : "")}.`;
  }
  return "No run was recorded for this day: computed now, not recorded (it opens no " +
         "exception). Run reconciliation to record it.";
}

function dayForm(asOf) {
  // A text field, not type=date: the browser would show the day in its locale's order.
  const input = h("input", { type: "text", name: "as_of", value: asOf, required: true,
                             pattern: "\\d{4}-\\d{2}-\\d{2}", placeholder: "YYYY-MM-DD",
                             inputmode: "numeric", size: 10, "data-testid": "recon-as-of" });
  const form = h("form", { class: "inline", role: "search" }, field("As of", input),
                 h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value) navigate(`recon${query({ as_of: input.value })}`);
  });
  return form;
}

function runForm(asOf) {
  const area = h("div", { class: "recon-run" });
  const form = actionForm(`Run reconciliation as of ${asOf} now`, async () => {
    const job = await api("/v1/reconciliation/runs", { method: "POST", body: { as_of: asOf } });
    area.replaceChildren(jobProgress(api, job, (finished) => {
      area.dataset.finished = finished.status;
      if (finished.status !== "done") return;
      const r = finished.result;
      const variance = r.total_variance.map((m) => amount(m)).join(", ");
      area.append(h("p", { role: "status", "data-testid": "recon-run-result" },
                    `Run as of ${r.as_of} recorded: ${r.breaks} break(s), ` +
                    `${r.unexplained_breaks} unexplained; variance ${variance}. `,
                    h("a", { href: checksHref(r.as_of) }, "Show the recorded run")));
    }));
    return `started (${job.id}); the page stays usable while it runs`;
  }, { needsReason: false });
  form.dataset.testid = "recon-run";
  return h("div", {}, form, area);
}

function checkColumns(entity, asOf) {
  return [
    { key: "name", label: "Check", render: (c) => (c.breaks
      ? h("a", { href: breaksHref(entity.legal_entity, c.name, asOf),
                 "data-testid": `drill-${entity.legal_entity}-${c.name}` }, c.name)
      : c.name), csv: (c) => c.name },
    { key: "items", label: "Items compared", numeric: true },
    { key: "breaks", label: "Breaks", numeric: true },
    { key: "unexplained", label: "Unexplained", numeric: true },
    { key: "variance", label: "Variance", numeric: true, render: (c) => amount(c.variance),
      csv: (c) => c.variance.amount },
  ];
}

function entitySection(view, entity) {
  const head = h("p", {}, `Variance ${amount(entity.variance)}; ${entity.breaks} break(s), `,
                 h("strong", { "data-testid": `unexplained-${entity.legal_entity}` },
                   `${entity.unexplained_breaks} unexplained`), ". ",
                 sourceNote(view, entity));
  return section(`${entity.legal_entity} (${entity.currency})`, head, table({
    caption: `The ${entity.checks.length} checks of ${entity.legal_entity} as of ${view.as_of}`,
    columns: checkColumns(entity, view.as_of), rows: entity.checks,
    csv: `recon-${entity.legal_entity}-${view.as_of}`,
    rowAttrs: (c) => ({ "data-check": `${entity.legal_entity}/${c.name}` }),
    empty: "No checks for this entity: is it in the configuration's [ledger] entities?",
  }), notesList(entity.checks));
}

// The checks' notes (the roll-forward's arithmetic, what is left out) under the table:
// a column of them would make every row tall on a phone.
function notesList(checks) {
  const noted = checks.filter((c) => c.notes.length);
  if (!noted.length) return null;
  return h("dl", { class: "recon-notes" }, noted.flatMap((c) => [
    h("dt", {}, c.name), ...c.notes.map((n) => h("dd", {}, n))]));
}

function trendChart(trend) {
  if (!trend.points.length) {
    return empty(`No run was recorded between ${trend.since} and ${trend.until}.`,
                 "Run reconciliation (here, or `finsync reconcile --as-of DAY`) to start the trend.");
  }
  const entities = [...new Set(trend.points.map((p) => p.legal_entity))];
  const traces = entities.map((e) => {
    const mine = trend.points.filter((p) => p.legal_entity === e);
    return { type: "scatter", mode: "lines+markers", name: `${e} (${mine[0].currency})`,
             x: mine.map((p) => p.as_of), y: mine.map((p) => p.variance) };
  });
  return chart({
    title: `Reconciliation variance per entity, ${trend.since} to ${trend.until}`,
    traces, layout: { xaxis: { type: "date", tickformat: "%Y-%m-%d",
                               range: [trend.since, trend.until] },
                      yaxis: { title: { text: "variance" } } },
    data: {
      columns: [
        { key: "legal_entity", label: "Entity" },
        { key: "as_of", label: "As of" },
        { key: "variance", label: "Variance", numeric: true,
          render: (p) => money(p.variance, p.currency), csv: (p) => p.variance },
        { key: "currency", label: "Currency" },
        { key: "breaks", label: "Breaks", numeric: true },
      ],
      rows: trend.points, csv: `recon-variance-trend-${trend.until}`,
    },
  });
}

async function renderChecks(body, queryParams) {
  const asked = queryParams.get("as_of");
  const view = await api(`/v1/reconciliation${query({ as_of: asked })}`);
  body.dataset.asOf = view.as_of;
  body.dataset.source = view.source;
  const controls = [dayForm(view.as_of)];
  if (can(ACT)) controls.push(runForm(view.as_of));
  body.append(h("div", { class: "recon-controls" }, controls));
  body.append(h("p", { class: "recon-total" }, `As of ${view.as_of}: `,
                h("strong", { "data-testid": "unexplained-breaks" },
                  `${view.unexplained_breaks} unexplained break(s)`),
                view.unexplained_breaks
                  ? " — each is a reconciliation_break in the exception queue once a run records it."
                  : " — every break is explained, or there is none."));
  for (const entity of view.entities) body.append(entitySection(view, entity));
  const trend = await api(`/v1/reconciliation/trend${query({ until: view.as_of })}`);
  body.append(section("Variance trend", trendChart(trend)));
}

function breakColumns(entity, check, asOf) {
  return [
    { key: "ref", label: "Item", render: (b) => h("a", {
      href: breaksHref(entity, check, asOf, b.ref), class: "ref",
      "data-testid": `item-${b.ref}` }, b.ref), csv: (b) => b.ref },
    { key: "customer_id", label: "Customer" },
    { key: "cause", label: "Cause" },
    { key: "explained_by", label: "Explained by", render: (b) => b.explained_by || "unexplained" },
    { key: "expected", label: "Expected (system of record)", numeric: true,
      render: (b) => amount(b.expected), csv: (b) => b.expected.amount },
    { key: "actual", label: "Actual (other system)", numeric: true,
      render: (b) => amount(b.actual), csv: (b) => b.actual.amount },
    { key: "variance", label: "Variance", numeric: true,
      render: (b) => amount(b.variance), csv: (b) => b.variance.amount },
    { key: "exception", label: "Exception", render: (b) => (b.exception
      ? h("a", { href: `#/exceptions/${b.exception.id}` },
          `#${b.exception.id} (${b.exception.status})`) : "none"),
      csv: (b) => (b.exception ? b.exception.id : "") },
  ];
}

function documentsSection(docs) {
  if (!docs.has_documents) {
    return section(`Documents of ${docs.ref}`, empty(
      `${docs.ref} sums many documents; it has none of its own.`,
      "Look at the invoice, payment or credit memo items of the same customer or period."));
  }
  const events = table({
    caption: "Events the hub accepted (billing's documents)",
    columns: [
      { key: "type", label: "Event" },
      { key: "occurred_at", label: "Occurred", render: (e) => iso(e.occurred_at) },
      { key: "correlation_id", label: "Correlation (timeline)", render: (e) => h("a", {
        href: `#/timeline/${encodeURIComponent(e.correlation_id)}`, class: "ref" },
        e.correlation_id) },
      { key: "contract_id", label: "Subscription contract", render: (e) => (e.contract_id
        ? h("a", { href: `#/revenue/${encodeURIComponent(e.contract_id)}` }, e.contract_id)
        : "") },
    ],
    rows: docs.events,
    empty: "The hub accepted no event for this object: it was not sent by billing, or it " +
           "is still in intake. Look in the exception queue for its mapping or delivery error.",
  });
  const systems = table({
    caption: "Its id in each system (the ERP's journal entry, the revenue engine's contract)",
    columns: [{ key: "system", label: "System" }, { key: "id", label: "Id in that system",
                render: (r) => h("span", { class: "ref" }, r.id) }],
    rows: docs.in_systems,
    empty: "No system has acknowledged it yet: see its deliveries on the timeline.",
  });
  const entries = docs.erp_entries.map((entry) => table({
    caption: `The ERP's journal entry ${entry.id} (${entry.system}), posted ${entry.posting_date}`,
    columns: [
      { key: "account", label: "Account" },
      { key: "debit", label: "Debit", numeric: true,
        render: (l) => (l.side === "debit" ? amount(l.amount) : ""),
        csv: (l) => (l.side === "debit" ? l.amount.amount : "") },
      { key: "credit", label: "Credit", numeric: true,
        render: (l) => (l.side === "credit" ? amount(l.amount) : ""),
        csv: (l) => (l.side === "credit" ? l.amount.amount : "") },
    ],
    rows: entry.lines,
  }));
  return section(`Documents of ${docs.ref}`, events, systems, entries);
}

async function renderBreaks(body, [entity, check], queryParams) {
  const asOf = queryParams.get("as_of");
  const ref = queryParams.get("ref");
  const path = `/v1/reconciliation/${encodeURIComponent(entity)}/${encodeURIComponent(check)}`;
  const drill = await api(`${path}${query({ as_of: asOf })}`);
  body.dataset.asOf = drill.as_of;
  body.append(h("p", {}, h("a", { href: checksHref(drill.as_of) },
                           `← All checks as of ${drill.as_of}`)));
  const c = drill.check;
  body.append(section(`${check} — ${entity}, as of ${drill.as_of}`,
    h("p", {}, `${c.items} item(s) compared, ${c.breaks} break(s) (${c.unexplained} ` +
               `unexplained), variance ${amount(c.variance)}. ${sourceNote(drill, null)}`),
    drill.breaks_shown < drill.breaks_total
      ? h("p", { role: "note" }, `The ${drill.breaks_shown} largest of ${drill.breaks_total} breaks.`)
      : null,
    notesList([c]),
    table({ caption: "Breaks, largest variance first", columns: breakColumns(entity, check, drill.as_of),
            rows: drill.breaks, csv: `recon-${entity}-${check}-${drill.as_of}`,
            empty: "This check has no break on this day.",
            rowAttrs: (b) => ({ "aria-current": b.ref === ref ? "true" : undefined }) })));
  if (ref) {
    const docs = await api(`/v1/reconciliation/documents${query({ ref })}`);
    const shown = documentsSection(docs);
    shown.dataset.testid = "item-documents";
    body.append(shown);
    shown.scrollIntoView({ block: "nearest" });
  }
}

register({
  path: "recon", title: "Reconciliation", order: 3, scope: "finance:read",
  async render(body, { params, query: queryParams }) {
    body.classList.add("recon-page");
    if (params.length >= 2) await renderBreaks(body, params, queryParams);
    else await renderChecks(body, queryParams);
  },
});
