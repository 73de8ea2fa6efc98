// The Revenue page: the waterfall (chart and table), the deferred revenue roll-forward
// (opening + billed − recognised = closing, checked per month), RPO current / non-current,
// and one contract's schedule with its revisions and their ASC 606 reasons.
// #/revenue?entity=le_us&from=2026-01&to=2026-12&as_of=2026-12-31, #/revenue/<contract id>
import { api, navigate, register } from "/console/console.js";
import { h, chart, empty, errorBox, field, money, section, select, table } from "/console/ui.js";

const num = (label, key, currency) => ({
  key, label, numeric: true,
  render: (row) => money(row[key], currency(row)),
});

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  return q.toString();
}

function filters(state, entities, onChange) {
  const entity = select("entity", entities.map((e) => [e.id, `${e.id} (${e.currency})`]),
                        state.entity);
  const first = h("input", { type: "month", name: "from", value: state.from });
  const last = h("input", { type: "month", name: "to", value: state.to });
  const asOf = h("input", { type: "date", name: "as_of", value: state.as_of });
  const apply = h("button", { type: "submit" }, "Show");
  const form = h("form", { class: "filters", "aria-label": "Revenue filters" },
                 field("Legal entity", entity), field("From month", first),
                 field("To month", last), field("RPO as of", asOf), apply);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onChange({ entity: entity.value, from: first.value, to: last.value, as_of: asOf.value });
  });
  return form;
}

function waterfallSection(data) {
  const rows = data.months.map((month) => {
    const row = { month };
    for (const [currency, amounts] of Object.entries(data.revenue)) row[currency] = amounts[month];
    return row;
  });
  const currencies = Object.keys(data.revenue);
  if (!currencies.length) {
    return section("Revenue waterfall", empty(
      `No revenue recognised for ${data.legal_entity} from ${data.months[0]} to ` +
      `${data.months[data.months.length - 1]}.`,
      "Pick other months, or check that contracts reached the revenue engine (Exceptions)."));
  }
  const columns = [{ key: "month", label: "Month" },
    ...currencies.map((c) => num(c, c, () => c))];
  const traces = currencies.map((c) => ({
    type: "bar", name: c, x: data.months, y: data.months.map((m) => Number(data.revenue[c][m])),
  }));
  const totals = h("p", { class: "totals", "data-testid": "waterfall-total" },
                   "Total: ", data.totals.map((t) => money(t.amount, t.currency)).join(", "));
  return section("Revenue waterfall",
    chart({ title: `Revenue recognised per month, ${data.legal_entity}`, traces,
            layout: { barmode: "group", yaxis: { title: "revenue" } },
            data: { columns, rows, csv: `waterfall-${data.legal_entity}` } }),
    h("div", { "data-testid": "waterfall" }, table({
      caption: `Revenue per month, ${data.legal_entity}`, columns, rows,
      csv: `waterfall-table-${data.legal_entity}`,
      rowAttrs: (row) => ({ "data-month": row.month }) })),
    totals);
}

function rollForwardSection(data) {
  const cur = (row) => row.currency;
  const columns = [
    { key: "month", label: "Month" }, { key: "currency", label: "Currency" },
    num("Opening", "opening", cur), num("Invoiced", "invoiced", cur),
    num("Credit memos", "credited", cur), num("Recognised", "recognised", cur),
    num("Closing", "closing", cur),
    num("Deferred revenue", "closing_deferred_revenue", cur),
    num("Contract asset", "closing_contract_asset", cur),
    { key: "difference", label: "Check", numeric: true, csv: (row) => row.difference,
      render: (row) => row.foots ? h("span", { class: "badge ok" }, "foots")
        : h("span", { class: "badge bad" }, `off by ${money(row.difference, row.currency)}`) },
  ];
  const status = data.foots
    ? h("p", { class: "badge ok", "data-testid": "rollforward-status" },
        "Every month foots: opening + billed − recognised = closing.")
    : h("p", { class: "badge bad", "data-testid": "rollforward-status" },
        `${data.not_footing} month(s) do not foot: see the Check column.`);
  return section("Deferred revenue roll-forward",
    h("p", { class: "hint" }, "Net contract position (deferred revenue − contract asset − " +
      "unbilled receivable). Billed = invoiced − credit memos."),
    status,
    h("div", { "data-testid": "rollforward" }, table({
      caption: `Roll-forward per month, ${data.legal_entity}`, columns, rows: data.rows,
      csv: `rollforward-${data.legal_entity}`,
      empty: "No revenue contract in these months: nothing to roll forward. Pick other months.",
      rowAttrs: (row) => ({ "data-month": row.month }) })));
}

