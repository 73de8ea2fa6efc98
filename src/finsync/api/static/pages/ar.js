// The AR page: aging by bucket and customer (chart and table, the figures of
// `finsync ledger aging`), each subledger beside its GL control account per entity, and
// the customer credits (unapplied cash, over-credits).
// #/ar?entity=le_us&as_of=2026-12-31
import { api, navigate, register } from "/console/console.js";
import { h, chart, field, money, section, select, table } from "/console/ui.js";

const LABELS = { current: "Current", "1-30": "1–30 d", "31-60": "31–60 d", "61-90": "61–90 d",
                 "90+": "90+ d", credits: "Credits", total: "Total" };

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  return q.toString();
}

function filters(state, entities) {
  const entity = select("entity", entities.map((e) => [e.id, `${e.id} (${e.currency})`]),
                        state.entity);
  const asOf = h("input", { type: "date", name: "as_of", value: state.as_of });
  const form = h("form", { class: "filters", "aria-label": "AR filters" },
                 field("Legal entity", entity), field("As of", asOf),
                 h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(`ar?${query({ entity: entity.value, as_of: asOf.value })}`);
  });
  return form;
}

function agingChart(data) {
  // The largest customers, one trace each, and the others added up (the API's `chart`).
  const buckets = data.buckets.filter((b) => b !== "credits");
  const rows = [...data.chart.customers];
  if (data.chart.others_count) {
    rows.push({ ...data.chart.others, customer: `${data.chart.others_count} other customers` });
  }
  const traces = rows.map((c) => ({
    type: "bar", name: c.customer, x: buckets.map((b) => LABELS[b]),
    y: buckets.map((b) => Number(c[b])),
  }));
  const columns = [{ key: "customer", label: "Customer" }, ...buckets.map((b) => ({
    key: b, label: LABELS[b], numeric: true, render: (r) => money(r[b], data.currency) }))];
  return chart({
    title: `Open receivables by days past due and customer, ${data.legal_entity} at ` +
      data.as_of,
    traces, layout: { barmode: "stack", showlegend: true, yaxis: { title: data.currency } },
    data: { columns, rows, csv: `aging-chart-${data.legal_entity}-${data.as_of}` },
  });
}

function agingSection(data) {
  const columns = [{ key: "customer", label: "Customer" },
    ...[...data.buckets, "total"].map((b) => ({
      key: b, label: LABELS[b] || b, numeric: true, render: (r) => money(r[b], data.currency) }))];
  const totalRow = { customer: `All ${data.customers_count} customers`, ...data.totals };
  const shown = data.customers.length < data.customers_count
    ? h("p", { class: "hint" }, `The ${data.customers.length} largest of ` +
        `${data.customers_count} customers; the last row adds up all of them.`) : null;
  if (!data.customers_count) {
    return section("AR aging", h("div", { class: "empty", role: "status" },
      h("p", {}, `Nothing open for ${data.legal_entity} at ${data.as_of}.`),
      h("p", { class: "next" }, "Pick another date; invoices appear once posted to the ledger.")));
  }
  return section("AR aging", agingChart(data), shown,
    h("div", { "data-testid": "aging" }, table({
      caption: `Open receivables per customer, ${data.legal_entity} at ${data.as_of}`,
      columns, rows: [...data.customers, totalRow],
      csv: `aging-${data.legal_entity}-${data.as_of}`,
      rowAttrs: (row) => ({ "data-customer": row === totalRow ? "*" : row.customer }) })));
}

function subledgerSection(data) {
  const cur = (row) => row.currency;
  const amount = (label, key) => ({ key, label, numeric: true,
                                    render: (r) => money(r[key], cur(r)) });
  return section(`Subledger vs GL at ${data.as_of}`,
    data.disagreeing
      ? h("p", { class: "badge bad" }, `${data.disagreeing} subledger(s) differ from the GL`)
      : h("p", { class: "badge ok" }, "Every subledger equals its control account."),
    h("div", { "data-testid": "subledgers" }, table({
      columns: [{ key: "legal_entity", label: "Entity" }, { key: "control", label: "Control" },
        amount("Subledger", "subledger"), amount("GL", "gl"), amount("Difference", "difference"),
        { key: "agrees", label: "Agrees", csv: (r) => String(r.agrees),
          render: (r) => h("span", { class: `badge ${r.agrees ? "ok" : "bad"}` },
                           r.agrees ? "yes" : "no") }],
      rows: data.rows, csv: `subledgers-${data.as_of}`,
      empty: "No legal entity is set up in the ledger: run `finsync init`." })));
}

function creditsSection(data) {
  const amount = (label, key) => ({ key, label, numeric: true, csv: (r) => r[key].amount,
                                    render: (r) => money(r[key].amount, r[key].currency) });
  return section("Unapplied cash and credits",
    h("p", {}, `${data.count} open credit(s), booked total `,
      money(data.total, data.currency),
      data.credits.length < data.count ? ` (the ${data.credits.length} largest shown)` : ""),
    h("div", { "data-testid": "credits" }, table({
      columns: [{ key: "customer", label: "Customer" }, { key: "document", label: "Document" },
        { key: "posting_date", label: "Posted" }, amount("Original", "original"),
        amount("Open", "open"), amount(`Booked (${data.currency})`, "booked")],
      rows: data.credits, csv: `credits-${data.legal_entity}-${data.as_of}`,
      empty: `No unapplied cash or credit open for ${data.legal_entity} at ${data.as_of}: ` +
        "nothing to apply or refund." })));
}

register({
  path: "ar", title: "AR", order: 6, scope: "finance:read",
  async render(body, { query: q }) {
    const state = { entity: q.get("entity") || "", as_of: q.get("as_of") || "" };
    const [aging, subledgers, credits] = await Promise.all([
      api(`/v1/ar/aging?${query({ ...state, limit: 100 })}`),
      api(`/v1/ar/subledgers?${query({ as_of: state.as_of })}`),
      api(`/v1/ar/credits?${query({ ...state, limit: 100 })}`)]);
    body.dataset.entity = aging.legal_entity;
    body.append(filters({ entity: aging.legal_entity, as_of: aging.as_of }, aging.entities));
    body.append(agingSection(aging), subledgerSection(subledgers), creditsSection(credits));
  },
});
