/* page.mjs -- the ES module test page. */
import Herald from "./herald.mjs";

runPage(Herald);
