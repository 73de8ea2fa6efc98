// The Overview page: how much money is at risk, why, and since when. Every figure comes
// from GET /v1/overview (the same computation as `finsync status` and `finsync metrics`).
import { api, register } from "/console/console.js";
import { age, chart, empty, h, iso, money, section, table } from "/console/ui.js";

const AGE_LABELS = { "0-1d": "0–1 d", "1-7d": "1–7 d", "7-30d": "7–30 d",
                     "30-90d": "30–90 d", "90d+": "90 d +" };

// The currencies that appear in rows' `at_stake` lists, sorted.
function currenciesOf(rows) {
  const found = new Set();
  for (const row of rows) for (const m of row.at_stake) found.add(m.currency);
  return [...found].sort();
}

function amountIn(row, currency) {
  const found = row.at_stake.find((m) => m.currency === currency);
  return found ? found.amount : "0";
}

// One numeric column per currency: the amount at stake in it.
function stakeColumns(currencies) {
  return currencies.map((currency) => ({
    key: `at_stake_${currency}`, label: `At stake (${currency})`, numeric: true,
    render: (row) => money(amountIn(row, currency), currency),
    csv: (row) => amountIn(row, currency),
  }));
}

// Bars per currency over `rows`, labelled by `label(row)`; plotly gets numbers, the table
// beside the chart keeps the exact decimal strings.
function stakeChart(title, rows, label, columns, csv) {
  const currencies = currenciesOf(rows);
  const traces = currencies.map((currency) => ({
    type: "bar", name: currency, x: rows.map(label),
    y: rows.map((row) => Number(amountIn(row, currency))),
  }));
  return chart({ title, traces, layout: { barmode: "group", yaxis: { title: "at stake" } },
                 data: { caption: title, columns, rows, csv } });
}

function kpi(label, value, testid) {
  return h("div", { class: "kpi" }, h("div", { class: "label" }, label),
           h("div", { class: "value", "data-testid": testid }, value));
}

function headline(data) {
  const aging = data.metrics.exception_aging;
  const amounts = data.at_stake.amounts;
  const stake = amounts.length
    ? amounts.map((m) => kpi(`At stake (${m.currency})`, money(m.amount, m.currency),
                             `at-stake-${m.currency}`))
    : [kpi("At stake", "nothing", "at-stake-none")];
  const pipeline = data.pipeline;
  const health = !pipeline.runs_here ? "another process"
    : pipeline.status === "ok" ? "healthy" : "unhealthy";
  return h("div", { class: "kpis overview-kpis", role: "group", "aria-label": "Headline figures" },
    stake,
    kpi("Unresolved exceptions", String(data.at_stake.count), "unresolved-count"),
    kpi("Invoices held for tax", h("a", { href: "#/exceptions?class=tax_failure" },
                                   String(data.held_for_tax.count)), "held-for-tax-count"),
    kpi("CPQ orders not applied", h("a", { href: "#/quote-to-cash" },
                                    String(data.cpq_not_applied)), "cpq-not-applied"),
    kpi("Oldest unresolved", aging.oldest_age_s === null ? "none" : age(aging.oldest_age_s),
        "oldest-age"),
    kpi("Invoice posting success", percent(data.metrics.invoice_posting_success.ratio),
        "posting-success"),
    kpi("Pipeline", health, "pipeline-health"));
}

