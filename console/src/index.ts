export { CONSOLE_PATH, consoleAssetsDir, serveConsole } from "./serve.js";