function rpoSection(data) {
  const cur = (row) => row.currency;
  return section(`Remaining performance obligations at ${data.as_of}`,
    h("div", { "data-testid": "rpo" }, table({
      columns: [{ key: "currency", label: "Currency" },
        num("Current (12 months)", "current", cur), num("Non-current", "non_current", cur),
        num("Total", "total", cur)],
      rows: data.rpo, csv: `rpo-${data.legal_entity}-${data.as_of}`,
      empty: `No remaining performance obligation at ${data.as_of}: every contract is ` +
        "satisfied or none is booked. Pick another date." })));
}

function contractPicker(listed, current, state) {
  const options = [["", "— choose a contract —"],
    ...listed.contracts.map((c) => [c.contract, `${c.contract} (${c.customer}, v${c.version})`])];
  const picked = select("contract", options, current || "");
  const typed = h("input", { type: "text", name: "contract_id", maxlength: 255,
                             placeholder: "con_…", value: current || "" });
  const form = h("form", { class: "filters", "aria-label": "Open a contract's schedule" },
                 field("Contract", picked), field("or contract id", typed),
                 h("button", { type: "submit" }, "Open schedule"));
  picked.addEventListener("change", () => { typed.value = picked.value; });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = typed.value.trim() || picked.value;
    if (id) navigate(`revenue/${encodeURIComponent(id)}?${query(state)}`);
  });
  return form;
}

function scheduleView(data) {
  const cur = () => data.currency;
  const labels = data.revenue.periods.map((p) => p.period);
  const revenueRows = data.revenue.rows.map((r) => ({ obligation: r.obligation, ...r.amounts,
                                                       total: r.total }));
  const revisions = data.obligations.flatMap((ob) => ob.revisions.map((r) => ({
    obligation: ob.obligation, schedule: ob.schedule, ...r })));
  return h("div", { "data-testid": "schedule", "data-contract": data.contract },
    h("p", {}, `${data.contract} — ${data.revenue_contract}, customer ${data.customer}, ` +
      `version ${data.version}, transaction price `, money(data.transaction_price, data.currency)),
    table({ caption: "Allocation (ASC 606-10-32-28)", csv: `allocation-${data.contract}`,
      columns: [{ key: "obligation", label: "Obligation" }, { key: "product", label: "Product" },
        { key: "pattern", label: "Pattern" }, num("SSP", "ssp", cur),
        num("Stated price", "stated_price", cur), num("Allocated", "allocated", cur),
        { key: "inception_method", label: "Method" },
        { key: "inception_paragraph", label: "Paragraph" }, { key: "schedule", label: "Schedule" }],
      rows: data.allocation }),
    table({ caption: "Modifications and their ASC 606 treatment",
      csv: `modifications-${data.contract}`,
      empty: "No modification: the schedule is the inception allocation's.",
      columns: [{ key: "effective_date", label: "Effective" }, { key: "amendment", label: "Amendment" },
        { key: "contract_version", label: "Version", numeric: true },
        { key: "treatment", label: "Treatment" }, { key: "paragraph", label: "Paragraph" },
        { key: "reason", label: "Reason" },
        { key: "catch_up", label: "Catch-up", csv: (r) => JSON.stringify(r.catch_up),
          render: (r) => Object.entries(r.catch_up).map(([ob, a]) =>
            `${ob} ${money(a, data.currency)}`).join("; ") }],
      rows: data.modifications, rowAttrs: () => ({ "data-testid": "modification" }) }),
    table({ caption: "Schedule revisions", csv: `revisions-${data.contract}`,
      columns: [{ key: "obligation", label: "Obligation" }, { key: "schedule", label: "Schedule" },
        { key: "version", label: "Version", numeric: true }, { key: "cause", label: "Cause" },
        { key: "effective", label: "Effective" }, { key: "event", label: "Event" },
        { key: "detail", label: "Detail" }],
      rows: revisions }),
    table({ caption: `Revenue per obligation per ${data.period}`, csv: `schedule-${data.contract}`,
      columns: [{ key: "obligation", label: "Obligation" },
        ...labels.map((l) => num(l, l, cur)), num("Total", "total", cur)],
      rows: revenueRows }),
    table({ caption: "Balances at each period end", csv: `balances-${data.contract}`,
      columns: [{ key: "as_of", label: "As of" }, num("Billed", "billed", cur),
        num("Recognised", "recognised", cur), num("Deferred revenue", "deferred_revenue", cur),
        num("Contract asset", "contract_asset", cur),
        num("Unbilled receivable", "unbilled_receivable", cur)],
      rows: data.balances }));
}

