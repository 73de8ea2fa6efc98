// Every page of the console, in the navigation's order (each module registers itself).
import "/console/pages/overview.js";
import "/console/pages/exceptions.js";
import "/console/pages/recon.js";
import "/console/pages/timeline.js";
import "/console/pages/revenue.js";
import "/console/pages/ar.js";
import "/console/pages/close.js";
import "/console/pages/quote_to_cash.js";
