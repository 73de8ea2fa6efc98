// The AR page.
import { register } from "/console/console.js";
import { empty } from "/console/ui.js";

register({
  path: "ar", title: "AR", order: 6, scope: "finance:read",
  async render(body) {
    body.append(empty("Not built yet."));
  },
});