// Invoices billing holds as drafts because their tax could not be computed: nothing of
// them is posted; each is an unresolved tax_failure, listed on the Exceptions page.
function heldForTax(data) {
  const held = data.held_for_tax;
  const link = `#/exceptions?class=${encodeURIComponent(held.exception_class)}`;
  if (!held.count) {
    return section("Invoices held for tax",
      h("p", { "data-testid": "held-for-tax-none" }, "No invoice is held: every invoice billing issued was taxed."));
  }
  const rows = Object.entries(held.at_stake).map(([currency, amount]) => ({ currency, amount }));
  return section("Invoices held for tax",
    h("p", { class: "hint" },
      h("a", { href: link, "data-testid": "held-for-tax-link" },
        `${held.count} invoice${held.count === 1 ? "" : "s"} held`),
      " as drafts: their tax could not be computed, so nothing of them is posted. Billing retries the transient ones; the others need their master data fixed, then a retry."),
    table({ caption: "Held for tax: subtotals per currency", csv: "held-for-tax", rows,
            columns: [
              { key: "currency", label: "Currency",
                render: (row) => h("a", { href: `${link}&currency=${encodeURIComponent(row.currency)}` },
                                   row.currency) },
              { key: "amount", label: "Held back (before tax)", numeric: true,
                render: (row) => money(row.amount, row.currency), csv: (row) => row.amount },
            ],
            rowAttrs: (row) => ({ "data-held-currency": row.currency }) }));
}

function percent(ratio) {
  return `${(Number(ratio) * 100).toFixed(2)} %`;
}

function byClass(data) {
  const rows = [...data.by_class].sort((a, b) => b.count - a.count
                                                 || a.class.localeCompare(b.class));
  if (!rows.length) {
    return section("Money at stake by exception class",
      empty("No unresolved exception: no money is at stake.",
            "New exceptions appear here as the pipeline raises them; resolved ones are on the Exceptions page."));
  }
  const columns = [
    { key: "class", label: "Class",
      render: (row) => h("a", { href: `#/exceptions?class=${encodeURIComponent(row.class)}` },
                         row.class) },
    { key: "count", label: "Exceptions", numeric: true },
    ...stakeColumns(currenciesOf(rows)),
  ];
  return section("Money at stake by exception class",
    stakeChart("At stake by class", rows, (row) => row.class, columns, "at-stake-by-class"),
    table({ caption: "Unresolved exceptions by class", columns, rows, csv: "at-stake-by-class",
            rowAttrs: (row) => ({ "data-class": row.class }) }));
}

function byAge(data) {
  const rows = data.by_age;
  const columns = [
    { key: "age", label: "Age", render: (row) => AGE_LABELS[row.age] || row.age,
      csv: (row) => row.age },
    { key: "count", label: "Exceptions", numeric: true },
    ...stakeColumns(currenciesOf(rows)),
  ];
  const body = data.at_stake.count
    ? [stakeChart("At stake by age", rows, (row) => AGE_LABELS[row.age] || row.age, columns,
                  "at-stake-by-age"),
       table({ caption: "Unresolved exceptions by age since opened", columns, rows,
               csv: "at-stake-by-age", rowAttrs: (row) => ({ "data-age": row.age }) })]
    : [empty("Nothing is waiting: no unresolved exception of any age.")];
  return section("Money at stake by age", ...body);
}

function reconciliation(data) {
  const recon = data.reconciliation;
  const rows = recon.entities;
  const columns = [
    { key: "legal_entity", label: "Entity",
      render: (row) => h("a", { href: "#/recon" }, row.legal_entity) },
    { key: "as_of", label: "As of", render: (row) => row.latest ? row.latest.as_of : "not reconciled",
      csv: (row) => row.latest ? row.latest.as_of : "" },
    { key: "run_at", label: "Run at", render: (row) => row.latest ? iso(row.latest.run_at) : "",
      csv: (row) => row.latest ? row.latest.run_at : "" },
    { key: "variance", label: "Variance", numeric: true,
      render: (row) => row.latest ? money(row.latest.variance.amount, row.latest.variance.currency) : "",
      csv: (row) => row.latest ? row.latest.variance.amount : "" },
    { key: "currency", label: "Currency", csv: (row) => row.currency,
      render: (row) => row.currency },
    { key: "breaks", label: "Breaks", numeric: true,
      render: (row) => row.latest ? String(row.latest.breaks) : "",
      csv: (row) => row.latest ? row.latest.breaks : "" },
    { key: "unmatched_ar", label: "Unmatched AR", numeric: true,
      render: (row) => row.latest ? String(row.latest.unmatched_ar) : "",
      csv: (row) => row.latest ? row.latest.unmatched_ar : "" },
  ];
  const none = rows.every((row) => !row.latest);
  const parts = [table({ caption: "Latest reconciliation per entity", columns, rows,
                         csv: "reconciliation-latest",
                         rowAttrs: (row) => ({ "data-entity": row.legal_entity }) })];
  if (none) {
    parts.push(empty("No reconciliation has been run yet.",
                     "Run one from the Reconciliation page (or `finsync reconcile --as-of DATE`); `finsync serve` runs one each day."));
  }
  parts.push(trend(recon));
  return section("Reconciliation variance", ...parts);
}