// The contract section, from the answers asked for with the page's others: the entity's
// contracts (a picker) and, when the address names one, that contract's schedule.
function contractSection(contractId, state, listed, schedule) {
  const parts = [contractPicker(listed, contractId, state)];
  if (!listed.contracts.length) {
    parts.push(empty(`No revenue contract booked for ${listed.legal_entity}.`,
                     "Contracts arrive with billing's contract.created events."));
  }
  if (contractId) {
    const period = select("period", [["month", "month"], ["quarter", "quarter"], ["year", "year"]],
                          state.period || "month");
    period.addEventListener("change", () => navigate(
      `revenue/${encodeURIComponent(contractId)}?${query({ ...state, period: period.value })}`));
    parts.push(field("Reporting period", period));
    parts.push(schedule.error ? errorBox(schedule.error) : scheduleView(schedule.data));
  }
  return section("Contract schedule", ...parts);
}

register({
  path: "revenue", title: "Revenue", order: 5, scope: "finance:read",
  async render(body, { params, query: q }) {
    const state = { entity: q.get("entity") || "", from: q.get("from") || "",
                    to: q.get("to") || "", as_of: q.get("as_of") || "",
                    period: q.get("period") || "" };
    const range = query({ entity: state.entity, from: state.from, to: state.to });
    const contractId = params[0] || "";
    // Every read at once; a contract that cannot be read is shown as its refusal.
    const schedule = contractId
      ? api(`/v1/revenue/contracts/${encodeURIComponent(contractId)}?` +
            query({ period: state.period || "month" })).then((data) => ({ data }),
                                                          (error) => ({ error }))
      : Promise.resolve(null);
    const [fall, rolled, rpo, listed, scheduled] = await Promise.all([
      api(`/v1/revenue/waterfall?${range}`), api(`/v1/revenue/roll-forward?${range}`),
      api(`/v1/revenue/rpo?${query({ entity: state.entity, as_of: state.as_of })}`),
      api(`/v1/revenue/contracts?${query({ entity: state.entity, limit: 200 })}`), schedule]);
    const shown = { ...state, entity: fall.legal_entity, from: fall.months[0],
                    to: fall.months[fall.months.length - 1], as_of: rpo.as_of };
    body.dataset.entity = shown.entity;
    body.append(filters(shown, fall.entities, (next) => navigate(`revenue?${query(next)}`)));
    const contract = contractSection(contractId, shown, listed, scheduled);
    const figures = [waterfallSection(fall), rollForwardSection(rolled), rpoSection(rpo)];
    // A contract asked for by its address comes first; the entity's figures follow.
    if (contractId) body.append(contract, ...figures);
    else body.append(...figures, contract);
  },
});
