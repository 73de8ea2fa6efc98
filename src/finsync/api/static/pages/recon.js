// The Reconciliation page.
import { register } from "/console/console.js";
import { empty } from "/console/ui.js";

register({
  path: "recon", title: "Reconciliation", order: 3, scope: "finance:read",
  async render(body) {
    body.append(empty("Not built yet."));
  },
});