function trend(recon) {
  const points = recon.trend;
  const title = `Variance from ${recon.trend_since} to ${recon.trend_until}`;
  if (!points.length) {
    return empty(`No reconciliation run with an as-of date since ${recon.trend_since}.`,
                 "The trend fills in as reconciliation runs each day.");
  }
  const entities = [...new Set(points.map((p) => p.legal_entity))].sort();
  const traces = entities.map((entity) => {
    const mine = points.filter((p) => p.legal_entity === entity);
    return { type: "scatter", mode: "lines+markers", name: `${entity} (${mine[0].currency})`,
             x: mine.map((p) => p.as_of), y: mine.map((p) => Number(p.variance)) };
  });
  const columns = [
    { key: "as_of", label: "As of" },
    { key: "legal_entity", label: "Entity" },
    { key: "variance", label: "Variance", numeric: true,
      render: (p) => money(p.variance, p.currency), csv: (p) => p.variance },
    { key: "currency", label: "Currency" },
    { key: "breaks", label: "Breaks", numeric: true },
  ];
  // The whole window on the axis: one run must not be stretched to fill it.
  const xaxis = { type: "date", range: [recon.trend_since, recon.trend_until] };
  return chart({ title, traces, layout: { xaxis, yaxis: { title: "variance" },
                                          legend: { orientation: "h", y: -0.25 } },
                 data: { caption: title, columns, rows: points, csv: "variance-trend" } });
}

// The seven metrics of DESIGN §7, one row each, as text a controller reads.
function metricRows(m) {
  const latency = m.event_to_posting_latency_s;
  const seconds = (v) => {
    if (v === undefined || v === null) return "no posting yet";
    return Number(v) < 60 ? `${Number(v).toFixed(3)} s` : age(v);
  };
  const variance = m.reconciliation_variance.map(
    (r) => `${r.legal_entity} ${money(r.variance.amount, r.variance.currency)}`).join("; ");
  const aging = m.exception_aging;
  return [
    { metric: "Invoice posting success rate", id: "posting_success",
      value: `${percent(m.invoice_posting_success.ratio)} (${m.invoice_posting_success.posted} posted, ${m.invoice_posting_success.refused} refused)` },
    { metric: "Event → posting latency p50 / p99", id: "latency",
      value: `${seconds(latency.p50)} / ${seconds(latency.p99)} (${latency.count} postings)` },
    { metric: "Unmatched AR transactions", id: "unmatched_ar", value: String(m.unmatched_ar.total) },
    { metric: "Revenue schedule failures", id: "schedule_failures",
      value: String(m.revenue_schedule_failures) },
    { metric: "Duplicate-event rate", id: "duplicates",
      value: `${percent(m.duplicate_events.ratio)} (${m.duplicate_events.count} of ${m.duplicate_events.raw_events} received)` },
    { metric: "Exception aging", id: "exception_aging",
      value: `${aging.unresolved} unresolved; oldest ${aging.oldest_age_s === null ? "none" : age(aging.oldest_age_s)}` },
    { metric: "Reconciliation variance", id: "recon_variance",
      value: variance || "not reconciled yet" },
  ];
}

