/** The bench's measuring primitives; the bench itself is a program (`npm run bench`). */
export { type Figure, figure, median, quantile } from "./measure.js";
