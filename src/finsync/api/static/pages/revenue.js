// The Revenue page.
import { register } from "/console/console.js";
import { empty } from "/console/ui.js";

register({
  path: "revenue", title: "Revenue", order: 5, scope: "finance:read",
  async render(body) {
    body.append(empty("Not built yet."));
  },
});