function metrics(data) {
  const rows = metricRows(data.metrics);
  return section("Metrics (DESIGN §7)",
    table({ caption: `Measured at ${iso(data.measured_at)}`, csv: "metrics", rows,
            columns: [{ key: "metric", label: "Metric" }, { key: "value", label: "Value" }],
            rowAttrs: (row) => ({ "data-metric": row.id }) }));
}

const BUDGET_LIMITS = {
  calls_per_minute: "calls per minute spent",
  daily_cap: "daily cap reached (until the next UTC day)",
  retry_after: "the ERP asked to be called later",
};

// The ERPs whose posting budget holds their calls back now: their due deliveries wait,
// untried, among "Due now".
function budgetWaits(waits) {
  if (!waits.length) return null;
  return table({ caption: "ERP calls held back by the posting budget", rows: waits,
    rowAttrs: (row) => ({ "data-budget-target": row.target }), columns: [
      { key: "target", label: "ERP" },
      { key: "limit", label: "Held back because", render: (row) => BUDGET_LIMITS[row.limit] || row.limit },
      { key: "seconds", label: "Next call in", numeric: true, render: (row) => (row.seconds < 60 ? `${Math.ceil(row.seconds)} s` : age(row.seconds)) },
    ] });
}

function pipeline(data) {
  const p = data.pipeline;
  const w = p.waiting;
  const waiting = [table({ caption: "Waiting to be delivered", columns: [
    { key: "due", label: "Due now", numeric: true },
    { key: "retrying", label: "Retrying", numeric: true },
    { key: "in_flight", label: "In flight", numeric: true },
    { key: "next_retry_at", label: "Next retry", render: (row) => iso(row.next_retry_at) || "none" },
  ], rows: [w] }), budgetWaits(p.budget_waits)];
  if (!p.runs_here) {
    return section("Pipeline",
      h("p", {}, h("span", { class: "badge", "data-testid": "pipeline-badge" }, "not run here"),
        " This server process runs no pipeline; another process (`finsync serve --workers N`, or `finsync run`) delivers."),
      ...waiting);
  }
  const workers = Object.entries(p.workers).map(([name, worker]) => ({ name, ...worker }));
  const badge = p.status === "ok" ? "ok" : "bad";
  return section("Pipeline",
    h("p", {}, h("span", { class: `badge ${badge}`, "data-testid": "pipeline-badge" }, p.status)),
    p.reasons.length ? h("ul", { class: "reasons" }, p.reasons.map((r) => h("li", {}, r))) : null,
    table({ caption: "Pipeline threads", rows: workers, columns: [
      { key: "name", label: "Thread" },
      { key: "alive", label: "Alive", render: (row) => (row.alive ? "yes" : "no") },
      { key: "last_iteration_at", label: "Last round", render: (row) => iso(row.last_iteration_at) },
      { key: "last_progress_at", label: "Last progress", render: (row) => iso(row.last_progress_at) },
      { key: "failures", label: "Failures", numeric: true },
      { key: "restarts", label: "Restarts", numeric: true },
      { key: "last_error", label: "Last error", render: (row) => row.last_error || "" },
    ] }),
    ...waiting);
}

register({
  path: "overview", title: "Overview", order: 1, scope: "finance:read",
  async render(body) {
    const loading = h("p", { class: "loading", role: "status" }, "Reading the overview…");
    body.append(loading);
    const data = await api("/v1/overview");
    loading.remove();
    body.dataset.unresolved = String(data.at_stake.count);
    body.append(
      h("p", { class: "hint" }, `Measured at ${iso(data.measured_at)}. Money at stake is every unresolved exception's (open, retrying, awaiting approval).`),
      headline(data),
      heldForTax(data),
      h("div", { class: "grid overview-grid" }, byClass(data), byAge(data)),
      reconciliation(data),
      h("div", { class: "grid overview-grid" }, metrics(data), pipeline(data)));
  },
});
