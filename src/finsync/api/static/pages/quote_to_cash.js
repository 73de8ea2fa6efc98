// The Quote-to-cash page: what became of each CPQ version. At the top, how many orders
// to billing are in each state; then the CPQ contracts with their latest version and its
// order state (GET /v1/cpq/contracts); for one contract (#/quote-to-cash/<id>) its
// versions, each order's state and why, the milestones of its thread, its exceptions with
// the money at stake (linked to the Exceptions page), the renewal baseline and the
// catalogue map version in force (GET /v1/cpq/contracts/<id>, `finsync cpq status`).
// #/quote-to-cash?state=held&offset=0   #/quote-to-cash/CPQ-C1
import { api, navigate, register } from "/console/console.js";
import { empty, field, h, iso, money, section, select, table } from "/console/ui.js";

const PAGE = 50;
const STATES = ["held", "sent", "refused", "failed", "applied", "mismatch"];
const STATE_HELP = {
  held: "held before billing (a product the catalogue map cannot translate)",
  sent: "sent to billing, its contract not yet checked",
  refused: "refused by billing (sent again when finance retries it)",
  failed: "the last attempt to send it failed (billing unavailable, or a defect): retried",
  applied: "applied: billing's contract equals the CPQ version",
  mismatch: "billing's contract differs from the CPQ version",
};
const BADGE = { held: "bad", refused: "bad", failed: "bad", mismatch: "bad", sent: "warn",
  applied: "ok" };
const MILESTONES = [["order_accepted", "Order accepted"],
  ["contract_accepted", "Contract accepted"], ["invoice_posted", "Invoice posted"],
  ["payment_applied", "Payment applied"], ["revenue_schedule_created", "Revenue schedule"]];

function stateBadge(state) {
  if (!state) return h("span", { class: "badge", "data-state": "" }, "not ordered");
  return h("span", { class: `badge ${BADGE[state] || ""}`, title: STATE_HELP[state],
                     "data-state": state }, state);
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : "";
}

function counts(data) {
  const kpi = (label, value, testid, href) => h("div", { class: "kpi" },
    h("div", { class: "label" }, label),
    h("div", { class: "value", "data-testid": testid },
      href ? h("a", { href }, String(value)) : String(value)));
  return h("div", { class: "kpis", role: "group", "aria-label": "CPQ orders per state" },
    kpi("Not applied (held, refused, failed, mismatch)", data.not_applied, "cpq-not-applied"),
    STATES.map((s) => kpi(`Orders ${s}`, data.counts[s], `cpq-count-${s}`,
                          `#/quote-to-cash?state=${s}`)));
}

function filters(state) {
  const chosen = select("state", [["", "any state"], ...STATES.map((s) => [s, s])], state);
  const form = h("form", { class: "filters", "aria-label": "Quote-to-cash filters" },
                 field("With an order", chosen), h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(`quote-to-cash${query({ state: chosen.value })}`);
  });
  return form;
}

function pager(data) {
  const last = data.offset + data.contracts.length;
  const link = (label, offset) => h("a", {
    href: `#/quote-to-cash${query({ state: data.state, offset: offset || "" })}` }, label);
  return h("p", { class: "hint", "data-testid": "cpq-pager" },
    `Contracts ${data.total ? data.offset + 1 : 0}–${last} of ${data.total}. `,
    data.offset > 0 ? link("Previous", Math.max(0, data.offset - data.limit)) : null,
    data.offset > 0 && last < data.total ? " · " : null,
    last < data.total ? link("Next", last) : null);
}

// The money at stake in the contract's unresolved exceptions, one line per currency.
function stake(r) {
  if (!r.at_stake.length) return "";
  return h("span", { "data-testid": "cpq-at-stake" }, r.at_stake.map(
    (m, i) => [i ? h("br", {}) : null, money(m.amount, m.currency)]).flat());
}

function contractList(data) {
  const orders = (r) => STATES.filter((s) => r.orders[s]).map((s) => `${r.orders[s]} ${s}`)
    .join(", ");
  return section("CPQ contracts", pager(data), h("div", { "data-testid": "cpq-contracts" },
    table({
      caption: "Each contract's latest CPQ version and its order to billing",
      columns: [
        { key: "contract_id", label: "Contract",
          render: (r) => h("a", { href: `#/quote-to-cash/${encodeURIComponent(r.contract_id)}` },
                           r.contract_id) },
        { key: "cpq_version", label: "Latest version", numeric: true },
        { key: "quote_id", label: "Quote" },
        { key: "event_status", label: "Version" },
        { key: "order_state", label: "Order", render: (r) => stateBadge(r.order_state) },
        { key: "orders", label: "All its orders", render: orders, csv: orders },
        { key: "unresolved", label: "Open exceptions", numeric: true },
        { key: "at_stake", label: "At stake", numeric: true, render: stake,
          csv: (r) => r.at_stake.map((m) => `${m.amount} ${m.currency}`).join(" ") },
        { key: "received_at", label: "Received", render: (r) => iso(r.received_at) }],
      rows: data.contracts, csv: "cpq-contracts",
      rowAttrs: (r) => ({ "data-contract": r.contract_id, "data-order-state": r.order_state || "" }),
      empty: data.state
        ? `No CPQ contract has an order ${data.state}.`
        : "The hub holds no CPQ version yet: approved quotes appear here once a CPQ " +
          "source sends them (docs/cpq.md)." })));
}

