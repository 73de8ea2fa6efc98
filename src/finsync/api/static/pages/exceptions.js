// The Exceptions page.
import { register } from "/console/console.js";
import { empty } from "/console/ui.js";

register({
  path: "exceptions", title: "Exceptions", order: 2, scope: "finance:read",
  async render(body) {
    body.append(empty("Not built yet."));
  },
});
