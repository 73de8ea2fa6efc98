// The Close page.
import { register } from "/console/console.js";
import { empty } from "/console/ui.js";

register({
  path: "close", title: "Close", order: 7, scope: "finance:read",
  async render(body) {
    body.append(empty("Not built yet."));
  },
});