function milestones(version) {
  const seen = new Map(version.milestones.map((m) => [m.name, m]));
  return h("ul", { class: "milestones", "data-testid": "milestones" }, MILESTONES.map(
    ([name, label]) => {
      const m = seen.get(name);
      return h("li", { "data-milestone": name, "data-reached": m ? "true" : "false" },
               m ? "✔ " : "· ", label, m ? ` (${m.target}, ${iso(m.recorded_at)})` : "");
    }));
}

function exceptionsOf(version) {
  if (!version.exceptions.length) return h("span", { class: "hint" }, "none");
  return h("ul", {}, version.exceptions.map((e) => h("li", {
    "data-exception": e.id, "data-status": e.status },
    h("a", { href: `#/exceptions/${e.id}` }, `#${e.id} ${e.class}`), ` (${e.status})`,
    e.at_stake ? [" at stake ", money(e.at_stake.amount, e.at_stake.currency)] : "",
    h("div", { class: "hint" }, e.summary))));
}

function versionsTable(status) {
  return table({
    caption: `CPQ versions of ${status.contract_id}`,
    columns: [
      { key: "cpq_version", label: "Version", numeric: true },
      { key: "quote_id", label: "Quote" },
      { key: "event_status", label: "Version status" },
      { key: "order_state", label: "Order", render: (v) => stateBadge(v.order_state) },
      { key: "catalog_version", label: "Map version", numeric: true },
      { key: "detail", label: "Why", render: (v) => v.detail || "" },
      { key: "milestones", label: "Milestones", render: milestones,
        csv: (v) => v.milestones.map((m) => m.name).join(" ") },
      { key: "exceptions", label: "Exceptions", render: exceptionsOf,
        csv: (v) => v.exceptions.map((e) => `${e.id}:${e.class}:${e.status}`).join(" ") }],
    rows: status.versions, csv: `cpq-${status.contract_id}`,
    rowAttrs: (v) => ({ "data-version": v.cpq_version, "data-quote": v.quote_id,
                        "data-order-state": v.order_state || "" }) });
}

function baseline(status) {
  const b = status.renewal_baseline;
  if (!b) {
    return h("p", { "data-testid": "cpq-baseline" }, "No renewal baseline yet: one is " +
             "stored once a version of this contract is applied.");
  }
  return h("div", { "data-testid": "cpq-baseline", "data-cpq-version": b.cpq_version },
    h("p", {}, `Renews on ${b.renews_on} with ${b.uplift_percent} % uplift ` +
      `(from version ${b.cpq_version}, quote ${b.quote_id}).`),
    table({ caption: "What renews", rows: b.lines, empty: "Nothing renews (cancelled).",
            columns: [{ key: "line_id", label: "Line" },
              { key: "product_code", label: "CPQ product" },
              { key: "quantity", label: "Quantity", numeric: true },
              { key: "net_unit_price", label: "Net unit price", numeric: true,
                render: (l) => money(l.net_unit_price, l.currency),
                csv: (l) => l.net_unit_price },
              { key: "currency", label: "Currency" }] }));
}

async function contractDetail(contractId) {
  const status = await api(`/v1/cpq/contracts/${encodeURIComponent(contractId)}`);
  return h("div", { "data-testid": "cpq-contract", "data-contract": status.contract_id },
    section(`Contract ${status.contract_id}`,
      h("p", { "data-testid": "cpq-catalog-version" }, "Catalogue map version in force: ",
        status.catalog_version === null ? "none loaded" : String(status.catalog_version)),
      h("div", { "data-testid": "cpq-versions" }, versionsTable(status))),
    section("Renewal baseline", baseline(status)));
}

register({
  path: "quote-to-cash", title: "Quote to cash", order: 6.5, scope: "finance:read",
  async render(body, { params, query: q }) {
    const state = q.get("state") || "";
    const offset = q.get("offset") || "";
    const data = await api(`/v1/cpq/contracts${query({ state, offset, limit: PAGE })}`);
    body.append(counts(data), filters(state), contractList(data));
    if (params[0]) body.append(await contractDetail(params[0]));
    else if (data.contracts.length) {
      body.append(empty("Pick a contract to see its versions, milestones and exceptions."));
    }
  },
});
