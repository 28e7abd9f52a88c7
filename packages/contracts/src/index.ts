export * from "./topics.js";
export * from "./device.js";
export * from "./runner.js";
export * from "./socket.js";
export * from "./api.js";
