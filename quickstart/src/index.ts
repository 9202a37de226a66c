/** The quick start's demo of both scenarios, for whoever runs it against their own hub and provinces. */
export { runDemo } from "./demo.js";
