// The Overview page.
import { register } from "/console/console.js";
import { empty } from "/console/ui.js";

register({
  path: "overview", title: "Overview", order: 1, scope: "finance:read",
  async render(body) {
    body.append(empty("Not built yet."));
  },
});
