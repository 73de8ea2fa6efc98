// The Contract timeline page.
import { register } from "/console/console.js";
import { empty } from "/console/ui.js";

register({
  path: "timeline", title: "Contract timeline", order: 4, scope: "finance:read",
  async render(body) {
    body.append(empty("Not built yet."));
  },
});
